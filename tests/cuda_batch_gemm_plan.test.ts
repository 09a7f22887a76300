// The bf16 GEMM of batched decode steps (issue 16 item 3; kernels/batch_gemm.cu, lib/backends/cuda/batch_gemm_plan.ts),
// checked without a GPU on llama-3.2-1b's plan: with LaunchEnv.batchGemm, decode steps of 9..64 rows run every linear
// (the lm_head into the fp32 logits; gate_up with the SiLU·mul epilogue, no silu_mul launch) on batch_gemm_s{S}_m{16|32|64} with the split count of the weight's shape, the
// right addresses, grid, arity and dynamic shared memory; steps of up to 8 rows keep the GEMVs, 65 rows cuBLASLt, and
// nothing else of the step changes; with batchGemmPdl the same launches take programmatic dependent launch. The kernel's arithmetic: tools/cuda-kernel-check/batch_gemm.py and
// tests/gpu/batch_gemm.test.ts on a GPU.
import { batchGemmGeometry, batchGemmSmem, batchGemmSplits } from "../lib/backends/cuda/batch_gemm_plan.ts";
import { type KernelLaunch, kernelSignature, type Launch, planLaunches } from "../lib/backends/cuda/launch_plan.ts";
import { bareLlamaPlan, LLAMA_3_2_1B_CONFIG, namedPlanEnv } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

test("batchGemmGeometry: splits from the weight's shape only (llama-3.2-1b: qkv 5, o 8, gate_up 1, down 8, lm_head 1), row tiles 16 / 32 / 64", () => {
  assert.deepEqual([[3072, 2048], [2048, 2048], [16384, 2048], [2048, 8192], [128256, 2048]].map(([n, k]) => batchGemmSplits(n, k)), [5, 8, 1, 8, 1]);
  assert.deepEqual(batchGemmGeometry(9, 2048, 8192), { kernel: "batch_gemm_s8_m16", grid: [16, 8, 1], splits: 8, sharedBytes: batchGemmSmem(16) });
  assert.equal(batchGemmGeometry(17, 3072, 2048)!.kernel, "batch_gemm_s5_m32");
  assert.deepEqual(batchGemmGeometry(64, 128256, 2048)!.grid, [1002, 1, 1]);
  assert.equal(batchGemmGeometry(33, 211, 256)!.splits, 2, "few k chunks: at least 2 a split");
  for (const rows of [9, 16, 17, 32, 33, 64]) assert.equal(batchGemmGeometry(rows, 2048, 8192)!.splits, 8, "the same split count at every row count");
  assert.equal(batchGemmGeometry(8, 2048, 2048), null, "8 rows: the GEMVs");
  assert.equal(batchGemmGeometry(65, 2048, 2048), null, "65 rows: cuBLASLt");
  assert.equal(batchGemmGeometry(16, 2048, 2040), null, "k not whole 64-column chunks");
  assert.ok(batchGemmSmem(64) <= 227 * 1024, "within an H200 block's shared memory");
  assert.ok(batchGemmSmem(64) >= 64 * 132 * 4, "the fp32 tile fits the ring");
});

