/**
 * Deterministic inputs of the quantized-GEMV bench (bench/quant_gemv_tune.ts): pseudo-random
 * bytes, bf16 activations, device copies of a random int4 / int8 weight with its scales (and zero points), and the bf16
 * helpers their checks compare with.
 *
 * @example
 * ```ts
 * using w = quantWeights(dev, 4096, 4096, 4, 128, true, 1, true);
 * kernelArgs.push(...w.args(0)); // weight, scales, zero points of copy 0
 * ```
 */
import type { CudaDevice } from "../lib/cuda/device.ts";

/** n pseudo-random bytes (an LCG's top bytes) from `seed`. */
export function rnd(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    b[i] = s >>> 24;
  }
  return b;
}

/** bf16 bits of small random values (|x| < 1). */
export function xBits(n: number, seed: number): Uint16Array {
  const r = rnd(2 * n, seed), h = new Uint16Array(n);
  for (let i = 0; i < n; i++) h[i] = 0x3c00 | (r[2 * i] & 0x7f) | ((r[2 * i + 1] & 1) << 15) | ((r[2 * i + 1] & 6) << 6);
  return h;
}

/** The value of bf16 bits h. */
export const bf16Value = (h: number): number => new Float32Array(new Uint32Array([h << 16]).buffer)[0];

/** The spacing of bf16 values at h's magnitude. */
export const bf16Ulp = (h: number): number => Math.abs(bf16Value((h & 0x7f80) === 0 ? 0x0080 : (h & 0x7f80)) * 2 ** -7);

/** A quantized weight's device copies: `bytes` one copy reads, `args(i)` copy i's [weight, scales, zero points] pointers. */
export interface QuantWeights {
  readonly bytes: number;
  args(i: number): bigint[];
  [Symbol.dispose](): void;
}

/**
 * Device copies of an [N, K] int4 / int8 weight with group scales (f32) and optional zero points (u8): `copies`
 * instances, so none stays in the 50 MB L2; random bytes, or constant ones (timing only) when `random` is false.
 */
export function quantWeights(
  d: CudaDevice,
  N: number,
  K: number,
  bits: 4 | 8,
  group: number,
  zp: boolean,
  copies: number,
  random: boolean,
): QuantWeights {
  const ng = K / group, rowBytes = (K * bits) / 8;
  const W = d.alloc(copies * N * rowBytes), s = d.alloc(copies * N * ng * 4), z = zp ? d.alloc(copies * N * ng) : null;
  if (random) {
    W.copyFromHost(rnd(copies * N * rowBytes, 1));
    const sc = new Float32Array(copies * N * ng);
    for (let i = 0; i < sc.length; i++) sc[i] = 0.001 + (i % 7) * 0.0003;
    s.copyFromHost(sc);
    if (z) z.copyFromHost(Uint8Array.from(rnd(copies * N * ng, 2), (v) => v % (1 << bits)));
  } else {
    W.fill(0x5a);
    s.fill(0x3c); // 0x3c3c3c3c = 0.0115f
    z?.fill(3);
  }
  return {
    bytes: N * rowBytes + N * ng * 4 + (zp ? N * ng : 0),
    args: (i: number): bigint[] => [W.ptr + BigInt(i * N * rowBytes), s.ptr + BigInt(i * N * ng * 4), z ? z.ptr + BigInt(i * N * ng) : 0n],
    [Symbol.dispose]() {
      W.dispose();
      s.dispose();
      z?.dispose();
    },
  };
}
