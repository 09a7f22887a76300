/**
 * GPU: kernels/nvfp4_mma.cu (CudaFlags.nvfp4Mma; skipped without a GPU). NVFP4 linears on the int8 tensor cores from
 * the tiled device layout (lib/backends/cuda/nvfp4_tiles.ts): the activation quantizer's codes and block scales equal
 * the CPU's (lib/util/e2m1.ts) bit for bit, the prefill dequantizer of the tiled layout writes the public layout's
 * values exactly, and the GEMV (m = 1, 3, 8) matches the CPU's lowbitLinear within one bf16 ulp (the block sums are
 * exact; only the fp32 sum over blocks and the bf16 store round); at m = 1 nvfp4_gemv_k32x (CudaFlags.nvfp4GemvK32) too. Then its time on llama-3.2-1b / llama-3.1-8b decoder
 * shapes against lowbit.cu's GEMV and a device copy measured in the same process (LLMRT_NVFP4_VARIANTS, LLMRT_NVFP4_MODELS
 * pick what is timed; skip it with bun test -t).
 */
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { lowbitLinear } from "../../lib/backends/cpu/lowbit_linear.ts";
import { LOWBIT_FAMILIES } from "../../lib/backends/cuda/lowbit_kernels.ts";
import { kernelSignature } from "../../lib/backends/cuda/kernel_signatures.ts";
import { nvfp4Tiles } from "../../lib/backends/cuda/nvfp4_tiles.ts";
import { E2M1_DECODE, nvfp4QuantizeBlocks } from "../../lib/util/e2m1.ts";
import { E4M3_DECODE } from "../../lib/util/e4m3.ts";
import { assert } from "../harness.ts";
import { expectedDequant, weight } from "../lowbit_ref.ts";
import { copyCeilingGBs, DECODE_LINEARS, graphMsPerLaunch, L2_FLUSH_BYTES } from "./gemv_timing.ts";
import { device, fromBf16Bits, gpuTest, seededUniform, toBf16Bits } from "./gpu.ts";

const bf16 = (f: ArrayLike<number>): Uint16Array => Uint16Array.from(f as ArrayLike<number>, (v) => toBf16Bits(v));
const unBf16 = (b: Uint16Array): Float32Array => Float32Array.from(b, (v) => fromBf16Bits(v));
const sig = (family: string) => LOWBIT_FAMILIES[family].params;
/** LLMRT_NVFP4_OPTS: extra NVRTC options of nvfp4_mma.cu in the correctness tests (e.g. "-DNV_K32X_XPF=2": another build). */
/** A kernel allowed `bytes` of dynamic shared memory (the k32 ring's static shared memory leaves less than 48 KB by default). */
function dyn<T extends { setMaxDynamicSharedMemory(bytes: number): void }>(k: T, bytes: number): T {
  if (bytes > 0) k.setMaxDynamicSharedMemory(bytes);
  return k;
}
const OPTS = { options: (process.env.LLMRT_NVFP4_OPTS ?? "").split(" ").filter((o) => o !== "") };

