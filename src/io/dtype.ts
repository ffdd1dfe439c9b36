// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Tensor element types as safetensors names them, their sizes, and
 * conversions between fp16/bf16 bit patterns and float32.
 *
 * @module
 */

/** The dtypes that safetensors files use. */
export type DType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL"
  | "F8_E4M3"
  | "F8_E5M2";

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/**
 * Whether a string names a dtype this library knows.
 *
 * @example
 * ```ts
 * import { isDType } from "./dtype.ts";
 * console.log(isDType("BF16"), isDType("Q4_0")); // true false
 * ```
 *
 * @param s The string to test.
 * @returns `true` when `s` is a {@linkcode DType}.
 */
export function isDType(s: unknown): s is DType {
  return typeof s === "string" && Object.hasOwn(DTYPE_SIZE, s);
}

/** Whether the runtime has `Float16Array` (Deno 2.5+), used for fast bulk F16 conversion. */
const HAS_F16_ARRAY = typeof Float16Array === "function";

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/**
 * Converts one IEEE half-precision bit pattern to a number.
 *
 * @example
 * ```ts
 * import { f16BitsToF32 } from "./dtype.ts";
 * console.log(f16BitsToF32(0x3c00)); // 1
 * ```
 *
 * @param h The 16-bit pattern.
 * @returns The value as a number.
 */
export function f16BitsToF32(h: number): number {
  const s = (h & 0x8000) << 16;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) {
    // zero or subnormal: m * 2^-24
    const v = m * 5.960464477539063e-8;
    return s ? -v : v;
  }
  if (e === 31) {
    u32buf[0] = s | 0x7f800000 | (m << 13);
    return f32buf[0]!;
  }
  u32buf[0] = s | ((e + 112) << 23) | (m << 13);
  return f32buf[0]!;
}

/**
 * Converts a number to the nearest IEEE half-precision bit pattern (round to
 * nearest even, as torch's `.half()` does; overflow gives ±Inf).
 *
 * @example
 * ```ts
 * import { f32ToF16Bits } from "./dtype.ts";
 * console.log(f32ToF16Bits(1).toString(16)); // "3c00"
 * ```
 *
 * @param v The value.
 * @returns The 16-bit pattern.
 */
export function f32ToF16Bits(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = mant & ((1 << shift) - 1);
    let r = mant >>> shift;
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) r++;
  return sign | r;
}

let e4m3: Float32Array | null = null;
let e5m2: Float32Array | null = null;

/** float8_e4m3fn (torch/safetensors "F8_E4M3"): bias 7, no infinities, S.1111.111 is NaN. */
function f8e4m3Table(): Float32Array {
  if (e4m3) return e4m3;
  e4m3 = new Float32Array(256);
  for (let b = 0; b < 256; b++) {
    const e = (b >> 3) & 0xf;
    const m = b & 7;
    let v = e === 0 ? m * 2 ** -9 : (1 + m / 8) * 2 ** (e - 7);
    if (e === 15 && m === 7) v = NaN;
    e4m3[b] = b & 0x80 ? -v : v;
  }
  return e4m3;
}

/** float8_e5m2 ("F8_E5M2"): the top byte of an IEEE half. */
function f8e5m2Table(): Float32Array {
  if (e5m2) return e5m2;
  e5m2 = new Float32Array(256);
  for (let b = 0; b < 256; b++) e5m2[b] = f16BitsToF32(b << 8);
  return e5m2;
}

/**
 * Decodes little-endian tensor bytes of any floating or integer dtype into a
 * new Float32Array.
 *
 * @example
 * ```ts
 * import { toFloat32 } from "./dtype.ts";
 * const bytes = new Uint8Array(new Uint16Array([0x3c00, 0xc000]).buffer);
 * console.log(toFloat32(bytes, "F16")); // Float32Array [1, -2]
 * ```
 *
 * @param bytes The raw bytes.
 * @param dtype Their dtype.
 * @returns The values as float32.
 */
export function toFloat32(bytes: Uint8Array, dtype: DType): Float32Array {
  const n = bytes.byteLength / DTYPE_SIZE[dtype];
  const out = new Float32Array(n);
  const aligned = bytes.byteOffset % DTYPE_SIZE[dtype] === 0 ? bytes : bytes.slice();
  const buf = aligned.buffer;
  const off = aligned.byteOffset;
  switch (dtype) {
    case "F32":
      out.set(new Float32Array(buf, off, n));
      break;
    case "F64":
      out.set(new Float64Array(buf, off, n));
      break;
    case "F16": {
      if (HAS_F16_ARRAY) {
        out.set(new Float16Array(buf, off, n));
        break;
      }
      const src = new Uint16Array(buf, off, n);
      for (let i = 0; i < n; i++) out[i] = f16BitsToF32(src[i]!);
      break;
    }
    case "BF16": {
      const src = new Uint16Array(buf, off, n);
      const dst = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) dst[i] = src[i]! << 16;
      break;
    }
    case "I32":
      out.set(new Int32Array(buf, off, n));
      break;
    case "U32":
      out.set(new Uint32Array(buf, off, n));
      break;
    case "I16":
      out.set(new Int16Array(buf, off, n));
      break;
    case "U16":
      out.set(new Uint16Array(buf, off, n));
      break;
    case "I8":
      out.set(new Int8Array(buf, off, n));
      break;
    case "U8":
    case "BOOL":
      out.set(new Uint8Array(buf, off, n));
      break;
    case "I64": {
      const src = new BigInt64Array(buf, off, n);
      for (let i = 0; i < n; i++) out[i] = Number(src[i]!);
      break;
    }
    case "U64": {
      const src = new BigUint64Array(buf, off, n);
      for (let i = 0; i < n; i++) out[i] = Number(src[i]!);
      break;
    }
    case "F8_E4M3":
    case "F8_E5M2": {
      const lut = dtype === "F8_E4M3" ? f8e4m3Table() : f8e5m2Table();
      const src = new Uint8Array(buf, off, n);
      for (let i = 0; i < n; i++) out[i] = lut[src[i]!]!;
      break;
    }
    default:
      throw new TypeError(`cannot convert ${dtype} to float32`);
  }
  return out;
}

/**
 * Encodes float32 values as little-endian bytes of a floating dtype
 * (F32, F16 or BF16; rounding to nearest even).
 *
 * @example
 * ```ts
 * import { fromFloat32 } from "./dtype.ts";
 * console.log(fromFloat32(new Float32Array([1]), "BF16")); // Uint8Array [128, 63]
 * ```
 *
 * @param values The values.
 * @param dtype The target dtype.
 * @returns The encoded bytes.
 */
export function fromFloat32(values: Float32Array, dtype: "F32" | "F16" | "BF16"): Uint8Array {
  const n = values.length;
  if (dtype === "F32") return new Uint8Array(values.slice().buffer);
  if (dtype === "F16" && HAS_F16_ARRAY) {
    // Native conversion rounds to nearest even, as f32ToF16Bits does.
    const half = new Float16Array(n);
    half.set(values);
    return new Uint8Array(half.buffer);
  }
  const out = new Uint16Array(n);
  if (dtype === "F16") {
    for (let i = 0; i < n; i++) out[i] = f32ToF16Bits(values[i]!);
  } else {
    const src = new Uint32Array(values.buffer, values.byteOffset, n);
    for (let i = 0; i < n; i++) {
      const x = src[i]!;
      if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff)) {
        out[i] = (x >>> 16) | 0x40;
      } else {
        out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
      }
    }
  }
  return new Uint8Array(out.buffer);
}
