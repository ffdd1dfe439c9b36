// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * A streamed download into a partial file that continues with `Range` after a
 * broken connection (or in a later process) and is checked against the size
 * and SHA-256 the Hub reports. Shared by the model snapshots (`hub.ts`, which
 * keep `blobs/<etag>.incomplete` to resume) and the calibration datasets
 * (`quant/datasets.ts`, which start afresh).
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import {
  envTimeoutMs,
  hubGet,
  type HubGetResult,
  HubHttpError,
  type HubHttpFailure,
  intHeader,
  reasonOf,
} from "./_hub_http.ts";

/** Options of {@linkcode downloadToPartial}. */
export interface DownloadOptions {
  /** Where to (re)request the bytes from (the Hub's resolve URL or its redirect target). */
  url: string;
  /** The endpoint (only its origin sees the token). */
  endpoint: string;
  /** The token. */
  token?: string | undefined;
  /** The partial file the bytes go to. */
  partial: string;
  /**
   * Continue an existing partial file with `Range`, reconnect after a broken
   * connection (up to `retries` times), and keep the partial file when giving
   * up so a later call continues it. Without it the partial file is started
   * afresh and the caller removes it on failure.
   */
  resume: boolean;
  /** Reconnections after a broken connection (resume only; default 5). */
  retries?: number;
  /** An already open response for the whole file (used when nothing is to be resumed). */
  first?: HubGetResult;
  /** The file's size, when known. */
  expectSize?: number | undefined;
  /** The file's SHA-256, when known. */
  expectSha256?: string | undefined;
  /** Refuse an empty file (default: only when no size is known). */
  refuseEmpty?: boolean;
  /** Called with the bytes of this file on disk so far. */
  onBytes?: (bytes: number) => void;
  /** Called before reconnecting after a broken connection. */
  onRetry?: (bytes: number, reason: string) => void;
  /** Give up when no bytes arrive in this time (default `HF_HUB_DOWNLOAD_TIMEOUT` or 10 s). */
  stallMs?: number;
}

/** What {@linkcode downloadToPartial} wrote. */
export interface DownloadResult {
  /** Bytes in the partial file. */
  size: number;
  /** Their SHA-256. */
  sha256: string;
  /** Bytes received by this call (less than `size` after a resume). */
  received: number;
}

async function hashFile(path: string, hash: Hash, bytes: number): Promise<void> {
  const f = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(1 << 20);
    let left = bytes;
    while (left > 0) {
      const n = await f.read(buf.subarray(0, Math.min(buf.length, left)));
      if (n === null) throw new Error("the partial file shrank while reading it");
      hash.update(buf.subarray(0, n));
      left -= n;
    }
  } finally {
    f.close();
  }
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
}

/**
 * Streams a file into `opts.partial`, resuming where it stopped when asked,
 * then checks its size and SHA-256. The caller renames the partial file into
 * place. A size or SHA-256 mismatch removes the partial file (its bytes are
 * wrong, so resuming it would be too).
 *
 * @param opts Where from, where to, what to expect.
 * @returns The size and SHA-256 written.
 * @throws {HubHttpError} `status`, `broken`, `size`, `sha256`, `empty`, `write` or `unreachable`.
 */
