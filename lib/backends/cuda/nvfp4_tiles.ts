/**
 * The device layout of NVFP4 weights for kernels/nvfp4_mma.cu (CudaFlags.nvfp4Mma): the engine's public layout
 * (e2m1 codes [N, K/2], element 2j in the low nibble; e4m3 block scales [N, K/16]) rearranged at upload into tiles
 * of 16 rows × 64 columns, so that each lane of a warp loads the int8 mma's A fragment of four blocks with one
 * 16-byte load. The same bytes, only moved: a tile is 512 code bytes (lane l = 4g + t: word b holds row g's columns
 * 16b + 4t + 0..3 in nibbles 0..3 and row g + 8's in nibbles 4..7) and 64 scale bytes (at 8g: row g's scales of
 * blocks 0..3, then row g + 8's). Row tiles in order, each one's k tiles in order.
 *
 * @example
 * ```ts
 * const { codes, scales } = nvfp4Tiles(packed, blockScales, 16, 64); // one tile: 512 + 64 bytes
 * ```
 */
import { InternalError } from "../../util/errors.ts";

/** Whether a [N, K] NVFP4 weight fits the tiles: N a multiple of 16, K of 64. */
export const nvfp4TilesFit = (N: number, K: number): boolean => N % 16 === 0 && K % 64 === 0 && N > 0 && K > 0;

/** Rearranges NVFP4 codes [N, K/2] and block scales [N, K/16] into the tiled device layout (the same byte counts). */
export function nvfp4Tiles(packed: Uint8Array, scales: Uint8Array, N: number, K: number): { codes: Uint8Array; scales: Uint8Array } {
  if (!nvfp4TilesFit(N, K)) throw new InternalError(`nvfp4Tiles: [${N}, ${K}] is not a multiple of [16, 64]`);
  if (packed.byteLength !== (N * K) / 2 || scales.byteLength !== (N * K) / 16) throw new InternalError("nvfp4Tiles: wrong byte counts");
  const KT = K / 64, half = K / 2, nb = K / 16;
  const codes = new Uint8Array((N * K) / 2), st = new Uint8Array((N * K) / 16);
  const nib = (j: number, i: number): number => (packed[j * half + (i >> 1)] >> ((i & 1) * 4)) & 15;
  for (let rt = 0; rt < N / 16; rt++) {
    for (let q = 0; q < KT; q++) {
      const tile = rt * KT + q;
      for (let lane = 0; lane < 32; lane++) {
        const g = lane >> 2, t = lane & 3;
        for (let b = 0; b < 4; b++) {
          const col = 64 * q + 16 * b + 4 * t, o = tile * 512 + lane * 16 + b * 4;
          for (let e = 0; e < 4; e += 2) {
            codes[o + e / 2] = nib(16 * rt + g, col + e) | (nib(16 * rt + g, col + e + 1) << 4);
            codes[o + 2 + e / 2] = nib(16 * rt + g + 8, col + e) | (nib(16 * rt + g + 8, col + e + 1) << 4);
          }
        }
      }
      for (let g = 0; g < 8; g++) {
        for (let b = 0; b < 4; b++) {
          st[tile * 64 + g * 8 + b] = scales[(16 * rt + g) * nb + 4 * q + b];
          st[tile * 64 + g * 8 + 4 + b] = scales[(16 * rt + g + 8) * nb + 4 * q + b];
        }
      }
    }
  }
  return { codes, scales: st };
}
