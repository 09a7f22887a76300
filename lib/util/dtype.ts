/**
 * Element types as safetensors names them, their sizes, and fast host-side conversions between
 * the float formats (bf16/f16/f8 ↔ f32). All typed-array views assume a little-endian host (every
 * platform we run on); safetensors data is little-endian.
 */
import { ValidationError } from "./errors.ts";

/** An element type, spelled as in safetensors headers. F8_E4M3 is the "fn" variant (no infinities). */
export type DType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL"
  | "F8_E4M3"
  | "F8_E5M2";

const BYTE_SIZES: Readonly<Record<DType, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
});

/** Every supported dtype name. */
export const DTYPES: readonly DType[] = Object.freeze(Object.keys(BYTE_SIZES) as DType[]);

/**
 * True when `s` is one of the dtype names above.
 *
 * @example
 * ```ts
 * isDType("BF16"); // true
 * isDType("bfloat16"); // false
 * ```
 */
export function isDType(s: unknown): s is DType {
  return typeof s === "string" && Object.hasOwn(BYTE_SIZES, s);
}

/**
 * Bytes per element of `d`.
 *
 * @example
 * ```ts
 * dtypeByteSize("BF16"); // 2
 * ```
 */
export function dtypeByteSize(d: DType): number {
  const n = BYTE_SIZES[d];
  if (n === undefined) throw new ValidationError(`dtype: unknown dtype ${JSON.stringify(d)} (known: ${DTYPES.join(", ")})`, "dtype", d);
  return n;
}

function checkDst(dst: { length: number } | undefined, n: number, what: string): void {
  if (dst && dst.length < n) throw new ValidationError(`${what}: dst has ${dst.length} elements, need ${n}`, "dst", dst.length);
}

/**
 * bf16 bit patterns → f32 (exact: bf16 is the top half of an f32).
 *
 * @example
 * ```ts
 * bf16ToF32(new Uint16Array([0x3f80, 0xc020])); // Float32Array [1, -2.5]
 * ```
 */
export function bf16ToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const n = src.length;
  checkDst(dst, n, "bf16ToF32");
  const out = dst ?? new Float32Array(n);
  const bits = new Uint32Array(out.buffer, out.byteOffset, n);
  for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
  return out;
}

let f16Table: Float32Array | null = null;

/** All 65536 f16 values as f32, built once (256 KiB): a table lookup beats bit twiddling per element. */
function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  const bits = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) {
      bits[h] = sign | 0x7f800000 | (mant << 13); // inf or NaN (payload kept)
    } else if (exp !== 0) {
      bits[h] = sign | ((exp + 112) << 23) | (mant << 13);
    } else {
      t[h] = (mant * 2 ** -24) * (sign ? -1 : 1); // zero or subnormal, exact in f32
    }
  }
  f16Table = t;
  return t;
}

/**
 * IEEE f16 bit patterns → f32 (exact).
 *
 * @example
 * ```ts
 * f16ToF32(new Uint16Array([0x3c00, 0x7bff])); // Float32Array [1, 65504]
 * ```
 */
export function f16ToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const n = src.length;
  checkDst(dst, n, "f16ToF32");
  const out = dst ?? new Float32Array(n);
  const t = f16ToF32Table();
  for (let i = 0; i < n; i++) out[i] = t[src[i]];
  return out;
}

/**
 * f32 → bf16 bit patterns, rounding to nearest even; NaN stays NaN (quieted, sign kept).
 *
 * @example
 * ```ts
 * f32ToBf16(new Float32Array([1, -2.5])); // Uint16Array [0x3f80, 0xc020]
 * ```
 */
export function f32ToBf16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const n = src.length;
  checkDst(dst, n, "f32ToBf16");
  const out = dst ?? new Uint16Array(n);
  const bits = new Uint32Array(src.buffer, src.byteOffset, n);
  for (let i = 0; i < n; i++) {
    const x = bits[i];
    if ((x & 0x7fffffff) > 0x7f800000) {
      out[i] = (x >>> 16) | 0x0040;
    } else {
      out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16; // may carry into the exponent: rounds to inf
    }
  }
  return out;
}

/** One f32 bit pattern → f16 bits, round to nearest even, overflow → ±inf, NaN kept. */
function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) r++; // a carry into the exponent is correct (up to inf)
  return sign | r;
}

