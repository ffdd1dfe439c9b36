// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * A bounds-checked little-endian reader over a byte source (a file or bytes in
 * memory) that buffers a window of the source: the GGUF header parser walks
 * megabytes of metadata without reading the tensor data, and every length it
 * reads is checked against what is left of the file before anything is
 * allocated.
 *
 * @module
 */

import { fsError, GptqError } from "../errors.ts";

/** Random access to the bytes of a file or a buffer. */
export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Reads exactly `length` bytes at `offset` (the caller checks the bounds).
   *
   * @param offset Where to start.
   * @param length How many bytes.
   * @returns The bytes.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/**
 * A {@linkcode ByteSource} over bytes in memory.
 *
 * @param bytes The bytes.
 * @returns The source.
 */
export function memorySource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.byteLength,
    read: (offset, length) => Promise.resolve(bytes.subarray(offset, offset + length)),
  };
}

/**
 * A {@linkcode ByteSource} over an open file.
 *
 * @param f The file.
 * @param size Its size.
 * @param path Its path, for messages.
 * @returns The source.
 */
export function fileSource(f: Deno.FsFile, size: number, path: string): ByteSource {
  return {
    size,
    async read(offset, length) {
      const buf = new Uint8Array(length);
      try {
        await f.seek(offset, Deno.SeekMode.Start);
        let got = 0;
        while (got < length) {
          const n = await f.read(buf.subarray(got));
          if (n === null || n === 0) {
            throw new GptqError(
              "GGUF",
              `file ended at byte ${offset + got} while reading ${length} bytes at ${offset}`,
              { file: path, hint: "the file is truncated or was changed while reading" },
            );
          }
          got += n;
        }
      } catch (e) {
        throw fsError(e, path);
      }
      return buf;
    },
  };
}

const WINDOW = 1 << 20;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Sequential reader with bounds checks; `pos` is the absolute offset of the next byte. */
export class Cursor {
  /** Absolute offset of the next byte. */
  pos = 0;
  readonly #src: ByteSource;
  readonly #file: string;
  #buf: Uint8Array = new Uint8Array(0);
  #view = new DataView(this.#buf.buffer);
  #start = 0;

  /**
   * @param src The bytes.
   * @param file The path, for messages.
   */
  constructor(src: ByteSource, file: string) {
    this.#src = src;
    this.#file = file;
  }

  /** Bytes left in the source after `pos`. */
  get remaining(): number {
    return this.#src.size - this.pos;
  }

  /**
   * An error naming the file, for structural problems found while parsing.
   *
   * @param reason What is wrong.
   * @returns The error.
   */
  error(reason: string): GptqError {
    return new GptqError("GGUF", reason, {
      file: this.#file,
      hint: "the file is truncated, corrupt or not a GGUF model; re-download or re-convert it",
    });
  }

  /**
   * Makes sure `n` bytes from `pos` are buffered; returns a promise only when
   * it has to read (so hot loops need not await).
   *
   * @param n Bytes needed.
   * @param what What is being read, for the error message.
   * @returns Nothing, or a promise to await.
   */
  ensure(n: number, what: string): void | Promise<void> {
    if (n > this.remaining) {
      throw this.error(
        `${what} needs ${n} bytes at offset ${this.pos} but the file has ${this.#src.size}`,
      );
    }
    if (this.pos >= this.#start && this.pos + n <= this.#start + this.#buf.byteLength) return;
    return this.#fill(n);
  }

  async #fill(n: number): Promise<void> {
    const len = Math.min(Math.max(n, WINDOW), this.remaining);
    this.#buf = await this.#src.read(this.pos, len);
    this.#view = new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.byteLength);
    this.#start = this.pos;
  }

