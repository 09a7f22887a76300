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
  const KT = K / 64, nb = K / 16;
  const codes = new Uint8Array((N * K) / 2), st = new Uint8Array((N * K) / 16);
  // Columns 4t..4t+3 of a row are two whole bytes of the public layout (one 16-bit unit): copy units, not nibbles.
  const src = packed.byteOffset % 2 === 0 ? new Uint16Array(packed.buffer, packed.byteOffset, packed.byteLength / 2) : new Uint16Array(packed.slice().buffer);
  const dst = new Uint16Array(codes.buffer), rowUnits = K / 4;
  for (let rt = 0; rt < N / 16; rt++) {
    for (let q = 0; q < KT; q++) {
      const tile = rt * KT + q;
      for (let g = 0; g < 8; g++) {
        const rg = (16 * rt + g) * rowUnits + 16 * q, rh = rg + 8 * rowUnits;
        for (let t = 0; t < 4; t++) {
          // Lane 4g + t, word b: units (row g, block b, slice t) then (row g + 8, ...).
          const o = tile * 256 + (4 * g + t) * 8;
          for (let b = 0; b < 4; b++) {
            dst[o + 2 * b] = src[rg + 4 * b + t];
            dst[o + 2 * b + 1] = src[rh + 4 * b + t];
          }
        }
        for (let b = 0; b < 4; b++) {
          st[tile * 64 + g * 8 + b] = scales[(16 * rt + g) * nb + 4 * q + b];
          st[tile * 64 + g * 8 + 4 + b] = scales[(16 * rt + g + 8) * nb + 4 * q + b];
        }
      }
    }
  }
  return { codes, scales: st };
}
