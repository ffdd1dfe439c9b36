// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * ggml tensor types and their dequantization to float32, value for value as
 * `gguf.quants.dequantize` (PyPI `gguf`, llama.cpp's `gguf-py`) computes them.
 *
 * Block layouts (little-endian; `d`, `m`, `dmin` are fp16):
 * - `Q4_0` (32 values, 18 bytes): `d`, 16 bytes of nibbles; `x = (q − 8)·d`. Low nibbles are
 *   values 0..15, high nibbles 16..31 (the same split in every 32-block type below).
 * - `Q4_1` (32, 20): `d`, `m`, nibbles; `x = q·d + m`.
 * - `Q5_0` (32, 22): `d`, uint32 `qh` (bit i = 5th bit of value i), nibbles; `x = (q − 16)·d`.
 * - `Q5_1` (32, 24): `d`, `m`, `qh`, nibbles; `x = q·d + m`.
 * - `Q8_0` (32, 34): `d`, 32 int8; `x = q·d`.
 * - `Q2_K` (256, 84): 16 scale bytes (low nibble scale, high nibble min), 64 bytes of 2-bit
 *   values, `d`, `dmin`; `x = d·sc·q − dmin·m` per 16 values.
 * - `Q3_K` (256, 110): 32 bytes high-bit mask, 64 bytes of 2-bit values, 12 bytes of 6-bit scales
 *   (biased by 32), `d`; `q = low2 − (highbit ? 0 : 4)`, `x = d·sc·q` per 16 values.
 * - `Q4_K` (256, 144): `d`, `dmin`, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles;
 *   `x = d·sc·q − dmin·m` per 32 values.
 * - `Q5_K` (256, 176): as `Q4_K` plus 32 bytes of 5th bits before the nibbles.
 * - `Q6_K` (256, 210): 128 bytes low nibbles, 64 bytes of 2-bit highs, 16 int8 scales, `d`;
 *   `x = d·sc·(q − 32)` per 16 values.
 *
 * Every product of an fp16 scale and a small integer is exact in float32, so each value is
 * rounded once, as in numpy: the results are bit-identical to gguf-py's.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { f16BitsToF32 } from "./dtype.ts";

/** Block size (values) and type size (bytes per block) of one ggml type. */
export interface GgmlTypeInfo {
  /** ggml's name, e.g. `Q4_K`. */
  name: string;
  /** Values per block (1 for plain types). */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
}

/** Every ggml type id a GGUF file may use (`GGML_QUANT_SIZES` in gguf-py's `constants.py`). */
export const GGML_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map(
  ([
    [0, "F32", 1, 4],
    [1, "F16", 1, 2],
    [2, "Q4_0", 32, 18],
    [3, "Q4_1", 32, 20],
    [6, "Q5_0", 32, 22],
    [7, "Q5_1", 32, 24],
    [8, "Q8_0", 32, 34],
    [9, "Q8_1", 32, 40],
    [10, "Q2_K", 256, 84],
    [11, "Q3_K", 256, 110],
    [12, "Q4_K", 256, 144],
    [13, "Q5_K", 256, 176],
    [14, "Q6_K", 256, 210],
    [15, "Q8_K", 256, 292],
    [16, "IQ2_XXS", 256, 66],
    [17, "IQ2_XS", 256, 74],
    [18, "IQ3_XXS", 256, 98],
    [19, "IQ1_S", 256, 50],
    [20, "IQ4_NL", 32, 18],
    [21, "IQ3_S", 256, 110],
    [22, "IQ2_S", 256, 82],
    [23, "IQ4_XS", 256, 136],
    [24, "I8", 1, 1],
    [25, "I16", 1, 2],
    [26, "I32", 1, 4],
    [27, "I64", 1, 8],
    [28, "F64", 1, 8],
    [29, "IQ1_M", 256, 56],
    [30, "BF16", 1, 2],
    [34, "TQ1_0", 256, 54],
    [35, "TQ2_0", 256, 66],
    [39, "MXFP4", 32, 17],
    [40, "NVFP4", 64, 36],
    [41, "Q1_0", 128, 18],
  ] as const).map(([id, name, blockSize, typeSize]) => [id, { name, blockSize, typeSize }]),
);

let f16Table: Float32Array | null = null;

/** All 65536 fp16 bit patterns as float32. */
function f16(): Float32Array {
  if (f16Table) return f16Table;
  f16Table = new Float32Array(65536);
  for (let i = 0; i < 65536; i++) f16Table[i] = f16BitsToF32(i);
  return f16Table;
}

type Dequant = (src: Uint8Array, b: number, out: Float32Array, o: number, h: Float32Array) => void;

const hf = (h: Float32Array, s: Uint8Array, i: number): number => h[s[i]! | (s[i + 1]! << 8)]!;
const u32 = (s: Uint8Array, i: number): number =>
  (s[i]! | (s[i + 1]! << 8) | (s[i + 2]! << 16) | (s[i + 3]! << 24)) >>> 0;
const i8 = (v: number): number => (v << 24) >> 24;

/** Q4_K/Q5_K scale `j` (6 bits) and min `j` from the 12 packed bytes at `p`. */
function scaleMinK(s: Uint8Array, p: number, j: number, min: boolean): number {
  const o = min ? 4 : 0;
  if (j < 4) return s[p + o + j]! & 63;
  const lowHigh = min ? s[p + 8 + j - 4]! >> 4 : s[p + 8 + j - 4]! & 15;
  return lowHigh | ((s[p + o + j - 4]! >> 2) & 0x30);
}

const BLOCK_DEQUANT: ReadonlyMap<number, Dequant> = new Map<number, Dequant>([
  [2, (s, b, out, o, h) => { // Q4_0
    const d = hf(h, s, b);
    for (let j = 0; j < 16; j++) {
      const q = s[b + 2 + j]!;
      out[o + j] = ((q & 15) - 8) * d;
      out[o + j + 16] = ((q >> 4) - 8) * d;
    }
  }],
  [3, (s, b, out, o, h) => { // Q4_1
    const d = hf(h, s, b), m = hf(h, s, b + 2);
    for (let j = 0; j < 16; j++) {
      const q = s[b + 4 + j]!;
      out[o + j] = (q & 15) * d + m;
      out[o + j + 16] = (q >> 4) * d + m;
    }
  }],
  [6, (s, b, out, o, h) => { // Q5_0
    const d = hf(h, s, b), qh = u32(s, b + 2);
    for (let j = 0; j < 16; j++) {
      const q = s[b + 6 + j]!;
      out[o + j] = (((q & 15) | (((qh >>> j) & 1) << 4)) - 16) * d;
      out[o + j + 16] = (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) * d;
    }
  }],
  [7, (s, b, out, o, h) => { // Q5_1
    const d = hf(h, s, b), m = hf(h, s, b + 2), qh = u32(s, b + 4);
    for (let j = 0; j < 16; j++) {
      const q = s[b + 8 + j]!;
      out[o + j] = ((q & 15) | (((qh >>> j) & 1) << 4)) * d + m;
      out[o + j + 16] = ((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) * d + m;
    }
  }],
  [8, (s, b, out, o, h) => { // Q8_0
    const d = hf(h, s, b);
    for (let j = 0; j < 32; j++) out[o + j] = i8(s[b + 2 + j]!) * d;
  }],
  [10, (s, b, out, o, h) => { // Q2_K
    const d = hf(h, s, b + 80), dmin = hf(h, s, b + 82);
    for (let i = 0; i < 256; i++) {
      const sc = s[b + (i >> 4)]!;
      const q = (s[b + 16 + (i >> 7) * 32 + (i & 31)]! >> (2 * ((i >> 5) & 3))) & 3;
      out[o + i] = d * (sc & 15) * q - dmin * (sc >> 4);
    }
  }],
  [11, (s, b, out, o, h) => { // Q3_K
    const d = hf(h, s, b + 108);
    const sc = new Array<number>(16);
    for (let k = 0; k < 16; k++) {
      const low = k < 8 ? s[b + 96 + k]! & 15 : s[b + 96 + k - 8]! >> 4;
      const high = (s[b + 104 + (k & 3)]! >> (2 * (k >> 2))) & 3;
      sc[k] = (low | (high << 4)) - 32;
    }
    for (let i = 0; i < 256; i++) {
      const low = (s[b + 32 + (i >> 7) * 32 + (i & 31)]! >> (2 * ((i >> 5) & 3))) & 3;
      const hbit = (s[b + (i & 31)]! >> (i >> 5)) & 1;
      out[o + i] = d * sc[i >> 4]! * (low - (hbit ? 0 : 4));
    }
  }],
  [12, (s, b, out, o, h) => { // Q4_K
    const d = hf(h, s, b), dmin = hf(h, s, b + 2);
    for (let j = 0; j < 8; j++) {
      const ds = d * scaleMinK(s, b + 4, j, false), dm = dmin * scaleMinK(s, b + 4, j, true);
      const p = b + 16 + (j >> 1) * 32, shift = 4 * (j & 1);
      for (let l = 0; l < 32; l++) out[o + j * 32 + l] = ds * ((s[p + l]! >> shift) & 15) - dm;
    }
  }],
  [13, (s, b, out, o, h) => { // Q5_K
    const d = hf(h, s, b), dmin = hf(h, s, b + 2);
    for (let j = 0; j < 8; j++) {
      const ds = d * scaleMinK(s, b + 4, j, false), dm = dmin * scaleMinK(s, b + 4, j, true);
      const p = b + 48 + (j >> 1) * 32, shift = 4 * (j & 1);
      for (let l = 0; l < 32; l++) {
        const q = ((s[p + l]! >> shift) & 15) | (((s[b + 16 + l]! >> j) & 1) << 4);
        out[o + j * 32 + l] = ds * q - dm;
      }
    }
  }],
  [14, (s, b, out, o, h) => { // Q6_K
    const d = hf(h, s, b + 208);
    for (let i = 0; i < 256; i++) {
      const low = (s[b + (i >> 7) * 64 + (i & 63)]! >> (4 * ((i >> 6) & 1))) & 15;
      const high = (s[b + 128 + (i >> 7) * 32 + (i & 31)]! >> (2 * ((i >> 5) & 3))) & 3;
      out[o + i] = d * i8(s[b + 192 + (i >> 4)]!) * ((low | (high << 4)) - 32);
    }
  }],
]);

/** Names of the types {@linkcode dequantize} handles. */
export const DEQUANT_TYPES: readonly string[] = [
  "F32",
  "F16",
  "BF16",
  ...[...BLOCK_DEQUANT.keys()].map((id) => GGML_TYPES.get(id)!.name),
];

/**
 * Throws the error {@linkcode dequantize} would for a type it cannot handle.
 *
 * @example
 * ```ts
 * import { assertDequantizable } from "./gguf_dequant.ts";
 * assertDequantizable(12, { tensor: "blk.0.ffn_down.weight" }); // Q4_K: fine
 * ```
 *
 * @param type The ggml type id.
 * @param ctx The file and tensor, for the message.
 * @throws {GptqError} `UNSUPPORTED_FORMAT` naming the tensor and its type.
 */
export function assertDequantizable(type: number, ctx: DequantContext = {}): void {
  if (type === 0 || type === 1 || type === 30 || BLOCK_DEQUANT.has(type)) return;
  throw new GptqError(
    "UNSUPPORTED_FORMAT",
    `ggml type ${ggmlTypeName(type)} (id ${type}) cannot be dequantized`,
    {
      file: ctx.file,
      tensor: ctx.tensor,
      hint: `supported: ${DEQUANT_TYPES.join(", ")}; re-quantize the GGUF with llama.cpp ` +
        "(llama-quantize) to one of them, or convert the original Hugging Face model",
    },
  );
}

/** Where a tensor comes from, for error messages. */
export interface DequantContext {
  /** The file. */
  file?: string;
  /** The tensor's name. */
  tensor?: string;
}

/**
 * The name of a ggml type id (`Q4_K`), or `type N` for an unknown id.
 *
 * @example
 * ```ts
 * import { ggmlTypeName } from "./gguf_dequant.ts";
 * console.log(ggmlTypeName(12), ggmlTypeName(99)); // Q4_K type 99
 * ```
 *
 * @param type The type id.
 * @returns Its name.
 */
export function ggmlTypeName(type: number): string {
  return GGML_TYPES.get(type)?.name ?? `type ${type}`;
}

/**
 * Dequantizes `numel` values of ggml type `type` to float32.
 *
 * @example
 * ```ts
 * import { dequantize } from "./gguf_dequant.ts";
 * // one Q8_0 block: d = 0.5 (fp16 0x3800), then 32 int8 values 0..31
 * const block = new Uint8Array(34);
 * block.set([0x00, 0x38]);
 * for (let i = 0; i < 32; i++) block[2 + i] = i;
 * console.log(dequantize(block, 8, 32)[3]); // 1.5
 * ```
 *
 * @param bytes The tensor's raw bytes.
 * @param type The ggml type id.
 * @param numel The number of values (a multiple of the type's block size).
 * @param ctx The file and tensor, for error messages.
 * @returns The values.
 * @throws {GptqError} `UNSUPPORTED_FORMAT` for a type without a dequantizer, `GGUF` when the
 *   byte count does not match.
 */
export function dequantize(
  bytes: Uint8Array,
  type: number,
  numel: number,
  ctx: DequantContext = {},
): Float32Array {
  assertDequantizable(type, ctx);
  const info = GGML_TYPES.get(type)!;
  const where = { file: ctx.file, tensor: ctx.tensor };
  const fn = BLOCK_DEQUANT.get(type);
  const blocks = numel / info.blockSize;
  if (!Number.isInteger(blocks) || blocks * info.typeSize !== bytes.byteLength) {
    throw new GptqError(
      "GGUF",
      `${numel} ${info.name} values need ${Math.ceil(blocks) * info.typeSize} bytes, got ` +
        `${bytes.byteLength}`,
      { ...where, hint: "the file is corrupt; re-download it" },
    );
  }
  const out = new Float32Array(numel);
  if (type === 0) {
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    out.set(new Float32Array(aligned.buffer, aligned.byteOffset, numel));
  } else if (type === 1) {
    const h = f16();
    for (let i = 0; i < numel; i++) out[i] = h[bytes[2 * i]! | (bytes[2 * i + 1]! << 8)]!;
  } else if (type === 30) {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < numel; i++) u[i] = (bytes[2 * i]! << 16) | (bytes[2 * i + 1]! << 24);
  } else {
    const h = f16();
    for (let k = 0; k < blocks; k++) fn!(bytes, k * info.typeSize, out, k * info.blockSize, h);
  }
  return out;
}
