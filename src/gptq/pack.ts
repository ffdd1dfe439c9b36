// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * GPTQ bit packing in pure TypeScript: the reference that the WASM and GPU
 * packers are checked against.
 *
 * Layout (reference §1.3): along the packed axis the values form one
 * contiguous little-endian bitstream. Value `k` sits at global bit `b·k`, in
 * word `⌊b·k/32⌋` at shift `b·k mod 32`; at 3 bits a value straddles two words
 * when the shift is above 29. `qweight` `[K·b/32, N]` is packed along K (the
 * input dimension), `qzeros` `[G, N·b/32]` along N (the output dimension).
 *
 * The v1 ("gptq") zero format stores `zero − 1` (reference §1.4). A zero of 0
 * then becomes −1, and AutoGPTQ's numpy packer ORs the all-ones `uint32` into
 * every higher field of the word. {@linkcode packQZeros} refuses that case
 * unless `allowOverflow` is set, in which case it reproduces AutoGPTQ bit for
 * bit.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { f16BitsToF32, f32ToF16Bits } from "../io/dtype.ts";

/** Bit widths that the GPTQ checkpoint format supports. */
export type Bits = 2 | 3 | 4 | 8;

/** The zero-point conventions: v1 ("gptq") stores `zero − 1`, v2 stores `zero`. */
export type ZeroFormat = "gptq" | "gptq_v2";

/** Options of the packers. */
export interface PackOptions {
  /**
   * Reproduce AutoGPTQ's numpy packer for values outside `0..2^b−1` instead of
   * throwing: each value is taken as a `uint32` and ORed in unmasked, so its
   * extra high bits bleed into the neighbouring fields of the word (the
   * straddling part of a 3-bit value is masked, as AutoGPTQ's special cases do).
   * The result is a corrupted checkpoint, exactly as AutoGPTQ writes it.
   */
  allowOverflow?: boolean;
}

/** How to turn a stored v1 ("gptq") zero field back into a zero point. */
export type V1ZeroMode =
  /** `(field & maxq) + 1`, what AutoGPTQ's torch paths and CUDA kernels compute (range 1..2^b). */
  | "autogptq"
  /** `(field + 1) & maxq`, which maps an overflowed all-ones field back to 0 (range 0..2^b−1). */
  | "wrap";

/** Options of {@linkcode unpackQZeros}. */
export interface UnpackZerosOptions {
  /** How to decode v1 zeros; default `"autogptq"`. Ignored for `"gptq_v2"`. */
  v1Zero?: V1ZeroMode;
}

const BITS: readonly number[] = [2, 3, 4, 8];

/**
 * Checks that a number is a supported bit width.
 *
 * @example
 * ```ts
 * import { isBits } from "./pack.ts";
 * console.log(isBits(4), isBits(5)); // true false
 * ```
 *
 * @param b The candidate.
 * @returns Whether `b` is 2, 3, 4 or 8.
 */
export function isBits(b: unknown): b is Bits {
  return typeof b === "number" && BITS.includes(b);
}

function checkBits(bits: number): void {
  if (!isBits(bits)) {
    throw new GptqError("GPTQ_FORMAT", `bits must be 2, 3, 4 or 8, got ${bits}`, {
      hint: "GPTQ checkpoints only support these widths",
    });
  }
}

function checkDims(what: string, rows: number, cols: number, packedAxis: number): void {
  if (!Number.isSafeInteger(rows) || rows < 0 || !Number.isSafeInteger(cols) || cols < 0) {
    throw new GptqError("SHAPE", `${what}: invalid dimensions ${rows}x${cols}`);
  }
  if (packedAxis % 32 !== 0) {
    throw new GptqError(
      "SHAPE",
      `${what}: the packed dimension is ${packedAxis}, which is not a multiple of 32`,
      {
        hint:
          "GPTQ packing needs in_features and out_features to be multiples of 32; keep this layer unquantized",
      },
    );
  }
}

