// The tensor-core quantized GEMM of batched decode steps (issue 12 deliverable 4; kernels/quant_gemm.cu,
// lib/backends/cuda/quant_gemm_plan.ts), checked without a GPU: with LaunchEnv.quantGemm, decode steps of
// 9..128 rows run each uint4/uint8 linear the kernel takes on quant_gemm_u{4|8}_m{16|32|64} (+ quant_gemm_reduce
// when k is split) instead of dequantize + cuBLASLt, with the right addresses, grid and arity; steps of up to 8 rows
// keep the GEMVs, batch-invariant prefills the dequantize path. On the fake device of tests/cuda_fake_device.ts
// the plan's logits match the dequantize path's and the float32 CPU session's. The kernels' arithmetic:
// tools/cuda-kernel-check/quant_gemm.py on a GPU, quant_gemm_emu.py on the CPU emulation.
import { CpuSession } from "../lib/backends/cpu/session.ts";
import { type KernelLaunch, kernelSignature, type LaunchEnv, planLaunches } from "../lib/backends/cuda/launch_plan.ts";
import { quantGemmGeometry, quantGemmMaxRows } from "../lib/backends/cuda/quant_gemm_plan.ts";
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { FakeCudaSession, maxRelDiff, randomModel, step } from "./cuda_fake_device.ts";
import { fakeLaunchEnv, quantTestLlama } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const kjv = new URL("../models/kjv-llama/", import.meta.url).pathname;

function kjvEngine(qc: QuantConfigInput): Engine {
  const q = quantizeSync(AutoModelForCausalLM.fromHuggingFace(kjv), qc);
  try {
    return buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 64, maxNumTokens: 64, maxSeqLen: 128 });
  } finally {
    q.close();
  }
}

function env(engine: Engine, quantGemm: boolean, batchInvariant = false): LaunchEnv {
  const names = engine.tensorNames();
  return fakeLaunchEnv(engine, {
    weight: (n) => (1n << 40n) + BigInt(names.indexOf(n)) * (1n << 20n),
    batchInvariant,
    fusedDecode: true,
    quantScratch: 17n << 32n,
    quantGemm,
  });
}

test("quantGemmGeometry: row tiles 16 / 32 / 64, 128-row weight blocks (256 for 64-row tiles), splits within the workspace; shapes and steps it does not take", () => {
  assert.deepEqual(quantGemmGeometry(4, 9, 2048, 2048, 128), { kernel: "quant_gemm_u4_m16", grid: [1, 16, 9], splits: 9 });
  assert.deepEqual(quantGemmGeometry(4, 32, 28672, 4096, 128), { kernel: "quant_gemm_u4_m32", grid: [1, 224, 1], splits: 1 });
  assert.deepEqual(quantGemmGeometry(4, 64, 28672, 4096, 128), { kernel: "quant_gemm_u4_m64", grid: [1, 112, 2], splits: 2 });
  assert.deepEqual(quantGemmGeometry(8, 32, 2048, 8192, 8192), { kernel: "quant_gemm_u8_m32", grid: [1, 16, 9], splits: 9 });
  assert.equal(quantGemmGeometry(4, 33, 2048, 2048, 128)!.kernel, "quant_gemm_u4_m64");
  for (const [bits, rows, n, k] of [[4, 9, 2048, 2048], [8, 32, 3072, 2048], [4, 64, 2048, 8192]] as const) {
    const g = quantGemmGeometry(bits, rows, n, k, k)!;
    assert.ok(g.splits * rows * n * 4 <= n * k * 2, "the split workspace fits the linear's bf16 scratch");
    assert.ok(g.splits <= k / (bits === 4 ? 128 : 64), "at least one superchunk per split");
  }
  assert.equal(quantGemmGeometry(4, quantGemmMaxRows(4) + 1, 2048, 2048, 128), null, "past the largest uint4 step (64 rows)");
  assert.equal(quantGemmGeometry(8, quantGemmMaxRows(8) + 1, 2048, 2048, 2048), null, "past the largest uint8 step (32 rows)");
  assert.equal(quantGemmGeometry(4, 16, 2048, 320, 64), null, "k not whole 128-weight superchunks");
  assert.equal(quantGemmGeometry(4, 16, 2048, 2048, 16), null, "a group smaller than a lane's 32 columns");
  assert.equal(quantGemmGeometry(8, 16, 2040, 2048, 2048), null, "n not a multiple of 16");
});

