// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * A safetensors reader that reads tensor by tensor, never the whole file.
 *
 * The header is validated fully before any tensor is read, as strictly as the
 * reference implementation does: length bounds, UTF-8 JSON, known dtypes,
 * `dtype × shape = byte length`, and tensors that tile the data section
 * exactly (no overlap, no gap, no trailing bytes). Every failure is a
 * {@linkcode GptqError} naming the file (and tensor) and the fix.
 *
 * @module
 */

import { fsError, GptqError } from "../errors.ts";
import { type DType, DTYPE_SIZE, isDType, toFloat32 } from "./dtype.ts";
import { type ByteSource, openFile } from "./_files.ts";
import { readSourceExact } from "./_read_exact.ts";

/** Largest header we accept (the reference implementation's limit is 100 MB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Where one tensor lives in a safetensors file. */
export interface TensorInfo {
  /** The tensor's name. */
  name: string;
  /** Its element type. */
  dtype: DType;
  /** Its shape (empty for scalars). */
  shape: number[];
  /** Absolute byte offset of its data in the file. */
  offset: number;
  /** Its size in bytes. */
  byteLength: number;
}

/** A tensor's raw bytes with its dtype and shape. */
export interface RawTensor {
  /** Element type. */
  dtype: DType;
  /** Shape. */
  shape: number[];
  /** Little-endian bytes, `product(shape) * DTYPE_SIZE[dtype]` long. */
  data: Uint8Array;
}

/** The parsed, validated header of a safetensors file. */
export interface SafetensorsHeader {
  /** The `__metadata__` string map (empty when absent). */
  metadata: Record<string, string>;
  /** Tensors in file order. */
  tensors: TensorInfo[];
  /** Byte offset where the data section starts (8 + header length). */
  dataStart: number;
}

function headerError(file: string, reason: string, tensor?: string): GptqError {
  return new GptqError("SAFETENSORS_HEADER", reason, {
    file,
    ...(tensor === undefined ? {} : { tensor }),
    hint: "the file is corrupt or not a safetensors file; re-download or re-export it",
  });
}

/**
 * Reads the 8-byte little-endian header length, rejecting impossible values.
 *
 * @example
 * ```ts
 * import { parseHeaderLength } from "./safetensors.ts";
 * const b = new Uint8Array(8); b[0] = 2;
 * console.log(parseHeaderLength(b, 100, "x.safetensors")); // 2
 * ```
 *
 * @param prefix The first 8 bytes of the file.
 * @param fileSize The file's total size.
 * @param file The file's path, for messages.
 * @returns The header length in bytes.
 */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw new GptqError(
      "SAFETENSORS_TRUNCATED",
      `file is ${fileSize} bytes, too short for a header`,
      {
        file,
        hint: "the file is truncated; re-download it",
      },
    );
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  if (n < 2n) throw headerError(file, `header length ${n} is too small`);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw headerError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (n > BigInt(fileSize - 8)) {
    throw new GptqError(
      "SAFETENSORS_TRUNCATED",
      `header length ${n} runs past the end of the ${fileSize}-byte file`,
      { file, hint: "the file is truncated; re-download it" },
    );
  }
  return Number(n);
}

/**
 * Parses and validates a safetensors JSON header.
 *
 * @example
 * ```ts
 * import { parseHeader } from "./safetensors.ts";
 * const json = new TextEncoder().encode('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}');
 * const h = parseHeader(json, 8 + json.length + 8, "x.safetensors");
 * console.log(h.tensors[0]?.name); // "a"
 * ```
 *
 * @param json The header bytes (without the 8-byte length prefix).
 * @param fileSize The file's total size.
 * @param file The file's path, for messages.
 * @returns The validated header.
 */
