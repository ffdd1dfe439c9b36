// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The browser build's `_files.ts` (swapped in by `tools/build_browser.ts`):
 * paths are URLs, read with `fetch`. A file is opened with a `HEAD` request
 * (its size from `Content-Length`) and read by HTTP `Range` requests, so a
 * safetensors file is fetched tensor by tensor; a server that ignores `Range`
 * (answers 200) or sends no `Content-Length` is read whole once and sliced. URL folders cannot be listed:
 * {@linkcode registerFolder} declares a model folder and its files (the
 * browser loader does this), and an unregistered folder offers the two weight
 * names a model folder can be read from without listing
 * (`model.safetensors.index.json`, `model.safetensors`) when they exist.
 *
 * Exports the same functions as `_files.ts` (checked by
 * `tests/browser_test.ts`), plus {@linkcode registerFolder}.
 *
 * @module
 */

import type * as Native from "./_files.ts";
import type { ByteSource, FileStat } from "./_files.ts";

export type { ByteSource, FileStat } from "./_files.ts";

/** Weight files a folder is probed for when its listing is not registered. */
const PROBED = ["model.safetensors.index.json", "model.safetensors"];

const folders = new Map<string, string[] | null>();

function key(url: string): string {
  return url.replace(/\/+$/, "");
}

function named(name: string, message: string): Error {
  const e = new Error(message);
  e.name = name;
  return e;
}

function statusError(url: string, status: number, statusText: string): Error {
  const what = `${url}: HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
  if (status === 404 || status === 410) return named("NotFound", what);
  if (status === 401 || status === 403) return named("PermissionDenied", what);
  return new Error(what);
}

/**
 * Declares a URL as a model folder, optionally with the names of its files
 * (a URL folder cannot be listed).
 *
 * @example
 * ```ts ignore
 * import { registerFolder } from "./_files_web.ts";
 * registerFolder("https://example.com/stories260K", ["config.json", "model.safetensors"]);
 * ```
 *
 * @param url The folder's URL.
 * @param files Its file names, or omitted to probe for the weight files.
 */
export function registerFolder(url: string, files?: readonly string[]): void {
  folders.set(key(url), files ? [...files] : null);
}

/**
 * Whether an error says that a file does not exist (HTTP 404 or 410).
 *
 * @example
 * ```ts ignore
 * import { isNotFound, statPath } from "./_files_web.ts";
 * await statPath("https://example.com/missing.json").catch((e) => console.log(isNotFound(e)));
 * ```
 *
 * @param e The caught error.
 * @returns Whether it is a not-found error.
 */
export const isNotFound: typeof Native.isNotFound = (e) =>
  e instanceof Error && e.name === "NotFound";

async function head(url: string): Promise<FileStat> {
  const r = await fetch(url, { method: "HEAD" });
  if (!r.ok) throw statusError(url, r.status, r.statusText);
  const len = r.headers.get("content-length");
  const modified = r.headers.get("last-modified");
  return {
    isFile: true,
    isDirectory: false,
    size: len === null ? -1 : Number(len),
    mtime: modified ? Date.parse(modified) : null,
  };
}

/**
 * Describes a URL: a registered folder, else a file (`HEAD`).
 *
 * @example
 * ```ts ignore
 * import { statPath } from "./_files_web.ts";
 * console.log((await statPath("https://example.com/m/config.json")).size);
 * ```
 *
 * @param path The URL.
 * @returns Its stat.
 */
export const statPath: typeof Native.statPath = async (path) => {
  if (folders.has(key(path))) return { isFile: false, isDirectory: true, size: 0, mtime: null };
  const st = await head(path);
  return st.size < 0 ? { ...st, size: 0 } : st;
};

/**
 * The files of a URL folder: the registered names, else those of the probed
 * weight files that exist.
 *
 * @example
 * ```ts ignore
 * import { listFiles } from "./_files_web.ts";
 * console.log(await listFiles("https://example.com/m"));
 * ```
 *
 * @param dir The folder's URL.
 * @returns File names.
 */
export const listFiles: typeof Native.listFiles = async (dir) => {
  const known = folders.get(key(dir));
  if (known) return [...known];
  const found: string[] = [];
  for (const name of PROBED) {
    try {
      await head(`${key(dir)}/${name}`);
      found.push(name);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
  return found;
};

class UrlSource implements ByteSource {
  readonly path: string;
  #stat: FileStat;
  #whole: Uint8Array | null = null;
  #closed = false;

  constructor(path: string, stat: FileStat, whole: Uint8Array | null) {
    this.path = path;
    this.#stat = whole ? { ...stat, size: whole.length } : stat;
    this.#whole = whole;
  }

  stat(): Promise<FileStat> {
    return Promise.resolve({ ...this.#stat });
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (this.#closed) throw new Error(`${this.path} is closed`);
    const end = Math.min(offset + length, this.#stat.size);
    if (length === 0 || offset >= end) return new Uint8Array(0);
    if (this.#whole) return this.#whole.slice(offset, end);
    const r = await fetch(this.path, { headers: { Range: `bytes=${offset}-${end - 1}` } });
    if (r.status === 206) return new Uint8Array(await r.arrayBuffer());
    if (!r.ok) throw statusError(this.path, r.status, r.statusText);
    // The server ignored Range: keep the whole body for later reads.
    this.#whole = new Uint8Array(await r.arrayBuffer());
    this.#stat = { ...this.#stat, size: this.#whole.length };
    return this.#whole.slice(offset, Math.min(offset + length, this.#whole.length));
  }

  close(): void {
    this.#closed = true;
    this.#whole = null;
  }
}

/**
 * Opens a URL for range reads (`HEAD` now, `Range` requests per read).
 *
 * @example
 * ```ts ignore
 * import { openFile } from "./_files_web.ts";
 * const f = await openFile("https://example.com/m/model.safetensors");
 * const header = await f.read(0, 8);
 * f.close();
 * ```
 *
 * @param path The URL.
 * @returns The open file.
 */
export const openFile: typeof Native.openFile = async (path) => {
  const url = key(path);
  if (folders.has(url)) throw named("IsADirectory", `${url} is a folder`);
  const st = await head(path);
  if (st.size >= 0) return new UrlSource(path, st, null);
  // No Content-Length (a chunked or compressed answer): the size is only known from the body.
  const r = await fetch(path);
  if (!r.ok) throw statusError(path, r.status, r.statusText);
  return new UrlSource(path, st, new Uint8Array(await r.arrayBuffer()));
};