for (const [N, K] of [[96, 1024], [32, 4160], [48, 8192]] as const) {
  gpuTest(`nvfp4_mma.cu [${N}x${K}]: act codes bit for bit, tiled dequant exact, GEMV m = 1 / 3 / 8 within one bf16 ulp of the CPU`, () => {
    const d = device();
    using mod = loadKernelFile(d, "nvfp4_mma.cu", OPTS);
    const { f, tensors, cpu } = weight("nvfp4", N, K);
    const a = f.activationScale!;
    const tiles = nvfp4Tiles(tensors.get("w")!, tensors.get("w.scales")!, N, K);
    const up = (b: Uint8Array) => {
      const p = d.alloc(b.byteLength);
      p.copyFromHost(b);
      return p;
    };
    using W = up(tiles.codes);
    using S = up(tiles.scales);
    const biasB = bf16(seededUniform(5, N, -0.5, 0.5));
    using B = d.alloc(N * 2);
    B.copyFromHost(biasB);
    using DQ = d.alloc(N * K * 2);
    mod.kernel("nvfp4_dequant_mma_bf16", sig("nvfp4_dequant_mma")).launch(Math.ceil((N * K) / 8 / 256), 256, [W, S, DQ, N, K, 0]);
    const dq = new Uint16Array(N * K);
    DQ.copyToHost(dq);
    const wantDq = expectedDequant("nvfp4", tensors, N, K, 16);
    let bad = 0;
    for (let i = 0; i < N * K; i++) if (fromBf16Bits(dq[i]) !== wantDq[i]) bad++;
    assert.equal(bad, 0, `${bad} dequantized weights differ`);
    for (const m of [1, 3, 8]) {
      const x = seededUniform(7 + m, m * K, -3, 3);
      for (let r = 0; r < m; r++) x[r * K + 5] = 40;
      for (let i = 0; i < 16; i++) x[K - 16 + i] = 0; // an all-zero block in every row
      const xb = bf16(x), xf = unBf16(xb);
      using dx = d.alloc(m * K * 2);
      using xq = d.alloc(2 * m * K);
      using sx = d.alloc(m * (K / 16) * 4);
      using dy = d.alloc(m * N * 2);
      dx.copyFromHost(xb);
      mod.kernel("nvfp4_act_mma_bf16", sig("nvfp4_act_mma")).launch([Math.ceil(K / 1024), m, 1], 256, [dx, xq, sx, m, K, a]);
      const q = new Int8Array(2 * m * K), s = new Float32Array(m * (K / 16));
      xq.copyToHost(new Uint8Array(q.buffer));
      sx.copyToHost(s);
      let diff = 0;
      const codes = new Uint8Array(K), sb = new Uint8Array(K / 16);
      for (let r = 0; r < m; r++) {
        nvfp4QuantizeBlocks(xf, r * K, K, a, codes, 0, sb, 0);
        for (let i = 0; i < K; i++) {
          const blk = i >> 4, o = r * K + (blk >> 2) * 64 + ((i & 15) >> 2) * 16 + (blk & 3) * 4 + (i & 3);
          const want = 2 * E2M1_DECODE[codes[i]];
          if (q[o] !== want + 0 || q[m * K + o] !== -want + 0) diff++;
        }
        for (let b = 0; b < K / 16; b++) if (s[r * (K / 16) + b] !== E4M3_DECODE[sb[b]]) diff++;
      }
      assert.equal(diff, 0, `nvfp4_act_mma m=${m}: ${diff} codes / scales differ from the CPU's`);
      const M = m === 1 ? 1 : 8;
      const alpha = Math.fround(a * f.globalScale!);
      const ref = new Float32Array(m * N);
      lowbitLinear(xf, cpu, unBf16(biasB), m, N, K, ref);
      // 8 warps a block, and 16 (the launcher's pick for few row tiles); at m = 1 also the k32 kernels (nvfp4GemvK32:
      // nvfp4_gemv_k32x*, m16n8k32 mmas, nvfp4_gemv_mma's bits).
      let mmaOut: Uint16Array | null = null;
      const outs = new Map<string, Uint16Array>();
      for (
        const [kind, w16] of [["mma", false], ["mma", true], ...(m === 1 ? [["k32x", false], ["k32x", true]] : [])] as [
          string,
          boolean,
        ][]
      ) {
        const name = `nvfp4_gemv_${kind}${w16 ? "_w16" : ""}_bf16_m${M}`;
        mod.kernel(name, sig(`nvfp4_gemv_${kind}${w16 ? "_w16" : ""}`)).launch(N / 16, w16 ? 512 : 256, [xq, W, S, sx, B, dy, m, N, K, 0, alpha]);
        const y = new Uint16Array(m * N);
        dy.copyToHost(y);
        let worst = 0;
        for (let i = 0; i < m * N; i++) worst = Math.max(worst, Math.abs(fromBf16Bits(y[i]) - ref[i]) / Math.max(Math.abs(ref[i]), 0.05));
        mmaOut ??= y;
        outs.set(name, y);
        const differ = y.reduce((a, v, i) => a + (v !== mmaOut![i] ? 1 : 0), 0);
        console.log(
          `${name} [${N}x${K}] m=${m}: max rel error vs the CPU ${worst.toExponential(2)}; ${differ}/${m * N} outputs differ from nvfp4_gemv_mma's bits`,
        );
        assert.ok(worst <= 2 ** -7, `${name} m=${m}: max relative error ${worst}`);
        if (kind !== "mma") {
          const mmaBits = outs.get(`nvfp4_gemv_mma${w16 ? "_w16" : ""}_bf16_m1`)!;
          const vsMma = y.reduce((a, v, i) => a + (v !== mmaBits[i] ? 1 : 0), 0);
          assert.equal(vsMma, 0, `${name}: ${vsMma} outputs differ from nvfp4_gemv_mma${w16 ? "_w16" : ""}'s bits (the block terms' order)`);
        }
      }
      if (m === 1) {
        // nvfp4_gemv_k32x_act*: the act quantization inside the GEMV (shared memory) — the bits of act + the k32x kernel of
        // as many warps; _logits: the 8-warp sums as fp32 (their bf16 rounding equal).
        using dl = d.alloc(N * 4);
        for (const v of ["", "_w16", "_logits"]) {
          const name = `nvfp4_gemv_k32x_act${v}_bf16_m1`;
          const out = v === "_logits" ? dl : dy;
          out.fill(0xff);
          dyn(mod.kernel(name, sig(`nvfp4_gemv_k32x_act${v}`)), 2 * K + K / 4).launch(N / 16, v === "_w16" ? 512 : 256, [dx, W, S, B, out, N, K, a, alpha], {
            sharedMemBytes: 2 * K + K / 4,
          });
          let got: Uint16Array;
          if (v === "_logits") {
            const f = new Float32Array(N);
            dl.copyToHost(f);
            got = bf16(f);
          } else {
            got = new Uint16Array(N);
            dy.copyToHost(got);
          }
          const k32Out = outs.get(`nvfp4_gemv_k32x${v === "_w16" ? "_w16" : ""}_bf16_m1`)!;
          const differ = got.reduce((acc, x, i) => acc + (x !== k32Out[i] ? 1 : 0), 0);
          console.log(`${name} [${N}x${K}]: ${differ}/${N} outputs differ from nvfp4_act_mma + nvfp4_gemv_k32x's`);
          assert.equal(differ, 0, `${name}: ${differ} outputs differ`);
        }
      }
    }
  });
}

