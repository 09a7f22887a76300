/**
 * GPU: decode_attention_{g4_}{fp8kv|int8kv}_bf16_hd{64|128} (`fp8DecodeAttention`, session 9; skipped without a GPU): the
 * fused decode step over a quantized KV cache (RoPE, the step's k / v encoded into the cache, split attention with
 * K/V dequantized in registers, the split merge) against
 * - a float64 attention over the cache it leaves (keys / values bf16(decode(byte) · s), q the unfused path's rotated
 *   bf16 q): every output within bf16 rounding;
 * - the unfused path it replaces (rope_kv_write_*kv_bf16 + paged_attention_decode_*kv_bf16 + reduce): the same cache
 *   bytes (but rare FMA-contraction ties of k) and outputs within bf16 rounding of each other;
 * - split counters back to zero.
 * Cases: G = 4 (the _g4 entry point) and 8, one split per token and several (a token of 300 keys over 64-key splits,
 * a sliding window), four sequences of 1..300 keys, shuffled block tables.
 * decode_attention_sk_fp8kv_bf16_hd{64|128} (`fp8DecodeSk`, session 10: the split-K tensor-core kernel over an e4m3
 * cache) in the same cases: float64 over the exact decode(byte) · s within bf16 rounding, the same cache bytes, counters
 * back to zero, the same outputs whatever the grid z.
 * Then sessions end to end (fp8DecodeAttention + fp8FlashPrefill: kv_dequant_*kv into the bf16 shadow layer, the bf16
 * flash prefill kernels) against the default CUDA session and the float32 CPU engine.
 */
import { DECODE_SK_FP8_SMEM, flashPrefillGeometry, flashPrefillWgGeometry } from "../../lib/backends/cuda/attention_choice.ts";
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { kvDecode, kvEncode } from "../../lib/backends/cpu/kv_cache.ts";
import type { QuantConfigInput } from "../../lib/quantization/quant_config.ts";
import { Session } from "../../lib/runtime/session.ts";
import { quantEngines, quantTestLlama, relL2 } from "../cuda_fake_plans.ts";
import type { SessionOptions } from "../../lib/runtime/session_options.ts";
import { assert } from "../harness.ts";
import { device, fromBf16Bits, gpuTest, seededUniform, step, toBf16Bits } from "./gpu.ts";

const P = "ptr", I = "i32", F = "f32", L = "i64";
const ALGOS = [["FP8", "fp8kv"], ["INT8", "int8kv"]] as const;