export function parseHeader(json: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(json);
  } catch {
    throw headerError(file, "header is not valid UTF-8");
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw headerError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw headerError(file, "header is not a JSON object");
  }
  const dataStart = 8 + json.byteLength;
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, value] of Object.entries(obj as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw headerError(file, "__metadata__ is not an object of strings");
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") throw headerError(file, `__metadata__['${k}'] is not a string`);
        // defineProperty: a "__proto__" key must be stored, not change the prototype.
        Object.defineProperty(metadata, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      continue;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw headerError(file, "entry is not an object", name);
    }
    const { dtype, shape, data_offsets: offs } = value as Record<string, unknown>;
    if (!isDType(dtype)) throw headerError(file, `unknown dtype ${JSON.stringify(dtype)}`, name);
    if (
      !Array.isArray(shape) ||
      !shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
    ) {
      throw headerError(file, `shape ${JSON.stringify(shape)} is not a list of sizes`, name);
    }
    if (
      !Array.isArray(offs) || offs.length !== 2 ||
      !offs.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
    ) {
      throw headerError(file, `data_offsets ${JSON.stringify(offs)} is not [begin, end]`, name);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) {
      throw headerError(file, `data_offsets [${begin}, ${end}] end before begin`, name);
    }
    let numel = 1;
    for (const d of shape as number[]) {
      numel *= d;
      if (!Number.isSafeInteger(numel)) throw headerError(file, "shape is too large", name);
    }
    const expected = numel * DTYPE_SIZE[dtype];
    if (expected !== end - begin) {
      throw headerError(
        file,
        `${dtype}${JSON.stringify(shape)} needs ${expected} bytes but data_offsets span ${
          end - begin
        }`,
        name,
      );
    }
    if (end > dataSize) {
      throw new GptqError(
        "SAFETENSORS_TRUNCATED",
        `data [${begin}, ${end}) runs past the end of the data section (${dataSize} bytes)`,
        { file, tensor: name, hint: "the file is truncated; re-download it" },
      );
    }
    tensors.push({
      name,
      dtype,
      shape: shape as number[],
      offset: dataStart + begin,
      byteLength: end - begin,
    });
  }
  // As the reference implementation requires: tensors tile the data section
  // exactly (no overlap, no gap, nothing after the last one). A header length
  // that is off by a few bytes is caught here instead of shifting every tensor.
  tensors.sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  let pos = dataStart;
  for (let i = 0; i < tensors.length; i++) {
    const cur = tensors[i]!;
    if (cur.offset < pos) {
      throw headerError(file, `data overlaps tensor '${tensors[i - 1]!.name}'`, cur.name);
    }
    if (cur.offset > pos) {
      throw headerError(
        file,
        `${
          cur.offset - pos
        } unused bytes before this tensor's data (data_offsets must be contiguous)`,
        cur.name,
      );
    }
    pos = cur.offset + cur.byteLength;
  }
  if (pos !== fileSize) {
    throw headerError(
      file,
      `the tensors cover ${pos - dataStart} bytes but the data section holds ${dataSize}`,
    );
  }
  return { metadata, tensors, dataStart };
}

/**
 * An open safetensors file. Tensors are read one at a time with positioned
 * reads; only the header is held in memory.
 *
 * @example Reading one tensor
 * ```ts ignore
 * import { SafetensorsFile } from "./safetensors.ts";
 * using f = await SafetensorsFile.open("model.safetensors");
 * console.log(f.names());
 * const w = await f.readFloat32("model.embed_tokens.weight");
 * ```
 */