gpuTest("nvfp4_gemv_mma: a persistent grid (blocks looping over row tiles, loads running on into the next one) gives the same bits", () => {
  const d = device();
  using mod = loadKernelFile(d, "nvfp4_mma.cu", OPTS);
  // 13 row tiles; K 4096: k tiles a multiple of 8 · NV_U; K 1024 (k32x only): 2 k tiles a warp, fewer than a
  // NV_K32X_RING ring holds (its refills run several row tiles ahead).
  for (const K of [4096, 1024]) persistentGrids(d, mod, 208, K);
});

function persistentGrids(d: ReturnType<typeof device>, mod: ReturnType<typeof loadKernelFile>, N: number, K: number): void {
  const { f, tensors } = weight("nvfp4", N, K);
  const tiles = nvfp4Tiles(tensors.get("w")!, tensors.get("w.scales")!, N, K);
  using W = d.alloc(tiles.codes.byteLength);
  W.copyFromHost(tiles.codes);
  using S = d.alloc(tiles.scales.byteLength);
  S.copyFromHost(tiles.scales);
  for (const m of [1, 5]) {
    using dx = d.alloc(m * K * 2);
    dx.copyFromHost(bf16(seededUniform(3 + m, m * K, -3, 3)));
    using xq = d.alloc(2 * m * K);
    using sx = d.alloc(m * (K / 16) * 4);
    mod.kernel("nvfp4_act_mma_bf16", sig("nvfp4_act_mma")).launch([Math.ceil(K / 1024), m, 1], 256, [dx, xq, sx, m, K, f.activationScale!]);
    let mmaOut: Uint16Array | undefined;
    for (const kind of (m === 1 ? ["mma", "k32x"] : ["mma"]).filter((k) => k !== "mma" || K % 2048 === 0)) {
      const kern = mod.kernel(`nvfp4_gemv_${kind}_bf16_m${m === 1 ? 1 : 8}`, sig(`nvfp4_gemv_${kind}`));
      const out = [N / 16, 5, 3, 1].map((grid) => {
        using dy = d.alloc(m * N * 2);
        kern.launch(grid, 256, [xq, W, S, sx, 0n, dy, m, N, K, 0, 0.5]);
        const y = new Uint16Array(m * N);
        dy.copyToHost(y);
        return y;
      });
      for (let g = 1; g < out.length; g++) assert.deepEqual(Array.from(out[g]), Array.from(out[0]), `${kind} m=${m} K=${K}: grid variant ${g} differs`);
      // k32x: nvfp4_gemv_mma's bits (the block terms added in its order).
      if (kind === "k32x" && mmaOut) assert.deepEqual(Array.from(out[0]), Array.from(mmaOut), `k32x m=${m} K=${K}: differs from mma`);
      if (kind === "mma") mmaOut = out[0];
    }
  }
}

