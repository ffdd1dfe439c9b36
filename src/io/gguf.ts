// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Reads GGUF files (llama.cpp / ggml's single-file model format, versions 2
 * and 3, little-endian), as ggml's `docs/gguf.md` specifies:
 *
 * - header: magic `GGUF`, uint32 version, uint64 tensor count, uint64 metadata count;
 * - metadata: key (string), uint32 value type, value; strings are a uint64
 *   byte length and UTF-8; arrays a uint32 item type, a uint64 count and the
 *   items (arrays may nest);
 * - tensor infos: name, uint32 dims, uint64 dims (fastest-varying first),
 *   uint32 ggml type, uint64 offset from the data section;
 * - the data section, at the next multiple of `general.alignment` (default 32).
 *
 * Nothing is trusted: every count and length is checked against what is left
 * of the file before it is used, so a truncated or hostile file fails with a
 * one-line {@linkcode GptqError} in time and memory bounded by its size.
 * Tensors are read one at a time ({@linkcode GgufReader.readTensor}).
 *
 * @module
 */

import { fsError, GptqError } from "../errors.ts";
import {
  type ByteSource,
  Cursor,
  fileSource,
  GgufType,
  type GgufValue,
  memorySource,
  readValue,
} from "./_gguf_cursor.ts";
import { dequantize, GGML_TYPES } from "./gguf_dequant.ts";

export { type ByteSource, GgufType, type GgufValue, memorySource };

/** `GGUF` as a little-endian uint32. */
export const GGUF_MAGIC = 0x46554747;

/** One tensor's entry in the tensor table. */
export interface GgufTensorInfo {
  /** Its GGUF name, e.g. `blk.0.attn_q.weight`. */
  name: string;
  /** ggml dimensions, fastest-varying first (`ne[0]` is the row length). */
  ne: number[];
  /** Row-major shape (`ne` reversed), as torch and safetensors write it. */
  shape: number[];
  /** ggml type id. */
  type: number;
  /** ggml type name (`Q4_K`). */
  typeName: string;
  /** Number of values. */
  numel: number;
  /** Offset from the start of the file. */
  fileOffset: number;
  /** Size in bytes. */
  byteLength: number;
}

/** A parsed GGUF header. */
export interface GgufHeader {
  /** The file's path. */
  file: string;
  /** Format version (2 or 3). */
  version: number;
  /** File size in bytes. */
  fileSize: number;
  /** Metadata values by key, in file order. */
  metadata: Map<string, GgufValue>;
  /** Declared metadata types by key: the value type, and for arrays the item type. */
  types: Map<string, { type: number; itemType?: number }>;
  /** Tensors, in file order. */
  tensors: GgufTensorInfo[];
  /** `general.alignment` (32 when absent). */
  alignment: number;
  /** Offset of the data section. */
  dataOffset: number;
}

const MAX_KEY = 65535;
const MAX_TENSOR_NAME = 64;
const MAX_DIMS = 4;

/**
 * Parses a GGUF header from a byte source: metadata and tensor table, without
 * reading tensor data.
 *
 * @example
 * ```ts
 * import { memorySource, parseGgufHeader } from "./gguf.ts";
 * const b = new Uint8Array(24);
 * const v = new DataView(b.buffer);
 * v.setUint32(0, 0x46554747, true); // "GGUF"
 * v.setUint32(4, 3, true); // version 3, no tensors, no metadata
 * const h = await parseGgufHeader(memorySource(b), "empty.gguf");
 * console.log(h.version, h.tensors.length, h.dataOffset); // 3 0 32
 * ```
 *
 * @param src The bytes.
 * @param file The path, for messages.
 * @returns The header.
 */