test("CUDA launch plan with batchGemm (llama-3.2-1b): decode steps of 9..64 rows on batch_gemm_*, GEMVs up to 8, cuBLASLt past 64", () => {
  const plan = { ...bareLlamaPlan(LLAMA_3_2_1B_CONFIG), maxSeqs: 128 };
  const on = namedPlanEnv(plan, { fusedDecode: true, batchGemm: true }), off = namedPlanEnv(plan, { fusedDecode: true });
  const a0 = plan.attributes;
  const linears = plan.ops.map((op, i) => [op, i] as const).filter(([op]) => op.type === "linear");
  assert.equal(linears.length, 16 * 4 + 1);
  const buf = (n: string): bigint => on.arena + BigInt(plan.buffers[n].offset);
  const json = (ls: Launch[]): string[] => ls.map((x) => JSON.stringify(x, (_k, v) => (typeof v === "bigint" ? `${v}` : v)));
  for (const T of [8, 9, 16, 17, 33, 64, 65]) {
    const shape = { numTokens: T, numSeqs: T, numRows: T, attention: { kind: "decode" as const, numSplits: 2, splitSize: 128 }, sample: true };
    const a = planLaunches(on, shape), b = planLaunches(off, shape);
    for (const l of a) if (l.kind === "kernel") assert.equal(l.args.length, kernelSignature(l.kernel).params.length, `${l.kernel} arity`);
    for (const [op, i] of linears) {
      if (op.type !== "linear") continue;
      const mine = a.filter((x) => x.op === i), theirs = b.filter((x) => x.op === i);
      const geo = batchGemmGeometry(T, op.outFeatures, op.inFeatures);
      if (T <= 8 || T > 64) {
        assert.equal(geo, null);
        assert.deepEqual(json(mine), json(theirs), `op ${i} T=${T}: as without batchGemm`);
        continue;
      }
      assert.equal(theirs[0].kind, "gemm", `op ${i} T=${T}: cuBLASLt without the switch`);
      assert.equal(mine.length, 1);
      const l = mine[0] as KernelLaunch, isLogits = op.out === a0.logits;
      // gate_up: the SiLU·mul epilogue (mode 2) into the silu_mul's output, whose launch is gone.
      const silu = plan.ops[i + 1]?.type === "silu_mul" ? plan.ops[i + 1] as Extract<typeof plan.ops[number], { type: "silu_mul" }> : undefined;
      const g = batchGemmGeometry(T, op.outFeatures, op.inFeatures, !!silu)!;
      assert.equal(l.kernel, `batch_gemm_s${batchGemmSplits(op.outFeatures, op.inFeatures)}_m${T <= 16 ? 16 : T <= 32 ? 32 : 64}`);
      assert.deepEqual(l.grid, g.grid);
      if (silu) assert.deepEqual(l.grid, [128, 1, 1], "gate_up: 64 gate rows and their 64 up rows a block");
      assert.equal(l.block, 256);
      assert.equal(l.sharedBytes, geo!.sharedBytes);
      const y = silu ? buf(silu.out) : isLogits ? on.logits : buf(op.out);
      assert.deepEqual(l.args, [buf(op.x), on.weight(op.weight), 0n, y, T, op.outFeatures, op.inFeatures, silu ? 2 : isLogits ? 1 : 0], `op ${i} T=${T}`);
      if (silu) {
        assert.equal(a.filter((x) => x.op === i + 1).length, 0, `T=${T}: no silu_mul launch`);
        assert.equal(b.filter((x) => x.op === i + 1).length, 1, `T=${T}: silu_mul without the switch`);
      }
    }
    const silus = new Set(plan.ops.flatMap((op, i) => (op.type === "silu_mul" ? [i] : [])));
    const rest = (ls: Launch[]): string[] => json(ls.filter((x) => !linears.some(([, i]) => i === x.op) && !(T > 8 && T <= 64 && silus.has(x.op))));
    assert.deepEqual(rest(a), rest(b), `T=${T}: nothing but the linears changes`);
  }
  // batchGemmPdl: the same launches, each GEMM with programmatic dependent launch (every one follows a kernel here).
  const shape64 = { numTokens: 64, numSeqs: 64, numRows: 64, attention: { kind: "decode" as const, numSplits: 2, splitSize: 128 }, sample: true };
  const plain = planLaunches(on, shape64), early = planLaunches(namedPlanEnv(plan, { fusedDecode: true, batchGemm: true, batchGemmPdl: true }), shape64);
  assert.equal(early.length, plain.length);
  early.forEach((l, j) => {
    const isGemm = l.kind === "kernel" && l.kernel.startsWith("batch_gemm_");
    assert.equal(l.kind === "kernel" && l.pdl === true, isGemm, `launch ${j} ${l.kind === "kernel" ? l.kernel : "gemm"}`);
    assert.deepEqual(json([{ ...l, pdl: undefined } as Launch]), json([{ ...plain[j], pdl: undefined } as Launch]));
  });
  // A prefill of 20 tokens: batch-invariant sessions keep cuBLASLt's pinned algorithm; others take the GEMM.
  const pre = { numTokens: 20, numSeqs: 1, numRows: 1, attention: { kind: "prefill" as const }, sample: true };
  const qkv = linears[0][1];
  const inv = planLaunches(on, pre).find((x) => x.op === qkv)!;
  assert.equal(inv.kind === "gemm" && inv.invariant, true);
  const free = planLaunches(namedPlanEnv(plan, { batchGemm: true, batchInvariant: false }), pre).find((x) => x.op === qkv) as KernelLaunch;
  assert.equal(free.kernel, "batch_gemm_s5_m32");
});