gpuTest("nvfp4_rmsnorm_act / nvfp4_silu_mul_act write the bytes rmsnorm_bf16 / add_rmsnorm_bf16 / silu_mul_bf16 + nvfp4_act_mma write", () => {
  const d = device();
  using mod = loadKernelFile(d, "nvfp4_mma.cu", OPTS);
  using rms = loadKernelFile(d, "rmsnorm.cu");
  using silu = loadKernelFile(d, "silu_mul.cu");
  const act = mod.kernel("nvfp4_act_mma_bf16", sig("nvfp4_act_mma"));
  const H = 2048, I = 8192, a = 0.013;
  const up = (v: Float32Array) => {
    const p = d.alloc(v.length * 2);
    p.copyFromHost(bf16(v));
    return p;
  };
  const bytes = (p: { copyToHost(b: Uint8Array): void }, n: number) => {
    const b = new Uint8Array(n);
    p.copyToHost(b);
    return b;
  };
  const differ = (x: Uint8Array, y: Uint8Array) => x.reduce((n, v, i) => n + (v !== y[i] ? 1 : 0), 0);
  for (const m of [1, 3, 8]) {
    using x = up(seededUniform(21 + m, m * H, -2, 2));
    using w = up(seededUniform(31, H, 0.5, 1.5));
    const res0 = seededUniform(41 + m, m * H, -4, 4);
    using r1 = up(res0);
    using r2 = up(res0);
    using out = d.alloc(m * H * 2);
    using q1 = d.alloc(2 * m * I);
    using q2 = d.alloc(2 * m * I);
    using s1 = d.alloc(m * (I / 16) * 4);
    using s2 = d.alloc(m * (I / 16) * 4);
    for (const add of [0, 1]) {
      if (add) rms.kernel("add_rmsnorm_bf16", kernelSignature("add_rmsnorm_bf16").params).launch(m, 256, [x, r1, w, out, m, H, 1e-5]);
      else rms.kernel("rmsnorm_bf16", kernelSignature("rmsnorm_bf16").params).launch(m, 256, [x, w, out, m, H, 1e-5]);
      act.launch([Math.ceil(H / 1024), m, 1], 256, [out, q1, s1, m, H, a]);
      mod.kernel("nvfp4_rmsnorm_act_bf16", sig("nvfp4_rmsnorm_act")).launch(m, 256, [x, add ? r2 : 0n, w, q2, s2, m, H, 1e-5, a, add]);
      const n = differ(bytes(q1, 2 * m * H), bytes(q2, 2 * m * H)) + differ(bytes(s1, m * (H / 16) * 4), bytes(s2, m * (H / 16) * 4));
      const nr = add ? differ(bytes(r1, m * H * 2), bytes(r2, m * H * 2)) : 0;
      assert.equal(n + nr, 0, `nvfp4_rmsnorm_act add ${add} m=${m}: ${n} code / scale bytes, ${nr} residual bytes differ`);
      // nvfp4NormFast: nvfp4_rmsnorm_act_fast_bf16 (1024 threads) = nvfp4_rmsnorm_act_bf16's bytes.
      using r3 = up(res0);
      if (add) {
        // r2 holds the sum now: start r3 from it too, so both run the same add from the same residual.
        r2.copyFromHost(bf16(res0));
        mod.kernel("nvfp4_rmsnorm_act_bf16", sig("nvfp4_rmsnorm_act")).launch(m, 256, [x, r2, w, q2, s2, m, H, 1e-5, a, add]);
      }
      using q3 = d.alloc(2 * m * H);
      using s3 = d.alloc(m * (H / 16) * 4);
      mod.kernel("nvfp4_rmsnorm_act_fast_bf16", sig("nvfp4_rmsnorm_act_fast")).launch(m, 1024, [x, add ? r3 : 0n, w, q3, s3, m, H, 1e-5, a, add]);
      const nf = differ(bytes(q2, 2 * m * H), bytes(q3, 2 * m * H)) + differ(bytes(s2, m * (H / 16) * 4), bytes(s3, m * (H / 16) * 4)) +
        (add ? differ(bytes(r2, m * H * 2), bytes(r3, m * H * 2)) : 0);
      assert.equal(nf, 0, `nvfp4_rmsnorm_act_fast add ${add} m=${m}: ${nf} bytes differ from nvfp4_rmsnorm_act's`);
    }
    using gu = up(seededUniform(51 + m, m * 2 * I, -4, 4));
    using so = d.alloc(m * I * 2);
    silu.kernel("silu_mul_bf16", kernelSignature("silu_mul_bf16").params).launch([Math.ceil(I / 2048), m, 1], 256, [gu, so, m, I]);
    act.launch([Math.ceil(I / 1024), m, 1], 256, [so, q1, s1, m, I, a]);
    mod.kernel("nvfp4_silu_mul_act_bf16", sig("nvfp4_silu_mul_act")).launch([Math.ceil(I / 1024), m, 1], 256, [gu, q2, s2, m, I, a]);
    const n = differ(bytes(q1, 2 * m * I), bytes(q2, 2 * m * I)) + differ(bytes(s1, m * (I / 16) * 4), bytes(s2, m * (I / 16) * 4));
    assert.equal(n, 0, `nvfp4_silu_mul_act m=${m}: ${n} bytes differ`);
  }
});

