/**
 * Which cuBLASLt algorithms round a row alike at every M (issue 16 item 5, session 17): for each linear shape, every
 * non-split-K algorithm on the table (the heuristic's candidates for several M, their custom options and, with
 * --variants, tile / stage / cluster re-configurations: CublasLtGemm.stabilitySurvey) run at M 16 / 64 / 300 / 1200 /
 * 2048 over the same random rows against a random bf16 weight; a row must be the same bits at every M.
 *
 *   bun bench/invariant_stability.ts [--shapes down,down1b] [--variants] [--max-checked 400] [--all]
 *
 * Prints, per shape: stable / checked, the engine's route (cuBLASLt or the fixed-order GEMM), and (--all, or for shapes
 * with unstable ones) each algorithm's config. --time 300,2048: microseconds a call at those M of the engine's
 * batch-invariant call, the fixed-order GEMM and cuBLASLt's per-M heuristic pick (median of 5 × 20 calls, warm).
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { CudaDevice } from "../lib/cuda/device.ts";
import { CublasLtGemm } from "../lib/backends/cuda/gemm.ts";
import { FixedOrderGemm } from "../lib/backends/cuda/fixed_gemm.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    shapes: { type: "string" },
    variants: { type: "boolean" },
    "max-checked": { type: "string" },
    all: { type: "boolean" },
    time: { type: "string" },
  },
});
const SHAPES: Record<string, [number, number]> = {
  qkv: [384, 256],
  o_proj: [256, 256],
  gate_up: [16384, 256],
  down: [256, 8192],
  down1b: [2048, 8192],
  qkv1b: [3072, 2048],
  n128k8192: [128, 8192],
  n512k8192: [512, 8192],
  n256k4096: [256, 4096],
};
const dev = CudaDevice.open(0);
using stream = dev.createStream();
using gemm = new CublasLtGemm(dev, { batchInvariant: true, timingCacheDir: null });
using perM = new CublasLtGemm(dev, { timingCacheDir: null });
const fixed = new FixedOrderGemm(dev);
using e0 = dev.createEvent();
using e1 = dev.createEvent();
const timeUs = (f: () => void): number => {
  f();
  const t: number[] = [];
  for (let r = 0; r < 5; r++) {
    e0.record(stream);
    for (let i = 0; i < 20; i++) f();
    e1.record(stream);
    e1.synchronize();
    t.push((e1.elapsedSince(e0) * 1000) / 20);
  }
  return t.sort((x, y) => x - y)[2];
};
for (const name of (values.shapes ?? "qkv,o_proj,gate_up,down").split(",")) {
  const [n, k] = SHAPES[name];
  using b = dev.alloc(n * k * 2);
  const h = new Uint16Array(n * k);
  let s = 777;
  for (let i = 0; i < h.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    h[i] = ((s >>> 16) & 0x8000) | ((120 + ((s >>> 8) & 3)) << 7) | ((s >>> 1) & 0x7f);
  }
  b.copyFromHost(h);
  const t0 = performance.now();
  const rows = gemm.stabilitySurvey({ n, k, b, stream }, {
    refMs: [256, 1024, 2048],
    variants: !!values.variants,
    maxChecked: Number(values["max-checked"] ?? 400),
  });
  const stable = rows.filter((r) => r.stable);
  // The engine's route for this shape (a batch-invariant call of 300 rows): cuBLASLt or the fixed-order GEMM.
  using a = dev.alloc(300 * k * 2);
  using d = dev.alloc(300 * n * 2);
  a.fill(0);
  const before = { ...gemm.invariantBucketStats };
  gemm.run({ m: 300, n, k, dtype: "bf16", a, b, d, transB: true, stream });
  stream.synchronize();
  const route = gemm.invariantBucketStats.fixedOrder > before.fixedOrder ? "fixed-order GEMM" : "cuBLASLt";
  console.log(
    `== ${name} ${n}x${k}: ${stable.length} of ${rows.length} non-split-K algorithms M-stable (${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s); engine route: ${route} (unstable references ${gemm.invariantBucketStats.unstableReferences - before.unstableReferences})`,
  );
  for (const m of values.time ? values.time.split(",").map(Number) : []) {
    using ta = dev.alloc(m * k * 2);
    using td = dev.alloc(m * n * 2);
    ta.copyFromHost(h.subarray(0, Math.min(h.length, m * k)));
    const io = { m, n, k, dtype: "bf16" as const, a: ta, b, d: td, transB: true, stream };
    const eng = timeUs(() => gemm.run(io));
    const fx = timeUs(() => fixed.launch({ ...io, outDtype: "bf16", a: ta.ptr, b: b.ptr, d: td.ptr, c: 0n, bias: 0n, alpha: 1, beta: 0 }));
    const hp = timeUs(() => perM.run(io));
    const tf = (us: number): string => `${us.toFixed(1)} us (${((2 * m * n * k) / us / 1e6).toFixed(1)} TFLOP/s)`;
    console.log(`   M ${m}: engine ${tf(eng)}, fixed-order ${tf(fx)}, cuBLASLt per-M heuristic ${tf(hp)}`);
  }
  const show = values.all || stable.length < rows.length ? rows : [];
  for (const r of show) {
    console.log(
      `  ${r.stable ? "STABLE  " : "unstable"} ${
        r.source.padEnd(22)
      } id ${r.id} tile ${r.tile} stages ${r.stages} splitK ${r.splitK} red ${r.reduction} swz ${r.swizzle} custom ${r.custom} cluster ${r.cluster}`,
    );
  }
}
fixed.dispose();
