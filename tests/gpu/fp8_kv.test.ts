/**
 * GPU: the quantized (FP8 e4m3 / INT8) KV cache of bfloat16 CUDA engines (issue 14; skipped without a GPU),
 * each test for both formats (entry points _fp8kv / _int8kv):
 * - rope_kv_write_*kv_bf16: q as rope_kv_write_bf16 (the same expression); the cache bytes are the CPU's
 *   kvEncode (encode(x / s)) of the rotated k (float) and of v (all but rare FMA-contraction ties for k; v exact).
 * - paged_attention_decode_*kv_bf16 / paged_attention_prefill_mma_*kv_bf16 (hd 64, 128) over a random byte
 *   cache give the bf16 kernels' output (equal bits expected, 1 bf16 ulp allowed) over the bf16 cache of its
 *   dequantized values (bf16(decode(q) · s): what the quantized-cache kernels stage).
 * - kjv-llama with kvCacheQuantAlgo FP8 / INT8 on CUDA (bf16): prefill, a chunk and graph decode steps against
 *   the CPU backend's engine with the same KV cache (the float32 reference of the format).
 * The plan wiring: tests/quant_fp8_cuda_kv.test.ts (fake device).
 */
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { kvDecode, kvEncode } from "../../lib/backends/cpu/kv_cache.ts";
import { buildSync } from "../../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../../lib/models/llama.ts";
import { quantizeSync } from "../../lib/quantization/quantize.ts";
import { Session } from "../../lib/runtime/session.ts";
import { relL2 } from "../cuda_fake_plans.ts";
import { assert } from "../harness.ts";
import { device, fromBf16Bits, gpuTest, seededUniform, step, toBf16Bits } from "./gpu.ts";

const P = "ptr", I = "i32", F = "f32";
const kjv = new URL("../../models/kjv-llama/", import.meta.url).pathname;
const ALGOS = [["FP8", "fp8kv"], ["INT8", "int8kv"]] as const;

for (const [algo, tag] of ALGOS) {
  gpuTest(`rope_kv_write_${tag}_bf16: q as rope_kv_write_bf16, k / v bytes = the CPU's kvEncode of the rotated k and of v`, () => {
    const d = device();
    using mod = loadKernelFile(d, "rope_kv_write.cu");
    const sig = [P, P, P, P, P, P, P, F, I, I, I, I, I, I, I] as const;
    const nH = 4, nKV = 2, hd = 64, bs = 16, T = 5, stride = 2, numBlocks = 4;
    const W = (nH + 2 * nKV) * hd, half = hd / 2;
    const qkv = Uint16Array.from(seededUniform(3, T * W, -4, 4), (v) => toBf16Bits(v));
    const positions = Int32Array.from([0, 1, 2, 17, 30]), starts = Int32Array.of(0, T), tables = Int32Array.of(2, 0);
    const invFreq = Float64Array.from({ length: half }, (_, i) => 1 / 10000 ** ((2 * i) / hd));
    // k heads, then v heads (INT8: about amax / 127, a few values saturate).
    const scales = Float32Array.from(algo === "FP8" ? [0.011, 0.02, 0.013, 0.009] : [0.045, 0.05, 0.04, 0.035]);
    const layer = numBlocks * 2 * bs * nKV * hd;
    using dQkv = d.alloc(qkv.byteLength);
    using dQ8 = d.alloc(T * nH * hd * 2);
    using dQ16 = d.alloc(T * nH * hd * 2);
    using kv8 = d.alloc(layer);
    using kv16 = d.alloc(layer * 2);
    using dPos = d.alloc(T * 4);
    using dStarts = d.alloc(8);
    using dTables = d.alloc(8);
    using dInv = d.alloc(half * 8);
    using dScales = d.alloc(16);
    dQkv.copyFromHost(qkv);
    dPos.copyFromHost(positions);
    dStarts.copyFromHost(starts);
    dTables.copyFromHost(tables);
    dInv.copyFromHost(invFreq);
    dScales.copyFromHost(scales);
    kv8.fill(0);
    const common = [dPos, dStarts, dTables, dInv, 1, T, 1, nH, nKV, hd, bs, stride] as const;
    mod.kernel("rope_kv_write_bf16", sig).launch(T, 128, [dQkv, dQ16, kv16, ...common]);
    mod.kernel(`rope_kv_write_${tag}_bf16`, [...sig, P]).launch(T, 128, [dQkv, dQ8, kv8, ...common, dScales]);
    const q8 = new Uint16Array(T * nH * hd), q16 = new Uint16Array(T * nH * hd), bytes = new Uint8Array(layer);
    dQ8.copyToHost(q8);
    dQ16.copyToHost(q16);
    kv8.copyToHost(bytes);
    // The same expression in both kernels (equal bits unless the compiler contracts it differently: ≤ 1 bf16 ulp).
    for (let i = 0; i < q8.length; i++) {
      const a = fromBf16Bits(q8[i]), b = fromBf16Bits(q16[i]);
      assert.ok(Math.abs(a - b) <= Math.abs(b) * 2 ** -7, `q element ${i}: ${a} vs rope_kv_write_bf16's ${b}`);
    }
    let kMismatch = 0, vMismatch = 0;
    for (let t = 0; t < T; t++) {
      const p = positions[t], blk = tables[Math.floor(p / bs)];
      for (let h = 0; h < nKV; h++) {
        const ko = ((blk * 2) * bs + (p % bs)) * nKV * hd + h * hd, vo = ((blk * 2 + 1) * bs + (p % bs)) * nKV * hd + h * hd;
        const r = t * W + (nH + h) * hd;
        for (let e = 0; e < half; e++) {
          const cs = Math.fround(Math.cos(invFreq[e] * p)), sn = Math.fround(Math.sin(invFreq[e] * p));
          const a = fromBf16Bits(qkv[r + e]), b = fromBf16Bits(qkv[r + half + e]);
          if (bytes[ko + e] !== kvEncode(algo, Math.fround(a * cs - b * sn), scales[h])) kMismatch++;
          if (bytes[ko + half + e] !== kvEncode(algo, Math.fround(b * cs + a * sn), scales[h])) kMismatch++;
        }
        for (let e = 0; e < hd; e++) if (bytes[vo + e] !== kvEncode(algo, fromBf16Bits(qkv[t * W + (nH + nKV + h) * hd + e]), scales[nKV + h])) vMismatch++;
      }
    }
    assert.equal(vMismatch, 0, `${algo}: v bytes = encode(v / s)`);
    assert.ok(kMismatch <= 2, `${algo}: ${kMismatch} of ${T * nKV * hd} k bytes differ from encode(float(rotated k) / s)`);
  });
}