/**
 * f32 → IEEE f16 bit patterns, rounding to nearest even; overflow gives ±inf, NaN stays NaN.
 *
 * @example
 * ```ts
 * f32ToF16(new Float32Array([1, 65504, 1e6])); // Uint16Array [0x3c00, 0x7bff, 0x7c00]
 * ```
 */
export function f32ToF16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const n = src.length;
  checkDst(dst, n, "f32ToF16");
  const out = dst ?? new Uint16Array(n);
  const bits = new Uint32Array(src.buffer, src.byteOffset, n);
  for (let i = 0; i < n; i++) out[i] = f32BitsToF16(bits[i]);
  return out;
}

let e4m3Table: Float32Array | null = null;
let e5m2Table: Float32Array | null = null;

/** float8 e4m3fn: bias 7, no infinities, S.1111.111 is NaN, max 448. */
function e4m3ToF32Table(): Float32Array {
  if (e4m3Table) return e4m3Table;
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) {
    const s = b & 0x80 ? -1 : 1;
    const exp = (b >>> 3) & 0xf;
    const mant = b & 7;
    if (exp === 0xf && mant === 7) t[b] = NaN;
    else if (exp === 0) t[b] = s * mant * 2 ** -9;
    else t[b] = s * (1 + mant / 8) * 2 ** (exp - 7);
  }
  e4m3Table = t;
  return t;
}

/** float8 e5m2: bias 15, IEEE-style infinities and NaNs. */
function e5m2ToF32Table(): Float32Array {
  if (e5m2Table) return e5m2Table;
  const t = new Float32Array(256);
  const f16 = f16ToF32Table();
  for (let b = 0; b < 256; b++) t[b] = f16[b << 8]; // e5m2 is the top byte of an f16
  e5m2Table = t;
  return t;
}

/** `bytes` as a typed array, copying only when its byte offset is not a multiple of the element size. */
function aligned<T>(bytes: Uint8Array, size: number, make: (buf: ArrayBufferLike, off: number, len: number) => T): T {
  const n = bytes.byteLength / size;
  if (bytes.byteOffset % size === 0) return make(bytes.buffer, bytes.byteOffset, n);
  return make(bytes.slice().buffer, 0, n);
}

/**
 * Raw little-endian tensor bytes of `dtype` → Float32Array. Handles every DType (integers and
 * bools by value, I64 through Number). For F32 at an aligned offset the result is a view of
 * `bytes` (no copy); otherwise it is a fresh array.
 *
 * @example
 * ```ts
 * const bytes = new Uint8Array(new Uint16Array([0x3f80]).buffer);
 * toFloat32(bytes, "BF16"); // Float32Array [1]
 * ```
 */
export function toFloat32(bytes: Uint8Array, dtype: DType): Float32Array {
  const size = dtypeByteSize(dtype);
  if (bytes.byteLength % size !== 0) {
    throw new ValidationError(
      `toFloat32: ${bytes.byteLength} bytes is not a whole number of ${dtype} elements (${size} bytes each)`,
      "bytes",
      bytes.byteLength,
    );
  }
  switch (dtype) {
    case "F32":
      return aligned(bytes, 4, (b, o, n) => new Float32Array(b, o, n));
    case "F64":
      return Float32Array.from(aligned(bytes, 8, (b, o, n) => new Float64Array(b, o, n)));
    case "F16":
      return f16ToF32(aligned(bytes, 2, (b, o, n) => new Uint16Array(b, o, n)));
    case "BF16":
      return bf16ToF32(aligned(bytes, 2, (b, o, n) => new Uint16Array(b, o, n)));
    case "I64": {
      const src = aligned(bytes, 8, (b, o, n) => new BigInt64Array(b, o, n));
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
      return out;
    }
    case "I32":
      return Float32Array.from(aligned(bytes, 4, (b, o, n) => new Int32Array(b, o, n)));
    case "I16":
      return Float32Array.from(aligned(bytes, 2, (b, o, n) => new Int16Array(b, o, n)));
    case "I8":
      return Float32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    case "U8":
      return Float32Array.from(bytes);
    case "BOOL": {
      const out = new Float32Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] ? 1 : 0;
      return out;
    }
    case "F8_E4M3":
    case "F8_E5M2": {
      const t = dtype === "F8_E4M3" ? e4m3ToF32Table() : e5m2ToF32Table();
      const out = new Float32Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) out[i] = t[bytes[i]];
      return out;
    }
  }
}