for (
  const [name, qc, u, group] of [
    ["W8A16 uint8 per-channel", { quantAlgo: "W8A16" }, "u8", 0],
    ["W4A16 uint4 g64", { quantAlgo: "W4A16", groupSize: 64 }, "u4", 64],
  ] as [string, QuantConfigInput, "u4" | "u8", number][]
) {
  test(`CUDA launch plan with quantGemm, ${name}: decode steps of 9..64 (u8: 32) rows on quant_gemm_*, GEMVs up to 8, dequantize + cuBLASLt for invariant prefills`, () => {
    const engine = kjvEngine(qc);
    const on = env(engine, true), off = env(engine, false);
    const plan = engine.plan;
    const buf = (n: string): bigint => on.arena + BigInt(plan.buffers[n].offset);
    const quantOps = plan.ops.map((op, i) => [op, i] as const).filter(([op]) => op.type === "linear" && op.weightFormat);
    let taken = 0;
    for (const T of [8, 9, 12, 16, 17, 33, 64]) {
      const shape = { numTokens: T, numSeqs: T, numRows: T, attention: { kind: "decode" as const, numSplits: 2, splitSize: 128 }, sample: true };
      const a = planLaunches(on, shape), b = planLaunches(off, shape);
      for (const l of a) if (l.kind === "kernel") assert.equal(l.args.length, kernelSignature(l.kernel).params.length, `${l.kernel} arity`);
      for (const [op, i] of quantOps) {
        if (op.type !== "linear" || !op.weightFormat) continue;
        const f = op.weightFormat, g = group || op.inFeatures;
        const mine = a.filter((x) => x.op === i), theirs = b.filter((x) => x.op === i);
        const geo = T > 8 ? quantGemmGeometry(u === "u4" ? 4 : 8, T, op.outFeatures, op.inFeatures, g) : null;
        if (!geo) {
          assert.deepEqual(mine, theirs, `op ${i} T=${T}: as without quantGemm`);
          continue;
        }
        taken++;
        const [l, r] = mine as KernelLaunch[];
        assert.equal(mine.length, geo.splits > 1 ? 2 : 1);
        assert.equal(l.kernel, geo.kernel);
        assert.equal(l.kernel, `quant_gemm_${u}_m${T <= 16 ? 16 : T <= 32 ? 32 : 64}`);
        assert.deepEqual(l.grid, geo.grid);
        const ws = geo.splits > 1 ? on.quantScratch! : 0n;
        const W = on.weight(op.weight), sc = on.weight(f.scales), z = f.zeros ? on.weight(f.zeros) : 0n, bias = op.bias ? on.weight(op.bias) : 0n;
        assert.deepEqual(l.args, [buf(op.x), W, sc, z, bias, buf(op.out), ws, T, op.outFeatures, op.inFeatures, g], `op ${i} T=${T}`);
        if (geo.splits > 1) {
          assert.equal(r.kernel, "quant_gemm_reduce");
          assert.deepEqual(r.args, [on.quantScratch, bias, buf(op.out), T, op.outFeatures, geo.splits]);
          assert.deepEqual(r.grid, [Math.ceil((T * op.outFeatures) / 4 / 256), 1, 1]);
        }
      }
      // Nothing but the quantized linears changes.
      const rest = (ls: typeof a): unknown[] =>
        ls.filter((x) => !quantOps.some(([, i]) => i === x.op)).map((x) => JSON.stringify(x, (_k, v) => (typeof v === "bigint" ? `${v}` : v)));
      assert.deepEqual(rest(a), rest(b), `T=${T}`);
    }
    // kjv-llama's down_proj (320 in-features) is no whole number of u4 superchunks: W4A16 keeps dequantize + cuBLASLt there.
    // uint4: steps of 9..64 rows (6 of those planned); uint8: 9..32 (4).
    assert.equal(taken, u === "u8" ? 4 * 6 * 4 : 6 * 6 * 3);
    // A prefill: batch-invariant sessions keep the pinned cuBLASLt algorithm; others take the GEMM for 20 rows too.
    const i = quantOps[0][1];
    const pre = { numTokens: 20, numSeqs: 1, numRows: 1, attention: { kind: "prefill" as const }, sample: true };
    const inv = planLaunches(env(engine, true, true), pre).filter((x) => x.op === i);
    assert.deepEqual(inv.map((x) => (x.kind === "gemm" ? `gemm invariant=${x.invariant}` : x.kernel)), [`quant_dequant_${u}_bf16`, "gemm invariant=true"]);
    const free = planLaunches(on, pre).filter((x) => x.op === i);
    assert.equal((free[0] as KernelLaunch).kernel, `quant_gemm_${u}_m32`);
    engine.dispose();
  });
}

