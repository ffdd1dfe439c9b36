// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The Hugging Face cache layout, as `huggingface_hub` writes it, so that
 * Python tools and this toolkit share downloads:
 *
 * ```text
 * <cache>/models--<owner>--<name>/
 *   blobs/<etag>                 file contents (LFS files: their SHA-256; others: the git blob id)
 *   blobs/<etag>.incomplete      a download in progress (continued with Range)
 *   refs/<revision>              the commit a branch or tag pointed to (no newline)
 *   snapshots/<commit>/<file>    relative symlinks to ../../blobs/<etag> (copies where links fail)
 * <cache>/.locks/models--<owner>--<name>/<etag>.lock   flock(2) taken while a blob is written
 * ```
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { env } from "./_hub_http.ts";

/** A full commit hash, as `huggingface_hub` recognizes one. */
export const COMMIT_HASH = /^[0-9a-f]{40}$/;

function join(...parts: string[]): string {
  return parts.map((p, i) => (i === 0 ? p.replace(/\/+$/, "") : p.replace(/^\/+|\/+$/g, "")))
    .join("/");
}

function home(): string | undefined {
  return env("HOME") ?? env("USERPROFILE");
}

function expandHome(p: string): string {
  const h = home();
  return h && (p === "~" || p.startsWith("~/")) ? h + p.slice(1) : p;
}

/**
 * The Hugging Face hub cache: `$HF_HUB_CACHE` (or the older
 * `$HUGGINGFACE_HUB_CACHE`), else `$HF_HOME/hub`, else
 * `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
 *
 * @example
 * ```ts
 * import { hubCacheDir } from "./_hub_cache.ts";
 * console.log(hubCacheDir()); // e.g. "/home/me/.cache/huggingface/hub"
 * ```
 *
 * @returns The folder (it may not exist yet).
 */
export function hubCacheDir(): string {
  const explicit = env("HF_HUB_CACHE") ?? env("HUGGINGFACE_HUB_CACHE");
  if (explicit) return expandHome(explicit);
  const hfHome = env("HF_HOME");
  if (hfHome) return join(expandHome(hfHome), "hub");
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return join(expandHome(xdg), "huggingface", "hub");
  const h = home();
  if (!h) {
    throw new GptqError("HUB", "cannot find the Hugging Face cache: HOME is not set", {
      hint: "set HF_HOME or HF_HUB_CACHE to a writable folder (and run with --allow-env)",
    });
  }
  return join(h, ".cache", "huggingface", "hub");
}

/** The paths of one repository in the cache. */
export interface RepoCache {
  /** `<cache>/models--owner--name`. */
  dir: string;
  /** `<cache>/.locks/models--owner--name`. */
  locks: string;
}

/**
 * Where a model repository lives in the cache.
 *
 * @param cacheDir The hub cache.
 * @param repo `owner/name`.
 * @returns Its folders.
 */
export function repoCache(cacheDir: string, repo: string): RepoCache {
  const folder = ["models", ...repo.split("/")].join("--");
  return { dir: join(cacheDir, folder), locks: join(cacheDir, ".locks", folder) };
}

/**
 * Whether a path is a file (following symlinks).
 *
 * @param path The path.
 * @returns True for a file or a link to one.
 */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return false;
    throw e;
  }
}

/**
 * The commit a revision names in the cache: itself when it is a full commit
 * hash, else the content of `refs/<revision>`.
 *
 * @param repo The repository's cache.
 * @param revision A branch, tag or commit.
 * @returns The commit, or `undefined` when the cache does not know the revision.
 */
export async function readRef(repo: RepoCache, revision: string): Promise<string | undefined> {
  if (COMMIT_HASH.test(revision)) return revision;
  try {
    const c = (await Deno.readTextFile(join(repo.dir, "refs", revision))).trim();
    return c === "" ? undefined : c;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw e;
  }
}

/**
 * Records which commit a branch or tag points to (atomically; nothing for a commit hash).
 *
 * @param repo The repository's cache.
 * @param revision The branch or tag.
 * @param commit Its commit.
 */
export async function writeRef(repo: RepoCache, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const path = join(repo.dir, "refs", revision);
  if ((await readRef(repo, revision).catch(() => undefined)) === commit) return;
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.writeTextFile(tmp, commit);
  await Deno.rename(tmp, path);
}

/**
 * Points `snapshots/<commit>/<file>` at a blob: a relative symlink as
 * `huggingface_hub` makes, or a copy where symlinks cannot be made.
 *
 * @param blob The blob's path.
 * @param pointer The snapshot file's path.
 */
export async function linkBlob(blob: string, pointer: string): Promise<void> {
  const dir = pointer.slice(0, pointer.lastIndexOf("/"));
  await Deno.mkdir(dir, { recursive: true });
  await Deno.remove(pointer).catch(() => {});
  // snapshots/<commit>/<file> -> ../../blobs/<etag> (deeper files need more "..").
  const depth = pointer.split("/").length - blob.split("/").length + 1;
  const rel = `${"../".repeat(Math.max(depth, 1))}blobs/${blob.slice(blob.lastIndexOf("/") + 1)}`;
  try {
    await Deno.symlink(rel, pointer);
    if (await isFile(pointer)) return;
    await Deno.remove(pointer);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists && await isFile(pointer)) return;
  }
  const tmp = `${pointer}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.copyFile(blob, tmp);
  await Deno.rename(tmp, pointer);
}

/**
 * Runs `fn` holding an exclusive `flock(2)` on `path` (the lock `huggingface_hub`
 * takes too), so two processes never write the same blob at once.
 *
 * @param path The lock file.
 * @param fn What to do under the lock.
 * @returns What `fn` returns.
 */
export async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  let f: Deno.FsFile | undefined;
  try {
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    f = await Deno.open(path, { write: true, create: true });
    await f.lock(true);
  } catch {
    // No lock where the file system has none (as huggingface_hub's WeakFileLock): go on.
  }
  try {
    return await fn();
  } finally {
    f?.close(); // releases the lock
  }
}

/**
 * What a snapshot folder lacks to be loaded: `config.json` and the weights
 * (every shard an index names, or at least one `.safetensors` file).
 *
 * @param dir `snapshots/<commit>`.
 * @returns The missing files (empty when complete).
 */
export async function snapshotMissing(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) names.push(e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return ["config.json", "*.safetensors"];
    }
    throw e;
  }
  const missing: string[] = [];
  if (!(await isFile(join(dir, "config.json")))) missing.push("config.json");
  const index = names.includes("model.safetensors.index.json")
    ? "model.safetensors.index.json"
    : names.find((n) => n.endsWith(".safetensors.index.json"));
  if (index) {
    let shards: string[] = [];
    try {
      const j = JSON.parse(await Deno.readTextFile(join(dir, index)));
      shards = [...new Set(Object.values(j?.weight_map ?? {}).map(String))];
    } catch {
      return [...missing, index];
    }
    for (const s of shards) if (!(await isFile(join(dir, s)))) missing.push(s);
    return missing;
  }
  let weights = false;
  for (const n of names) {
    if (n.endsWith(".safetensors") && await isFile(join(dir, n))) weights = true;
  }
  if (!weights) missing.push("*.safetensors");
  return missing;
}
