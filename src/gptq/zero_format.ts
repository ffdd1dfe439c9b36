// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Conversion between the v1 ("gptq", stores `zero − 1`) and v2 ("gptq_v2",
 * stores `zero`) zero-point conventions of `qzeros`, and detection of which
 * one a checkpoint really uses (reference §1.4).
 *
 * The converters reproduce GPTQModel (`convert_gptq_v1_to_v2_format_module`
 * and its inverse) bit for bit: at 2, 4 and 8 bits they add (subtract) the
 * packed-word constant `0x55555555`, `0x11111111` or `0x01010101` to every
 * int32 word, with int32 wrap-around, so an overflowing field carries
 * (borrows) into its neighbour, exactly as torch's in-place `+=` does. At 3 bits,
 * where fields straddle words, a word-wise add is wrong; GPTQModel (HEAD)
 * therefore unpacks the fields, adds ±1 modulo 8 and repacks, and so do we.
 * `mode: "fieldwise"` applies that field-wise rule at every width (no
 * carries). Both modes agree whenever no field overflows: v1 fields below
 * `2^b − 1` going up, v2 fields above 0 going down.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { type Bits, isBits } from "./pack.ts";

/** Options of the v1/v2 converters. */
export interface ConvertZerosOptions {
  /**
   * `"gptqmodel"` (default): bit-exact with GPTQModel (packed-word constant at
   * 2/4/8 bits, field-wise at 3 bits). `"fieldwise"`: ±1 modulo `2^b` per field
   * at every width.
   */
  mode?: "gptqmodel" | "fieldwise";
}

/** The result of {@linkcode detectZeroFormat}. */
export interface ZeroFormatGuess {
  /** The convention the stored zeros are consistent with, or `"unknown"`. */
  format: "gptq" | "gptq_v2" | "unknown";
  /** Why, in one sentence (counts and means included). */
  reason: string;
}

const WORD_CONSTANT: Record<number, number> = {
  2: 0x55555555,
  4: 0x11111111,
  8: 0x01010101,
};

function check(qzeros: Int32Array, G: number, N: number, bits: number): number {
  if (!isBits(bits)) {
    throw new GptqError("GPTQ_FORMAT", `bits must be 2, 3, 4 or 8, got ${bits}`);
  }
  if (N % 32 !== 0) {
    throw new GptqError("SHAPE", `qzeros: out_features ${N} is not a multiple of 32`);
  }
  const words = (N / 32) * bits;
  if (qzeros.length !== G * words) {
    throw new GptqError(
      "SHAPE",
      `qzeros has ${qzeros.length} elements, expected G*N*bits/32 = ${G}*${N}*${bits}/32 = ${
        G * words
      }`,
      { tensor: "qzeros" },
    );
  }
  return words;
}

/** Adds `delta` (±1) to every field modulo 2^b, in place, word groups of `bits` words. */
function shiftFields(q: Int32Array, bits: number, delta: number): void {
  const mask = (1 << bits) - 1;
  // Every `bits` words hold exactly 32 fields, none straddling a group boundary.
  const fields = new Uint8Array(32);
  for (let base = 0; base + bits <= q.length; base += bits) {
    for (let j = 0; j < 32; j++) {
      const bit = bits * j;
      const w = base + (bit >>> 5);
      const s = bit & 31;
      let v = q[w]! >>> s;
      if (s + bits > 32) v |= q[w + 1]! << (32 - s);
      fields[j] = ((v & mask) + delta) & mask;
    }
    for (let w = 0; w < bits; w++) q[base + w] = 0;
    for (let j = 0; j < 32; j++) {
      const bit = bits * j;
      const w = base + (bit >>> 5);
      const s = bit & 31;
      const v = fields[j]!;
      q[w]! |= v << s;
      if (s + bits > 32) q[w + 1]! |= v >>> (32 - s);
    }
  }
}

function convert(
  qzeros: Int32Array,
  G: number,
  N: number,
  bits: Bits,
  delta: 1 | -1,
  opts: ConvertZerosOptions,
): Int32Array {
  check(qzeros, G, N, bits);
  const out = qzeros.slice();
  if (bits === 3 || opts.mode === "fieldwise") {
    shiftFields(out, bits, delta);
  } else {
    const c = WORD_CONSTANT[bits]! * delta;
    for (let i = 0; i < out.length; i++) out[i] = (out[i]! + c) | 0;
  }
  return out;
}

