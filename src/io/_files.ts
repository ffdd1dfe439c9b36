// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The readers' only access to files (platform module): the safetensors and
 * checkpoint readers, the bounded JSON reader and the tokenizer loader open,
 * stat and list files through these functions, never through `Deno.*`
 * directly. This is the Deno implementation (local files); the browser build
 * (`tools/build_browser.ts`) swaps in `_files_web.ts`, which reads URLs with
 * `fetch` and HTTP `Range` requests and exports the same functions, so the
 * browser bundle holds no `Deno.` reference.
 *
 * @module
 */

/** What the readers need to know about a path. */
export interface FileStat {
  /** A regular file (or a link to one). */
  isFile: boolean;
  /** A directory. */
  isDirectory: boolean;
  /** Size in bytes. */
  size: number;
  /** Last modification (ms since the epoch), or null when unknown. */
  mtime: number | null;
}

/** An open file read by position: read range and read all. */
export interface ByteSource {
  /** The path (or URL) it was opened from. */
  readonly path: string;
  /**
   * Describes the open file.
   *
   * @returns Its stat.
   */
  stat(): Promise<FileStat>;
  /**
   * Reads `length` bytes at `offset`; fewer only when the file ends first.
   *
   * @param offset Where to start.
   * @param length How many bytes.
   * @returns The bytes read.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases the file. Safe to call twice. */
  close(): void;
}

/**
 * Whether an error says that a file does not exist.
 *
 * @example
 * ```ts
 * import { isNotFound } from "./_files.ts";
 * try {
 *   await Deno.stat("/nonexistent");
 * } catch (e) {
 *   console.log(isNotFound(e)); // true
 * }
 * ```
 *
 * @param e The caught error.
 * @returns Whether it is a not-found error.
 */
export function isNotFound(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound;
}

/**
 * Describes a path (following links).
 *
 * @example
 * ```ts
 * import { statPath } from "./_files.ts";
 * console.log((await statPath(".")).isDirectory); // true
 * ```
 *
 * @param path The path.
 * @returns Its stat; rejects with the platform's error (see {@linkcode isNotFound}).
 */
export async function statPath(path: string): Promise<FileStat> {
  return toStat(await Deno.stat(path));
}

/**
 * Lists the names of the files (and links) in a directory.
 *
 * @example
 * ```ts
 * import { listFiles } from "./_files.ts";
 * console.log((await listFiles(".")).includes("deno.json"));
 * ```
 *
 * @param dir The directory.
 * @returns File names, unsorted.
 */
export async function listFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile || e.isSymlink) names.push(e.name);
  }
  return names;
}

/**
 * Opens a file for positioned reads.
 *
 * @example
 * ```ts
 * import { openFile } from "./_files.ts";
 * const f = await openFile("deno.json");
 * console.log((await f.read(0, 1))[0] === "{".charCodeAt(0)); // true
 * f.close();
 * ```
 *
 * @param path The file.
 * @returns The open file; rejects with the platform's error (see {@linkcode isNotFound}).
 */
export async function openFile(path: string): Promise<ByteSource> {
  const file = await Deno.open(path, { read: true });
  return new DenoFileSource(path, file);
}

function toStat(st: Deno.FileInfo): FileStat {
  return {
    isFile: st.isFile,
    isDirectory: st.isDirectory,
    size: st.size,
    mtime: st.mtime?.getTime() ?? null,
  };
}

class DenoFileSource implements ByteSource {
  readonly path: string;
  #file: Deno.FsFile | null;

  constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  async stat(): Promise<FileStat> {
    return toStat(await this.#handle().stat());
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const file = this.#handle();
    const buf = new Uint8Array(length);
    await file.seek(offset, Deno.SeekMode.Start);
    let got = 0;
    while (got < length) {
      const n = await file.read(buf.subarray(got));
      if (n === null || n === 0) break;
      got += n;
    }
    return got === length ? buf : buf.subarray(0, got);
  }

  close(): void {
    this.#file?.close();
    this.#file = null;
  }

  #handle(): Deno.FsFile {
    if (!this.#file) throw new Error(`${this.path} is closed`);
    return this.#file;
  }
}
