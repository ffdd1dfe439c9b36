// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Reads a checkpoint as one set of tensors, whether it is a single
 * `.safetensors` file, a folder with `model.safetensors`, a sharded folder with
 * `model.safetensors.index.json`, or an AutoGPTQ folder with
 * `gptq_model-*.safetensors`. Shard headers are validated up front; shard
 * files are opened lazily, a few at a time.
 *
 * @module
 */

import { fsError, GptqError } from "../errors.ts";
import { type RawTensor, SafetensorsFile, type TensorInfo } from "./safetensors.ts";
import {
  type ByteSource,
  type FileStat,
  isNotFound,
  listFiles,
  openFile,
  statPath,
} from "./_files.ts";
import { readSourceExact } from "./_read_exact.ts";
import { toFloat32 } from "./dtype.ts";
import { MAX_INDEX_BYTES, oneLine, readJsonFile } from "./_json_file.ts";

/** Where a tensor lives: its {@linkcode TensorInfo} and the shard file's path. */
export interface CheckpointTensorInfo extends TensorInfo {
  /** Path of the safetensors file holding the tensor. */
  file: string;
}

/** One safetensors file of a checkpoint. */
export interface CheckpointFile {
  /** The file's path. */
  path: string;
  /** Its size in bytes. */
  size: number;
  /** How many of the checkpoint's tensors it holds. */
  tensors: number;
}

interface Shard {
  path: string;
  size: number;
  mtime: number | null;
  metadata: Record<string, string>;
  count: number;
  handle: ByteSource | null;
  queue: Promise<unknown>;
  busy: boolean;
}

/** How many shard files are kept open at once. */
const MAX_OPEN = 4;

function join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

async function statOrNull(path: string): Promise<FileStat | null> {
  try {
    return await statPath(path);
  } catch (e) {
    if (isNotFound(e)) return null;
    const err = fsError(e, path);
    if (err instanceof GptqError) throw err;
    throw new GptqError("FILE_NOT_FOUND", `cannot be read (${oneLine((e as Error).message)})`, {
      file: path,
      hint: "check the path",
      cause: e,
    });
  }
}

/** Longest file name (bytes) common file systems accept. */
const MAX_NAME_BYTES = 255;

/** Why a shard name in an index is not a plain file name next to it, or null when it is. */
function badShardName(name: string): string | null {
  if (name.includes("/") || name.includes("\\")) {
    return name.split(/[/\\]/).some((p) => p === "..") || name.startsWith("/")
      ? "points outside the folder"
      : "is a path, not a file name";
  }
  if (name === "." || name === "..") return "is not a file name";
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return "contains a control character";
  if (new TextEncoder().encode(name).length > MAX_NAME_BYTES) {
    return `is longer than ${MAX_NAME_BYTES} bytes`;
  }
  if (!name.endsWith(".safetensors")) return "is not a .safetensors file";
  return null;
}

function indexError(file: string, reason: string, hint?: string): GptqError {
  return new GptqError("SAFETENSORS_INDEX", reason, {
    file,
    hint: hint ??
      "the index does not match the shard files; re-download or re-export the checkpoint",
  });
}

/**
 * A checkpoint's tensors, read on demand from one or more safetensors files.
 *
 * @example Reading a model folder
 * ```ts ignore
 * import { CheckpointReader } from "./checkpoint.ts";
 * using ckpt = await CheckpointReader.open("./Llama-2-7b-hf");
 * console.log(ckpt.names().length, ckpt.files());
 * const w = await ckpt.readFloat32("model.layers.0.self_attn.q_proj.weight");
 * ```
 */
export class CheckpointReader implements Disposable {
  /** The path given to {@linkcode CheckpointReader.open}. */
  readonly path: string;
  /** The index file, when the checkpoint is sharded. */
  readonly indexPath: string | null;
  /** The `__metadata__` of the first file (e.g. `{format: "pt"}` or AutoGPTQ's keys). */
  readonly metadata: Record<string, string>;
  readonly #shards: Shard[];
  readonly #tensors: Map<string, { info: TensorInfo; shard: Shard }>;
  readonly #order: string[];
  readonly #open: Shard[] = [];
  #closed = false;

  private constructor(path: string, parts: Parts) {
    this.path = path;
    this.indexPath = parts.indexPath;
    this.#shards = parts.shards;
    this.#tensors = parts.tensors;
    this.#order = parts.order;
    this.metadata = parts.shards[0]?.metadata ?? {};
  }

  /**
   * Opens a checkpoint. For a folder, the first match wins:
   * `model.safetensors.index.json`, `gptq_model-*.safetensors.index.json`,
   * `model.safetensors`, then a single `gptq_model-*.safetensors`. A path to
   * a `.safetensors` file or a `.safetensors.index.json` file is read as is.
   *
   * @param pathOrDir A folder, a safetensors file or an index file.
   * @returns The open checkpoint, its headers validated.
   */
  static async open(pathOrDir: string): Promise<CheckpointReader> {
    return new CheckpointReader(pathOrDir, await findParts(pathOrDir));
  }