/**
 * Converts v1 (`"gptq"`) `qzeros` to v2 (`"gptq_v2"`): every stored zero
 * gains 1, as GPTQModel does when it loads a v1 checkpoint.
 *
 * @example
 * ```ts
 * import { convertV1ToV2 } from "./zero_format.ts";
 * const v2 = convertV1ToV2(new Int32Array(4).fill(0x77777777), 1, 32, 4); // sym 4-bit, N=32
 * console.log((v2[0]! >>> 0).toString(16)); // "88888888"
 * ```
 *
 * @param qzeros `[G, N·bits/32]` in v1.
 * @param G Number of groups.
 * @param N Output features; a multiple of 32.
 * @param bits The bit width.
 * @param opts `mode`: `"gptqmodel"` (default, bit-exact) or `"fieldwise"`.
 * @returns A new array in v2.
 */
export function convertV1ToV2(
  qzeros: Int32Array,
  G: number,
  N: number,
  bits: Bits,
  opts: ConvertZerosOptions = {},
): Int32Array {
  return convert(qzeros, G, N, bits, 1, opts);
}

/**
 * Converts v2 (`"gptq_v2"`) `qzeros` to v1 (`"gptq"`): every stored zero loses
 * 1, as GPTQModel does when it saves with `format="gptq"`. A v2 zero of 0 has
 * no v1 form: in `"gptqmodel"` mode at 2/4/8 bits it borrows from the next
 * field (GPTQModel's ~13 % "overflow" of asymmetric checkpoints); field-wise
 * it wraps to `2^b − 1`. Use {@linkcode hasV1Overflow} first to refuse such
 * data.
 *
 * @example
 * ```ts
 * import { convertV2ToV1 } from "./zero_format.ts";
 * const v1 = convertV2ToV1(new Int32Array(4).fill(0x88888888 | 0), 1, 32, 4);
 * console.log((v1[0]! >>> 0).toString(16)); // "77777777"
 * ```
 *
 * @param qzeros `[G, N·bits/32]` in v2.
 * @param G Number of groups.
 * @param N Output features; a multiple of 32.
 * @param bits The bit width.
 * @param opts `mode`: `"gptqmodel"` (default, bit-exact) or `"fieldwise"`.
 * @returns A new array in v1.
 */
export function convertV2ToV1(
  qzeros: Int32Array,
  G: number,
  N: number,
  bits: Bits,
  opts: ConvertZerosOptions = {},
): Int32Array {
  return convert(qzeros, G, N, bits, -1, opts);
}

/**
 * Whether v2 `qzeros` hold a zero point of 0, which v1 cannot represent.
 *
 * @example
 * ```ts
 * import { hasV1Overflow } from "./zero_format.ts";
 * console.log(hasV1Overflow(new Int32Array(4).fill(0x88888888 | 0), 4)); // false
 * console.log(hasV1Overflow(new Int32Array([0x88888880 | 0, 0, 0, 0]), 4)); // true
 * ```
 *
 * @param qzeros Packed v2 zeros (any whole number of rows).
 * @param bits The bit width.
 * @returns `true` when some field is 0.
 */
export function hasV1Overflow(qzeros: Int32Array, bits: Bits): boolean {
  const fields = unpackFields(qzeros, bits);
  return fields.includes(0);
}

/** Unpacks every whole field of a flat run of packed words. */
function unpackFields(words: Int32Array, bits: number): Uint8Array {
  const count = Math.floor((words.length * 32) / bits);
  const mask = (1 << bits) - 1;
  const out = new Uint8Array(count);
  for (let k = 0; k < count; k++) {
    const bit = bits * k;
    const w = bit >>> 5;
    const s = bit & 31;
    let v = words[w]! >>> s;
    if (s + bits > 32 && w + 1 < words.length) v |= words[w + 1]! << (32 - s);
    out[k] = v & mask;
  }
  return out;
}

