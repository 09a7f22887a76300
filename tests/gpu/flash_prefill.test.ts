/**
 * GPU: flash_prefill_bf16_hd{64,128} (kernels/flash_prefill.cu, issue 16 item 2; skipped without a GPU) against a
 * float64 reference of paged attention and against paged_attention_prefill_mma_bf16 (the kernel it replaces), on
 * packed batches that mix a whole prompt, a chunk whose queries start past a cached prefix (chunked prefill), a
 * one-token sequence and, in a second case, a sliding window; shuffled block tables whose unused blocks hold NaN
 * (a stray read shows), outputs poisoned with NaN (an unwritten row shows). The launch geometry is the plan's
 * (attention_choice.ts flashPrefillGeometry). On an sm_90 device flash_prefill_wg_bf16_hd{64,128} (kernels/flash_prefill_wg.cu,
 * warpgroup MMAs, sm_90a; flashPrefillWgGeometry) takes the same cases, and its _q8 entry point (fp8AttnQuant) must write
 * fp8_quantize_bf16's bytes of that output. tools/cuda-kernel-check/flash_prefill.py checks more
 * shapes and times them.
 */
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { flashPrefillGeometry, flashPrefillWgGeometry } from "../../lib/backends/cuda/attention_choice.ts";
import { assert } from "../harness.ts";
import { device, fromBf16Bits, gpuTest, seededUniform, toBf16Bits } from "./gpu.ts";

const P = "ptr", I = "i32", F = "f32";
const SIG = [P, P, P, P, P, P, I, I, I, I, I, I, F, I] as const;

/** Float64 paged attention of token t (position p, sequence s) over keys max(0, p + 1 - window) .. p. */
function reference(
  q: Uint16Array,
  cache: Uint16Array,
  tables: Int32Array,
  seqs: readonly (readonly [number, number])[],
  nH: number,
  nKV: number,
  hd: number,
  bs: number,
  stride: number,
  scale: number,
  window: number,
): Float64Array {
  const T = seqs.reduce((a, [, n]) => a + n, 0), out = new Float64Array(T * nH * hd), row = nKV * hd, G = nH / nKV;
  const at = (s: number, pos: number, which: number, h: number): number =>
    ((tables[s * stride + Math.floor(pos / bs)] * 2 + which) * bs + (pos % bs)) * row + h * hd;
  let t = 0;
  seqs.forEach(([p0, n], s) => {
    for (let i = 0; i < n; i++, t++) {
      const p = p0 + i, lo = window > 0 ? Math.max(0, p + 1 - window) : 0;
      for (let h = 0; h < nH; h++) {
        const kvh = Math.floor(h / G), qo = (t * nH + h) * hd;
        const sc = new Float64Array(p + 1 - lo);
        let mx = -Infinity;
        for (let k = lo; k <= p; k++) {
          const ko = at(s, k, 0, kvh);
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += fromBf16Bits(q[qo + d]) * fromBf16Bits(cache[ko + d]);
          sc[k - lo] = dot * scale;
          mx = Math.max(mx, sc[k - lo]);
        }
        let sum = 0;
        for (let k = lo; k <= p; k++) {
          const w = Math.exp(sc[k - lo] - mx), vo = at(s, k, 1, kvh);
          sum += w;
          for (let d = 0; d < hd; d++) out[qo + d] += w * fromBf16Bits(cache[vo + d]);
        }
        for (let d = 0; d < hd; d++) out[qo + d] /= sum;
      }
    }
  });
  return out;
}

const CASES = [
  { nH: 8, nKV: 2, bs: 16, window: 0, seqs: [[0, 150], [200, 70], [9, 1]] as const },
  { nH: 6, nKV: 1, bs: 32, window: 40, seqs: [[0, 129], [96, 33]] as const },
];

