/**
 * CPU reference kernel of the weight-only linear: packed int4/int8 weights with per-group scales
 * (and optional zero points) are dequantized inside the dot product — no float copy of the weight
 * matrix ever exists. Layout (llmrt's packed format, lib/quantization/packed.ts):
 *   packed [N, K·bits/8] uint8 (int4: element 2j low nibble, 2j+1 high nibble of byte j)
 *   scales [N, K/G] float32, zeros [N, K/G] uint8 or null (symmetric: 2^(bits−1))
 *   w[n, k] = (q[n, k] − z[n, k/G]) · s[n, k/G]
 */

/** A quantized weight as the CPU backend holds it. */
export interface CpuQuantWeight {
  readonly bits: 4 | 8;
  readonly groupSize: number;
  readonly packed: Uint8Array;
  readonly scales: Float32Array;
  readonly zeros: Uint8Array | null;
}

/** out[m, n] = Σ_k x[m, k] · w[n, k] + bias[n]  — x [M, K], w quantized [N, K], out [M, N]. */
export function quantLinear(x: Float32Array, w: CpuQuantWeight, bias: Float32Array | null, M: number, N: number, K: number, out: Float32Array): void {
  const G = w.groupSize, ng = K / G, bits = w.bits;
  const rowBytes = (K * bits) / 8, groupBytes = (G * bits) / 8;
  const defaultZero = 1 << (bits - 1);
  const groupSum = new Float64Array(ng); // Σ_k∈g x[m, k]: the zero-point term per group
  for (let m = 0; m < M; m++) {
    const xo = m * K, oo = m * N;
    for (let g = 0; g < ng; g++) {
      let s = 0;
      for (let k = g * G; k < (g + 1) * G; k++) s += x[xo + k];
      groupSum[g] = s;
    }
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let g = 0; g < ng; g++) {
        const pb = n * rowBytes + g * groupBytes, xk = xo + g * G;
        let dot = 0;
        if (bits === 4) {
          for (let j = 0; j < groupBytes; j++) {
            const b = w.packed[pb + j];
            dot += x[xk + 2 * j] * (b & 15) + x[xk + 2 * j + 1] * (b >> 4);
          }
        } else {
          for (let j = 0; j < groupBytes; j++) dot += x[xk + j] * w.packed[pb + j];
        }
        const z = w.zeros ? w.zeros[n * ng + g] : defaultZero;
        acc += w.scales[n * ng + g] * (dot - z * groupSum[g]);
      }
      out[oo + n] = bias ? acc + bias[n] : acc;
    }
  }
}
