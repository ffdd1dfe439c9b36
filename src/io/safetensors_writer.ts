// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Writes safetensors files byte for byte as the reference implementation
 * (`safetensors` 0.4+, used by `save_file` and transformers' `save_pretrained`)
 * does: an 8-byte little-endian header length, a compact JSON header with
 * `__metadata__` first and tensors as `{"dtype","shape","data_offsets"}` in
 * data order, padded with spaces to a multiple of 8, then the tensor bytes.
 *
 * {@linkcode ShardedWriter} splits a checkpoint into
 * `model-00001-of-0000N.safetensors` shards plus
 * `model.safetensors.index.json`, exactly as transformers does, streaming each
 * tensor to disk as it is added.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { type DType, DTYPE_SIZE, isDType } from "./dtype.ts";

/** A tensor to write: its name, dtype, shape and little-endian bytes. */
export interface NamedTensor {
  /** The tensor's name (any string except `__metadata__`). */
  name: string;
  /** Its element type. */
  dtype: DType;
  /** Its shape (empty for a scalar). */
  shape: number[];
  /** Its bytes: `product(shape) * DTYPE_SIZE[dtype]` long. */
  data: Uint8Array;
}

/** A validated tensor header entry (offsets relative to the data section). */
interface HeaderEntry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

const COPY_CHUNK = 8 * 1024 * 1024;

function randomSuffix(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function tensorError(file: string, tensor: string, reason: string, hint: string): GptqError {
  return new GptqError("SAFETENSORS_TENSOR", reason, { file, tensor, hint });
}

/**
 * Checks a tensor before it is written and returns its byte length.
 *
 * @param t The tensor.
 * @param file The destination, for messages.
 * @returns The tensor's byte length.
 */
function validateTensor(t: NamedTensor, file: string): number {
  const name = t?.name;
  if (typeof name !== "string") {
    throw new GptqError("SAFETENSORS_TENSOR", "tensor name is not a string", {
      file,
      hint: "give every tensor a string name",
    });
  }
  if (name === "__metadata__") {
    throw tensorError(file, name, "'__metadata__' is reserved", "rename the tensor");
  }
  if (!isDType(t.dtype)) {
    throw tensorError(
      file,
      name,
      `unknown dtype ${JSON.stringify(t.dtype)}`,
      `use one of ${Object.keys(DTYPE_SIZE).join(", ")}`,
    );
  }
  if (
    !Array.isArray(t.shape) ||
    !t.shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
  ) {
    throw tensorError(
      file,
      name,
      `shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`,
      "pass the shape as an array of sizes",
    );
  }
  if (!(t.data instanceof Uint8Array)) {
    throw tensorError(file, name, "data is not a Uint8Array", "pass the raw little-endian bytes");
  }
  let numel = 1;
  for (const d of t.shape) numel *= d;
  const expected = numel * DTYPE_SIZE[t.dtype];
  if (!Number.isSafeInteger(expected) || expected !== t.data.byteLength) {
    throw tensorError(
      file,
      name,
      `${t.dtype}${
        JSON.stringify(t.shape)
      } needs ${expected} bytes but data has ${t.data.byteLength}`,
      "the data does not match dtype × shape",
    );
  }
  return expected;
}

/**
 * Serialises the header exactly as the reference implementation does: compact
 * JSON, `__metadata__` first (only when given), then the tensors in order,
 * padded with spaces to a multiple of 8 bytes.
 *
 * @param entries The tensors, in data order.
 * @param metadata The `__metadata__` map, if any.
 * @returns The 8-byte length prefix followed by the padded header.
 */
function encodeHeader(
  entries: readonly HeaderEntry[],
  metadata: Record<string, string> | undefined,
): Uint8Array {
  const parts: string[] = [];
  if (metadata !== undefined) {
    const m: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      m.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`"__metadata__":{${m.join(",")}}`);
  }
  for (const e of entries) {
    parts.push(
      `${JSON.stringify(e.name)}:{"dtype":"${e.dtype}","shape":[${
        e.shape.join(",")
      }],"data_offsets":[${e.begin},${e.end}]}`,
    );
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength);
  return out;
}

function validateMetadata(metadata: Record<string, string> | undefined, file: string): void {
  if (metadata === undefined) return;
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
    throw new GptqError("INVALID_ARGUMENT", "metadata is not an object of strings", {
      file,
      hint: "pass a Record<string, string>",
    });
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") {
      throw new GptqError("INVALID_ARGUMENT", `metadata['${k}'] is not a string`, {
        file,
        hint: "safetensors metadata values must be strings; use JSON.stringify for others",
      });
    }
  }
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.byteLength) {
    off += await file.write(data.subarray(off));
  }
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch {
    // already gone
  }
}

