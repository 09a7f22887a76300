// Pre-quantized Hugging Face checkpoints: the reference packers (tools/quant-packers) write the
// AutoAWQ GEMM and AutoGPTQ layouts byte for byte; llmrt's loader dequantizes them back to exactly
// (q − z)·s; llmrt's writer produces the same bytes; whole checkpoints load and generate;
// `llmrt quantize` round-trips to identical greedy ids; unsupported variants are refused clearly.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import type { RequestOutput } from "../lib/executor/outputs.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { LLM } from "../lib/llmapi/llm.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { Checkpoint } from "../lib/models/safetensors.ts";
import { fromAwqGemm, fromGptq, toAwqGemm, toGptq } from "../lib/quantization/hf_formats.ts";
import { dequantize } from "../lib/quantization/packed.ts";
import { openModel } from "../lib/quantization/prequantized.ts";
import { QuantizedModel } from "../lib/quantization/quantized_model.ts";
import { f16ToF32, f32ToF16 } from "../lib/util/dtype.ts";
import { UnsupportedError } from "../lib/util/errors.ts";
import { packCheckpoint } from "../tools/quant-packers/pack_checkpoint.ts";
import { type Mat, packAwqGemm, packGptq } from "../tools/quant-packers/packers.ts";
import { assert, isDeno, test } from "./harness.ts";

const kjv = new URL("../models/kjv-llama/", import.meta.url).pathname;
const root = new URL("../", import.meta.url).pathname;
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-qfmt-"));