export class SafetensorsFile implements Disposable {
  /** The file's path. */
  readonly path: string;
  /** The file's size in bytes. */
  readonly size: number;
  /** The `__metadata__` map. */
  readonly metadata: Record<string, string>;
  /** Byte offset of the data section. */
  readonly dataStart: number;
  readonly #tensors: Map<string, TensorInfo>;
  readonly #order: string[];
  #file: ByteSource | null;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(path: string, size: number, header: SafetensorsHeader, file: ByteSource) {
    this.path = path;
    this.size = size;
    this.metadata = header.metadata;
    this.dataStart = header.dataStart;
    this.#tensors = new Map(header.tensors.map((t) => [t.name, t]));
    this.#order = header.tensors.map((t) => t.name);
    this.#file = file;
  }

  /**
   * Opens and validates a file.
   *
   * @param path The file's path.
   * @returns The open file.
   */
  static async open(path: string): Promise<SafetensorsFile> {
    let file: ByteSource;
    let size: number;
    try {
      file = await openFile(path);
      const st = await file.stat();
      if (!st.isFile) {
        file.close();
        throw new GptqError("FILE_NOT_FOUND", "is not a regular file", { file: path });
      }
      size = st.size;
    } catch (e) {
      throw fsError(e, path);
    }
    try {
      const prefix = await readSourceExact(file, 0, Math.min(8, size), path);
      const n = parseHeaderLength(prefix, size, path);
      const json = await readSourceExact(file, 8, n, path);
      const header = parseHeader(json, size, path);
      return new SafetensorsFile(path, size, header, file);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /**
   * Lists the tensors.
   *
   * @returns Tensor names in file order.
   */
  names(): string[] {
    return [...this.#order];
  }

  /**
   * Tells whether a tensor is present.
   *
   * @param name A tensor name.
   * @returns Whether the file holds it.
   */
  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  /**
   * Describes one tensor without reading it.
   *
   * @param name A tensor name.
   * @returns Where it lives; throws when absent.
   */
  info(name: string): TensorInfo {
    const t = this.#tensors.get(name);
    if (!t) {
      throw new GptqError("SAFETENSORS_MISSING_TENSOR", "not found", {
        file: this.path,
        tensor: name,
        hint: "the checkpoint does not match the model's config",
      });
    }
    return t;
  }

  /**
   * Describes every tensor.
   *
   * @returns All tensor infos in file order.
   */
  infos(): TensorInfo[] {
    return this.#order.map((n) => this.#tensors.get(n)!);
  }

  /**
   * Reads one tensor's raw bytes.
   *
   * @param name The tensor's name.
   * @returns Its dtype, shape and bytes.
   */
  async read(name: string): Promise<RawTensor> {
    const t = this.info(name);
    // seek + read on one handle must not interleave: queue concurrent reads.
    const run = this.#queue.then(() =>
      readSourceExact(this.#handle(), t.offset, t.byteLength, this.path, name)
    );
    this.#queue = run.catch(() => {});
    const data = await run;
    return { dtype: t.dtype, shape: [...t.shape], data };
  }

  /**
   * Reads one tensor and converts it to float32.
   *
   * @param name The tensor's name.
   * @returns Its values as float32.
   */
  async readFloat32(name: string): Promise<Float32Array> {
    const t = await this.read(name);
    return toFloat32(t.data, t.dtype);
  }

  /** Closes the file. Safe to call twice. */
  close(): void {
    this.#file?.close();
    this.#file = null;
  }

  /** Closes the file (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #handle(): ByteSource {
    if (!this.#file) throw new GptqError("INVALID_ARGUMENT", "file is closed", { file: this.path });
    return this.#file;
  }
}

/**
 * Reads exactly `length` bytes at `offset`, failing with a typed error when the
 * file is shorter.
 *
 * @param file An open file.
 * @param offset Where to start.
 * @param length How many bytes.
 * @param path The path, for messages.
 * @param tensor The tensor being read, for messages.
 * @returns The bytes.
 */
export async function readExactAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
  path: string,
  tensor?: string,
): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < length) {
    const n = await file.read(buf.subarray(got));
    if (n === null || n === 0) {
      throw new GptqError(
        "SAFETENSORS_TRUNCATED",
        `expected ${length} bytes at offset ${offset}, file ended after ${got}`,
        { file: path, ...(tensor === undefined ? {} : { tensor }), hint: "re-download the file" },
      );
    }
    got += n;
  }
  return buf;
}