/**
 * Spools tensor data to a temporary file while collecting header entries, then
 * writes the header followed by the spooled data. Memory stays at one copy
 * buffer regardless of the shard size.
 */
class Spool {
  readonly entries: HeaderEntry[] = [];
  readonly names: Set<string> = new Set();
  size = 0;
  readonly #tmp: string;
  readonly #dest: string;
  #file: Deno.FsFile | null = null;

  constructor(dest: string) {
    this.#dest = dest;
    this.#tmp = `${dest}.data-${randomSuffix()}.tmp`;
  }

  async add(t: NamedTensor, byteLength: number): Promise<void> {
    if (this.names.has(t.name)) {
      throw tensorError(this.#dest, t.name, "duplicate tensor name", "tensor names must be unique");
    }
    if (this.#file === null) {
      this.#file = await Deno.open(this.#tmp, { write: true, create: true, truncate: true });
    }
    await writeAll(this.#file, t.data);
    this.names.add(t.name);
    this.entries.push({
      name: t.name,
      dtype: t.dtype,
      shape: [...t.shape],
      begin: this.size,
      end: this.size + byteLength,
    });
    this.size += byteLength;
  }

  /** Writes header + data to `path` and removes the spool file. */
  async finalize(path: string, metadata: Record<string, string> | undefined): Promise<void> {
    const header = encodeHeader(this.entries, metadata);
    const out = await Deno.open(path, { write: true, create: true, truncate: true });
    try {
      await writeAll(out, header);
      if (this.#file !== null) {
        this.#file.close();
        this.#file = null;
        const src = await Deno.open(this.#tmp, { read: true });
        try {
          const buf = new Uint8Array(Math.min(COPY_CHUNK, Math.max(this.size, 1)));
          let copied = 0;
          while (copied < this.size) {
            const n = await src.read(buf);
            if (n === null || n === 0) {
              throw new GptqError("SAFETENSORS_TRUNCATED", "spool file ended early", {
                file: this.#tmp,
                hint: "another process modified the temporary file; retry",
              });
            }
            await writeAll(out, buf.subarray(0, n));
            copied += n;
          }
        } finally {
          src.close();
        }
      }
    } finally {
      out.close();
    }
    await removeQuietly(this.#tmp);
  }

  /** Closes and removes the spool file. */
  async discard(): Promise<void> {
    this.#file?.close();
    this.#file = null;
    await removeQuietly(this.#tmp);
  }
}

/**
 * Writes a safetensors file. Tensors are written in the given order; the
 * header is padded with spaces to a multiple of 8 bytes and holds
 * `__metadata__` only when `metadata` is given, as the reference
 * implementation writes it. The file is written to a temporary sibling and
 * renamed into place, so a failure never leaves a partial file at `path`.
 *
 * Arrays and other synchronous iterables are written directly; an async
 * iterable is spooled to a temporary file tensor by tensor, so it may produce
 * more data than fits in memory.
 *
 * @example Writing two tensors
 * ```ts
 * import { writeSafetensors } from "./safetensors_writer.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeSafetensors(path, [
 *   { name: "w", dtype: "F32", shape: [2], data: new Uint8Array(new Float32Array([1, 2]).buffer) },
 *   { name: "step", dtype: "I64", shape: [], data: new Uint8Array(8) },
 * ], { format: "pt" });
 * await Deno.remove(path);
 * ```
 *
 * @param path The destination file (replaced if it exists).
 * @param tensors The tensors, in the order they should appear.
 * @param metadata The header's `__metadata__` string map, if any.
 * @returns A promise that resolves once the file is complete.
 */
export async function writeSafetensors(
  path: string,
  tensors: Iterable<NamedTensor> | AsyncIterable<NamedTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  validateMetadata(metadata, path);
  const tmp = `${path}.tmp-${randomSuffix()}`;
  if (Symbol.asyncIterator in Object(tensors)) {
    const spool = new Spool(path);
    try {
      for await (const t of tensors as AsyncIterable<NamedTensor>) {
        await spool.add(t, validateTensor(t, path));
      }
      await spool.finalize(tmp, metadata);
      await Deno.rename(tmp, path);
    } catch (e) {
      await spool.discard();
      await removeQuietly(tmp);
      throw e;
    }
    return;
  }
  const list: NamedTensor[] = [];
  const entries: HeaderEntry[] = [];
  const seen = new Set<string>();
  let size = 0;
  for (const t of tensors as Iterable<NamedTensor>) {
    const n = validateTensor(t, path);
    if (seen.has(t.name)) {
      throw tensorError(path, t.name, "duplicate tensor name", "tensor names must be unique");
    }
    seen.add(t.name);
    list.push(t);
    entries.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], begin: size, end: size + n });
    size += n;
  }
  const header = encodeHeader(entries, metadata);
  try {
    const out = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      await writeAll(out, header);
      for (const t of list) await writeAll(out, t.data);
    } finally {
      out.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await removeQuietly(tmp);
    throw e;
  }
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
  // transformers' convert_file_size_to_int also accepts "Kb"/"Mb"/"Gb" as bits
  // (divided by 8); those are ambiguous with our case-insensitive parse and
  // are not supported.
};

/**
 * Parses a shard size as transformers' `convert_file_size_to_int` does:
 * a number of bytes, or a string such as `"10GB"` (10^9), `"500MB"` or
 * `"2GiB"` (2^30). Units are case-insensitive; a plain number string is bytes.
 *
 * @example
 * ```ts
 * import { parseSize } from "./safetensors_writer.ts";
 * console.log(parseSize("10GB"), parseSize("2GiB"), parseSize(4096)); // 10000000000 2147483648 4096
 * ```
 *
 * @param size Bytes, or a size string.
 * @returns The size in bytes.
 */
export function parseSize(size: number | string): number {
  if (typeof size === "number") {
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new GptqError("INVALID_ARGUMENT", `shard size ${size} is not a positive integer`, {
        hint: 'give a byte count or a size such as "10GB", "500MB" or "2GiB"',
      });
    }
    return size;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(String(size));
  const unit = m ? (m[2] ?? "").toUpperCase() || "B" : "";
  const mult = SIZE_UNITS[unit];
  if (!m || mult === undefined) {
    throw new GptqError("INVALID_ARGUMENT", `cannot parse shard size ${JSON.stringify(size)}`, {
      hint: 'give a byte count or a size such as "10GB", "500MB" or "2GiB"',
    });
  }
  const bytes = Math.floor(Number(m[1]) * mult);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new GptqError("INVALID_ARGUMENT", `shard size ${JSON.stringify(size)} is out of range`, {
      hint: 'give a size such as "10GB", "500MB" or "2GiB"',
    });
  }
  return bytes;
}

/** Options of {@linkcode ShardedWriter}. */
export interface ShardedWriterOptions {
  /** Largest shard, in bytes or as `"10GB"`/`"500MB"`/`"2GiB"`; default `"10GB"` (optimum's). */
  maxShardSize?: number | string;
  /** File base name; default `"model"` (→ `model.safetensors`). */
  baseName?: string;
  /** `__metadata__` written into every shard, e.g. `{ format: "pt" }`. */
  metadata?: Record<string, string>;
}

/** What {@linkcode ShardedWriter.finish} wrote. */
export interface ShardedWriteResult {
  /** Full paths of the safetensors files written, in shard order (the index is not included). */
  files: string[];
  /** Sum of all tensors' byte lengths (the index's `total_size`). */
  totalSize: number;
  /** Tensor name → shard file name (base name, as in the index). */
  weightMap: Record<string, string>;
}

/** Compares strings by Unicode code point, as Python's `sorted` does. */
function codePointCompare(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const cx = x.value.codePointAt(0)!;
    const cy = y.value.codePointAt(0)!;
    if (cx !== cy) return cx - cy;
  }
}