for (const [algo, tag] of ALGOS) {
  for (const hd of [64, 128]) {
    gpuTest(`paged_attention decode / prefill_mma _${tag}_bf16 hd${hd}: the bf16 kernels' output over the dequantized cache`, () => {
      const d = device();
      using mod = loadKernelFile(d, "paged_attention.cu");
      const nH = 8, nKV = 2, bs = 16, lens = [37, 80, 5], S = lens.length, stride = 6, numBlocks = S * stride;
      const row = nKV * hd, layer = numBlocks * 2 * bs * row;
      // Random bytes (no e4m3 NaN; any int8), scales per (k | v, head).
      const bytes = Uint8Array.from(seededUniform(7 + hd, layer, 0, 254), (v) => {
        const b = Math.floor(v);
        return (b & 0x7f) === 0x7f ? b - 1 : b;
      });
      const scales = Float32Array.from(algo === "FP8" ? [0.02, 0.031, 0.017, 0.05] : [0.05, 0.08, 0.04, 0.1]);
      const deq = new Uint16Array(layer);
      for (let e = 0; e < layer; e++) {
        deq[e] = toBf16Bits(Math.fround(kvDecode(algo, bytes[e]) * scales[(Math.floor(e / (bs * row)) % 2) * nKV + Math.floor((e % row) / hd)]));
      }
      const tables = Int32Array.from({ length: S * stride }, (_, i) => (i * 7) % numBlocks); // a permutation (7 ⟂ 18)
      using kv8 = d.alloc(layer);
      using kv16 = d.alloc(layer * 2);
      using dTables = d.alloc(tables.byteLength);
      using dScales = d.alloc(16);
      kv8.copyFromHost(bytes);
      kv16.copyFromHost(deq);
      dTables.copyFromHost(tables);
      dScales.copyFromHost(scales);
      const scale = 1 / Math.sqrt(hd);
      const run = (T: number, positions: Int32Array, starts: Int32Array, launch: (q: bigint, out: bigint, kv: bigint, fp8: boolean) => void): void => {
        const q = Uint16Array.from(seededUniform(11, T * nH * hd, -2, 2), (v) => toBf16Bits(v));
        using dq = d.alloc(q.byteLength);
        using o8 = d.alloc(q.byteLength);
        using o16 = d.alloc(q.byteLength);
        dq.copyFromHost(q);
        using dPos = d.alloc(positions.byteLength);
        using dStarts = d.alloc(starts.byteLength);
        dPos.copyFromHost(positions);
        dStarts.copyFromHost(starts);
        posPtr = dPos.ptr;
        startsPtr = dStarts.ptr;
        launch(dq.ptr, o16.ptr, kv16.ptr, false);
        launch(dq.ptr, o8.ptr, kv8.ptr, true);
        const a = new Uint16Array(T * nH * hd), b = new Uint16Array(T * nH * hd);
        o8.copyToHost(a);
        o16.copyToHost(b);
        // Identical shared-memory tiles and code after staging: equal bits expected; allowed: 1 bf16 ulp (a
        // different instruction schedule), far below what a wrong byte, scale or head would do.
        let equal = 0;
        for (let i = 0; i < a.length; i++) {
          const x = fromBf16Bits(a[i]), y = fromBf16Bits(b[i]);
          if (a[i] === b[i]) equal++;
          else assert.ok(Math.abs(x - y) <= Math.max(Math.abs(y) * 2 ** -7, 1e-6), `${tag} hd${hd} T=${T}: output element ${i} ${x} vs bf16 kernel ${y}`);
        }
        if (equal < a.length) console.log(`${tag} hd${hd} T=${T}: ${a.length - equal} of ${a.length} outputs 1 ulp from the bf16 kernel's`);
      };
      let posPtr = 0n, startsPtr = 0n;
      // Decode: one token per sequence at its last position (one split of 128 keys).
      const decSig = [P, P, P, P, P, P, P, P, I, I, I, I, I, I, F, I, I] as const;
      run(S, Int32Array.from(lens, (n) => n - 1), Int32Array.from({ length: S + 1 }, (_, i) => i), (q, out, kv, fp8) => {
        const args = [q, out, kv, posPtr, startsPtr, dTables.ptr, 0n, 0n, S, S, nH, nKV, bs, stride, scale, 0, 128];
        if (fp8) mod.kernel(`paged_attention_decode_${tag}_bf16_hd${hd}`, [...decSig, P]).launch([nKV, S, 1], 128, [...args, dScales.ptr]);
        else mod.kernel(`paged_attention_decode_bf16_hd${hd}`, decSig).launch([nKV, S, 1], 128, args);
      });
      // Prefill: every position of every sequence (causal).
      const T = lens.reduce((a, b) => a + b, 0);
      const positions = Int32Array.from(lens.flatMap((n) => Array.from({ length: n }, (_, i) => i)));
      const starts = Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, b) => a + b, 0))]);
      const preSig = [P, P, P, P, P, P, I, I, I, I, I, I, F, I] as const;
      run(T, positions, starts, (q, out, kv, fp8) => {
        const args = [q, out, kv, posPtr, startsPtr, dTables.ptr, T, S, nH, nKV, bs, stride, scale, 0];
        const grid: [number, number, number] = [Math.ceil(T / 64) + S, nH, 1];
        if (fp8) mod.kernel(`paged_attention_prefill_mma_${tag}_bf16_hd${hd}`, [...preSig, P]).launch(grid, 128, [...args, dScales.ptr]);
        else mod.kernel(`paged_attention_prefill_mma_bf16_hd${hd}`, preSig).launch(grid, 128, args);
      });
    });
  }
}

