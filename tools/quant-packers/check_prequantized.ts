#!/usr/bin/env bun
/**
 * Checks a pre-quantized checkpoint written by a packer (tools/quant-packers/pack_awq_torch.py --check FILE,
 * or any packer that saves its dequantized weights): loads it as llmrt does (`openModel`: the AWQ / GPTQ
 * layouts converted to llmrt's packed layout), times that load, and compares llmrt's dequantization of every
 * weight in FILE (fp32, named `<module>.weight`) with the packer's values bit for bit.
 *
 *   bun tools/quant-packers/check_prequantized.ts --model DIR --check FILE
 *
 * Prints one line per weight and a summary; exit status 1 on any difference.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { SafetensorsFile } from "../../lib/models/safetensors.ts";
import { dequantize } from "../../lib/quantization/packed.ts";
import { openModel } from "../../lib/quantization/prequantized.ts";
import { QuantizedModel } from "../../lib/quantization/quantized_model.ts";

const { values } = parseArgs({ args: process.argv.slice(2), options: { model: { type: "string" }, check: { type: "string" } } });
if (!values.model || !values.check) throw new Error("usage: bun tools/quant-packers/check_prequantized.ts --model DIR --check FILE");

const t0 = performance.now();
const model = openModel(values.model, { dtype: "bfloat16" });
const loadS = (performance.now() - t0) / 1000;
if (!(model instanceof QuantizedModel)) throw new Error(`${values.model}: not a pre-quantized checkpoint (no quantization_config)`);
const qc = model.quantConfig;
console.log(`loaded ${values.model} in ${loadS.toFixed(2)} s: ${qc.quantAlgo}, group ${qc.groupSize}, zero points ${qc.hasZeroPoint}`);

const ref = SafetensorsFile.open(values.check);
let bad = 0, checked = 0;
for (const name of ref.names()) {
  const t = model.quantizedTensor(name);
  if (!t) {
    console.log(`${name}: not quantized in the loaded model`);
    bad++;
    continue;
  }
  const want = ref.readFloat32(name);
  const got = dequantize(t);
  let diff = 0, first = -1;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      diff++;
      if (first < 0) first = i;
    }
  }
  checked += want.length;
  if (got.length !== want.length) diff = Math.max(diff, 1);
  console.log(
    `${name}: [${t.rows}, ${t.cols}] ${t.bits}-bit g${t.groupSize}${t.zeros ? " zp" : ""}: ${
      diff === 0 ? "bitwise equal" : `${diff} of ${want.length} differ (first at ${first}: llmrt ${got[first]}, packer ${want[first]})`
    }`,
  );
  if (diff) bad++;
}
ref.close();
model.close();
console.log(`${bad === 0 ? "OK" : "FAIL"}: ${checked} weights compared; load ${loadS.toFixed(2)} s`);
process.exit(bad === 0 ? 0 : 1);