  /**
   * Lists the tensors.
   *
   * @returns Every tensor name, shard by shard in file order.
   */
  names(): string[] {
    return [...this.#order];
  }

  /**
   * Tells whether a tensor is present.
   *
   * @param name A tensor name.
   * @returns Whether the checkpoint holds it.
   */
  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  /**
   * Describes one tensor without reading it.
   *
   * @param name A tensor name.
   * @returns Its dtype, shape, offset, length and file; throws when absent.
   */
  info(name: string): CheckpointTensorInfo {
    const t = this.#get(name);
    return { ...t.info, shape: [...t.info.shape], file: t.shard.path };
  }

  /**
   * Lists the checkpoint's files.
   *
   * @returns The safetensors files with their sizes and tensor counts.
   */
  files(): CheckpointFile[] {
    return this.#shards.map((s) => ({ path: s.path, size: s.size, tensors: s.count }));
  }

  /**
   * Reads one tensor's raw bytes.
   *
   * @param name The tensor's name.
   * @returns Its dtype, shape and bytes.
   */
  async read(name: string): Promise<RawTensor> {
    const { info, shard } = this.#get(name);
    const run = shard.queue.then(async () => {
      shard.busy = true;
      try {
        const handle = await this.#handle(shard);
        return await readSourceExact(handle, info.offset, info.byteLength, shard.path, name);
      } finally {
        shard.busy = false;
      }
    });
    shard.queue = run.catch(() => {});
    const data = await run;
    return { dtype: info.dtype, shape: [...info.shape], data };
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

  /** Closes every open file. Safe to call twice. */
  close(): void {
    this.#closed = true;
    for (const s of this.#open) {
      s.handle?.close();
      s.handle = null;
    }
    this.#open.length = 0;
  }

  /** Closes every open file (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #get(name: string): { info: TensorInfo; shard: Shard } {
    const t = this.#tensors.get(name);
    if (!t) {
      throw new GptqError("SAFETENSORS_MISSING_TENSOR", "not found", {
        file: this.indexPath ?? this.#shards[0]?.path ?? this.path,
        tensor: name,
        hint: "the checkpoint does not match the model's config",
      });
    }
    return t;
  }

  async #handle(shard: Shard): Promise<ByteSource> {
    if (this.#closed) {
      throw new GptqError("INVALID_ARGUMENT", "checkpoint is closed", { file: this.path });
    }
    if (shard.handle !== null) {
      // most recently used last
      const i = this.#open.indexOf(shard);
      if (i !== this.#open.length - 1) {
        this.#open.splice(i, 1);
        this.#open.push(shard);
      }
      return shard.handle;
    }
    let file: ByteSource;
    try {
      file = await openFile(shard.path);
      const st = await file.stat();
      const mtime = st.mtime;
      if (st.size !== shard.size || mtime !== shard.mtime) {
        file.close();
        throw new GptqError("SAFETENSORS_HEADER", "file changed since the checkpoint was opened", {
          file: shard.path,
          hint: "do not modify a checkpoint while it is being read; reopen it",
        });
      }
    } catch (e) {
      throw fsError(e, shard.path);
    }
    // Close the least recently used idle files (one being read stays open).
    for (let i = 0; i < this.#open.length && this.#open.length >= MAX_OPEN;) {
      const old = this.#open[i]!;
      if (old.busy) {
        i++;
        continue;
      }
      this.#open.splice(i, 1);
      old.handle?.close();
      old.handle = null;
    }
    shard.handle = file;
    this.#open.push(shard);
    return file;
  }
}

/** Validates one safetensors file and returns its shard record and tensors. */
async function loadShard(path: string): Promise<{ shard: Shard; infos: TensorInfo[] }> {
  const f = await SafetensorsFile.open(path);
  try {
    const st = await statOrNull(path);
    return {
      shard: {
        path,
        size: f.size,
        mtime: st?.mtime ?? null,
        metadata: f.metadata,
        count: 0,
        handle: null,
        queue: Promise.resolve(),
        busy: false,
      },
      infos: f.infos(),
    };
  } finally {
    f.close();
  }
}

interface Parts {
  indexPath: string | null;
  shards: Shard[];
  tensors: Map<string, { info: TensorInfo; shard: Shard }>;
  order: string[];
}

async function openSingle(file: string): Promise<Parts> {
  const { shard, infos } = await loadShard(file);
  shard.count = infos.length;
  const tensors = new Map(infos.map((info) => [info.name, { info, shard }]));
  return { indexPath: null, shards: [shard], tensors, order: infos.map((i) => i.name) };
}

async function openIndex(indexPath: string): Promise<Parts> {
  const hint = "the index does not match the shard files; re-download or re-export the checkpoint";
  let obj: unknown;
  try {
    obj = await readJsonFile(indexPath, {
      code: "SAFETENSORS_INDEX",
      maxBytes: MAX_INDEX_BYTES,
      hint,
    });
  } catch (e) {
    throw fsError(e, indexPath);
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw indexError(indexPath, "not a JSON object");
  }
  const wm = (obj as Record<string, unknown>).weight_map;
  if (wm === null || typeof wm !== "object" || Array.isArray(wm)) {
    throw indexError(indexPath, "'weight_map' is missing or not an object of tensor → file");
  }
  const dir = indexPath.includes("/") ? indexPath.slice(0, indexPath.lastIndexOf("/")) : ".";
  const byFile = new Map<string, string[]>();
  for (const [tensor, file] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof file !== "string" || file === "") {
      throw indexError(indexPath, `weight_map['${tensor}'] is not a file name`);
    }
    const why = badShardName(file);
    if (why !== null) {
      throw indexError(
        indexPath,
        `weight_map['${oneLine(tensor, 120)}'] = ${oneLine(JSON.stringify(file), 120)} ${why}`,
        "shard names must be plain .safetensors file names next to the index",
      );
    }
    let list = byFile.get(file);
    if (!list) byFile.set(file, list = []);
    list.push(tensor);
  }
  if (byFile.size === 0) throw indexError(indexPath, "'weight_map' is empty");
  // Shards in name order (model-00001-of-…, model-00002-of-…).
  const files = [...byFile.keys()].sort();
  const shards: Shard[] = [];
  const tensors = new Map<string, { info: TensorInfo; shard: Shard }>();
  const seenIn = new Map<string, string>();
  const order: string[] = [];
  for (const file of files) {
    const full = join(dir, file);
    if ((await statOrNull(full)) === null) {
      throw indexError(
        indexPath,
        `shard '${file}' (holding ${byFile.get(file)!.length} tensors) does not exist`,
        "download every shard listed in the index",
      );
    }
    const { shard, infos } = await loadShard(full);
    const byName = new Map(infos.map((i) => [i.name, i]));
    for (const info of infos) {
      const other = seenIn.get(info.name);
      if (other !== undefined) {
        throw indexError(
          indexPath,
          `tensor '${info.name}' is stored in both '${other}' and '${file}'`,
        );
      }
      seenIn.set(info.name, file);
    }
    const mapped = new Set(byFile.get(file)!);
    for (const name of mapped) {
      if (!byName.has(name)) {
        throw indexError(indexPath, `tensor '${name}' is mapped to '${file}' but not in it`);
      }
    }
    for (const info of infos) {
      if (!mapped.has(info.name)) continue; // not listed in the index: ignored, as transformers does
      tensors.set(info.name, { info, shard });
      order.push(info.name);
    }
    shard.count = mapped.size;
    shards.push(shard);
  }
  return { indexPath, shards, tensors, order };
}

/** Picks the checkpoint's files (see {@linkcode CheckpointReader.open}) and validates them. */
async function findParts(pathOrDir: string): Promise<Parts> {
  const st = await statOrNull(pathOrDir);
  if (st === null) {
    throw new GptqError("FILE_NOT_FOUND", "no such file or directory", {
      file: pathOrDir,
      hint: "give a model folder or a .safetensors file",
    });
  }
  if (st.isFile) {
    if (pathOrDir.endsWith(".index.json")) return await openIndex(pathOrDir);
    return await openSingle(pathOrDir);
  }
  if (!st.isDirectory) {
    throw new GptqError("FILE_NOT_FOUND", "is neither a file nor a folder", { file: pathOrDir });
  }
  let names: string[];
  try {
    names = await listFiles(pathOrDir);
  } catch (e) {
    throw fsError(e, pathOrDir);
  }
  names.sort();
  if (names.includes("model.safetensors.index.json")) {
    return await openIndex(join(pathOrDir, "model.safetensors.index.json"));
  }
  const gptqIndex = names.filter((n) => /^gptq_model-.*\.safetensors\.index\.json$/.test(n));
  if (gptqIndex.length === 1) return await openIndex(join(pathOrDir, gptqIndex[0]!));
  if (names.includes("model.safetensors")) {
    return await openSingle(join(pathOrDir, "model.safetensors"));
  }
  const gptq = names.filter((n) => /^gptq_model-.*\.safetensors$/.test(n));
  if (gptq.length === 1 && gptqIndex.length === 0) {
    return await openSingle(join(pathOrDir, gptq[0]!));
  }
  const found = names.filter((n) => n.endsWith(".safetensors") || n.endsWith(".index.json"));
  if (gptq.length > 1 || gptqIndex.length > 1) {
    throw new GptqError("FILE_NOT_FOUND", "several AutoGPTQ weight files, cannot tell which", {
      file: pathOrDir,
      hint: `found ${found.join(", ")}; pass the file to use`,
    });
  }
  throw new GptqError(
    "FILE_NOT_FOUND",
    "no model.safetensors, model.safetensors.index.json or gptq_model-*.safetensors",
    {
      file: pathOrDir,
      hint: found.length
        ? `found ${found.join(", ")}; pass one of them, or add the index file`
        : "is this a model folder? .bin/.pt checkpoints must be converted to safetensors",
    },
  );
}