for (const hd of [64, 128]) {
  gpuTest(`flash_prefill_bf16_hd${hd}: vs float64 and vs paged_attention_prefill_mma (prompts, a chunk past a cached prefix, a window)`, () => {
    const d = device();
    using flash = loadKernelFile(d, "flash_prefill.cu");
    using pa = loadKernelFile(d, "paged_attention.cu");
    const fg = flashPrefillGeometry(hd)!;
    const wgGeo = d.arch === "sm_90" ? flashPrefillWgGeometry(hd)! : undefined;
    using wgMod = wgGeo ? loadKernelFile(d, "flash_prefill_wg.cu") : undefined;
    const wgKernel = wgMod?.kernel(`flash_prefill_wg_bf16_hd${hd}`, SIG);
    if (wgKernel && wgGeo) wgKernel.setMaxDynamicSharedMemory(wgGeo.sharedMem);
    // fp8AttnQuant (session 11): the _q8 entry point's e4m3 rows = fp8_quantize_bf16 of the entry point's output.
    const wgQ8 = wgMod?.kernel(`flash_prefill_wg_q8_bf16_hd${hd}`, [...SIG, "ptr", "ptr", "f32"]);
    if (wgQ8 && wgGeo) wgQ8.setMaxDynamicSharedMemory(wgGeo.sharedMem);
    using fp8Mod = wgGeo ? loadKernelFile(d, "fp8_gemv.cu") : undefined;
    const quant = fp8Mod?.kernel("fp8_quantize_bf16", ["ptr", "ptr", "ptr", "i32", "i32", "f32"]);
    CASES.forEach(({ nH, nKV, bs, window, seqs }, ci) => {
      const S = seqs.length, T = seqs.reduce((a, [, n]) => a + n, 0), row = nKV * hd;
      const stride = Math.max(...seqs.map(([p0, n]) => Math.ceil((p0 + n) / bs))) + 1;
      const numBlocks = S * stride + 1;
      // Shuffled blocks (a seeded Fisher-Yates of 0 .. numBlocks - 2); unused table slots point at the last
      // block, which holds only NaN.
      const nan = numBlocks - 1;
      const perm = Array.from({ length: nan }, (_, i) => i);
      const u = seededUniform(5 + ci, nan, 0, 1);
      for (let i = nan - 1; i > 0; i--) {
        const j = Math.min(i, Math.floor(u[i] * (i + 1)));
        [perm[i], perm[j]] = [perm[j], perm[i]];
      }
      const tables = new Int32Array(S * stride).fill(nan);
      let next = 0;
      seqs.forEach(([p0, n], s) => {
        for (let b = 0; b < Math.ceil((p0 + n) / bs); b++) tables[s * stride + b] = perm[next++];
      });
      const cache = Uint16Array.from(seededUniform(17 + hd + ci, numBlocks * 2 * bs * row, -2, 2), (v) => toBf16Bits(v));
      cache.fill(0x7fc0, nan * 2 * bs * row); // NaN block
      seqs.forEach(([p0, n], s) => { // slots past each sequence's last key: NaN too
        for (let p = p0 + n; p < Math.ceil((p0 + n) / bs) * bs; p++) {
          for (let w = 0; w < 2; w++) {
            const o = ((tables[s * stride + Math.floor(p / bs)] * 2 + w) * bs + (p % bs)) * row;
            cache.fill(0x7fc0, o, o + row);
          }
        }
      });
      const q = Uint16Array.from(seededUniform(29 + ci, T * nH * hd, -2, 2), (v) => toBf16Bits(v));
      const positions = Int32Array.from(seqs.flatMap(([p0, n]) => Array.from({ length: n }, (_, i) => p0 + i)));
      const starts = Int32Array.from([0, ...seqs.map((_, i) => seqs.slice(0, i + 1).reduce((a, [, n]) => a + n, 0))]);
      using dq = d.alloc(q.byteLength);
      using dKv = d.alloc(cache.byteLength);
      using dPos = d.alloc(positions.byteLength);
      using dStarts = d.alloc(starts.byteLength);
      using dTables = d.alloc(tables.byteLength);
      using oFlash = d.alloc(q.byteLength);
      using oMma = d.alloc(q.byteLength);
      using oWg = d.alloc(q.byteLength);
      dq.copyFromHost(q);
      dKv.copyFromHost(cache);
      dPos.copyFromHost(positions);
      dStarts.copyFromHost(starts);
      dTables.copyFromHost(tables);
      oFlash.copyFromHost(new Uint16Array(q.length).fill(0x7fc0));
      oWg.copyFromHost(new Uint16Array(q.length).fill(0x7fc0));
      const scale = 1 / Math.sqrt(hd);
      const args = [dq.ptr, 0n, dKv.ptr, dPos.ptr, dStarts.ptr, dTables.ptr, T, S, nH, nKV, bs, stride, scale, window];
      flash.kernel(`flash_prefill_bf16_hd${hd}`, SIG).launch([nH, Math.ceil(T / fg.rows) + S, 1], fg.threads, [dq.ptr, oFlash.ptr, ...args.slice(2)]);
      pa.kernel(`paged_attention_prefill_mma_bf16_hd${hd}`, SIG).launch([Math.ceil(T / 64) + S, nH, 1], 128, [dq.ptr, oMma.ptr, ...args.slice(2)]);
      if (wgKernel && wgGeo) {
        wgKernel.launch([nH, Math.ceil(T / wgGeo.rows) + S, 1], wgGeo.threads, [dq.ptr, oWg.ptr, ...args.slice(2)], { sharedMemBytes: wgGeo.sharedMem });
      }
      if (wgQ8 && quant && wgGeo) {
        const K = nH * hd, actScale = 0.005;
        using xq = d.alloc(T * K);
        using xs = d.alloc(T * 4);
        using wq = d.alloc(T * K);
        using ws = d.alloc(T * 4);
        wgQ8.launch([nH, Math.ceil(T / wgGeo.rows) + S, 1], wgGeo.threads, [dq.ptr, 0n, ...args.slice(2), xq.ptr, xs.ptr, actScale], {
          sharedMemBytes: wgGeo.sharedMem,
        });
        quant.launch(T, 256, [oWg.ptr, wq.ptr, ws.ptr, T, K, actScale]);
        const [gq, wantQ, gs, wantS] = [new Uint8Array(T * K), new Uint8Array(T * K), new Float32Array(T), new Float32Array(T)];
        xq.copyToHost(gq);
        wq.copyToHost(wantQ);
        xs.copyToHost(gs);
        ws.copyToHost(wantS);
        const bad = gq.findIndex((v, i) => v !== wantQ[i]);
        assert.equal(bad, -1, `flash_prefill_wg_q8 hd${hd} case ${ci}: e4m3 byte ${bad} ${gq[bad]} vs ${wantQ[bad]}`);
        assert.ok(gs.every((v, i) => v === wantS[i]), `flash_prefill_wg_q8 hd${hd} case ${ci}: row scales`);
        assert.ok(wantQ.some((v) => v !== 0), "the quantized rows are not all zero");
      }
      const b = new Uint16Array(q.length);
      oMma.copyToHost(b);
      const ref = reference(q, cache, tables, seqs, nH, nKV, hd, bs, stride, scale, window);
      for (const [label, buf] of [["flash_prefill", oFlash], ...(wgKernel ? [["flash_prefill_wg", oWg] as const] : [])] as const) {
        const a = new Uint16Array(q.length);
        buf.copyToHost(a);
        let e2 = 0, r2 = 0, m2 = 0, nanCount = 0;
        for (let i = 0; i < a.length; i++) {
          const x = fromBf16Bits(a[i]), y = fromBf16Bits(b[i]);
          if (Number.isNaN(x)) nanCount++;
          e2 += (x - ref[i]) ** 2;
          r2 += ref[i] ** 2;
          m2 += (x - y) ** 2;
        }
        const rel = Math.sqrt(e2 / r2), vsMma = Math.sqrt(m2 / r2);
        console.log(
          `${label} hd${hd} case ${ci} (T ${T}, ${nH}/${nKV} heads, window ${window}): rel L2 vs float64 ${rel.toExponential(2)}, vs mma ${
            vsMma.toExponential(2)
          }`,
        );
        assert.equal(nanCount, 0, `${label} hd${hd} case ${ci}: ${nanCount} NaN outputs`);
        assert.ok(rel < 1e-2, `${label} hd${hd} case ${ci}: rel L2 ${rel} vs float64`);
        assert.ok(vsMma < 1e-2, `${label} hd${hd} case ${ci}: rel L2 ${vsMma} vs paged_attention_prefill_mma`);
      }
    });
  });
}
