// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Hugging Face Hub model ids wherever a model folder is accepted:
 * {@linkcode resolveModel} turns `owner/name` (or `owner/name@revision`) into a
 * local folder, downloading what the toolkit needs into the standard Hugging
 * Face cache so Python tools share it.
 *
 * - A path that exists locally always wins.
 * - The revision (branch, tag or commit; default `main`) is looked up with
 *   `GET {endpoint}/api/models/{id}/revision/{rev}?blobs=true` (its commit and
 *   files), then each needed file comes from
 *   `GET {endpoint}/{id}/resolve/{commit}/{file}`, whose `X-Linked-Etag`/`ETag`
 *   names the blob and whose `X-Linked-Size` and LFS SHA-256 the bytes are
 *   checked against.
 * - Files: configs, tokenizer files, chat template, GPTQ config and the
 *   safetensors weights (only the shards the index names); `.bin`, `.pt`,
 *   `.h5`, `.msgpack`, `.onnx`, `.gguf` and sub-folders are skipped, and a
 *   repository without safetensors is refused.
 * - The cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
 *   `~/.cache/huggingface/hub`) is laid out as `huggingface_hub` lays it out:
 *   `models--owner--name/blobs/<etag>`, `snapshots/<commit>/<file>` (relative
 *   symlinks, or copies where links fail) and `refs/<revision>`.
 * - Downloads stream to `blobs/<etag>.incomplete` and continue with `Range`
 *   after a broken connection or a killed process; a size or SHA-256 mismatch
 *   removes the partial file and fails with `HUB_INTEGRITY`.
 * - `HF_TOKEN` goes to the endpoint's origin only (not to the CDN it
 *   redirects to); `HF_ENDPOINT` (or `GPTQ_HF_ENDPOINT`) picks a mirror;
 *   `HF_HUB_OFFLINE=1` uses the cache only. Files already in the cache are not
 *   fetched again, and a complete cached snapshot is used when the Hub cannot
 *   be reached.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import {
  COMMIT_HASH,
  hubCacheDir,
  isFile,
  readRef,
  repoCache,
  snapshotMissing,
  writeRef,
} from "./_hub_cache.ts";
import { fetchFile, type Job, type RepoInfo, repoInfo, UNREACHABLE_HINT } from "./_hub_fetch.ts";
import { indexShards, planHubFiles } from "./_hub_files.ts";
import { hubEndpoint, HubHttpError, hubOffline, hubToken, reasonOf } from "./_hub_http.ts";

export { hubCacheDir };

/** A parsed Hub model id. */
export interface HubModelId {
  /** `owner/name`. */
  repo: string;
  /** The revision after `@`, if any. */
  revision?: string;
}

const ID_PART = /^[A-Za-z0-9_](?:[\w.-]{0,94}[A-Za-z0-9_])?$/;

/**
 * Parses `owner/name` or `owner/name@revision` (the revision may contain `/`,
 * e.g. `refs/pr/1`).
 *
 * @example
 * ```ts
 * import { parseHubId } from "./hub.ts";
 * console.log(parseHubId("HuggingFaceTB/SmolLM2-135M@main"));
 * // { repo: "HuggingFaceTB/SmolLM2-135M", revision: "main" }
 * console.log(parseHubId("./models/llama")); // null
 * ```
 *
 * @param s The text.
 * @returns The id, or null when `s` is not shaped like one.
 */
export function parseHubId(s: string): HubModelId | null {
  const at = s.indexOf("@");
  const repo = at < 0 ? s : s.slice(0, at);
  const revision = at < 0 ? undefined : s.slice(at + 1);
  const parts = repo.split("/");
  if (parts.length !== 2 || !parts.every((p) => ID_PART.test(p))) return null;
  if (repo.includes("--") || repo.includes("..") || repo.endsWith(".git")) return null;
  if (revision !== undefined && !validRevision(revision)) return null;
  return revision === undefined ? { repo } : { repo, revision };
}

