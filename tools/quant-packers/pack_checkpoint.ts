#!/usr/bin/env bun
/**
 * Writes a pre-quantized Hugging Face checkpoint in a public layout from a float checkpoint, the way
 * a third-party tool would (round to nearest; no calibration): every q/k/v/o/gate/up/down projection
 * of a Llama-family model becomes qweight/qzeros/scales (+ g_idx for GPTQ); other tensors are copied;
 * config.json gets the `quantization_config` of that layout. Also writes `packer_input.json`-free
 * `dequantized.safetensors`: the float32 values (q − z)·s the packer stored, for tests to compare.
 *
 *   bun tools/quant-packers/pack_checkpoint.ts --model DIR --out DIR --format awq|gptq
 *       [--bits 4|8] [--group-size G|-1] [--sym] [--desc-act]
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { Checkpoint, type TensorToWrite, writeSafetensors } from "../../lib/models/safetensors.ts";
import { f16ToF32, f32ToF16 } from "../../lib/util/dtype.ts";
import type { DType } from "../../lib/util/dtype.ts";
import { type Mat, packAwqGemm, packGptq, roundToNearest } from "./packers.ts";

const toF16 = (x: number): number => f16ToF32(f32ToF16(new Float32Array([x])))[0];
const LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

export interface PackOptions {
  readonly format: "awq" | "gptq";
  readonly bits: 4 | 8;
  /** -1 = one group per row (GPTQ per-channel). */
  readonly groupSize: number;
  readonly sym: boolean;
  /** Writes desc_act: true into the config (to test that readers refuse it). */
  readonly descAct?: boolean;
}

/** Packs `modelDir` into `outDir`. */
export function packCheckpoint(modelDir: string, outDir: string, o: PackOptions): void {
  const ckpt = Checkpoint.open(modelDir);
  const config = JSON.parse(fs.readFileSync(path.join(modelDir, "config.json"), "utf8"));
  const tensors: Record<string, TensorToWrite> = {};
  const dequantized: Record<string, TensorToWrite> = {};
  const quantizedNames = new Set<string>();
  for (let l = 0; l < config.num_hidden_layers; l++) for (const m of LINEARS) quantizedNames.add(`model.layers.${l}.${m}.weight`);
  for (const name of ckpt.names()) {
    if (!quantizedNames.has(name)) {
      const info = ckpt.info(name);
      tensors[name] = { dtype: info.dtype as DType, shape: info.shape, data: ckpt.readBytes(name) };
      continue;
    }
    const [N, K] = ckpt.info(name).shape;
    const flat = ckpt.readFloat32(name);
    const W: Mat = Array.from({ length: N }, (_, n) => Array.from(flat.subarray(n * K, (n + 1) * K)));
    const G = o.groupSize === -1 ? K : o.groupSize;
    const { q, z, s } = roundToNearest(W, o.bits, G, o.sym, toF16);
    const m = name.replace(/\.weight$/, "");
    const p = o.format === "awq" ? packAwqGemm(q, z, s) : packGptq(q, z, s, o.bits);
    tensors[`${m}.qweight`] = { dtype: "I32", shape: p.shapes.qweight, data: p.qweight };
    tensors[`${m}.qzeros`] = { dtype: "I32", shape: p.shapes.qzeros, data: p.qzeros };
    tensors[`${m}.scales`] = { dtype: "F16", shape: p.shapes.scales, data: f32ToF16(p.scales) };
    if (o.format === "gptq") tensors[`${m}.g_idx`] = { dtype: "I32", shape: p.shapes.g_idx, data: (p as ReturnType<typeof packGptq>).gIdx };
    const deq = new Float32Array(N * K);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) deq[n * K + k] = (q[n][k] - z[n][Math.floor(k / G)]) * s[n][Math.floor(k / G)];
    dequantized[name] = { dtype: "F32", shape: [N, K], data: deq };
  }
  ckpt.close();
  fs.mkdirSync(outDir, { recursive: true });
  writeSafetensors(path.join(outDir, "model.safetensors"), tensors, { format: "pt" });
  writeSafetensors(path.join(outDir, "dequantized.safetensors.ref"), dequantized);
  config.quantization_config = o.format === "awq"
    ? { quant_method: "awq", bits: 4, group_size: o.groupSize, zero_point: !o.sym, version: "gemm" }
    : { quant_method: "gptq", bits: o.bits, group_size: o.groupSize, desc_act: !!o.descAct, sym: o.sym, checkpoint_format: "gptq", damp_percent: 0.01 };
  fs.writeFileSync(path.join(outDir, "config.json"), JSON.stringify(config, null, 2));
  for (const f of ["tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json"]) {
    if (fs.existsSync(path.join(modelDir, f))) fs.copyFileSync(path.join(modelDir, f), path.join(outDir, f));
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      model: { type: "string" },
      out: { type: "string" },
      format: { type: "string" },
      bits: { type: "string" },
      "group-size": { type: "string" },
      sym: { type: "boolean" },
      "desc-act": { type: "boolean" },
    },
  });
  if (!values.model || !values.out || (values.format !== "awq" && values.format !== "gptq")) {
    console.error("usage: pack_checkpoint.ts --model DIR --out DIR --format awq|gptq [--bits 4|8] [--group-size G|-1] [--sym] [--desc-act]");
    process.exit(2);
  }
  packCheckpoint(values.model, values.out, {
    format: values.format,
    bits: Number(values.bits ?? 4) as 4 | 8,
    groupSize: Number(values["group-size"] ?? 128),
    sym: !!values.sym,
    descAct: values["desc-act"],
  });
}
