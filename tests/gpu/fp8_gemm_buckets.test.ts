/**
 * GPU: batch-invariant FP8 GEMMs with M buckets (GemmOptions.invariantFp8Buckets; SessionOptions.fp8InvariantBuckets):
 * every row of D at every M up to a 4096-row prefill is bitwise the row the single reference-M algorithm computes
 * (FP8's behaviour without the option), for llama-3.1-8b's linear shapes, e4m3 inputs with per-tensor scales and
 * bf16 output, with and without fast accumulation. Skipped without a GPU.
 */
import { CublasLtGemm } from "../../lib/backends/cuda/gemm.ts";
import { assert } from "../harness.ts";
import { device, gpuTest } from "./gpu.ts";

/** Random e4m3 bytes, exponent field lo … lo + 3, random mantissa and sign. */
function e4m3Block(seed: number, n: number, lo: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s & 0x80) | ((lo + ((s >>> 8) & 3)) << 3) | ((s >>> 12) & 7);
  }
  return out;
}

gpuTest("batch-invariant FP8 GEMM with M buckets: rows bitwise equal to the single pinned algorithm up to M = 4096", () => {
  const d = device();
  const lines: string[] = [];
  for (const fastAccum of [false, true]) {
    using buck = new CublasLtGemm(d, { batchInvariant: true, invariantFp8Buckets: true, timingCacheDir: null });
    using single = new CublasLtGemm(d, { batchInvariant: true, timingCacheDir: null });
    const Mmax = 4100;
    const ms = [9, 31, 100, 255, 300, 600, 1100, 2100, 4096];
    const shapes = [[6144, 4096], [4096, 4096], [28672, 4096], [4096, 14336]] as const;
    using scales = d.alloc(512); // two 16-byte-aligned scales (cuBLASLt refuses others)
    scales.copyFromHost(new Float32Array(128).fill(0.02));
    let seed = 77;
    for (const [n, k] of shapes) {
      const block = e4m3Block(seed += 2, 512 * k, 5);
      using da = d.alloc(Mmax * k);
      for (let r = 0; r < Mmax; r += 512) da.copyFromHost(block.subarray(0, Math.min(512, Mmax - r) * k), { offset: r * k });
      using db = d.alloc(n * k);
      const wBlock = e4m3Block(seed + 1, 256 * k, 4);
      for (let r = 0; r < n; r += 256) db.copyFromHost(wBlock.subarray(0, Math.min(256, n - r) * k), { offset: r * k });
      using dd = d.alloc(Mmax * n * 2);
      using stream = d.createStream();
      const rows = (g: CublasLtGemm, m: number): Uint8Array => {
        dd.fill(0xff, { stream });
        g.run({ m, n, k, dtype: "fp8e4m3", outDtype: "bf16", a: da, b: db, d: dd, transB: true, stream, aScale: scales, bScale: scales.ptr + 256n, fastAccum });
        stream.synchronize();
        const h = new Uint8Array(m * n * 2);
        dd.copyToHost(h);
        return h;
      };
      const want = rows(single, Mmax);
      const differ = ms.filter((m) => {
        const got = rows(buck, m);
        for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) return true;
        return false;
      });
      lines.push(`fastAccum ${fastAccum} n=${n} k=${k}: bucketed rows differ from the single pinned algorithm at M in [${differ.join(",")}]`);
      assert.deepEqual(differ, [], `FP8 bucketed GEMM n=${n} k=${k} fastAccum ${fastAccum}: rows at these M differ bitwise`);
    }
    const st = buck.invariantBucketStats;
    lines.push(`fastAccum ${fastAccum}: bucket algorithms ${st.verified} shown bitwise equal to the reference one (used), ${st.rejected} rejected`);
    assert.equal(buck.numInvariantFallbacks + single.numInvariantFallbacks, 0);
  }
  console.log(lines.join("\n"));
});