for (const [algo, tag] of ALGOS) {
  for (const hd of [64, 128]) {
    // DA_QFOLD=1 (the default): the exact decode(q) with the scales folded into q and the output; DA_QFOLD=0 (llama-3.1-8b's
    // configuration only): bf16(decode(q) · s), the unfused path's values.
    for (const [G, fold] of [[4, true], [8, true], ...(hd === 128 ? [[4, false]] as const : [])] as const) {
      const name = `decode_attention_${G <= 4 ? "g4_" : ""}${tag}_bf16_hd${hd}`;
      gpuTest(`${name} (DA_QFOLD=${fold ? 1 : 0}): float64 attention over its cache, the unfused rope_kv_write + paged_attention_decode path`, () => {
        const d = device();
        // Only the entry points used (as the session's compile units select them).
        const sel = (...names: string[]) => ({ options: ["-DLLMRT_SELECT=1", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
        const fo = sel(name);
        using fusedMod = loadKernelFile(d, "decode_attention.cu", { options: [...fo.options, `-DDA_QFOLD=${fold ? 1 : 0}`] });
        using ropeMod = loadKernelFile(d, "rope_kv_write.cu", sel(`rope_kv_write_${tag}_bf16`));
        using paMod = loadKernelFile(d, "paged_attention.cu", sel(`paged_attention_decode_${tag}_bf16_hd${hd}`, "paged_attention_decode_reduce_bf16"));
        const nKV = 2, nH = nKV * G, bs = 16, lens = [1, 37, 300, 129], S = lens.length, T = S, stride = 20, numBlocks = S * stride;
        const row = nKV * hd, layer = numBlocks * 2 * bs * row, half = hd / 2, W = (nH + 2 * nKV) * hd;
        const scales = Float32Array.from(algo === "FP8" ? [0.011, 0.02, 0.013, 0.009] : [0.045, 0.05, 0.04, 0.035]);
        const sOf = (e: number): number => scales[(Math.floor(e / (bs * row)) % 2) * nKV + Math.floor((e % row) / hd)];
        // Earlier keys / values: random floats in ±2 encoded with their head's scale (the step's own slots get overwritten).
        const init = seededUniform(5 + hd + G, layer, -2, 2);
        const bytes = Uint8Array.from(init, (x, e) => kvEncode(algo, x, sOf(e)) & 255);
        const tables = Int32Array.from({ length: S * stride }, (_, i) => (i * 7) % numBlocks); // a permutation (7 ⟂ 80)
        const positions = Int32Array.from(lens, (n) => n - 1), starts = Int32Array.from({ length: S + 1 }, (_, i) => i);
        const qkv = Uint16Array.from(seededUniform(9 + hd, T * W, -2, 2), (v) => toBf16Bits(v));
        const invFreq = Float64Array.from({ length: half }, (_, i) => 1 / 500000 ** ((2 * i) / hd));
        const scale = 1 / Math.sqrt(hd);
        using kv = d.alloc(layer);
        using dQkv = d.alloc(qkv.byteLength);
        using dQ = d.alloc(T * nH * hd * 2);
        using dOut = d.alloc(T * nH * hd * 2);
        using dPos = d.alloc(positions.byteLength);
        using dStarts = d.alloc(starts.byteLength);
        using dTables = d.alloc(tables.byteLength);
        using dInv = d.alloc(invFreq.byteLength);
        using dScales = d.alloc(scales.byteLength);
        using pO = d.alloc(T * nH * 64 * hd * 4);
        using pML = d.alloc(T * nH * 64 * 2 * 4);
        using ctr = d.alloc(T * nKV * 4 * 4);
        dQkv.copyFromHost(qkv);
        dPos.copyFromHost(positions);
        dStarts.copyFromHost(starts);
        dTables.copyFromHost(tables);
        dInv.copyFromHost(invFreq);
        dScales.copyFromHost(scales);
        ctr.fill(0);
        const geo = [dPos, dStarts, dTables] as const;

        // The unfused path: rope_kv_write (q buffer + cache) and split decode over 64-key splits + reduce.
        const unfused = (window: number): { out: Uint16Array; q: Uint16Array; cache: Uint8Array } => {
          kv.copyFromHost(bytes);
          ropeMod.kernel(`rope_kv_write_${tag}_bf16`, [P, P, P, P, P, P, P, F, I, I, I, I, I, I, I, P]).launch(T, 128, [
            dQkv,
            dQ,
            kv,
            ...geo,
            dInv,
            1,
            T,
            S,
            nH,
            nKV,
            hd,
            bs,
            stride,
            dScales,
          ]);
          const splits = Math.ceil((window > 0 ? window : Math.max(...lens)) / 64);
          paMod.kernel(`paged_attention_decode_${tag}_bf16_hd${hd}`, [P, P, P, P, P, P, P, P, I, I, I, I, I, I, F, I, I, P]).launch(
            [nKV * Math.ceil(G / 8), T, splits],
            128,
            [dQ, dOut, kv, ...geo, pO, pML, T, S, nH, nKV, bs, stride, scale, window, 64, dScales],
          );
          if (splits > 1) {
            paMod.kernel("paged_attention_decode_reduce_bf16", [P, P, P, I, I, I, I]).launch([nH, T, 1], hd, [pO, pML, dOut, T, nH, hd, splits]);
          }
          const out = new Uint16Array(T * nH * hd), q = new Uint16Array(T * nH * hd), cache = new Uint8Array(layer);
          dOut.copyToHost(out);
          dQ.copyToHost(q);
          kv.copyToHost(cache);
          return { out, q, cache };
        };
        const fused = (window: number, numSplits: number, minKeys: number): { out: Uint16Array; cache: Uint8Array } => {
          kv.copyFromHost(bytes);
          dOut.fill(0xff); // NaN-poisoned: every output must be written
          fusedMod.kernel(name, [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L, P]).launch(
            [nKV * Math.ceil(G / 8), T, numSplits],
            128,
            [dQkv, dOut, kv, ...geo, dInv, 1, pO, pML, ctr, T, S, nH, nKV, bs, stride, scale, window, minKeys, 0n, 0n, dScales],
          );
          const out = new Uint16Array(T * nH * hd), cache = new Uint8Array(layer), c = new Int32Array(T * nKV);
          dOut.copyToHost(out);
          kv.copyToHost(cache);
          ctr.copyToHost(c);
          assert.ok(c.every((v) => v === 0), `${name}: split counters back to zero`);
          return { out, cache };
        };
        const off = (t: number, p: number, which: number, h: number): number => {
          const blk = tables[t * stride + Math.floor(p / bs)];
          return ((blk * 2 + which) * bs + (p % bs)) * row + h * hd;
        };
        /**
         * Float64 attention of the rotated bf16 q over the cache's bf16(decode(byte) · s) (`exact`: decode(byte) · s, what
         * DA_QFOLD=1 attends); the largest error of `out` relative to max |ref|.
         */
        const vsFloat64 = (out: Uint16Array, q: Uint16Array, cache: Uint8Array, window: number, exact = false): number => {
          let maxErr = 0, maxRef = 0;
          const deqAll = Float64Array.from(
            cache,
            (b, e) => exact ? kvDecode(algo, b) * sOf(e) : fromBf16Bits(toBf16Bits(Math.fround(kvDecode(algo, b) * sOf(e)))),
          );
          for (let t = 0; t < T; t++) {
            const pos = positions[t], lo = window > 0 ? Math.max(0, pos + 1 - window) : 0;
            for (let h = 0; h < nH; h++) {
              const kh = Math.floor(h / G);
              const deq = (o: number, e: number): number => deqAll[o + e];
              const sc: number[] = [];
              for (let p = lo; p <= pos; p++) {
                let dot = 0;
                for (let e = 0; e < hd; e++) dot += fromBf16Bits(q[(t * nH + h) * hd + e]) * deq(off(t, p, 0, kh), e);
                sc.push(dot * scale);
              }
              const m = Math.max(...sc), w = sc.map((x) => Math.exp(x - m)), sum = w.reduce((a, b) => a + b, 0);
              for (let e = 0; e < hd; e++) {
                let o = 0;
                for (let p = lo; p <= pos; p++) o += w[p - lo] * deq(off(t, p, 1, kh), e);
                o /= sum;
                const got = fromBf16Bits(out[(t * nH + h) * hd + e]);
                assert.ok(Number.isFinite(got), `${name}: output (${t}, ${h}, ${e}) not written or not finite`);
                maxErr = Math.max(maxErr, Math.abs(got - o));
                maxRef = Math.max(maxRef, Math.abs(o));
              }
            }
          }
          return maxErr / maxRef;
        };
        const report: string[] = [];
        for (const [window, numSplits, minKeys] of [[0, 8, 64], [0, 1, 128], [100, 8, 64]]) {
          const u = unfused(window), f = fused(window, numSplits, minKeys);
          let kDiff = 0;
          for (let i = 0; i < layer; i++) {
            if (f.cache[i] === u.cache[i]) continue;
            const isK = Math.floor(i / (bs * row)) % 2 === 0;
            assert.ok(isK, `${name}: cache byte ${i} (a value) ${f.cache[i]} vs the unfused path's ${u.cache[i]}`);
            kDiff++;
          }
          assert.ok(kDiff <= 4, `${name}: ${kDiff} k bytes differ from rope_kv_write_${tag}'s (FMA-contraction ties only)`);
          const eF = vsFloat64(f.out, u.q, f.cache, window, fold), eU = vsFloat64(u.out, u.q, u.cache, window);
          let same = 0, maxD = 0;
          for (let i = 0; i < f.out.length; i++) {
            if (f.out[i] === u.out[i]) same++;
            maxD = Math.max(maxD, Math.abs(fromBf16Bits(f.out[i]) - fromBf16Bits(u.out[i])));
          }
          // bf16 output rounding is 2^-9 relative; fp32 sums in another order add far less.
          assert.ok(eF < 8e-3, `${name} window ${window} splits ${numSplits}: max error vs float64 ${eF.toExponential(2)} (unfused ${eU.toExponential(2)})`);
          report.push(
            `window ${window} splits ${numSplits}/${minKeys}: vs float64 ${eF.toExponential(2)} (unfused ${
              eU.toExponential(2)
            }), ${same}/${f.out.length} outputs equal to the unfused, max |Δ| ${maxD.toExponential(2)}, ${kDiff} k bytes differ`,
          );
        }
        console.log(`${name}: ${report.join("; ")}`);
        if (algo !== "FP8" || !fold) return;
        // decode_attention_sk_fp8kv (fp8DecodeSk): split target 1 (one split) or 64 (splits of DS_MINK keys), grid z 1 or 8;
        // fp8DecodeSkSmall: target 64 with splits of at least 64 keys (decodeSkSplitArg: 1 << 16).
        const skName = `decode_attention_sk_fp8kv_bf16_hd${hd}`;
        using skMod = loadKernelFile(d, "decode_attention_sk.cu", sel(skName));
        const skKern = skMod.kernel(skName, [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L, P]);
        skKern.setMaxDynamicSharedMemory(DECODE_SK_FP8_SMEM);
        const skReport: string[] = [];
        for (const [window, target, z] of [[0, 1, 1], [0, 64, 8], [0, 64, 1], [100, 64, 8], [0, 64 | (1 << 16), 8], [100, 64 | (1 << 16), 3]]) {
          const u = unfused(window);
          kv.copyFromHost(bytes);
          dOut.fill(0xff);
          skKern.launch([nKV * Math.ceil(G / 8), T, z], 128, [
            dQkv,
            dOut,
            kv,
            ...geo,
            dInv,
            1,
            pO,
            pML,
            ctr,
            T,
            S,
            nH,
            nKV,
            bs,
            stride,
            scale,
            window,
            target,
            0n,
            0n,
            dScales,
          ], {
            sharedMemBytes: DECODE_SK_FP8_SMEM,
          });
          const out = new Uint16Array(T * nH * hd), cache = new Uint8Array(layer), c = new Int32Array(T * nKV);
          dOut.copyToHost(out);
          kv.copyToHost(cache);
          ctr.copyToHost(c);
          assert.ok(c.every((v) => v === 0), `${skName}: split counters back to zero`);
          let kDiff = 0;
          for (let i = 0; i < layer; i++) {
            if (cache[i] === u.cache[i]) continue;
            assert.ok(Math.floor(i / (bs * row)) % 2 === 0, `${skName}: cache byte ${i} (a value) ${cache[i]} vs the unfused path's ${u.cache[i]}`);
            kDiff++;
          }
          assert.ok(kDiff <= 4, `${skName}: ${kDiff} k bytes differ from rope_kv_write_${tag}'s`);
          const e = vsFloat64(out, u.q, cache, window, true);
          assert.ok(e < 8e-3, `${skName} window ${window} target ${target} z ${z}: max error vs float64 ${e.toExponential(2)}`);
          skReport.push(`window ${window} target ${target} z ${z}: vs float64 ${e.toExponential(2)}, ${kDiff} k bytes differ`);
        }
        console.log(`${skName} (G ${G}): ${skReport.join("; ")}`);
      });
    }
  }
}

for (const [algo, tag] of ALGOS) {
  gpuTest(`kv_dequant_${tag}_bf16: the attended blocks of each sequence into the bf16 shadow as bf16(decode(byte) · s), the rest untouched`, () => {
    const d = device();
    using mod = loadKernelFile(d, "kv_dequant.cu", { options: ["-DLLMRT_SELECT=1", `-DLLMRT_K_kv_dequant_${tag}_bf16=1`] });
    const nKV = 2, hd = 128, bs = 16, stride = 8, S = 3, numBlocks = 30, row = nKV * hd, layer = numBlocks * 2 * bs * row;
    const bytes = Uint8Array.from(seededUniform(21, layer, 0, 254), (v) => {
      const b = Math.floor(v);
      return algo === "FP8" && (b & 0x7f) === 0x7f ? b - 1 : b;
    });
    const scales = Float32Array.from([0.02, 0.031, 0.017, 0.05]);
    const tables = Int32Array.from({ length: S * stride }, (_, i) => (i * 7 + 3) % numBlocks);
    // Sequence 0: one token at 0; 1: a chunk at 20..52 (its last block 3); 2: tokens in any order up to 100 (block 6).
    const positions = Int32Array.from([0, ...Array.from({ length: 33 }, (_, i) => 20 + i), 100, 5, 64]);
    const starts = Int32Array.of(0, 1, 34, 37);
    using kv = d.alloc(layer);
    using sh = d.alloc(layer * 2);
    using dPos = d.alloc(positions.byteLength);
    using dStarts = d.alloc(starts.byteLength);
    using dTables = d.alloc(tables.byteLength);
    using dScales = d.alloc(scales.byteLength);
    kv.copyFromHost(bytes);
    sh.fill(0xab);
    dPos.copyFromHost(positions);
    dStarts.copyFromHost(starts);
    dTables.copyFromHost(tables);
    dScales.copyFromHost(scales);
    mod.kernel(`kv_dequant_${tag}_bf16`, [P, P, P, P, P, I, I, I, I, I, P]).launch([stride, S, 3], 256, [
      kv,
      sh,
      dPos,
      dStarts,
      dTables,
      S,
      nKV,
      hd,
      bs,
      stride,
      dScales,
    ]);
    const got = new Uint16Array(layer);
    sh.copyToHost(got);
    const want = new Uint16Array(layer).fill(0xabab);
    const lastBlock = [0, 3, 6];
    for (let s = 0; s < S; s++) {
      for (let j = 0; j <= lastBlock[s]; j++) {
        const base = tables[s * stride + j] * 2 * bs * row;
        for (let e = 0; e < 2 * bs * row; e++) {
          want[base + e] = toBf16Bits(Math.fround(kvDecode(algo, bytes[base + e]) * scales[(e >= bs * row ? nKV : 0) + Math.floor((e % row) / hd)]));
        }
      }
    }
    let bad = 0;
    for (let e = 0; e < layer; e++) if (got[e] !== want[e]) bad++;
    assert.equal(bad, 0, `${tag}: ${bad} of ${layer} shadow elements differ`);
  });
}

// llama-3.1-8b's prefill attention shape (a 2048-token prompt, 32 / 8 heads, hd 128, blocks of 32) over an FP8 cache: the
// fp8FlashPrefill pipeline (kv_dequant into the shadow, then flash_prefill_wg / flash_prefill) against
// paged_attention_prefill_mma_fp8kv (the default), which stages the same bf16 values.
for (const [algo, tag] of ALGOS) {
  gpuTest(
    `rope_kv_write_shadow_${tag} + kv_dequant_prefix_${tag} (fp8ShadowRope) = rope_kv_write_${tag} + kv_dequant_${tag}: the same q, cache bytes and shadow`,
    () => {
      const d = device();
      const sel = (...names: string[]) => ({ options: ["-DLLMRT_SELECT=1", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
      using ropeMod = loadKernelFile(d, "rope_kv_write.cu", sel(`rope_kv_write_${tag}_bf16`, `rope_kv_write_shadow_${tag}_bf16`));
      using dqMod = loadKernelFile(d, "kv_dequant.cu", sel(`kv_dequant_${tag}_bf16`, `kv_dequant_prefix_${tag}_bf16`));
      const nH = 8, nKV = 2, hd = 128, bs = 16, stride = 8, numBlocks = 30, row = nKV * hd, layer = numBlocks * 2 * bs * row;
      const W = (nH + 2 * nKV) * hd, half = hd / 2;
      // Consecutive positions per sequence: a new prompt (0..40), a chunk over a cached prefix (20..52), one decode token (64),
      // a chunk starting mid-block (70..75).
      const seqs = [[0, 41], [20, 33], [64, 1], [70, 6]];
      const positions = Int32Array.from(seqs.flatMap(([p0, n]) => Array.from({ length: n }, (_, i) => p0 + i)));
      const starts = Int32Array.from([0, ...seqs.map((_, i) => seqs.slice(0, i + 1).reduce((a, [, n]) => a + n, 0))]);
      const S = seqs.length, T = positions.length;
      const tables = Int32Array.from({ length: S * stride }, (_, i) => (i * 7 + 3) % numBlocks);
      const bytes = Uint8Array.from(seededUniform(23, layer, 0, 254), (v) => {
        const b = Math.floor(v);
        return algo === "FP8" && (b & 0x7f) === 0x7f ? b - 1 : b;
      });
      const scales = Float32Array.from([0.02, 0.031, 0.017, 0.05]);
      const qkv = Uint16Array.from(seededUniform(29, T * W, -2, 2), (v) => toBf16Bits(v));
      const invFreq = Float64Array.from({ length: half }, (_, i) => 1 / 500000 ** ((2 * i) / hd));
      using kv = d.alloc(layer);
      using sh = d.alloc(layer * 2);
      using dQkv = d.alloc(qkv.byteLength);
      using dQ = d.alloc(T * nH * hd * 2);
      using dPos = d.alloc(positions.byteLength);
      using dStarts = d.alloc(starts.byteLength);
      using dTables = d.alloc(tables.byteLength);
      using dScales = d.alloc(scales.byteLength);
      using dInv = d.alloc(invFreq.byteLength);
      dQkv.copyFromHost(qkv);
      dPos.copyFromHost(positions);
      dStarts.copyFromHost(starts);
      dTables.copyFromHost(tables);
      dScales.copyFromHost(scales);
      dInv.copyFromHost(invFreq);
      const run = (shadow: boolean): { q: Uint16Array; cache: Uint8Array; sh: Uint16Array } => {
        kv.copyFromHost(bytes);
        sh.fill(0xab);
        dQ.fill(0);
        const rope = ropeMod.kernel(`rope_kv_write_${shadow ? "shadow_" : ""}${tag}_bf16`, [
          P,
          P,
          P,
          P,
          P,
          P,
          P,
          F,
          I,
          I,
          I,
          I,
          I,
          I,
          I,
          P,
          ...(shadow ? [P] as const : []),
        ]);
        rope.launch(T, 128, [dQkv, dQ, kv, dPos, dStarts, dTables, dInv, 1, T, S, nH, nKV, hd, bs, stride, dScales, ...(shadow ? [sh] : [])]);
        dqMod.kernel(`kv_dequant_${shadow ? "prefix_" : ""}${tag}_bf16`, [P, P, P, P, P, I, I, I, I, I, P]).launch([stride, S, 4], 256, [
          kv,
          sh,
          dPos,
          dStarts,
          dTables,
          S,
          nKV,
          hd,
          bs,
          stride,
          dScales,
        ]);
        const q = new Uint16Array(T * nH * hd), cache = new Uint8Array(layer), shadowOut = new Uint16Array(layer);
        dQ.copyToHost(q);
        kv.copyToHost(cache);
        sh.copyToHost(shadowOut);
        return { q, cache, sh: shadowOut };
      };
      const a = run(false), b = run(true);
      const diff = (x: ArrayLike<number>, y: ArrayLike<number>): number => {
        let n = 0;
        for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) n++;
        return n;
      };
      assert.equal(diff(b.q, a.q), 0, `${tag}: q`);
      assert.equal(diff(b.cache, a.cache), 0, `${tag}: cache bytes`);
      assert.equal(diff(b.sh, a.sh), 0, `${tag}: shadow elements`);
      // And the shadow was written at all (the attended blocks hold decoded values, not the 0xabab poison).
      const touched = a.sh.reduce((n, v) => n + (v !== 0xabab ? 1 : 0), 0);
      assert.ok(touched > 2 * bs * row, `${tag}: ${touched} shadow elements written`);
    },
  );
}

gpuTest("kv_dequant_fp8kv + flash prefill over the shadow vs paged_attention_prefill_mma_fp8kv (8B shape, 2048 tokens)", () => {
  const d = device();
  const sel = (...names: string[]) => ({ options: ["-DLLMRT_SELECT=1", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
  using kd = loadKernelFile(d, "kv_dequant.cu", sel("kv_dequant_fp8kv_bf16"));
  using pa = loadKernelFile(d, "paged_attention.cu", sel("paged_attention_prefill_mma_fp8kv_bf16_hd128"));
  const wg = d.arch === "sm_90" ? flashPrefillWgGeometry(128) : undefined;
  using fl = wg
    ? loadKernelFile(d, "flash_prefill_wg.cu", sel("flash_prefill_wg_bf16_hd128"))
    : loadKernelFile(d, "flash_prefill.cu", sel("flash_prefill_bf16_hd128"));
  const name = wg ? "flash_prefill_wg_bf16_hd128" : "flash_prefill_bf16_hd128";
  const SIG = [P, P, P, P, P, P, I, I, I, I, I, I, F, I] as const;
  const flash = fl.kernel(name, SIG);
  if (wg) flash.setMaxDynamicSharedMemory(wg.sharedMem);
  const T = 2048, nH = 32, nKV = 8, hd = 128, bs = 32, stride = T / bs + 1, numBlocks = stride + 3, row = nKV * hd;
  const layer = numBlocks * 2 * bs * row;
  const scales = Float32Array.from({ length: 2 * nKV }, (_, i) => 0.01 + 0.002 * i);
  const init = seededUniform(41, layer, -2, 2);
  const bytes = Uint8Array.from(init, (x, e) => kvEncode("FP8", x, scales[(Math.floor(e / (bs * row)) % 2) * nKV + Math.floor((e % row) / hd)]) & 255);
  const tables = Int32Array.from({ length: stride }, (_, i) => (i * 11) % numBlocks);
  const q = Uint16Array.from(seededUniform(43, T * nH * hd, -2, 2), (v) => toBf16Bits(v));
  using dq = d.alloc(q.byteLength);
  using kv = d.alloc(layer);
  using sh = d.alloc(layer * 2);
  using dPos = d.alloc(T * 4);
  using dStarts = d.alloc(8);
  using dTables = d.alloc(tables.byteLength);
  using dScales = d.alloc(scales.byteLength);
  using oF = d.alloc(q.byteLength);
  using oM = d.alloc(q.byteLength);
  dq.copyFromHost(q);
  kv.copyFromHost(bytes);
  dPos.copyFromHost(Int32Array.from({ length: T }, (_, i) => i));
  dStarts.copyFromHost(Int32Array.of(0, T));
  dTables.copyFromHost(tables);
  dScales.copyFromHost(scales);
  oF.fill(0xff);
  const scale = 1 / Math.sqrt(hd);
  kd.kernel("kv_dequant_fp8kv_bf16", [P, P, P, P, P, I, I, I, I, I, P]).launch([stride, 1, 4], 256, [
    kv,
    sh,
    dPos,
    dStarts,
    dTables,
    1,
    nKV,
    hd,
    bs,
    stride,
    dScales,
  ]);
  const rows = wg ? wg.rows : flashPrefillGeometry(128)!.rows, threads = wg ? wg.threads : flashPrefillGeometry(128)!.threads;
  flash.launch(
    [nH, Math.ceil(T / rows) + 1, 1],
    threads,
    [dq, oF, sh, dPos, dStarts, dTables, T, 1, nH, nKV, bs, stride, scale, 0],
    wg ? { sharedMemBytes: wg.sharedMem } : {},
  );
  pa.kernel("paged_attention_prefill_mma_fp8kv_bf16_hd128", [...SIG, P]).launch([Math.ceil(T / 64) + 1, nH, 1], 128, [
    dq,
    oM,
    kv,
    dPos,
    dStarts,
    dTables,
    T,
    1,
    nH,
    nKV,
    bs,
    stride,
    scale,
    0,
    dScales,
  ]);
  const a = new Uint16Array(q.length), b = new Uint16Array(q.length);
  oF.copyToHost(a);
  oM.copyToHost(b);
  let e2 = 0, r2 = 0, nan = 0, same = 0;
  for (let i = 0; i < a.length; i++) {
    const x = fromBf16Bits(a[i]), y = fromBf16Bits(b[i]);
    if (!Number.isFinite(x)) nan++;
    if (a[i] === b[i]) same++;
    e2 += (x - y) ** 2;
    r2 += y ** 2;
  }
  const rel = Math.sqrt(e2 / r2);
  console.log(`${name} over the shadow vs paged_attention_prefill_mma_fp8kv (8B shape, T ${T}): rel L2 ${rel.toExponential(2)}, ${same} / ${a.length} equal`);
  assert.equal(nan, 0, "every output written and finite");
  assert.ok(rel < 1e-2, `rel L2 ${rel} vs paged_attention_prefill_mma_fp8kv`);
});

// End to end: random Llamas with an FP8 / INT8 KV cache, the CUDA session with fp8DecodeAttention + fp8FlashPrefill
// against the default CUDA session (rope_kv_write + paged decode + reduce; paged_attention_prefill_mma_*kv) and the
// float32 CPU engine with the same quantized cache: a prompt, a chunk over its cached prefix (the shadow holds the
// prefix blocks too) and graph decode steps.
for (
  const [label, qc, extra] of [
    ["FP8 KV, hd 128, G 4", { kvCacheQuantAlgo: "FP8" }, { hidden_size: 256, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 128 }],
    ["INT8 KV, hd 64, G 2", { kvCacheQuantAlgo: "INT8" }, {}],
  ] as [string, QuantConfigInput, Record<string, unknown>][]
) {
  gpuTest(`session: fp8DecodeAttention + fp8FlashPrefill vs the default CUDA session and the CPU engine (${label})`, () => {
    const raw = { ...quantTestLlama(112), ...extra };
    const V = raw.vocab_size as number;
    const calib = [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % V)];
    const { bf16, f32 } = quantEngines(raw, 17, qc, 0.1, { calibration: calib });
    const fast = Session.fromSerializedEngine(bf16, { backend: "cuda", fp8DecodeAttention: true, fp8FlashPrefill: true });
    const base = Session.fromSerializedEngine(bf16, { backend: "cuda" });
    const cpu = Session.fromSerializedEngine(f32, { backend: "cpu" });
    try {
      const kvF = fast.createKvCache(40), kvB = base.createKvCache(40), kvC = cpu.createKvCache(40);
      const blocks = Array.from({ length: 40 }, (_, i) => i);
      const prompt = Array.from({ length: 70 }, (_, i) => (i * 37 + 11) % V);
      const report: string[] = [];
      const check = (what: string, ids: number[], pos: number): number => {
        const l = [new Float32Array(V), new Float32Array(V), new Float32Array(V)], s = [new Int32Array(1), new Int32Array(1), new Int32Array(1)];
        fast.run(step(ids, pos, blocks), { logits: l[0], sampledIds: s[0] }, kvF);
        base.run(step(ids, pos, blocks), { logits: l[1], sampledIds: s[1] }, kvB);
        cpu.run(step(ids, pos, blocks), { logits: l[2], sampledIds: s[2] }, kvC);
        const eB = relL2(l[0], l[1]), eC = relL2(l[0], l[2]), eBC = relL2(l[1], l[2]);
        report.push(`${what}: vs default ${eB.toExponential(2)}, vs CPU ${eC.toExponential(2)} (default vs CPU ${eBC.toExponential(2)})`);
        // Other fp32 summation orders and P roundings over the same K/V values: far below the bf16-vs-float32 gap.
        assert.ok(eB < 2e-2, `${label} ${what}: logits rel L2 ${eB} vs the default CUDA session`);
        assert.ok(eC < 0.05, `${label} ${what}: logits rel L2 ${eC} vs the CPU engine`);
        return s[0][0];
      };
      check("prefill 64", prompt.slice(0, 64), 0);
      let next = check("chunk 6 over 64 cached", prompt.slice(64, 70), 64);
      for (let i = 0; i < 4; i++) next = check(`decode ${i}`, [next], 70 + i);
      console.log(`${label}: ${report.join("; ")}`);
      assert.ok(fast.cuda!.numGraphs >= 1, "decode steps ran as graphs");
    } finally {
      fast.dispose();
      base.dispose();
      cpu.dispose();
      bf16.dispose();
      f32.dispose();
    }
  }, 300_000);
}

// Session 10's switches end to end: FP8 weights (k % 512: fp8_gemv1) + an FP8 KV cache at hd 128, G 4: the session with
// fp8DecodeSk (decode_attention_sk_fp8kv) and fp8ShadowRope (rope_kv_write_shadow + kv_dequant_prefix) against the default CUDA session and the float32 CPU engine: a prompt, a chunk
// over its cached prefix and graph decode steps.
/**
 * A random FP8 + FP8 KV Llama (hd 128, G 4, k % 512) through a session with `opts` against the default-off session `base`
 * and the float32 CPU engine: prefill steps bitwise equal to `base`, decode steps no further from it than it is from the CPU.
 */
function sessionVsDefault(label: string, opts: SessionOptions, base: SessionOptions): void {
  const raw: Record<string, unknown> = {
    ...quantTestLlama(112),
    hidden_size: 512,
    intermediate_size: 1024,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 128,
  };
  const V = raw.vocab_size as number;
  const calib = [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % V)];
  const { bf16, f32 } = quantEngines(raw, 19, { quantAlgo: "FP8", kvCacheQuantAlgo: "FP8" }, 0.1, { calibration: calib });
  const s10 = Session.fromSerializedEngine(bf16, { ...opts, backend: "cuda" });
  const baseS = Session.fromSerializedEngine(bf16, { ...base, backend: "cuda" });
  const cpu = Session.fromSerializedEngine(f32, { backend: "cpu" });
  try {
    const kvS = s10.createKvCache(40), kvB = baseS.createKvCache(40), kvC = cpu.createKvCache(40);
    const blocks = Array.from({ length: 40 }, (_, i) => i);
    const prompt = Array.from({ length: 70 }, (_, i) => (i * 37 + 11) % V);
    const report: string[] = [];
    const check = (what: string, ids: number[], pos: number): number => {
      const l = [new Float32Array(V), new Float32Array(V), new Float32Array(V)], s = [new Int32Array(1), new Int32Array(1), new Int32Array(1)];
      s10.run(step(ids, pos, blocks), { logits: l[0], sampledIds: s[0] }, kvS);
      baseS.run(step(ids, pos, blocks), { logits: l[1], sampledIds: s[1] }, kvB);
      cpu.run(step(ids, pos, blocks), { logits: l[2], sampledIds: s[2] }, kvC);
      const eB = relL2(l[0], l[1]), eC = relL2(l[0], l[2]), eBC = relL2(l[1], l[2]);
      report.push(`${what}: vs default ${eB.toExponential(2)}, vs CPU ${eC.toExponential(2)} (default vs CPU ${eBC.toExponential(2)})`);
      // Prefill steps (the prompt, the chunk over its cached prefix): the same shadow and GEMMs, bitwise; decode steps:
      // the sk kernel sums in another order.
      if (ids.length > 1) assert.equal(eB, 0, `${what}: prefill logits vs the default session`);
      // Decode: no further from the default than the default is from the float32 reference (r3: 2.16e-2 at decode 0).
      assert.ok(eB < Math.max(2e-2, 1.5 * eBC), `${what}: logits rel L2 ${eB} vs the default CUDA session (default vs CPU ${eBC})`);
      assert.ok(eC < Math.max(0.1, 2 * eBC), `${what}: logits rel L2 ${eC} vs the CPU engine (default ${eBC})`);
      return s[0][0];
    };
    check("prefill 64", prompt.slice(0, 64), 0);
    let next = check("chunk 6 over 64 cached", prompt.slice(64, 70), 64);
    for (let i = 0; i < 4; i++) next = check(`decode ${i}`, [next], 70 + i);
    console.log(`${label}: ${report.join("; ")}`);
    assert.ok(s10.cuda!.numGraphs >= 1, "decode steps ran as graphs");
  } finally {
    s10.dispose();
    baseS.dispose();
    cpu.dispose();
    bf16.dispose();
    f32.dispose();
  }
}

gpuTest("session: fp8DecodeSk + fp8ShadowRope vs the default CUDA session and the CPU engine (FP8 + FP8 KV, hd 128, G 4)", () => {
  sessionVsDefault("session 10 switches", { fp8DecodeSk: true, fp8ShadowRope: true, decodeSplitK: true }, { fp8DecodeSk: false, fp8ShadowRope: false });
}, 300_000);

// Session 16: fp8DecodeSkSmall (splits of >= 64 keys, on by default: other decode bits) with fp8GemvRow / fp8GemvRowNorm
// (fp8_gemvr: fp8_gemv1's bits) against the session with splits of >= 128 keys (session 15's default).
gpuTest("session: fp8DecodeSkSmall + fp8GemvRow + fp8GemvRowNorm vs the default CUDA session and the CPU engine (FP8 + FP8 KV, hd 128, G 4)", () => {
  sessionVsDefault("session 16 switches", { fp8DecodeSkSmall: true, fp8GemvRow: true, fp8GemvRowNorm: true }, { fp8DecodeSkSmall: false });
}, 300_000);