function checkLength(what: string, arr: ArrayLike<number>, expected: number): void {
  if (arr.length !== expected) {
    throw new GptqError("SHAPE", `${what} has ${arr.length} elements, expected ${expected}`);
  }
}

/**
 * Reads field `k` of a little-endian bitstream of `bits`-wide values stored in
 * 32-bit words starting at `base` with stride `stride` (one word per stride).
 * Returns the field masked to `bits` bits.
 */
function readField(
  words: Int32Array,
  base: number,
  stride: number,
  k: number,
  bits: number,
  mask: number,
): number {
  const bit = bits * k;
  const w = bit >>> 5;
  const shift = bit & 31;
  let v = words[base + w * stride]! >>> shift;
  if (shift + bits > 32) v |= words[base + (w + 1) * stride]! << (32 - shift);
  return v & mask;
}

/**
 * Packs integer codes into AutoGPTQ's `qweight`.
 *
 * @example
 * ```ts
 * import { packQWeight, unpackQWeight } from "./pack.ts";
 * const codes = new Uint8Array(32 * 2).fill(7); // K=32, N=2, all 7
 * const qweight = packQWeight(codes, 32, 2, 4);
 * console.log(qweight.length, qweight[0] === 0x77777777); // 8 true
 * console.log(unpackQWeight(qweight, 32, 2, 4)[5]); // 7
 * ```
 *
 * @param codes The codes, `[K, N]` row-major, each in `0..2^bits−1`.
 * @param K Input features (rows of `codes`); a multiple of 32.
 * @param N Output features (columns of `codes`).
 * @param bits The bit width.
 * @param opts `allowOverflow` to reproduce AutoGPTQ on out-of-range codes instead of throwing.
 * @returns `qweight`, `[K·bits/32, N]` row-major.
 */
export function packQWeight(
  codes: Uint8Array | Uint32Array,
  K: number,
  N: number,
  bits: Bits,
  opts: PackOptions = {},
): Int32Array {
  checkBits(bits);
  checkDims("qweight", K, N, K);
  checkLength("codes", codes, K * N);
  const maxq = (1 << bits) - 1;
  if (!opts.allowOverflow) checkRange("code", codes, maxq);
  const out = new Int32Array((K / 32) * bits * N);
  for (let k = 0; k < K; k++) {
    const bit = bits * k;
    const row = (bit >>> 5) * N;
    const shift = bit & 31;
    const src = k * N;
    if (shift + bits <= 32) {
      for (let n = 0; n < N; n++) out[row + n]! |= codes[src + n]! << shift;
    } else {
      // 3-bit straddle: low part unmasked (as numpy's `<<` on uint32), high part masked.
      const hiShift = 32 - shift;
      const hiMask = (1 << (shift + bits - 32)) - 1;
      const next = row + N;
      for (let n = 0; n < N; n++) {
        const v = codes[src + n]!;
        out[row + n]! |= v << shift;
        out[next + n]! |= (v >>> hiShift) & hiMask;
      }
    }
  }
  return out;
}

function checkRange(what: string, values: ArrayLike<number>, maxq: number): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v > maxq) {
      throw new GptqError(
        "GPTQ_FORMAT",
        `${what} ${v} at index ${i} does not fit in ${Math.log2(maxq + 1)} bits (max ${maxq})`,
        { hint: "clamp the codes to 0..2^bits−1 before packing" },
      );
    }
  }
}

/**
 * Unpacks AutoGPTQ's `qweight` into integer codes.
 *
 * @example
 * ```ts
 * import { packQWeight, unpackQWeight } from "./pack.ts";
 * const codes = new Uint8Array(32 * 3).map((_, i) => i % 8);
 * const back = unpackQWeight(packQWeight(codes, 32, 3, 3), 32, 3, 3);
 * console.log(back.every((v, i) => v === codes[i])); // true
 * ```
 *
 * @param qweight `[K·bits/32, N]` row-major.
 * @param K Input features; a multiple of 32.
 * @param N Output features.
 * @param bits The bit width.
 * @returns The codes, `[K, N]` row-major.
 */