function validRevision(r: string): boolean {
  return r.length > 0 && r.length <= 256 &&
    r.split("/").every((seg) =>
      seg !== "" && seg !== "." && seg !== ".." && /^[\w.+-]+$/.test(seg)
    );
}

/** Download progress, reported per chunk. */
export interface HubDownloadProgress {
  /** `owner/name`. */
  repo: string;
  /** The file being downloaded. */
  file: string;
  /** Its bytes on disk so far (including bytes resumed from an earlier try). */
  fileBytes: number;
  /** Its size, when known. */
  fileSize: number | undefined;
  /** Bytes of all files to download so far. */
  bytes: number;
  /** Bytes of all files to download (sizes the Hub lists). */
  totalBytes: number;
  /** Files finished. */
  files: number;
  /** Files to download. */
  totalFiles: number;
}

/** Options of {@linkcode resolveModel} and {@linkcode downloadHubModel}. */
export interface ResolveModelOptions {
  /** Branch, tag or commit (default: the id's `@revision`, else `main`). */
  revision?: string;
  /** The Hub (default `$GPTQ_HF_ENDPOINT`, `$HF_ENDPOINT` or `https://huggingface.co`). */
  endpoint?: string;
  /** The hub cache (default {@linkcode hubCacheDir}). */
  cacheDir?: string;
  /** Use the cache only (default: `HF_HUB_OFFLINE`). */
  offline?: boolean;
  /** Sent to the endpoint's origin only (default `$HF_TOKEN`). */
  token?: string;
  /** Reconnections per file after a broken connection (default 5). */
  retries?: number;
  /** Download progress (the library prints nothing itself). */
  onProgress?: (p: HubDownloadProgress) => void;
  /** One-line notes: what is downloaded, cache fallbacks, resumed transfers. */
  onLog?: (line: string) => void;
}

/** A model snapshot in the cache. */
export interface HubSnapshot {
  /** `snapshots/<commit>`: a model folder. */
  dir: string;
  /** `owner/name`. */
  repo: string;
  /** The revision asked for. */
  revision: string;
  /** The commit it resolved to. */
  commit: string;
  /** The files in the snapshot. */
  files: string[];
  /** Bytes received by this call. */
  downloadedBytes: number;
  /** True when nothing had to be downloaded. */
  fromCache: boolean;
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return false;
    throw e;
  }
}

/**
 * Turns a model folder or a Hub id into a local folder. A path that exists
 * locally is returned as is; `owner/name[@revision]` is downloaded (once) into
 * the Hugging Face cache and its snapshot folder returned; anything else is
 * returned unchanged for the caller to report as a missing path.
 *
 * @example
 * ```ts ignore
 * import { resolveModel } from "./hub.ts";
 * const dir = await resolveModel("HuggingFaceTB/SmolLM2-135M-Instruct", {
 *   onLog: console.error,
 * });
 * // ~/.cache/huggingface/hub/models--HuggingFaceTB--SmolLM2-135M-Instruct/snapshots/<commit>
 * ```
 *
 * @param pathOrId A local path, `owner/name` or `owner/name@revision`.
 * @param opts Revision, endpoint, cache, offline mode, progress.
 * @returns A local path.
 */
export async function resolveModel(
  pathOrId: string,
  opts: ResolveModelOptions = {},
): Promise<string> {
  if (await pathExists(pathOrId)) {
    if (opts.revision !== undefined) {
      opts.onLog?.(`${pathOrId} is a local folder: the revision '${opts.revision}' is ignored`);
    }
    return pathOrId;
  }
  if (!parseHubId(pathOrId)) return pathOrId;
  return (await downloadHubModel(pathOrId, opts)).dir;
}

function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}