for (
  const [name, qc] of [
    ["W4A16 g128 + zero points", { quantAlgo: "W4A16", groupSize: 128, hasZeroPoint: true }],
    ["W8A16 per channel", { quantAlgo: "W8A16" }],
    ["W4A16 g64 (scales folded into the weights)", { quantAlgo: "W4A16", groupSize: 64 }],
  ] as [string, QuantConfigInput][]
) {
  test(`quant_gemm decode steps on a fake device: ${name}, 12 and 20 sequences, logits near the dequantize path's and the CPU session's`, () => {
    const model = randomModel(quantTestLlama(101), 29, true);
    const q = quantizeSync(model, qc);
    const build = { maxBatchSize: 24, maxNumTokens: 128, maxSeqLen: 64, tokensPerBlock: 4 };
    const bf16 = buildSync(q, { ...build, backend: "cuda", dtype: "bfloat16" });
    const f32 = buildSync(q, { ...build, backend: "cpu", dtype: "float32" });
    q.close();
    model.close();
    const on = new FakeCudaSession(bf16, 200, 132, false, { fusedDecode: true, quantGemm: true });
    const off = new FakeCudaSession(bf16, 200, 132, false, { fusedDecode: true });
    const cpu = new CpuSession(f32);
    const kv = cpu.createKvCache(200);
    const V = bf16.plan.attributes.vocabSize, n = 20, maxBlocks = 8;
    const seqs = Array.from(
      { length: n },
      (_, s) => ({
        ids: Array.from({ length: 3 + (s % 5) }, (_, j) => (s * 37 + j * 11 + 3) % V),
        blocks: Array.from({ length: maxBlocks }, (_, b) => s * maxBlocks + b),
      }),
    );
    const prefill = step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), maxBlocks);
    const want0 = { sampledIds: new Int32Array(n), logits: new Float32Array(n * V) };
    cpu.run(prefill, want0, kv);
    on.run(prefill, false);
    off.run(prefill, false);
    const kernels = new Set<string>();
    for (const [count, graphs] of [[12, true], [20, false]] as const) {
      const inp = step(seqs.slice(0, count).map((s) => ({ ids: [s.ids[s.ids.length - 1]], pos: s.ids.length - 1, blocks: s.blocks })), maxBlocks);
      const want = { sampledIds: new Int32Array(count), logits: new Float32Array(count * V) };
      cpu.run(inp, want, kv);
      const got = on.run(inp, graphs), ref = off.run(inp, graphs);
      for (const l of on.lastLaunches) if (l.kind === "kernel") kernels.add(l.kernel);
      const d = maxRelDiff(got.logits, ref.logits), c = maxRelDiff(got.logits, want.logits);
      // The dequantize path rounds every weight to bf16; quant_gemm scales fp32 sums by the exact scales (groups of a
      // superchunk or more), so it lands nearer the CPU session (measured: 2.2e-2 / 1.6e-2 vs 3.6e-2 / 3.2e-2).
      assert.ok(c < 4e-2, `${count} seqs: vs the CPU session max rel ${c.toExponential(2)}`);
      assert.ok(d < 6e-2, `${count} seqs: quant_gemm vs dequantize path logits max rel ${d.toExponential(2)}`);
    }
    const u = qc.quantAlgo === "W8A16" ? "u8" : "u4";
    assert.ok(kernels.has(`quant_gemm_${u}_m16`) && kernels.has(`quant_gemm_${u}_m32`), [...kernels].join(" "));
    assert.ok(kernels.has("quant_gemm_reduce"), "some linear splits k");
    assert.ok(![...kernels].some((k) => k.startsWith("quant_dequant")), [...kernels].join(" "));
    bf16.dispose();
    f32.dispose();
  });
}