export function unpackQWeight(qweight: Int32Array, K: number, N: number, bits: Bits): Uint8Array {
  checkBits(bits);
  checkDims("qweight", K, N, K);
  checkLength("qweight", qweight, (K / 32) * bits * N);
  const maxq = (1 << bits) - 1;
  const out = new Uint8Array(K * N);
  for (let k = 0; k < K; k++) {
    const bit = bits * k;
    const row = (bit >>> 5) * N;
    const shift = bit & 31;
    const dst = k * N;
    if (shift + bits <= 32) {
      for (let n = 0; n < N; n++) out[dst + n] = (qweight[row + n]! >>> shift) & maxq;
    } else {
      const hiShift = 32 - shift;
      const next = row + N;
      for (let n = 0; n < N; n++) {
        out[dst + n] = ((qweight[row + n]! >>> shift) | (qweight[next + n]! << hiShift)) & maxq;
      }
    }
  }
  return out;
}

/**
 * Packs one row of `bits`-wide fields (already in storage form, e.g. `zero−1`
 * as a uint32) into `words` starting at `base`, AutoGPTQ-style (low part
 * unmasked, straddling high part masked).
 */
function packRow(
  fields: ArrayLike<number>,
  src: number,
  count: number,
  bits: number,
  words: Int32Array,
  base: number,
): void {
  for (let j = 0; j < count; j++) {
    const bit = bits * j;
    const w = base + (bit >>> 5);
    const shift = bit & 31;
    const v = fields[src + j]!;
    words[w]! |= v << shift;
    if (shift + bits > 32) {
      words[w + 1]! |= (v >>> (32 - shift)) & ((1 << (shift + bits - 32)) - 1);
    }
  }
}

/**
 * Packs zero points into `qzeros`, in the v1 (`"gptq"`, stores `zero−1`) or v2
 * (`"gptq_v2"`, stores `zero`) convention.
 *
 * In v1 a zero point of 0 cannot be stored: AutoGPTQ writes −1, whose all-ones
 * `uint32` bleeds into every higher field of the word. By default that throws a
 * `GPTQ_FORMAT` error; with `allowOverflow` the output is bit-identical to
 * AutoGPTQ's (corrupted) one.
 *
 * @example
 * ```ts
 * import { packQZeros } from "./pack.ts";
 * const zeros = new Uint8Array(32).fill(8); // sym 4-bit: zero 8
 * console.log(packQZeros(zeros, 1, 32, 4, "gptq")[0] === 0x77777777); // true
 * console.log(packQZeros(zeros, 1, 32, 4, "gptq_v2")[0] === -0x77777778); // 0x88888888 as int32
 * ```
 *
 * @param zeros The true zero points, `[G, N]` row-major, each in `0..2^bits−1`.
 * @param G Number of groups.
 * @param N Output features; a multiple of 32.
 * @param bits The bit width.
 * @param format `"gptq"` (v1) or `"gptq_v2"`.
 * @param opts `allowOverflow` to reproduce AutoGPTQ instead of throwing.
 * @returns `qzeros`, `[G, N·bits/32]` row-major.
 */