gpuTest("nvfp4_gemv_mma m1 vs lowbit_gemv_nvfp4 m1 (each + its act launch) on 1B / 8B shapes vs the device copy", () => {
  const d = device();
  using old = loadKernelFile(d, "lowbit.cu");
  // Variants "U[pB][nL][zZ][w]": NV_U = U loads in flight; pB: a persistent grid of B blocks per SM where the shape allows
  // it ((k / 64) % (warps · U) == 0; else one block per row tile); nL: NV_LDNC = L, zZ: NV_ZC = Z (defaults 1); w: the
  // 16-warp kernel (_w16); k: nvfp4_gemv_k32x (nvfp4GemvK32) instead of nvfp4_gemv_mma; bB: NV_MINB = NV_K32_MINB = B
  // (__launch_bounds__ minimum blocks per SM: a register cap; default 1); with k: rD: a cp.async ring of D tiles a warp
  // (NV_K32X_RING, default 6), xX: activation words loaded NV_K32X_XPF = X items ahead (default 1), uV: NV_K32X_UNROLL = V,
  // sR: 576-byte slots (NV_K32X_SLIM) in a ring of R, c: the contiguous-run timing probe (NV_K32X_CONTIG: wrong sums).
  const variants = (process.env.LLMRT_NVFP4_VARIANTS ?? "4").split(",");
  const vspec = variants.map((v) => {
    const m = /^(\d+)(?:p(\d+))?(?:n(\d))?(?:z(\d))?(w)?(k)?(?:b(\d))?(?:r(\d+))?(?:x(\d))?(?:u(\d))?(?:s(\d+))?(c)?$/.exec(v);
    if (!m) throw new Error(`LLMRT_NVFP4_VARIANTS: bad variant ${v}`);
    // (B sets both kernels' macros: NV_MINB of nvfp4_gemv_mma, NV_K32_MINB of nvfp4_gemv_k32x.)
    const ring = m[11] ?? m[8];
    const key = `-DNV_U=${m[1]} -DNV_LDNC=${m[3] ?? 1} -DNV_ZC=${m[4] ?? 1} -DNV_MINB=${m[7] ?? 1} -DNV_K32_MINB=${m[7] ?? 1} -DNV_K32X_XPF=${
      m[9] ?? 1
    } -DNV_K32X_UNROLL=${m[10] ?? 1}${ring ? ` -DNV_K32X_RING=${ring}` : ""}${m[11] ? " -DNV_K32X_SLIM=1" : ""}${m[12] ? " -DNV_K32X_CONTIG=1" : ""}`;
    return { u: Number(m[1]), perSm: Number(m[2] ?? 0), key, nw: m[5] ? 16 : 8, k32: m[6] ? "k32x" : "" };
  });
  const uniq = [...new Set(vspec.map((v) => v.key))];
  const mods = uniq.map((key) => loadKernelFile(d, "nvfp4_mma.cu", { options: key.split(" ") }));
  try {
    const oldK = old.kernel("lowbit_gemv_nvfp4_bf16_m1", sig("lowbit_gemv_nvfp4"));
    const oldA = old.kernel("lowbit_act_nvfp4_bf16", sig("lowbit_act_nvfp4"));
    const newK = vspec.map((v) =>
      mods[uniq.indexOf(v.key)].kernel(
        `nvfp4_gemv_${v.k32 || "mma"}${v.nw === 16 ? "_w16" : ""}_bf16_m1`,
        sig(`nvfp4_gemv_${v.k32 || "mma"}${v.nw === 16 ? "_w16" : ""}`),
      )
    );
    const newA = mods[0].kernel("nvfp4_act_mma_bf16", sig("nvfp4_act_mma"));
    using stream = d.createStream();
    using t0 = d.createEvent();
    using t1 = d.createEvent();
    const ceiling = copyCeilingGBs(d, stream, t0, t1);
    console.log(`device copy ceiling ${ceiling.toFixed(0)} GB/s; variants NV_U ${variants.join(", ")}`);
    // LLMRT_NVFP4_MODELS: only these of DECODE_LINEARS (comma-separated keys; default all).
    const only = process.env.LLMRT_NVFP4_MODELS?.split(",");
    for (const [model, spec] of Object.entries(DECODE_LINEARS).filter(([name]) => !only || only.includes(name))) {
      // Per token: [lowbit_gemv, lowbit act, mma variants…, act_mma] milliseconds.
      const tot = new Array<number>(3 + variants.length).fill(0);
      let bytes = 0;
      for (const [lin, N, K] of spec.linears) {
        const wBytes = (N * K) / 2 + (N * K) / 16;
        const copies = Math.max(1, Math.ceil(L2_FLUSH_BYTES / wBytes)); // distinct weights: none stays in L2
        using W = d.alloc((copies * N * K) / 2);
        using S = d.alloc((copies * N * K) / 16);
        using x = d.alloc(K * 2);
        using xq = d.alloc(2 * K);
        using sx = d.alloc((K / 16) * 4);
        using y = d.alloc(N * 2);
        W.fill(0x2a, { stream });
        S.fill(0x38, { stream });
        x.copyFromHost(bf16(seededUniform(2, K)));
        const time = (launch: (s: typeof stream, i: number) => void, n: number): number => graphMsPerLaunch(stream, t0, t1, launch, n);
        const wOff = (i: number) => W.ptr + BigInt((i * N * K) / 2), sOff = (i: number) => S.ptr + BigInt((i * N * K) / 16);
        const ts = [
          time((s, i) => oldK.launch(Math.ceil(N / 8), 256, [xq, wOff(i), sOff(i), 0n, 0n, y, 1, N, K, 16, 1], { stream: s }), copies),
          time((s) => oldA.launch(1, 256, [x, xq, 1, K, 0.01, 1], { stream: s }), 20),
          ...newK.map((kk, v) => {
            const { u, perSm, nw } = vspec[v];
            const grid = perSm > 0 && (K / 64) % (nw * u) === 0 ? Math.min(N / 16, perSm * d.smCount) : N / 16;
            return time((s, i) => kk.launch(grid, 32 * nw, [xq, wOff(i), sOff(i), sx, 0n, y, 1, N, K, 0, 1], { stream: s }), copies);
          }),
          time((s) => newA.launch([Math.ceil(K / 1024), 1, 1], 256, [x, xq, sx, 1, K, 0.01], { stream: s }), 20),
        ];
        const pct = (ms: number) => ((100 * wBytes) / (ms * 1e6) / ceiling).toFixed(1);
        const us = (ms: number) => (ms * 1e3).toFixed(1);
        console.log(
          `${model} ${lin} [${N}x${K}]: lowbit_gemv ${us(ts[0])} us (${pct(ts[0])}% of copy), act ${us(ts[1])} us; ` +
            variants.map((u, i) => `mma ${u} ${us(ts[2 + i])} us (${pct(ts[2 + i])}%)`).join(", ") + `; act_mma ${us(ts[ts.length - 1])} us`,
        );
        ts.forEach((v, i) => (tot[i] += v * spec.layers));
        bytes += wBytes * spec.layers;
      }
      const pct = (ms: number) => ((100 * bytes) / (ms * 1e6) / ceiling).toFixed(1);
      const act = tot[tot.length - 1];
      console.log(
        `${model} all decoder linears NVFP4 per token: lowbit_gemv ${tot[0].toFixed(3)} ms (${pct(tot[0])}% of copy), with act ${
          (tot[0] + tot[1]).toFixed(3)
        } ms (${pct(tot[0] + tot[1])}%); ` +
          variants.map((u, i) =>
            `mma ${u} ${tot[2 + i].toFixed(3)} ms (${pct(tot[2 + i])}%), with act ${(tot[2 + i] + act).toFixed(3)} ms (${pct(tot[2 + i] + act)}%)`
          )
            .join("; "),
      );
    }
  } finally {
    for (const mo of mods) mo.dispose();
  }
}, 600_000);
