// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * All-or-nothing output: a folder is built in a temporary sibling
 * (`<out>.partial-<random>`) and renamed into place on
 * {@linkcode AtomicOutputDir.commit}, so a crash or error never leaves a
 * half-written checkpoint where a user (or transformers) would load it.
 * {@linkcode atomicWriteFile} does the same for one file.
 *
 * @module
 */

import { fsError, GptqError } from "../errors.ts";

function randomSuffix(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw fsError(e, path);
  }
}

function stripTrailingSlashes(p: string): string {
  let s = p;
  while (s.length > 1 && (s.endsWith("/") || s.endsWith("\\"))) s = s.slice(0, -1);
  return s;
}

function parentOf(p: string): string {
  const i = Math.max(p.lastIndexOf("/"), p.lastIndexOf("\\"));
  if (i < 0) return ".";
  if (i === 0) return p.slice(0, 1);
  return p.slice(0, i);
}

function existsError(path: string, what: string): GptqError {
  return new GptqError("OUTPUT_EXISTS", `${what} already exists`, {
    file: path,
    hint: "pass --force to overwrite",
  });
}

/** Options of {@linkcode AtomicOutputDir.create}. */
export interface AtomicOutputDirOptions {
  /** Replace an existing output folder (at commit time only). */
  force?: boolean;
}

/**
 * An output folder that appears all at once. Write files to
 * {@linkcode AtomicOutputDir.path}, then {@linkcode AtomicOutputDir.commit}; on
 * any error call {@linkcode AtomicOutputDir.abort} (or use `await using`, which
 * aborts unless committed).
 *
 * @example Writing a folder atomically
 * ```ts
 * import { AtomicOutputDir } from "./atomic_dir.ts";
 * const root = await Deno.makeTempDir();
 * const out = await AtomicOutputDir.create(`${root}/quantized`);
 * try {
 *   await Deno.writeTextFile(out.path("config.json"), "{}");
 *   await out.commit();
 * } catch (e) {
 *   await out.abort();
 *   throw e;
 * }
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export class AtomicOutputDir implements AsyncDisposable {
  /** The final folder. */
  readonly outDir: string;
  /** The temporary sibling folder files are written into. */
  readonly tmpPath: string;
  readonly #force: boolean;
  #state: "open" | "committed" | "aborted" = "open";

  private constructor(outDir: string, tmpPath: string, force: boolean) {
    this.outDir = outDir;
    this.tmpPath = tmpPath;
    this.#force = force;
  }

  /**
   * Creates the temporary folder (and the output's parent folders).
   *
   * @param outDir The final output folder.
   * @param opts `force` to replace an existing folder at commit time.
   * @returns The open output folder.
   */
  static async create(outDir: string, opts: AtomicOutputDirOptions = {}): Promise<AtomicOutputDir> {
    const dir = stripTrailingSlashes(outDir);
    if (dir === "" || dir === "." || dir === ".." || dir === "/") {
      throw new GptqError("INVALID_ARGUMENT", "not a usable output folder", {
        file: outDir,
        hint: "name a new folder, e.g. ./model-gptq",
      });
    }
    const force = opts.force ?? false;
    if (!force && await exists(dir)) throw existsError(dir, "output folder");
    const parent = parentOf(dir);
    try {
      await Deno.mkdir(parent, { recursive: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw fsError(e, parent);
    }
    const tmp = `${dir}.partial-${randomSuffix()}`;
    try {
      await Deno.mkdir(tmp);
    } catch (e) {
      throw fsError(e, tmp);
    }
    return new AtomicOutputDir(dir, tmp, force);
  }

  /**
   * The path of a file inside the temporary folder.
   *
   * @param name A relative file name (may contain `/`, never `..`).
   * @returns Its path under {@linkcode AtomicOutputDir.tmpPath}.
   */
  path(name: string): string {
    const parts = name.split(/[/\\]/);
    if (
      name === "" || name.startsWith("/") || name.startsWith("\\") || /^[a-zA-Z]:/.test(name) ||
      parts.some((p) => p === "..")
    ) {
      throw new GptqError(
        "INVALID_ARGUMENT",
        `${JSON.stringify(name)} is not a relative file name`,
        {
          file: this.outDir,
          hint: "name files relative to the output folder, without '..'",
        },
      );
    }
    return `${this.tmpPath}/${name}`;
  }

  /**
   * Renames the temporary folder to the output folder. With `force`, an
   * existing output folder is moved aside, replaced, then deleted.
   *
   * @returns A promise that resolves once the output is in place.
   */
  async commit(): Promise<void> {
    if (this.#state !== "open") {
      throw new GptqError("INVALID_ARGUMENT", `output folder already ${this.#state}`, {
        file: this.outDir,
      });
    }
    let old: string | null = null;
    if (await exists(this.outDir)) {
      if (!this.#force) throw existsError(this.outDir, "output folder");
      old = `${this.outDir}.old-${randomSuffix()}`;
      try {
        await Deno.rename(this.outDir, old);
      } catch (e) {
        throw fsError(e, this.outDir);
      }
    }
    try {
      await Deno.rename(this.tmpPath, this.outDir);
    } catch (e) {
      if (old !== null) await Deno.rename(old, this.outDir).catch(() => {});
      throw fsError(e, this.outDir);
    }
    this.#state = "committed";
    if (old !== null) await Deno.remove(old, { recursive: true }).catch(() => {});
  }

  /**
   * Deletes the temporary folder. Does nothing after a commit or a previous abort.
   *
   * @returns A promise that resolves once the folder is gone.
   */
  async abort(): Promise<void> {
    if (this.#state !== "open") return;
    this.#state = "aborted";
    try {
      await Deno.remove(this.tmpPath, { recursive: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw fsError(e, this.tmpPath);
    }
  }

  /** Aborts unless committed (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.abort();
  }
}

/** Options of {@linkcode atomicWriteFile}. */
export interface AtomicWriteOptions {
  /** Replace an existing file. */
  force?: boolean;
}

/**
 * Writes a file through a temporary sibling and a rename, so readers see
 * either the old file or the complete new one.
 *
 * @example
 * ```ts
 * import { atomicWriteFile } from "./atomic_dir.ts";
 * const dir = await Deno.makeTempDir();
 * await atomicWriteFile(`${dir}/config.json`, '{"bits": 4}\n');
 * await atomicWriteFile(`${dir}/config.json`, '{"bits": 3}\n', { force: true });
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param path The destination.
 * @param data Bytes, or text written as UTF-8.
 * @param opts `force` to replace an existing file.
 * @returns A promise that resolves once the file is in place.
 */
export async function atomicWriteFile(
  path: string,
  data: Uint8Array | string,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  if (!opts.force && await exists(path)) throw existsError(path, "file");
  const tmp = `${path}.tmp-${randomSuffix()}`;
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw fsError(e, path);
  }
}