export async function downloadToPartial(opts: DownloadOptions): Promise<DownloadResult> {
  const stallMs = opts.stallMs ?? envTimeoutMs("HF_HUB_DOWNLOAD_TIMEOUT", 10);
  let expectSize = opts.expectSize;
  let offset = opts.resume ? await fileSize(opts.partial) : 0;
  if (expectSize !== undefined && offset > expectSize) offset = 0;
  let hash = createHash("sha256");
  let file: Deno.FsFile;
  try {
    file = await Deno.open(opts.partial, { write: true, create: true });
    await file.truncate(offset);
    if (offset > 0) await hashFile(opts.partial, hash, offset);
    await file.seek(offset, Deno.SeekMode.Start);
  } catch (e) {
    await opts.first?.res.body?.cancel();
    throw new HubHttpError("write", `cannot write ${opts.partial}: ${reasonOf(e)}`, undefined, e);
  }
  let first = opts.first;
  let retries = opts.resume ? (opts.retries ?? 5) : 0;
  let received = 0;
  const bad = async (kind: HubHttpFailure, message: string): Promise<never> => {
    file.close();
    await Deno.remove(opts.partial).catch(() => {});
    throw new HubHttpError(kind, message);
  };
  try {
    opts.onBytes?.(offset);
    for (;;) {
      if (expectSize !== undefined && offset === expectSize && offset > 0) {
        await first?.res.body?.cancel();
        break;
      }
      let got: HubGetResult;
      if (first && offset === 0 && first.res.ok && first.location === undefined) got = first;
      else {
        await first?.res.body?.cancel();
        got = await hubGet(opts.url, {
          endpoint: opts.endpoint,
          token: opts.token,
          ...(offset > 0 ? { rangeFrom: offset } : {}),
        });
      }
      first = undefined;
      const { res } = got;
      if (res.status === 416 && offset > 0) {
        // Nothing left to send from `offset`: complete if the total agrees, else start over.
        await res.body?.cancel();
        const total = /^bytes \*\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
        if (total && Number(total[1]) === offset) {
          expectSize ??= offset;
          break;
        }
        offset = 0;
        hash = createHash("sha256");
        await file.truncate(0);
        await file.seek(0, Deno.SeekMode.Start);
        continue;
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new HubHttpError("status", `HTTP ${res.status} ${res.statusText}`.trim(), res.status);
      }
      if (offset > 0 && res.status !== 206) {
        // The server ignored Range: start over.
        offset = 0;
        hash = createHash("sha256");
        await file.truncate(0);
        await file.seek(0, Deno.SeekMode.Start);
      } else if (res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)/.exec(res.headers.get("content-range") ?? "");
        if (!m || Number(m[1]) !== offset) {
          await res.body?.cancel();
          throw new HubHttpError(
            "broken",
            `asked for the bytes from ${offset} on, the server sent '${
              res.headers.get("content-range")
            }'`,
          );
        }
        if (m[3] !== "*") expectSize ??= Number(m[3]);
      }
      if (res.status === 200 && !res.headers.get("content-encoding")) {
        expectSize ??= intHeader(res.headers.get("content-length"));
      }
      expectSize ??= got.meta.size;
      // Stream the body, aborting when it stalls.
      let timer = setTimeout(() => got.abort.abort(new Error("stalled")), stallMs);
      try {
        const reader = res.body!.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          clearTimeout(timer);
          timer = setTimeout(
            () => got.abort.abort(new Error(`no data for ${stallMs / 1000} s`)),
            stallMs,
          );
          hash.update(value);
          for (let o = 0; o < value.length;) {
            try {
              o += await file.write(value.subarray(o));
            } catch (e) {
              await reader.cancel().catch(() => {});
              throw new HubHttpError(
                "write",
                `cannot write ${opts.partial}: ${reasonOf(e)}`,
                undefined,
                e,
              );
            }
          }
          offset += value.length;
          received += value.length;
          opts.onBytes?.(offset);
        }
      } catch (e) {
        if (e instanceof HubHttpError) throw e;
        const reason = got.abort.signal.aborted ? reasonOf(got.abort.signal.reason) : reasonOf(e);
        if (retries-- > 0) {
          opts.onRetry?.(offset, reason);
          continue;
        }
        throw new HubHttpError(
          "broken",
          `the connection broke after ${offset} bytes (${reason})`,
          undefined,
          e,
        );
      } finally {
        clearTimeout(timer);
      }
      if (expectSize !== undefined && offset < expectSize && retries-- > 0) {
        opts.onRetry?.(offset, "the server ended the file early");
        continue;
      }
      break;
    }
    if (expectSize !== undefined && offset !== expectSize) {
      if (offset < expectSize && opts.resume) {
        throw new HubHttpError(
          "broken",
          `got ${offset} bytes, expected ${expectSize} (the server ended the file early)`,
        );
      }
      return await bad("size", `got ${offset} bytes, expected ${expectSize} (truncated download)`);
    }
    if (offset === 0 && (opts.refuseEmpty ?? expectSize === undefined)) {
      return await bad("empty", "the server sent an empty file");
    }
    const sha256 = hash.digest("hex");
    if (opts.expectSha256 !== undefined && sha256 !== opts.expectSha256) {
      return await bad(
        "sha256",
        `SHA-256 ${sha256} does not match the Hub's ${opts.expectSha256} (corrupted download)`,
      );
    }
    file.close();
    return { size: offset, sha256, received };
  } catch (e) {
    try {
      file.close();
    } catch { /* already closed */ }
    throw e;
  }
}
