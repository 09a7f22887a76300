// tools/quant-packers/check_fp8_pack.ts, the device job's check that an engine holds the bytes the torch packer
// (pack_fp8_torch.py) wrote: here kjv-llama is packed in the compressed-tensors layout (per-channel weights,
// dynamic per-token activations, kv_cache_scheme) by the TypeScript packer, its fp8_pack_ref.json is made from the
// checkpoint file's own tensors the way the torch packer makes it, and the check must pass on the engine built from
// it — and name the part when a part's bytes, a scale, the row order of a fused linear or a KV scale is wrong.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { buildSync } from "../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { Checkpoint } from "../lib/models/safetensors.ts";
import { openModel } from "../lib/quantization/prequantized.ts";
import { checkFp8Pack, fp8Checksums, type Fp8PackRef, type Fp8PackRefLinear } from "../tools/quant-packers/check_fp8_pack.ts";
import { packFp8Checkpoint } from "../tools/quant-packers/pack_fp8_checkpoint.ts";
import { assert, test } from "./harness.ts";
import { kjv } from "./kjv_perplexity.ts";

const LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];
const MODS = [251, 65521];

test("fp8Checksums: position weights wrap at each modulus", () => {
  const b = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) % 256);
  let s1 = 0, s2 = 0;
  for (let i = 0; i < b.length; i++) {
    s1 += b[i] * ((i % 251) + 1);
    s2 += b[i] * ((i % 65521) + 1);
  }
  assert.deepEqual(fp8Checksums(b, MODS), [s1, s2]);
});

test("checkFp8Pack: a compressed-tensors FP8 + KV checkpoint's engine equals its packer reference; wrong parts are named", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-fp8check-"));
  try {
    const L = AutoModelForCausalLM.fromHuggingFace(kjv).config.numHiddenLayers;
    const kvScales = Array.from({ length: L }, (_, l) => ({ k: 0.01 + l / 1000, v: 0.02 + l / 3000 }));
    const dir = path.join(tmp, "ct");
    packFp8Checkpoint(kjv, dir, { layout: "compressed-tensors", kvScales });
    // The reference from the checkpoint file's tensors (as pack_fp8_torch.py records its own).
    const ck = Checkpoint.open(path.join(dir, "model.safetensors"));
    const linears: Record<string, Fp8PackRefLinear> = {};
    for (let l = 0; l < L; l++) {
      for (const m of LINEARS) {
        const key = `model.layers.${l}.${m}`, info = ck.info(`${key}.weight`);
        assert.equal(info.dtype, "F8_E4M3");
        const s = ck.readFloat32(`${key}.weight_scale`);
        linears[key] = {
          shape: [info.shape[0], info.shape[1]],
          checksums: fp8Checksums(ck.readBytes(`${key}.weight`), MODS),
          scale_first: s[0],
          scale_last: s[s.length - 1],
          scale_sum: s.reduce((a, v) => a + v, 0),
        };
      }
    }
    ck.close();
    const ref: Fp8PackRef = { scheme: "dynamic", mods: MODS, linears, kv: kvScales.map((x) => [x.k, x.v]) };
    const engine = buildSync(openModel(dir), { backend: "cuda", dtype: "bfloat16", maxBatchSize: 1, maxNumTokens: 64, maxSeqLen: 64, tokensPerBlock: 32 });
    const ok = checkFp8Pack(engine, ref);
    assert.deepEqual(ok.mismatches, []);
    assert.equal(ok.linears, L * 7);
    assert.equal(ok.kvLayers, L);
    assert.ok(ok.bytes > 0);
    // k and v swapped in the reference: the fused qkv rows no longer line up (k and v have the same shape here).
    const swapped = { ...linears };
    swapped["model.layers.1.self_attn.k_proj"] = linears["model.layers.1.self_attn.v_proj"];
    swapped["model.layers.1.self_attn.v_proj"] = linears["model.layers.1.self_attn.k_proj"];
    const r1 = checkFp8Pack(engine, { ...ref, linears: swapped }, [1]);
    assert.ok(r1.mismatches.some((m) => m.startsWith("model.layers.1.self_attn.k_proj: e4m3 bytes differ")), r1.mismatches.join("\n"));
    // One byte-position weight off, one scale off, one KV scale off.
    const off = { ...linears };
    const g = linears["model.layers.0.mlp.up_proj"];
    off["model.layers.0.mlp.up_proj"] = { ...g, checksums: [g.checksums[0] + 1, g.checksums[1]] };
    const d = linears["model.layers.0.mlp.down_proj"];
    off["model.layers.0.mlp.down_proj"] = { ...d, scale_last: d.scale_last * 2 };
    const kvOff = ref.kv!.map((x, l) => (l === 0 ? [x[0], x[1] * 2] as const : x));
    const r2 = checkFp8Pack(engine, { ...ref, linears: off, kv: kvOff }, [0]);
    assert.ok(r2.mismatches.some((m) => m.startsWith("model.layers.0.mlp.up_proj: e4m3 bytes differ")), r2.mismatches.join("\n"));
    assert.ok(r2.mismatches.some((m) => m.startsWith("model.layers.0.mlp.down_proj: scales differ")), r2.mismatches.join("\n"));
    assert.ok(r2.mismatches.some((m) => m.startsWith("layer 0 v head 0: KV scale")), r2.mismatches.join("\n"));
    // A static reference against this dynamic engine is refused per linear.
    const r3 = checkFp8Pack(engine, { ...ref, scheme: "static" }, [0]);
    assert.ok(r3.mismatches.some((m) => m.includes("activation dynamic_per_token")), r3.mismatches.join("\n"));
    engine.dispose();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