function transient(e: unknown): e is HubHttpError {
  return e instanceof HubHttpError &&
    (e.kind === "unreachable" || e.kind === "broken" ||
      (e.kind === "status" && (e.status! >= 500 || e.status === 429)));
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

/**
 * Downloads what the toolkit needs from a Hub model repository into the
 * Hugging Face cache (files already there are not fetched again) and returns
 * the snapshot. See the module doc for the routes, the layout and the checks.
 *
 * @example
 * ```ts ignore
 * import { downloadHubModel } from "./hub.ts";
 * const snap = await downloadHubModel("HuggingFaceTB/SmolLM2-135M-Instruct", { revision: "main" });
 * console.log(snap.commit, snap.dir, snap.files);
 * ```
 *
 * @param id `owner/name` or `owner/name@revision`.
 * @param opts Revision, endpoint, cache, offline mode, progress.
 * @returns The snapshot.
 */
export async function downloadHubModel(
  id: string,
  opts: ResolveModelOptions = {},
): Promise<HubSnapshot> {
  const parsed = parseHubId(id);
  if (!parsed) {
    throw new GptqError("INVALID_ARGUMENT", `'${id}' is not a Hub model id`, {
      hint: "use owner/name or owner/name@revision",
    });
  }
  if (opts.revision !== undefined && !validRevision(opts.revision)) {
    throw new GptqError("INVALID_ARGUMENT", `'${opts.revision}' is not a valid revision`, {
      hint: "use a branch, a tag or a commit hash",
    });
  }
  if (
    opts.revision !== undefined && parsed.revision !== undefined &&
    opts.revision !== parsed.revision
  ) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `'${id}' names revision '${parsed.revision}' but --revision says '${opts.revision}'`,
      { hint: "give the revision once" },
    );
  }
  const { repo } = parsed;
  const revision = opts.revision ?? parsed.revision ?? "main";
  const label = `${repo}@${revision}`;
  const cache = repoCache(opts.cacheDir ?? hubCacheDir(), repo);
  const endpoint = (opts.endpoint ?? hubEndpoint()).replace(/\/+$/, "");
  const log = opts.onLog ?? (() => {});

  const cached = async () => {
    const commit = await readRef(cache, revision);
    if (!commit || !/^[\w-]+$/.test(commit)) return null;
    const dir = `${cache.dir}/snapshots/${commit}`;
    return { commit, dir, missing: await snapshotMissing(dir) };
  };
  const fromCache = async (c: { commit: string; dir: string }): Promise<HubSnapshot> => ({
    dir: c.dir,
    repo,
    revision,
    commit: c.commit,
    files: await listFiles(c.dir),
    downloadedBytes: 0,
    fromCache: true,
  });

  if (opts.offline ?? hubOffline()) {
    const c = await cached();
    if (c && c.missing.length === 0) return await fromCache(c);
    throw new GptqError(
      "HUB",
      c
        ? `'${label}' is only partly in the Hugging Face cache (missing ${
          c.missing.join(", ")
        }) and offline mode (HF_HUB_OFFLINE) forbids downloading`
        : `'${label}' is not in the Hugging Face cache and offline mode (HF_HUB_OFFLINE) ` +
          "forbids downloading it",
      {
        file: c?.dir ?? cache.dir,
        hint: "unset HF_HUB_OFFLINE to download it once, or pass a local model folder",
      },
    );
  }
  if (COMMIT_HASH.test(revision)) {
    // A commit never changes: a complete snapshot needs no request.
    const c = await cached();
    if (c && c.missing.length === 0) return await fromCache(c);
  }

  const token = opts.token ?? hubToken();
  let info: RepoInfo;
  try {
    info = await repoInfo(endpoint, repo, revision, token, label);
  } catch (e) {
    if (!transient(e)) throw e;
    const c = await cached();
    if (c && c.missing.length === 0) {
      log(
        `${label}: the Hub at ${endpoint} cannot be reached (${e.message}); using the cached ` +
          `snapshot ${c.commit}`,
      );
      return await fromCache(c);
    }
    throw new GptqError(
      "HUB",
      `'${label}' is not a local folder, and the Hub at ${endpoint} cannot be reached to ` +
        `download it (${e.message})`,
      { hint: UNREACHABLE_HINT, cause: e },
    );
  }

  const plan = planHubFiles(info.siblings.map((s) => s.rfilename));
  if (!plan.index && plan.weights.length === 0) {
    throw new GptqError(
      "HUB",
      `'${label}' has no safetensors weights${
        plan.foreign.length ? ` (only ${plan.foreign.slice(0, 4).join(", ")})` : ""
      }`,
      {
        hint: "this toolkit reads safetensors only: pick a revision that has them (the Hub's " +
          "conversion bot often opens one, e.g. --revision refs/pr/1), or convert the weights " +
          "and pass the local folder",
      },
    );
  }
  if (!plan.small.includes("config.json")) {
    throw new GptqError("HUB", `'${label}' has no config.json`, {
      hint: "is it a transformers model repository?",
    });
  }
  const job: Job = {
    repo,
    label,
    endpoint,
    token,
    cache,
    commit: info.sha,
    dir: `${cache.dir}/snapshots/${info.sha}`,
    siblings: new Map(info.siblings.map((s) => [s.rfilename, s])),
    retries: opts.retries ?? 5,
    log,
  };
  try {
    let weights = plan.weights;
    let received = 0;
    if (plan.index) {
      if (!(await isFile(`${job.dir}/${plan.index}`))) {
        received += await fetchFile(job, plan.index, () => {});
      }
      try {
        weights = indexShards(JSON.parse(await Deno.readTextFile(`${job.dir}/${plan.index}`)));
      } catch (e) {
        throw new GptqError("HUB", `${plan.index} of ${label} is unusable: ${reasonOf(e)}`, {
          file: `${job.dir}/${plan.index}`,
          cause: e,
        });
      }
      const absent = weights.filter((w) => !job.siblings.has(w));
      if (absent.length) {
        throw new GptqError(
          "HUB",
          `${plan.index} of ${label} names shards the repository does not have: ${
            absent.slice(0, 3).join(", ")
          }`,
        );
      }
    }
    const files = [...plan.small, ...(plan.index ? [plan.index] : []), ...weights];
    const todo: string[] = [];
    for (const f of files) if (!(await isFile(`${job.dir}/${f}`))) todo.push(f);
    const totalBytes = todo.reduce((a, f) => a + (job.siblings.get(f)?.size ?? 0), 0);
    if (todo.length) {
      log(
        `downloading ${label} (commit ${info.sha.slice(0, 12)}): ${todo.length} file(s), ` +
          `${mib(totalBytes)} into ${job.dir}`,
      );
    }
    let doneBytes = 0;
    for (let i = 0; i < todo.length; i++) {
      const file = todo[i]!;
      const report = (fileBytes: number, fileSize: number | undefined) =>
        opts.onProgress?.({
          repo,
          file,
          fileBytes,
          fileSize,
          bytes: doneBytes + fileBytes,
          totalBytes,
          files: i,
          totalFiles: todo.length,
        });
      received += await fetchFile(job, file, report);
      doneBytes += job.siblings.get(file)?.size ?? 0;
      opts.onProgress?.({
        repo,
        file,
        fileBytes: job.siblings.get(file)?.size ?? 0,
        fileSize: job.siblings.get(file)?.size,
        bytes: doneBytes,
        totalBytes,
        files: i + 1,
        totalFiles: todo.length,
      });
    }
    await writeRef(cache, revision, info.sha);
    return {
      dir: job.dir,
      repo,
      revision,
      commit: info.sha,
      files,
      downloadedBytes: received,
      fromCache: todo.length === 0,
    };
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
      throw new GptqError("HUB", `cannot write the Hugging Face cache: ${reasonOf(e)}`, {
        file: cache.dir,
        hint: "set HF_HOME or HF_HUB_CACHE to a writable folder (and run with --allow-write)",
        cause: e,
      });
    }
    throw e;
  }
}