export function packQZeros(
  zeros: Uint8Array | Uint32Array,
  G: number,
  N: number,
  bits: Bits,
  format: ZeroFormat,
  opts: PackOptions = {},
): Int32Array {
  checkBits(bits);
  checkDims("qzeros", G, N, N);
  checkLength("zeros", zeros, G * N);
  checkFormat(format);
  const maxq = (1 << bits) - 1;
  if (!opts.allowOverflow) {
    checkRange("zero point", zeros, maxq);
    if (format === "gptq") {
      const i = zeros.indexOf(0);
      if (i >= 0) {
        throw new GptqError(
          "GPTQ_FORMAT",
          `zero point 0 (group ${Math.floor(i / N)}, column ${
            i % N
          }) cannot be stored in the v1 "gptq" format, which stores zero−1`,
          {
            hint:
              'write checkpoint_format "gptq_v2" for asymmetric quantization (or use sym=true); allowOverflow reproduces AutoGPTQ\'s corrupted output',
          },
        );
      }
    }
  }
  const wordsPerRow = (N / 32) * bits;
  const out = new Int32Array(G * wordsPerRow);
  const row = new Uint32Array(N);
  for (let g = 0; g < G; g++) {
    const src = g * N;
    if (format === "gptq") {
      // numpy: float(zero) − 1 → astype(uint32); −1 becomes 0xFFFFFFFF.
      for (let n = 0; n < N; n++) row[n] = (zeros[src + n]! - 1) >>> 0;
      packRow(row, 0, N, bits, out, g * wordsPerRow);
    } else {
      packRow(zeros, src, N, bits, out, g * wordsPerRow);
    }
  }
  return out;
}

function checkFormat(format: string): void {
  if (format !== "gptq" && format !== "gptq_v2") {
    throw new GptqError(
      "GPTQ_FORMAT",
      `zero format must be "gptq" or "gptq_v2", got ${JSON.stringify(format)}`,
    );
  }
}

/**
 * Unpacks the raw stored fields of `qzeros` (no ±1 adjustment).
 *
 * @example
 * ```ts
 * import { unpackQZerosRaw } from "./pack.ts";
 * const q = new Int32Array(4).fill(0x77777777); // G=1, N=32
 * console.log(unpackQZerosRaw(q, 1, 32, 4)[0]); // 7
 * ```
 *
 * @param qzeros `[G, N·bits/32]` row-major.
 * @param G Number of groups.
 * @param N Output features; a multiple of 32.
 * @param bits The bit width.
 * @returns The stored fields, `[G, N]` row-major.
 */
export function unpackQZerosRaw(qzeros: Int32Array, G: number, N: number, bits: Bits): Uint8Array {
  checkBits(bits);
  checkDims("qzeros", G, N, N);
  const wordsPerRow = (N / 32) * bits;
  checkLength("qzeros", qzeros, G * wordsPerRow);
  const maxq = (1 << bits) - 1;
  const out = new Uint8Array(G * N);
  for (let g = 0; g < G; g++) {
    const base = g * wordsPerRow;
    const dst = g * N;
    for (let n = 0; n < N; n++) out[dst + n] = readField(qzeros, base, 1, n, bits, maxq);
  }
  return out;
}

/**
 * Unpacks `qzeros` into true zero points.
 *
 * - `"gptq_v2"`: the stored field (a `Uint8Array`, `0..2^b−1`).
 * - `"gptq"` (v1): `(field & maxq) + 1`, exactly what AutoGPTQ's torch paths
 *   and kernels compute (an `Int16Array`, `1..2^b`; a zero of `2^b` means the
 *   field overflowed when packed). With `v1Zero: "wrap"`, `(field + 1) & maxq`.
 *
 * @example
 * ```ts
 * import { unpackQZeros } from "./pack.ts";
 * const q = new Int32Array(4).fill(0x77777777); // G=1, N=32
 * console.log(unpackQZeros(q, 1, 32, 4, "gptq")[0]); // 8
 * console.log(unpackQZeros(q, 1, 32, 4, "gptq_v2")[0]); // 7
 * ```
 *
 * @param qzeros `[G, N·bits/32]` row-major.
 * @param G Number of groups.
 * @param N Output features; a multiple of 32.
 * @param bits The bit width.
 * @param format `"gptq"` (v1) or `"gptq_v2"`.
 * @param opts How to decode v1 zeros.
 * @returns The zero points, `[G, N]` row-major.
 */
