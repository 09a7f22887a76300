/**
 * GPU (sm_90): prefillRopeQ's kernels against the launches they replace, bitwise. rope_kv_write_tab_bf16 (k / v into the
 * cache, each token's cos / sin row) + flash_prefill_wg{t}_rq_bf16_hd* (q rotated in the Q load from the qkv rows) must
 * give the KV cache and attention output of rope_kv_write_bf16 + flash_prefill_wg{t}_bf16_hd*: the same expressions and
 * rounding, compiled by ptxas in two kernels. Packed steps of new prompts and a chunk past a cached prefix.
 */
import { flashPrefillWgGeometry } from "../../lib/backends/cuda/attention_choice.ts";
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { assert } from "../harness.ts";
import { device, gpuTest, seededUniform, toBf16Bits } from "./gpu.ts";

const P = "ptr", I = "i32", F = "f32";
const ROPE = [P, P, P, P, P, P, P, F, I, I, I, I, I, I, I] as const;
const ATT = [P, P, P, P, P, P, I, I, I, I, I, I, F, I] as const;

for (const [hd, nH, nKV] of [[64, 32, 8], [128, 32, 8]] as const) {
  gpuTest(`prefillRopeQ hd ${hd}: rope_kv_write_tab + flash_prefill_wg(t)_rq give rope_kv_write + flash_prefill_wg(t)'s cache and output bits`, () => {
    const d = device();
    if (d.arch !== "sm_90") return;
    const wg = flashPrefillWgGeometry(hd)!;
    const sel = (...names: string[]) => ({ options: ["-DLLMRT_SELECT=1", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
    using rope = loadKernelFile(d, "rope_kv_write.cu", sel("rope_kv_write_bf16", "rope_kv_write_tab_bf16"));
    const names = [`flash_prefill_wg_bf16_hd${hd}`, `flash_prefill_wg_rq_bf16_hd${hd}`, `flash_prefill_wgt_bf16_hd${hd}`, `flash_prefill_wgt_rq_bf16_hd${hd}`];
    using att = loadKernelFile(d, "flash_prefill_wg.cu", sel(...names));
    // A new 300-token prompt, a 45-token chunk past 70 cached positions, a one-token prompt.
    const seqs = [[0, 300], [70, 45], [0, 1]] as const, bs = 16;
    const S = seqs.length, T = seqs.reduce((a, [, n]) => a + n, 0), W = (nH + 2 * nKV) * hd, row = nKV * hd;
    const stride = Math.max(...seqs.map(([p0, n]) => Math.ceil((p0 + n) / bs))), numBlocks = S * stride;
    const tables = Int32Array.from({ length: S * stride }, (_, i) => (i * 7) % numBlocks); // a permutation (7 ⟂ numBlocks)
    const positions = Int32Array.from(seqs.flatMap(([p0, n]) => Array.from({ length: n }, (_, i) => p0 + i)));
    const starts = Int32Array.from([0, ...seqs.map((_, i) => seqs.slice(0, i + 1).reduce((a, [, n]) => a + n, 0))]);
    const invFreq = Float64Array.from({ length: hd / 2 }, (_, i) => 500000 ** (-(2 * i) / hd));
    const qkv = Uint16Array.from(seededUniform(3 + hd, T * W, -2, 2), (v) => toBf16Bits(v));
    const cache0 = Uint16Array.from(seededUniform(7 + hd, numBlocks * 2 * bs * row, -2, 2), (v) => toBf16Bits(v)); // the cached prefix
    using dQkv = d.alloc(qkv.byteLength);
    using dPos = d.alloc(positions.byteLength);
    using dStarts = d.alloc(starts.byteLength);
    using dTables = d.alloc(tables.byteLength);
    using dInv = d.alloc(invFreq.byteLength);
    using qA = d.alloc(T * nH * hd * 2);
    using tab = d.alloc(T * hd * 4);
    using kvA = d.alloc(cache0.byteLength);
    using kvB = d.alloc(cache0.byteLength);
    using outA = d.alloc(T * nH * hd * 2);
    using outB = d.alloc(T * nH * hd * 2);
    dQkv.copyFromHost(qkv);
    dPos.copyFromHost(positions);
    dStarts.copyFromHost(starts);
    dTables.copyFromHost(tables);
    dInv.copyFromHost(invFreq);
    kvA.copyFromHost(cache0);
    kvB.copyFromHost(cache0);
    const tail = [T, S, nH, nKV, hd, bs, stride] as const;
    rope.kernel("rope_kv_write_bf16", ROPE).launch([T, 1, 1], 128, [dQkv.ptr, qA.ptr, kvA.ptr, dPos.ptr, dStarts.ptr, dTables.ptr, dInv.ptr, 1, ...tail]);
    rope.kernel("rope_kv_write_tab_bf16", ROPE).launch([T, 1, 1], 128, [dQkv.ptr, tab.ptr, kvB.ptr, dPos.ptr, dStarts.ptr, dTables.ptr, dInv.ptr, 1, ...tail]);
    const [a, b] = [new Uint16Array(cache0.length), new Uint16Array(cache0.length)];
    kvA.copyToHost(a);
    kvB.copyToHost(b);
    assert.equal(a.findIndex((v, i) => v !== b[i]), -1, `hd ${hd}: the KV cache of rope_kv_write_tab_bf16`);
    const geo = [dPos.ptr, dStarts.ptr, dTables.ptr, T, S, nH, nKV, bs, stride, 1 / Math.sqrt(hd), 0] as const;
    for (const scan of [false, true]) {
      const grid = [nH, Math.ceil(T / wg.rows) + S, 1] as const;
      const base = att.kernel(names[scan ? 2 : 0], ATT), rq = att.kernel(names[scan ? 3 : 1], [...ATT, P, I]);
      base.setMaxDynamicSharedMemory(wg.sharedMem);
      rq.setMaxDynamicSharedMemory(wg.sharedMem);
      base.launch(grid, wg.threads, [qA.ptr, outA.ptr, kvA.ptr, ...geo], { sharedMemBytes: wg.sharedMem });
      rq.launch(grid, wg.threads, [dQkv.ptr, outB.ptr, kvB.ptr, ...geo, tab.ptr, W], { sharedMemBytes: wg.sharedMem });
      const [x, y] = [new Uint16Array(T * nH * hd), new Uint16Array(T * nH * hd)];
      outA.copyToHost(x);
      outB.copyToHost(y);
      const bad = x.findIndex((v, i) => v !== y[i]);
      console.log(`prefillRopeQ hd ${hd} ${names[scan ? 3 : 1]}: output ${bad === -1 ? "bitwise equal" : `differs first at ${bad}`}`);
      assert.equal(bad, -1, `hd ${hd} ${names[scan ? 3 : 1]}: output element ${bad}`);
      assert.ok(x.some((v) => v !== 0), "non-zero output");
    }
  });
}