for (const [algo] of ALGOS) {
  gpuTest(
    `kjv-llama with an ${algo} KV cache on CUDA (bf16): prefill, a 6-token chunk and graph decode steps match the CPU backend's ${algo} KV engine`,
    () => {
      const q = quantizeSync(AutoModelForCausalLM.fromHuggingFace(kjv), { kvCacheQuantAlgo: algo }, { maxCalibrationTokens: 256 });
      const shape = { maxBatchSize: 4, maxNumTokens: 64, maxSeqLen: 128, tokensPerBlock: 16 };
      using engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", ...shape });
      using cpuEngine = buildSync(q, { backend: "cpu", ...shape });
      q.close();
      const cuda = Session.fromSerializedEngine(engine, { backend: "cuda" });
      const cpu = Session.fromSerializedEngine(cpuEngine, { backend: "cpu" });
      try {
        const V = engine.plan.attributes.vocabSize;
        const kvG = cuda.createKvCache(8), kvC = cpu.createKvCache(8);
        assert.equal(
          kvG.bytesPerBlock * 2,
          engine.plan.attributes.numLayers * 2 * 16 * engine.plan.attributes.numKvHeads * engine.plan.attributes.headDim * 2,
          "one byte per element",
        );
        const blocks = [0, 1, 2, 3, 4, 5];
        const prompt = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % V);
        const report: string[] = [];
        const check = (label: string, ids: number[], pos: number): number => {
          const c = new Float32Array(V), sc = new Int32Array(1), g = new Float32Array(V), sg = new Int32Array(1);
          cpu.run(step(ids, pos, blocks), { logits: c, sampledIds: sc }, kvC);
          cuda.run(step(ids, pos, blocks), { logits: g, sampledIds: sg }, kvG);
          const e = relL2(g, c);
          report.push(`${label} rel L2 ${e.toExponential(2)} argmax ${sg[0] === sc[0] ? "same" : "differs"}`);
          // bf16 activations vs float32 (~1e-2 on kjv-llama) plus k / v bytes that bf16 rounding moves across a rounding boundary.
          assert.ok(e < 0.05, `${algo} ${label}: logits rel L2 ${e} vs the CPU's ${algo} KV engine`);
          return sc[0];
        };
        check("prefill 40", prompt, 0);
        let next = check("chunk 6", prompt.slice(0, 6), 40);
        for (let i = 0; i < 4; i++) next = check(`decode ${i}`, [next], 46 + i);
        console.log(`kjv-llama ${algo} KV CUDA vs CPU: ${report.join("; ")}`);
        assert.ok(cuda.cuda!.numGraphs >= 1, "decode steps ran as graphs");
      } finally {
        cuda.dispose();
        cpu.dispose();
      }
    },
    300_000,
  );
}