export function unpackQZeros(
  qzeros: Int32Array,
  G: number,
  N: number,
  bits: Bits,
  format: ZeroFormat,
  opts: UnpackZerosOptions = {},
): Uint8Array | Int16Array {
  checkFormat(format);
  const raw = unpackQZerosRaw(qzeros, G, N, bits);
  if (format === "gptq_v2") return raw;
  const maxq = (1 << bits) - 1;
  const out = new Int16Array(raw.length);
  if (opts.v1Zero === "wrap") {
    for (let i = 0; i < raw.length; i++) out[i] = (raw[i]! + 1) & maxq;
  } else {
    for (let i = 0; i < raw.length; i++) out[i] = raw[i]! + 1;
  }
  return out;
}

/**
 * Rounds half to even, like `torch.round` and `numpy.round`.
 *
 * @example
 * ```ts
 * import { roundHalfEven } from "./pack.ts";
 * console.log(roundHalfEven(2.5), roundHalfEven(-1.5), roundHalfEven(0.7)); // 2 -2 1
 * ```
 *
 * @param x A number.
 * @returns The nearest integer, ties to even.
 */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // ties toward +∞
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/**
 * Computes AutoGPTQ `QuantLinear.pack`'s `intweight` exactly, as signed
 * integers that are not clamped (AutoGPTQ does not clamp either).
 *
 * Per element, with `g = gIdx[k]`: `W` is `Q` cast to fp16, `sz = zero·scale`
 * in fp32 (the fp32 scale), `s16` the scale cast to fp16, and
 * `round_half_even(fp32(fp32(W + sz) / s16))`.
 *
 * @example
 * ```ts
 * import { computeCodesRaw } from "./pack.ts";
 * const Q = new Float32Array([-0.5, 0.25]); // N=1, K=2
 * const codes = computeCodesRaw(Q, new Float32Array([0.25]), new Float32Array([8]), new Int32Array([0, 0]), 1, 2);
 * console.log([...codes]); // [6, 9]
 * ```
 *
 * @param Q The fake-quantized weight, `[N, K]` row-major (f32; cast to fp16 here).
 * @param scale Scales, `[N, G]` row-major (f32).
 * @param zero Zero points, `[N, G]` row-major (f32 integers).
 * @param gIdx The group of each input row, `[K]`.
 * @param N Output features.
 * @param K Input features.
 * @returns `intweight`, `[K, N]` row-major.
 */
export function computeCodesRaw(
  Q: Float32Array,
  scale: Float32Array,
  zero: Float32Array,
  gIdx: Int32Array,
  N: number,
  K: number,
): Int32Array {
  checkLength("Q", Q, N * K);
  checkLength("gIdx", gIdx, K);
  const G = N === 0 ? 0 : scale.length / N;
  if (!Number.isInteger(G)) {
    throw new GptqError("SHAPE", `scale has ${scale.length} elements, not a multiple of N = ${N}`);
  }
  checkLength("zero", zero, N * G);
  for (let k = 0; k < K; k++) {
    const g = gIdx[k]!;
    if (g < 0 || g >= G) {
      throw new GptqError("GPTQ_FORMAT", `g_idx[${k}] = ${g} is outside 0..${G - 1}`, {
        tensor: "g_idx",
      });
    }
  }
  // Per-(n,g) constants: fp32 zero·scale and fp16 scale.
  const sz = new Float32Array(N * G);
  const s16 = new Float32Array(N * G);
  for (let i = 0; i < N * G; i++) {
    sz[i] = Math.fround(zero[i]! * scale[i]!);
    s16[i] = f16BitsToF32(f32ToF16Bits(scale[i]!));
  }
  const out = new Int32Array(K * N);
  for (let n = 0; n < N; n++) {
    const qrow = n * K;
    const prow = n * G;
    for (let k = 0; k < K; k++) {
      const w = f16BitsToF32(f32ToF16Bits(Q[qrow + k]!));
      const p = prow + gIdx[k]!;
      out[k * N + n] = roundHalfEven(Math.fround(Math.fround(w + sz[p]!) / s16[p]!));
    }
  }
  return out;
}