  #at(n: number): number {
    const o = this.pos - this.#start;
    this.pos += n;
    return o;
  }

  /** @returns The next uint8 (after {@linkcode Cursor.ensure}). */
  u8(): number {
    return this.#buf[this.#at(1)]!;
  }
  /** @returns The next int8. */
  i8(): number {
    return this.#view.getInt8(this.#at(1));
  }
  /** @returns The next uint16. */
  u16(): number {
    return this.#view.getUint16(this.#at(2), true);
  }
  /** @returns The next int16. */
  i16(): number {
    return this.#view.getInt16(this.#at(2), true);
  }
  /** @returns The next uint32. */
  u32(): number {
    return this.#view.getUint32(this.#at(4), true);
  }
  /** @returns The next int32. */
  i32(): number {
    return this.#view.getInt32(this.#at(4), true);
  }
  /** @returns The next float32. */
  f32(): number {
    return this.#view.getFloat32(this.#at(4), true);
  }
  /** @returns The next float64. */
  f64(): number {
    return this.#view.getFloat64(this.#at(8), true);
  }
  /** @returns The next uint64, as a number when it is a safe integer, else a bigint. */
  u64(): number | bigint {
    const v = this.#view.getBigUint64(this.#at(8), true);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  /** @returns The next int64, as a number when it is a safe integer, else a bigint. */
  i64(): number | bigint {
    const v = this.#view.getBigInt64(this.#at(8), true);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(v)
      : v;
  }

  /**
   * Reads a uint64 count or size and checks it is at most `max`.
   *
   * @param max The largest acceptable value.
   * @param what What it counts, for the error message.
   * @returns The value.
   */
  async count(max: number, what: string): Promise<number> {
    const p = this.ensure(8, what);
    if (p) await p;
    const at = this.pos;
    const v = this.u64();
    if (typeof v !== "number" || v > max) {
      throw this.error(`${what} at offset ${at} is ${v}, more than the ${max} the file can hold`);
    }
    return v;
  }

  /**
   * Reads `n` raw bytes (copied out of the window).
   *
   * @param n How many.
   * @param what What they are, for the error message.
   * @returns The bytes.
   */
  async bytes(n: number, what: string): Promise<Uint8Array> {
    const p = this.ensure(n, what);
    if (p) await p;
    const o = this.#at(n);
    return this.#buf.slice(o, o + n);
  }

  /**
   * Reads a GGUF string: a uint64 byte length, then UTF-8.
   *
   * @param what What it is, for error messages.
   * @param maxLen The longest acceptable length (default: what is left of the file).
   * @returns The string.
   */
  async string(what: string, maxLen = Infinity): Promise<string> {
    let p = this.ensure(8, what);
    if (p) await p;
    const at = this.pos;
    const v = this.u64();
    if (typeof v !== "number" || v > this.remaining) {
      throw this.error(
        `${what} at offset ${at} claims ${v} bytes but only ${this.remaining} are left`,
      );
    }
    if (v > maxLen) throw this.error(`${what} at offset ${at} is ${v} bytes, over ${maxLen}`);
    p = this.ensure(v, what);
    if (p) await p;
    const o = this.#at(v);
    try {
      return utf8.decode(this.#buf.subarray(o, o + v));
    } catch {
      throw this.error(`${what} at offset ${at} is not valid UTF-8`);
    }
  }
}

/** GGUF metadata value types. */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/**
 * A metadata value. Arrays of 8/16/32-bit numbers are typed arrays, 64-bit
 * integers are numbers when safe (else bigints), arrays of strings, bools or
 * arrays are plain arrays.
 */
export type GgufValue =
  | number
  | bigint
  | boolean
  | string
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | GgufValue[];

const FIXED: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};
const MAX_NESTING = 8;

async function readScalar(c: Cursor, type: number, what: string): Promise<GgufValue> {
  if (type === GgufType.STRING) return await c.string(what);
  const p = c.ensure(FIXED[type]!, what);
  if (p) await p;
  switch (type) {
    case 0:
      return c.u8();
    case 1:
      return c.i8();
    case 2:
      return c.u16();
    case 3:
      return c.i16();
    case 4:
      return c.u32();
    case 5:
      return c.i32();
    case 6:
      return c.f32();
    case 7: {
      const at = c.pos;
      const b = c.u8();
      if (b > 1) throw c.error(`${what}: bool at offset ${at} is ${b}, not 0 or 1`);
      return b === 1;
    }
    case 10:
      return c.u64();
    case 11:
      return c.i64();
    default:
      return c.f64();
  }
}

const TYPED: Record<number, (b: ArrayBuffer, n: number) => GgufValue> = {
  0: (b) => new Uint8Array(b),
  1: (b) => new Int8Array(b),
  2: (b, n) => new Uint16Array(b, 0, n),
  3: (b, n) => new Int16Array(b, 0, n),
  4: (b, n) => new Uint32Array(b, 0, n),
  5: (b, n) => new Int32Array(b, 0, n),
  6: (b, n) => new Float32Array(b, 0, n),
  12: (b, n) => new Float64Array(b, 0, n),
};

/**
 * Reads one metadata value of `type` (arrays recursively, nesting bounded).
 *
 * @param c The cursor.
 * @param type The value type.
 * @param what What is read, for error messages.
 * @param depth Current array nesting.
 * @returns The value.
 */
export async function readValue(
  c: Cursor,
  type: number,
  what: string,
  depth: number,
): Promise<GgufValue> {
  if (type !== GgufType.ARRAY) {
    if (type !== GgufType.STRING && FIXED[type] === undefined) {
      throw c.error(`${what}: unknown value type ${type}`);
    }
    return await readScalar(c, type, what);
  }
  if (depth >= MAX_NESTING) throw c.error(`${what}: arrays nested deeper than ${MAX_NESTING}`);
  const p = c.ensure(4, what);
  if (p) await p;
  const item = c.u32();
  const size = item === GgufType.STRING ? 8 : item === GgufType.ARRAY ? 12 : FIXED[item];
  if (size === undefined) throw c.error(`${what}: array of unknown value type ${item}`);
  const n = await c.count(Math.floor(c.remaining / size), `${what}: array length`);
  const typed = TYPED[item];
  if (typed) {
    // Little-endian bytes copied into a fresh, aligned buffer (the host is little-endian).
    const bytes = await c.bytes(n * size, what);
    return typed(bytes.buffer as ArrayBuffer, n);
  }
  const out: GgufValue[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = await readValue(c, item, what, depth + 1);
  return out;
}