/** Deterministic integers in [0, n). */
function ints(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

/** Random q [N][K], z [N][K/G] and float16 scales s [N][K/G]. */
function sample(N: number, K: number, G: number, bits: 4 | 8, seed: number, sym: boolean): { q: Mat; z: Mat; s: Mat } {
  const r = ints(seed), maxq = 2 ** bits;
  const f16 = (x: number): number => f16ToF32(f32ToF16(new Float32Array([x])))[0];
  const q = Array.from({ length: N }, () => Array.from({ length: K }, () => r(maxq)));
  const z = Array.from({ length: N }, () => Array.from({ length: K / G }, () => (sym ? maxq / 2 : 1 + r(maxq - 1))));
  const s = Array.from({ length: N }, () => Array.from({ length: K / G }, () => f16(0.001 + r(1000) / 50000)));
  return { q, z, s };
}

/** llmrt's dequantization equals (q − z)·s of the packer's input, value for value. */
function assertDequantEquals(t: ReturnType<typeof fromAwqGemm>, q: Mat, z: Mat, s: Mat, G: number, what: string): void {
  const D = dequantize(t), K = q[0].length;
  for (let n = 0; n < q.length; n++) {
    for (let k = 0; k < K; k++) {
      const want = (q[n][k] - z[n][Math.floor(k / G)]) * s[n][Math.floor(k / G)];
      if (D[n * K + k] !== want) assert.fail(`${what}: w[${n},${k}] = ${D[n * K + k]}, packer input gives ${want}`);
    }
  }
}

const bytes = (a: ArrayBufferView): number[] => [...new Uint8Array(a.buffer, a.byteOffset, a.byteLength)];

test("AWQ GEMM: the packer's layout (AutoAWQ interleave 0 2 4 6 1 3 5 7) dequantizes to exactly (q − z)·s; llmrt's writer gives the same bytes", () => {
  const N = 32, K = 64, G = 16;
  const { q, z, s } = sample(N, K, G, 4, 3, false);
  const p = packAwqGemm(q, z, s);
  // First word by hand: columns 0..7 of input row 0 in nibble order 0 2 4 6 1 3 5 7.
  const qT0 = [0, 2, 4, 6, 1, 3, 5, 7].map((c, i) => q[c][0] << (4 * i)).reduce((a, b) => a | b, 0);
  assert.equal(p.qweight[0], qT0);
  const scales = f32ToF16(p.scales);
  const t = fromAwqGemm({ qweight: p.qweight, qzeros: p.qzeros, scales }, N, K, G);
  assertDequantEquals(t, q, z, s, G, "AWQ");
  const back = toAwqGemm(t);
  assert.deepEqual(bytes(back.qweight), bytes(p.qweight));
  assert.deepEqual(bytes(back.qzeros), bytes(p.qzeros));
  assert.deepEqual(bytes(back.scales), bytes(scales));
});

test("AWQ GEMM and GPTQ readers on shapes past their tiles (41 AWQ words a row, K not a multiple of 8, 40 × 96): (q − z)·s exactly", () => {
  for (const [N, K, G] of [[328, 40, 8], [16, 36, 12], [40, 96, 32]]) {
    const { q, z, s } = sample(N, K, G, 4, N + K, false);
    const p = packAwqGemm(q, z, s);
    assertDequantEquals(fromAwqGemm({ qweight: p.qweight, qzeros: p.qzeros, scales: f32ToF16(p.scales) }, N, K, G), q, z, s, G, `AWQ [${N}, ${K}]`);
  }
  for (const bits of [4, 8] as const) {
    const N = 40, K = 96, G = 32;
    const { q, z, s } = sample(N, K, G, bits, 7 * bits, false);
    const p = packGptq(q, z, s, bits);
    const t = fromGptq({ qweight: p.qweight, qzeros: p.qzeros, scales: f32ToF16(p.scales), gIdx: p.gIdx }, N, K, G, bits, false);
    assertDequantEquals(t, q, z, s, G, `GPTQ ${bits}-bit [${N}, ${K}]`);
  }
});

for (const [bits, G, sym] of [[4, 16, true], [4, 32, false], [8, 64, false], [8, 64, true]] as [4 | 8, number, boolean][]) {
  test(`GPTQ ${bits}-bit group ${G === 64 ? "-1 (per-channel)" : G} ${sym ? "sym" : "asym"}: packer layout dequantizes to exactly (q − z)·s; llmrt's writer gives the same bytes`, () => {
    const N = 16, K = 64;
    const { q, z, s } = sample(N, K, G, bits, 5 + bits + G, sym);
    const p = packGptq(q, z, s, bits);
    const scales = f32ToF16(p.scales);
    const t = fromGptq({ qweight: p.qweight, qzeros: p.qzeros, scales, gIdx: p.gIdx }, N, K, G, bits, sym);
    assert.equal(t.zeros === null, sym);
    assertDequantEquals(t, q, z, s, G, `GPTQ ${bits}-bit`);
    const back = toGptq(t);
    assert.deepEqual(bytes(back.qweight), bytes(p.qweight));
    assert.deepEqual(bytes(back.qzeros), bytes(p.qzeros));
    assert.deepEqual(bytes(back.gIdx!), bytes(p.gIdx));
  });
}

test("GPTQ v1: a stored zero of 15 (a wrapped zero point 0) reads back as 16, as AutoGPTQ's reader does", () => {
  const { q, z, s } = sample(8, 32, 16, 4, 21, false);
  z[3][1] = 16; // what v1 readers reconstruct from a stored 15
  const p = packGptq(q, z, s, 4);
  const t = fromGptq({ qweight: p.qweight, qzeros: p.qzeros, scales: f32ToF16(p.scales), gIdx: p.gIdx }, 8, 32, 16, 4, false);
  assert.equal(t.zeros![3 * 2 + 1], 16);
  assertDequantEquals(t, q, z, s, 16, "GPTQ wrapped zero");
});

test("GPTQ: act-order g_idx and desc_act: true are refused with an UnsupportedError", () => {
  const { q, z, s } = sample(8, 32, 16, 4, 9, true);
  const p = packGptq(q, z, s, 4);
  const gIdx = p.gIdx.slice().reverse();
  assert.throws(() => fromGptq({ qweight: p.qweight, qzeros: p.qzeros, scales: f32ToF16(p.scales), gIdx }, 8, 32, 16, 4, true), UnsupportedError);
  const dir = tmp();
  try {
    packCheckpoint(kjv, dir, { format: "gptq", bits: 4, groupSize: 64, sym: true, descAct: true });
    assert.throws(() => openModel(dir), (e: unknown) => e instanceof UnsupportedError && /desc_act/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

for (
  const opts of [
    { format: "awq", bits: 4, groupSize: 64, sym: false },
    { format: "gptq", bits: 4, groupSize: 64, sym: true },
    { format: "gptq", bits: 8, groupSize: -1, sym: false },
  ] as const
) {
  test(
    `pre-quantized kjv-llama (${opts.format} ${opts.bits}-bit g${opts.groupSize} ${
      opts.sym ? "sym" : "asym"
    }, written by the packer) loads: every linear dequantizes to the packer's values; LLM generates`,
    async () => {
      const dir = tmp();
      try {
        packCheckpoint(kjv, dir, opts);
        const model = openModel(dir);
        const ref = Checkpoint.open(path.join(dir, "dequantized.safetensors.ref"));
        try {
          assert.ok(model instanceof QuantizedModel);
          assert.equal(model.quantizedNames().length, 6 * 7);
          for (const name of ref.names()) {
            const got = dequantize(model.quantizedTensor(name)!), want = ref.readFloat32(name);
            for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) assert.fail(`${name}[${i}]: ${got[i]} != packer ${want[i]}`);
          }
        } finally {
          ref.close();
          model.close();
        }
        await using llm = await LLM.create({
          model: dir,
          backend: "cpu",
          cacheEngine: false,
          buildConfig: { maxBatchSize: 2, maxNumTokens: 64, maxSeqLen: 128 },
        });
        const out = await llm.generate("In the beginning", { temperature: 0, maxTokens: 8, ignoreEos: true }, { useTqdm: false }) as RequestOutput;
        assert.equal(out.outputs[0].tokenIds.length, 8);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
    120_000,
  );
}

test("llmrt quantize --qformat w4a16_awq --threads 2 round trip: the written checkpoint gives the same greedy ids as quantize() in memory", async () => {
  const dir = tmp();
  try {
    const cli = path.join(root, "bin/llmrt.ts");
    const r = spawnSync(process.execPath, [
      ...(isDeno ? ["run", "-A", cli] : [cli]),
      "quantize",
      "--model",
      kjv,
      "--qformat",
      "w4a16_awq",
      "--group-size",
      "64",
      "--zero-point",
      "--calib-tokens",
      "256",
      "--threads", // two threads on disk, one in memory below: the same checkpoint
      "2",
      "--out",
      path.join(dir, "ckpt"),
    ], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /W4A16_AWQ checkpoint written/);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "ckpt", "config.json"), "utf8"));
    assert.equal(cfg.quantization_config.quant_method, "awq");
    const bc = { backend: "cpu", maxBatchSize: 2, maxNumTokens: 64, maxSeqLen: 128 } as const;
    // The same quantization in memory, built and saved as an engine directory with the tokenizer.
    const q = quantizeSync(AutoModelForCausalLM.fromHuggingFace(kjv), { quantAlgo: "W4A16_AWQ", groupSize: 64, hasZeroPoint: true }, {
      maxCalibrationTokens: 256,
    });
    const engine = buildSync(q, bc);
    engine.save(path.join(dir, "engine"));
    engine.dispose();
    q.close();
    for (const f of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]) fs.copyFileSync(path.join(kjv, f), path.join(dir, "engine", f));
    const prompts = ["In the beginning", "And the LORD said unto Moses"];
    const greedy = { temperature: 0, maxTokens: 24, ignoreEos: true };
    await using fromDisk = await LLM.create({ model: path.join(dir, "ckpt"), backend: "cpu", cacheEngine: false, buildConfig: bc });
    await using inMemory = await LLM.create({ model: path.join(dir, "engine"), backend: "cpu" });
    const a = await fromDisk.generate(prompts, greedy, { useTqdm: false }) as RequestOutput[];
    const b = await inMemory.generate(prompts, greedy, { useTqdm: false }) as RequestOutput[];
    assert.deepEqual(a.map((o) => o.outputs[0].tokenIds), b.map((o) => o.outputs[0].tokenIds));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);