/**
 * Guesses whether stored `qzeros` follow v1 (`zero − 1`) or v2 (`zero`).
 *
 * Rules (and their limits):
 * 1. Symmetric quantization always has zero `2^(b−1)`: v1 stores
 *    `2^(b−1) − 1` in every field (`0x77777777` at 4 bits), v2 stores
 *    `2^(b−1)` (`0x88888888`). When every field holds one of these constants
 *    the answer is certain, whatever `sym` says.
 * 2. With `sym: true` and any other content, the checkpoint contradicts its
 *    config: `"unknown"`.
 * 3. Asymmetric zeros `round(−min/scale)` lie in `0..2^b−1` in both
 *    conventions, so no single value proves either (v1 stores `2^b−1` only
 *    when a zero of 0 overflowed; v2 stores 0 or `2^b−1` only for one-signed
 *    groups; both are rare). The distribution does tell: for weights roughly
 *    symmetric around 0 the true zeros average `(2^b−1)/2`, so v1 fields
 *    average one less. When the mean's standard error is at most 0.2 (and
 *    there are at least 64 fields), a mean within `0.35 + 2·SE` of
 *    `(2^b−1)/2 − 1` says v1 and of `(2^b−1)/2` says v2; anything else is
 *    `"unknown"`. 8-bit zeros spread widely, so they need thousands of
 *    fields (a few layers) before the rule decides. This fails for layers whose weights are strongly
 *    skewed, and it cannot see a single corrupted field.
 *
 * @example
 * ```ts
 * import { detectZeroFormat } from "./zero_format.ts";
 * const r = detectZeroFormat([new Int32Array(16).fill(0x77777777)], 4, true);
 * console.log(r.format); // "gptq"
 * ```
 *
 * @param qzeroSamples Some `qzeros` tensors (or whole rows of them) from the checkpoint.
 * @param bits The bit width.
 * @param sym The config's `sym`, if known.
 * @returns The guess and its reason.
 */
export function detectZeroFormat(
  qzeroSamples: Int32Array[],
  bits: Bits,
  sym: boolean | undefined,
): ZeroFormatGuess {
  if (!isBits(bits)) {
    throw new GptqError("GPTQ_FORMAT", `bits must be 2, 3, 4 or 8, got ${bits}`);
  }
  const maxq = (1 << bits) - 1;
  const half = 1 << (bits - 1);
  const hist = new Float64Array(maxq + 1);
  let total = 0;
  for (const s of qzeroSamples) {
    // A row of qzeros holds a whole number of `bits`-word groups, so a flat run decodes cleanly.
    const usable = s.length - (s.length % bits);
    const fields = unpackFields(s.subarray(0, usable), bits);
    for (let i = 0; i < fields.length; i++) hist[fields[i]!]!++;
    total += fields.length;
  }
  if (total === 0) return { format: "unknown", reason: "no zero points to inspect" };
  if (hist[half - 1] === total) {
    return {
      format: "gptq",
      reason: `all ${total} stored zeros are ${half - 1} = 2^(b-1)-1, the v1 symmetric constant`,
    };
  }
  if (hist[half] === total) {
    return {
      format: "gptq_v2",
      reason: `all ${total} stored zeros are ${half} = 2^(b-1), the v2 symmetric constant`,
    };
  }
  let sum = 0;
  for (let v = 0; v <= maxq; v++) sum += v * hist[v]!;
  const mean = sum / total;
  let ss = 0;
  for (let v = 0; v <= maxq; v++) ss += hist[v]! * (v - mean) ** 2;
  const se = Math.sqrt(ss / total / total); // standard error of the mean
  const stats = `mean stored zero ${mean.toFixed(3)} ± ${se.toFixed(3)} over ${total} fields; ` +
    `${hist[0]} at 0, ${hist[maxq]} at ${maxq}`;
  if (sym === true) {
    return {
      format: "unknown",
      reason:
        `config says sym=true but the stored zeros are not constant (${stats}); the config or the weights are wrong`,
    };
  }
  if (total < 64 || se > 0.2) {
    return {
      format: "unknown",
      reason: `too few asymmetric zeros to tell a shift of 1 apart (${stats})`,
    };
  }
  const c2 = maxq / 2;
  const c1 = c2 - 1;
  const tol = 0.35 + 2 * se;
  if (Math.abs(mean - c1) <= tol) {
    return {
      format: "gptq",
      reason: `asymmetric zeros centred on ${c1} = (2^b-1)/2 - 1, as v1 stores them (${stats})`,
    };
  }
  if (Math.abs(mean - c2) <= tol) {
    return {
      format: "gptq_v2",
      reason: `asymmetric zeros centred on ${c2} = (2^b-1)/2, as v2 stores them (${stats})`,
    };
  }
  return { format: "unknown", reason: `asymmetric zeros fit neither convention (${stats})` };
}