/** `json.dumps(obj, indent=2, sort_keys=True)` for string/number/object trees. */
function pythonJsonDumps(value: unknown, indent = ""): string {
  if (typeof value === "string") {
    return JSON.stringify(value).replace(
      /[\u007f-\uffff]/g,
      (c) => c === "\u007f" ? c : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
  }
  if (typeof value === "number") return String(value);
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort(codePointCompare);
  if (keys.length === 0) return "{}";
  const inner = indent + "  ";
  const items = keys.map((k) => `${inner}${pythonJsonDumps(k)}: ${pythonJsonDumps(obj[k], inner)}`);
  return `{\n${items.join(",\n")}\n${indent}}`;
}

/**
 * Writes a checkpoint as transformers' `save_pretrained` does: one
 * `model.safetensors` when everything fits in `maxShardSize`, otherwise
 * `model-00001-of-0000N.safetensors` shards and `model.safetensors.index.json`
 * (`{"metadata": {"total_size": N}, "weight_map": {...}}`, sorted keys, two-space
 * indent). Shards are filled in the order tensors are added; a tensor that
 * would overflow the current shard starts a new one, and a tensor larger than
 * `maxShardSize` gets a shard of its own (huggingface_hub's
 * `split_state_dict_into_shards_factory`). Tensor data is streamed to disk in
 * {@linkcode ShardedWriter.add}; only headers are kept in memory.
 *
 * @example Writing a checkpoint in shards of at most 1 MB
 * ```ts
 * import { ShardedWriter } from "./safetensors_writer.ts";
 * const dir = await Deno.makeTempDir();
 * const w = new ShardedWriter(dir, { maxShardSize: "1MB", metadata: { format: "pt" } });
 * await w.add({ name: "a", dtype: "F16", shape: [300000], data: new Uint8Array(600000) });
 * await w.add({ name: "b", dtype: "F16", shape: [300000], data: new Uint8Array(600000) });
 * const { files } = await w.finish(); // model-00001-of-00002.safetensors, model-00002-of-00002.safetensors
 * console.log(files.length); // 2
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class ShardedWriter {
  readonly #dir: string;
  readonly #max: number;
  readonly #base: string;
  readonly #metadata: Record<string, string> | undefined;
  /** Completed shards (temporary files), in huggingface_hub's shard order. */
  readonly #done: { tmp: string; names: string[] }[] = [];
  readonly #allNames = new Set<string>();
  #current: Spool | null = null;
  #totalSize = 0;
  #finished = false;
  #failed = false;
  readonly #tag = randomSuffix();
  #counter = 0;

  /**
   * Prepares a writer; nothing is written until the first {@linkcode ShardedWriter.add}.
   *
   * @param dir The output folder (must exist).
   * @param opts Shard size, base name and metadata.
   */
  constructor(dir: string, opts: ShardedWriterOptions = {}) {
    this.#dir = dir;
    this.#max = parseSize(opts.maxShardSize ?? "10GB");
    this.#base = opts.baseName ?? "model";
    if (!/^[^/\\]+$/.test(this.#base) || this.#base === "." || this.#base === "..") {
      throw new GptqError(
        "INVALID_ARGUMENT",
        `base name ${JSON.stringify(this.#base)} is not a file name`,
        {
          hint: 'use a plain name such as "model"',
        },
      );
    }
    validateMetadata(opts.metadata, dir);
    this.#metadata = opts.metadata === undefined ? undefined : { ...opts.metadata };
  }

  #join(name: string): string {
    return this.#dir.endsWith("/") ? this.#dir + name : `${this.#dir}/${name}`;
  }

  #tmpName(): string {
    return this.#join(`.${this.#base}-${this.#tag}-${++this.#counter}.safetensors.tmp`);
  }

  async #closeCurrent(): Promise<void> {
    const cur = this.#current;
    if (cur === null) return;
    this.#current = null;
    const tmp = this.#tmpName();
    await cur.finalize(tmp, this.#metadata);
    this.#done.push({ tmp, names: cur.entries.map((e) => e.name) });
  }

  /**
   * Appends a tensor, writing its bytes to disk before resolving.
   *
   * @param t The tensor.
   * @returns A promise that resolves once the data is on disk.
   */
  async add(t: NamedTensor): Promise<void> {
    if (this.#finished) {
      throw new GptqError("INVALID_ARGUMENT", "add() after finish()", { file: this.#dir });
    }
    const size = validateTensor(t, this.#dir);
    if (this.#allNames.has(t.name)) {
      throw tensorError(this.#dir, t.name, "duplicate tensor name", "tensor names must be unique");
    }
    try {
      if (size > this.#max) {
        // huggingface_hub: a tensor bigger than the max goes to its own shard,
        // placed before the still-open current shard.
        const own = new Spool(this.#tmpName());
        try {
          await own.add(t, size);
          const tmp = this.#tmpName();
          await own.finalize(tmp, this.#metadata);
          this.#done.push({ tmp, names: [t.name] });
        } catch (e) {
          await own.discard();
          throw e;
        }
      } else {
        if (this.#current !== null && this.#current.size + size > this.#max) {
          await this.#closeCurrent();
        }
        this.#current ??= new Spool(this.#tmpName());
        await this.#current.add(t, size);
      }
    } catch (e) {
      this.#failed = true;
      await this.abort();
      throw e;
    }
    this.#allNames.add(t.name);
    this.#totalSize += size;
  }

  /**
   * Writes the last shard, names the shards and writes the index when there
   * is more than one.
   *
   * @returns The files written, the total tensor bytes and the weight map.
   */
  async finish(): Promise<ShardedWriteResult> {
    if (this.#finished) {
      throw new GptqError("INVALID_ARGUMENT", "finish() called twice", { file: this.#dir });
    }
    if (this.#failed) {
      throw new GptqError("INVALID_ARGUMENT", "finish() after a failed add()", { file: this.#dir });
    }
    this.#finished = true;
    try {
      await this.#closeCurrent();
      if (this.#done.length === 0) {
        // No tensors: transformers still writes an (empty) model.safetensors.
        const tmp = this.#tmpName();
        await new Spool(tmp).finalize(tmp, this.#metadata);
        this.#done.push({ tmp, names: [] });
      }
      const n = this.#done.length;
      const files: string[] = [];
      const weightMap: Record<string, string> = {};
      for (let i = 0; i < n; i++) {
        const shard = this.#done[i]!;
        const name = n === 1
          ? `${this.#base}.safetensors`
          : `${this.#base}-${String(i + 1).padStart(5, "0")}-of-${
            String(n).padStart(5, "0")
          }.safetensors`;
        const path = this.#join(name);
        await Deno.rename(shard.tmp, path);
        shard.tmp = path;
        files.push(path);
        for (const t of shard.names) weightMap[t] = name;
      }
      if (n > 1) {
        const index = { metadata: { total_size: this.#totalSize }, weight_map: weightMap };
        await Deno.writeTextFile(
          this.#join(`${this.#base}.safetensors.index.json`),
          pythonJsonDumps(index) + "\n",
        );
      }
      return { files, totalSize: this.#totalSize, weightMap };
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  /**
   * Removes every temporary file written so far (shards already renamed by a
   * successful {@linkcode ShardedWriter.finish} are kept).
   *
   * @returns A promise that resolves once the files are gone.
   */
  async abort(): Promise<void> {
    this.#finished = true;
    await this.#current?.discard();
    this.#current = null;
    for (const d of this.#done) {
      if (d.tmp.endsWith(".tmp")) await removeQuietly(d.tmp);
    }
  }
}
