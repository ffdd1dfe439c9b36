// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The two kinds of Hub request behind `hub.ts`: the revision listing
 * (`GET {endpoint}/api/models/{id}/revision/{rev}?blobs=true`) and one file
 * (`GET {endpoint}/{id}/resolve/{commit}/{file}`) brought into
 * `snapshots/<commit>/` through `blobs/<etag>`.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { isFile, linkBlob, type RepoCache, withLock } from "./_hub_cache.ts";
import type { HubSibling } from "./_hub_files.ts";
import { downloadToPartial } from "./_hub_download.ts";
import { etagSha256, hubGet, type HubGetResult, HubHttpError, reasonOf } from "./_hub_http.ts";

/** What to say when the Hub cannot be reached. */
export const UNREACHABLE_HINT = "these machines cannot reach the Hub: pass a local folder or set " +
  "HF_ENDPOINT to a mirror";

/** A revision's commit and files. */
export interface RepoInfo {
  /** The commit. */
  sha: string;
  /** The files. */
  siblings: HubSibling[];
}

/** Looks up a revision's commit and files; throws GptqError for answers that are final. */
export async function repoInfo(
  endpoint: string,
  repo: string,
  revision: string,
  token: string | undefined,
  label: string,
): Promise<RepoInfo> {
  const url = `${endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const { res } = await hubGet(url, { endpoint, token, headers: { accept: "application/json" } });
  if (!res.ok) {
    await res.body?.cancel();
    const code = res.headers.get("x-error-code") ?? "";
    const said = res.headers.get("x-error-message");
    const http = `HTTP ${res.status}${said ? `: ${said}` : ""}`;
    if (res.status >= 500 || res.status === 429) {
      throw new HubHttpError("status", http, res.status);
    }
    if (code === "RevisionNotFound") {
      throw new GptqError(
        "HUB",
        `revision '${revision}' of '${repo}' was not found on ${endpoint} (${http})`,
        { hint: "check --revision: a branch, a tag or a commit of the repository" },
      );
    }
    if (code === "GatedRepo") {
      throw new GptqError("HUB", `'${repo}' is gated on ${endpoint} (${http})`, {
        hint: `accept its terms on ${endpoint}/${repo} and set HF_TOKEN to a token of that account`,
      });
    }
    if (res.status === 401 || res.status === 403 || res.status === 404) {
      throw new GptqError(
        "HUB",
        `'${label}' is not a local folder, and ${endpoint} has no model '${repo}' that can be read ` +
          `(${http})`,
        {
          hint: token
            ? "check the id and the revision; HF_TOKEN is set but gives no access"
            : "check the path or the id; a private or gated model needs HF_TOKEN",
        },
      );
    }
    throw new GptqError("HUB", `the Hub at ${endpoint} refused '${label}' (${http})`);
  }
  let j: { sha?: unknown; siblings?: unknown };
  try {
    j = await res.json();
  } catch (e) {
    throw new HubHttpError("broken", `the model listing is not JSON (${reasonOf(e)})`);
  }
  const sha = typeof j?.sha === "string" ? j.sha : "";
  if (!/^[\w-]+$/.test(sha) || !Array.isArray(j.siblings)) {
    throw new GptqError("HUB", `${url} answered without a commit or a file list`, {
      hint: "is HF_ENDPOINT a Hugging Face Hub (or a mirror that serves /api/models)?",
    });
  }
  const siblings = (j.siblings as unknown[]).filter((s): s is HubSibling =>
    typeof (s as HubSibling | null)?.rfilename === "string"
  );
  return { sha, siblings };
}

/** Everything one download needs. */
export interface Job {
  repo: string;
  label: string;
  endpoint: string;
  token: string | undefined;
  cache: RepoCache;
  commit: string;
  dir: string;
  siblings: Map<string, HubSibling>;
  retries: number;
  log: (line: string) => void;
}

/**
 * Brings one file into `snapshots/<commit>/`: links an existing blob, else
 * downloads it (resuming `blobs/<etag>.incomplete`) under the blob's lock.
 * Returns the bytes received.
 */
export async function fetchFile(
  job: Job,
  file: string,
  onBytes: (fileBytes: number, size: number | undefined) => void,
): Promise<number> {
  const { endpoint, token, cache } = job;
  const pointer = `${job.dir}/${file}`;
  const sib = job.siblings.get(file);
  const url = `${endpoint}/${job.repo}/resolve/${job.commit}/${
    file.split("/").map(encodeURIComponent).join("/")
  }`;
  const where = `${file} of ${job.label}`;
  const lfsSha = sib?.lfs?.sha256 ?? sib?.lfs?.oid;
  // A blob the listing already identifies (LFS SHA-256 or git blob id) needs no request.
  const known = lfsSha ?? sib?.blobId;
  if (known && /^[\w-]+$/.test(known) && await isFile(`${cache.dir}/blobs/${known}`)) {
    await linkBlob(`${cache.dir}/blobs/${known}`, pointer);
    return 0;
  }
  let first: HubGetResult;
  try {
    first = await hubGet(url, { endpoint, token, stopAtOtherOrigin: true });
  } catch (e) {
    throw new GptqError("HUB", `cannot download ${where} from ${endpoint}: ${reasonOf(e)}`, {
      hint: UNREACHABLE_HINT,
      cause: e,
    });
  }
  if (!first.res.ok && first.location === undefined) {
    await first.res.body?.cancel();
    throw new GptqError(
      "HUB",
      `cannot download ${where}: HTTP ${first.res.status} ${first.res.statusText}`.trim(),
      { file: url, hint: "run again later; if it repeats, the repository or mirror is broken" },
    );
  }
  const etag = first.meta.etag ?? lfsSha ?? sib?.blobId;
  if (!etag || !/^[\w-][\w.-]*$/.test(etag)) {
    await first.res.body?.cancel();
    throw new GptqError("HUB", `the Hub gave no usable ETag for ${where} ('${etag ?? ""}')`, {
      file: url,
      hint: "is HF_ENDPOINT a Hugging Face Hub or a faithful mirror?",
    });
  }
  const blob = `${cache.dir}/blobs/${etag}`;
  const size = first.meta.size ?? sib?.size ?? sib?.lfs?.size;
  const sha256 = etagSha256(etag) ?? lfsSha?.toLowerCase();
  const reuse = async () => {
    await first.res.body?.cancel();
    await linkBlob(blob, pointer);
    return 0;
  };
  if (await isFile(blob)) return await reuse();
  await Deno.mkdir(`${cache.dir}/blobs`, { recursive: true });
  return await withLock(`${cache.locks}/${etag}.lock`, async () => {
    if (await isFile(blob)) return await reuse();
    const partial = `${blob}.incomplete`;
    try {
      const r = await downloadToPartial({
        url: first.location ?? url,
        endpoint,
        token,
        partial,
        resume: true,
        retries: job.retries,
        first,
        expectSize: size,
        expectSha256: sha256,
        refuseEmpty: false,
        onBytes: (b) => onBytes(b, size),
        onRetry: (b, why) =>
          job.log(`${where}: the transfer broke at ${b} bytes (${why}); continuing with Range`),
      });
      await Deno.rename(partial, blob);
      await linkBlob(blob, pointer);
      return r.received;
    } catch (e) {
      if (!(e instanceof HubHttpError)) throw e;
      if (e.kind === "sha256" || e.kind === "size") {
        throw new GptqError("HUB_INTEGRITY", `download refused: ${e.message}`, {
          file: `${job.repo}/${file}`,
          hint: "the partial file was removed; run again to download it afresh, and if it " +
            "repeats the mirror or the network corrupts data",
          cause: e,
        });
      }
      if (e.kind === "write") {
        throw new GptqError("HUB", `cannot write the Hugging Face cache: ${e.message}`, {
          hint: "set HF_HOME or HF_HUB_CACHE to a writable folder with enough space",
          cause: e,
        });
      }
      throw new GptqError("HUB", `downloading ${where} stopped: ${e.message}`, {
        file: partial,
        hint: e.kind === "unreachable"
          ? UNREACHABLE_HINT
          : "run the command again: it continues where it stopped, the partial file is kept",
        cause: e,
      });
    }
  });
}