export async function parseGgufHeader(src: ByteSource, file: string): Promise<GgufHeader> {
  const c = new Cursor(src, file);
  if (src.size < 24) throw c.error(`file is ${src.size} bytes, too short for a GGUF header`);
  await c.ensure(24, "header");
  const magic = c.u32();
  if (magic !== GGUF_MAGIC) {
    throw new GptqError("GGUF", "is not a GGUF file (it does not start with 'GGUF')", {
      file,
      hint: "pass a .gguf model file (llama.cpp format)",
    });
  }
  const version = c.u32();
  if (version !== 2 && version !== 3) {
    throw new GptqError(
      "GGUF",
      version === 0x02000000 || version === 0x03000000
        ? "is a big-endian GGUF file, which is not supported"
        : `GGUF version ${version} is not supported (only versions 2 and 3)`,
      { file, hint: "re-convert the model with a current llama.cpp (convert_hf_to_gguf.py)" },
    );
  }
  const tensorCount = await c.count(Math.floor(c.remaining / 24), "tensor count");
  const kvCount = await c.count(Math.floor(c.remaining / 13), "metadata count");

  const metadata = new Map<string, GgufValue>();
  const types = new Map<string, { type: number; itemType?: number }>();
  for (let i = 0; i < kvCount; i++) {
    const key = await c.string(`metadata key #${i}`, MAX_KEY);
    if (metadata.has(key)) throw c.error(`metadata key '${key}' appears twice`);
    const p = c.ensure(4, `metadata '${key}'`);
    if (p) await p;
    const type = c.u32();
    const at = c.pos;
    const value = await readValue(c, type, `metadata '${key}'`, 0);
    metadata.set(key, value);
    const item = type === GgufType.ARRAY ? { itemType: await peekItemType(src, at) } : {};
    types.set(key, { type, ...item });
  }

  let alignment = 32;
  if (metadata.has("general.alignment")) {
    const a = metadata.get("general.alignment");
    if (
      types.get("general.alignment")!.type !== GgufType.UINT32 || typeof a !== "number" ||
      a === 0 || (a & (a - 1)) !== 0
    ) {
      throw c.error(`general.alignment is ${String(a)}, not a uint32 power of two`);
    }
    alignment = a;
  }

  const infos: Omit<GgufTensorInfo, "fileOffset">[] = [];
  const offsets: number[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = await c.string(`tensor name #${i}`, MAX_TENSOR_NAME);
    if (names.has(name)) throw c.error(`tensor '${name}' appears twice`);
    names.add(name);
    let p = c.ensure(4, `tensor '${name}'`);
    if (p) await p;
    const nDims = c.u32();
    if (nDims > MAX_DIMS) {
      throw c.error(`tensor '${name}' has ${nDims} dimensions (max ${MAX_DIMS})`);
    }
    const ne: number[] = [];
    let numel = 1;
    for (let d = 0; d < nDims; d++) {
      const n = await c.count(Number.MAX_SAFE_INTEGER, `tensor '${name}' dimension ${d}`);
      if (n === 0) throw c.error(`tensor '${name}' has a zero dimension`);
      numel *= n;
      if (!Number.isSafeInteger(numel)) throw c.error(`tensor '${name}' has absurd dimensions`);
      ne.push(n);
    }
    p = c.ensure(12, `tensor '${name}'`);
    if (p) await p;
    const type = c.u32();
    const offset = c.u64();
    const t = GGML_TYPES.get(type);
    if (!t) {
      throw new GptqError("UNSUPPORTED_FORMAT", `unknown ggml tensor type id ${type}`, {
        file,
        tensor: name,
        hint: "the file is corrupt or from a newer llama.cpp than this importer knows",
      });
    }
    if ((ne[0] ?? 1) % t.blockSize !== 0) {
      throw c.error(`tensor '${name}': row of ${ne[0]} is not a multiple of ${t.name} blocks`);
    }
    const byteLength = numel / t.blockSize * t.typeSize;
    if (typeof offset !== "number" || offset % alignment !== 0) {
      throw c.error(`tensor '${name}' has offset ${offset}, not a multiple of ${alignment}`);
    }
    infos.push({
      name,
      ne,
      shape: [...ne].reverse(),
      type,
      typeName: t.name,
      numel,
      byteLength,
    });
    offsets.push(offset);
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors = infos.map((t, i) => ({ ...t, fileOffset: dataOffset + offsets[i]! }));
  for (const t of tensors) {
    if (t.fileOffset + t.byteLength > src.size) {
      throw new GptqError(
        "GGUF",
        `data (${t.byteLength} bytes at offset ${t.fileOffset}) runs past the end of the ` +
          `file (${src.size} bytes)`,
        { file, tensor: t.name, hint: "the file is truncated; re-download it" },
      );
    }
  }
  return { file, version, fileSize: src.size, metadata, types, tensors, alignment, dataOffset };
}

async function peekItemType(src: ByteSource, at: number): Promise<number> {
  const b = await src.read(at, 4);
  return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
}

/**
 * An open GGUF file: its header, and its tensors read one at a time.
 *
 * @example
 * ```ts ignore
 * import { GgufReader } from "./gguf.ts";
 * using r = await GgufReader.open("SmolLM2-135M-Instruct.Q4_1.gguf");
 * console.log(r.header.metadata.get("general.architecture")); // "llama"
 * const w = await r.readTensor("blk.0.attn_q.weight"); // float32, [576 * 576]
 * ```
 */
export class GgufReader implements Disposable {
  /** The parsed header. */
  readonly header: GgufHeader;
  readonly #src: ByteSource;
  readonly #file: Deno.FsFile | null;
  readonly #byName: Map<string, GgufTensorInfo>;

  private constructor(header: GgufHeader, src: ByteSource, file: Deno.FsFile | null) {
    this.header = header;
    this.#src = src;
    this.#file = file;
    this.#byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /**
   * Opens a GGUF file and parses its header.
   *
   * @param path The file.
   * @returns The reader (close it, or use `using`).
   */
  static async open(path: string): Promise<GgufReader> {
    let f: Deno.FsFile;
    let size: number;
    try {
      f = await Deno.open(path, { read: true });
      const st = await f.stat();
      if (!st.isFile) {
        f.close();
        throw new GptqError("FILE_NOT_FOUND", "is not a regular file", { file: path });
      }
      size = st.size;
    } catch (e) {
      throw fsError(e, path);
    }
    try {
      const src = fileSource(f, size, path);
      return new GgufReader(await parseGgufHeader(src, path), src, f);
    } catch (e) {
      f.close();
      throw e;
    }
  }

  /**
   * A reader over GGUF bytes in memory (for tests and small files).
   *
   * @param bytes The whole file.
   * @param file A name for messages.
   * @returns The reader.
   */
  static async fromBytes(bytes: Uint8Array, file = "<memory>"): Promise<GgufReader> {
    const src = memorySource(bytes);
    return new GgufReader(await parseGgufHeader(src, file), src, null);
  }

  /**
   * A tensor's info by name.
   *
   * @param name The GGUF tensor name.
   * @returns Its info, or undefined.
   */
  tensor(name: string): GgufTensorInfo | undefined {
    return this.#byName.get(name);
  }

  #info(t: string | GgufTensorInfo): GgufTensorInfo {
    const info = typeof t === "string" ? this.#byName.get(t) : t;
    if (!info) {
      throw new GptqError("GGUF", `has no tensor '${String(t)}'`, {
        file: this.header.file,
        hint: "list the tensors with header.tensors",
      });
    }
    return info;
  }

  /**
   * Reads a tensor's raw bytes.
   *
   * @param t The tensor or its name.
   * @returns Its bytes.
   */
  async readRaw(t: string | GgufTensorInfo): Promise<Uint8Array> {
    const info = this.#info(t);
    return await this.#src.read(info.fileOffset, info.byteLength);
  }

  /**
   * Reads a tensor and dequantizes it to float32 (row-major, `info.shape`).
   *
   * @param t The tensor or its name.
   * @returns Its values.
   */
  async readTensor(t: string | GgufTensorInfo): Promise<Float32Array> {
    const info = this.#info(t);
    return dequantize(await this.readRaw(info), info.type, info.numel, {
      file: this.header.file,
      tensor: info.name,
    });
  }

  /** Closes the file. */
  close(): void {
    try {
      this.#file?.close();
    } catch { /* already closed */ }
  }

  /** Closes the file (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}