/**
 * Computes the integer codes that AutoGPTQ `QuantLinear.pack` would pack
 * (see {@linkcode computeCodesRaw}), checking that each fits in `bits` bits.
 *
 * @example
 * ```ts
 * import { computeCodes, gIdxForGroups } from "./pack.ts";
 * const Q = new Float32Array([-0.5, 0.25]); // N=1, K=2
 * const codes = computeCodes(Q, new Float32Array([0.25]), new Float32Array([8]), gIdxForGroups(2, -1), 1, 2, 4);
 * console.log([...codes]); // [6, 9]
 * ```
 *
 * @param Q The fake-quantized weight, `[N, K]` row-major.
 * @param scale Scales, `[N, G]` row-major.
 * @param zero Zero points, `[N, G]` row-major.
 * @param gIdx The group of each input row, `[K]`.
 * @param N Output features.
 * @param K Input features.
 * @param bits The bit width.
 * @returns The codes, `[K, N]` row-major.
 */
export function computeCodes(
  Q: Float32Array,
  scale: Float32Array,
  zero: Float32Array,
  gIdx: Int32Array,
  N: number,
  K: number,
  bits: Bits,
): Uint8Array {
  checkBits(bits);
  const raw = computeCodesRaw(Q, scale, zero, gIdx, N, K);
  const maxq = (1 << bits) - 1;
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i]!;
    if (v < 0 || v > maxq) {
      const k = Math.floor(i / N);
      throw new GptqError(
        "GPTQ_FORMAT",
        `code ${v} for weight [${i % N}, ${k}] is outside 0..${maxq}`,
        {
          hint:
            "Q is not on the quantization grid of scale/zero (was it quantized with these parameters?)",
        },
      );
    }
    out[i] = v;
  }
  return out;
}

/**
 * The trivial group index `g_idx[k] = ⌊k / groupSize⌋` (all zeros when
 * `groupSize` is −1).
 *
 * @example
 * ```ts
 * import { gIdxForGroups } from "./pack.ts";
 * console.log([...gIdxForGroups(6, 2)]); // [0, 0, 1, 1, 2, 2]
 * ```
 *
 * @param K Input features.
 * @param groupSize The group size, or −1 for one group.
 * @returns `g_idx`, `[K]`.
 */
export function gIdxForGroups(K: number, groupSize: number): Int32Array {
  if (groupSize !== -1 && !(Number.isSafeInteger(groupSize) && groupSize > 0)) {
    throw new GptqError("INVALID_ARGUMENT", `group size must be -1 or positive, got ${groupSize}`);
  }
  const g = groupSize === -1 ? Math.max(K, 1) : groupSize;
  const out = new Int32Array(K);
  for (let k = 0; k < K; k++) out[k] = Math.floor(k / g);
  return out;
}

/**
 * Transposes f32 scales `[N, G]` (the solver's layout) into fp16 bits
 * `[G, N]` (the checkpoint's `scales`), rounding to nearest even.
 *
 * @example
 * ```ts
 * import { scalesToF16 } from "./pack.ts";
 * const s = scalesToF16(new Float32Array([1, 2]), 2, 1); // N=2, G=1
 * console.log([...s].map((x) => x.toString(16))); // ["3c00", "4000"]
 * ```
 *
 * @param scale Scales, `[N, G]` row-major.
 * @param N Output features.
 * @param G Number of groups.
 * @returns fp16 bit patterns, `[G, N]` row-major.
 */
export function scalesToF16(scale: Float32Array, N: number, G: number): Uint16Array {
  checkLength("scale", scale, N * G);
  const out = new Uint16Array(G * N);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < G; g++) out[g * N + n] = f32ToF16Bits(scale[n * G + g]!);
  }
  return out;
}
