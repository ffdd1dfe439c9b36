// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * HTTP plumbing shared by the Hugging Face Hub downloads (model snapshots in
 * `hub.ts`, calibration datasets in `quant/datasets.ts`):
 *
 * - the endpoint, token, offline switch and timeouts, read from the
 *   environment as `huggingface_hub` reads them;
 * - requests that follow redirects by hand, so the Hub's `X-Repo-Commit`,
 *   `X-Linked-Etag` and `X-Linked-Size` on its 302 to the CDN are seen and
 *   the token is only ever sent to the endpoint's own origin;
 * - a streamed download into a partial file that can continue with `Range`
 *   after a broken connection and is checked against the size and SHA-256 the
 *   Hub reports.
 *
 * @module
 */

/**
 * Reads an environment variable; empty or unreadable (no `--allow-env`) reads as unset.
 *
 * @param name The variable.
 * @returns Its value, or `undefined`.
 */
export function env(name: string): string | undefined {
  try {
    const v = Deno.env.get(name);
    return v === "" ? undefined : v;
  } catch {
    return undefined;
  }
}

/**
 * The Hub endpoint used when none is given.
 *
 * @example
 * ```ts
 * import { hubEndpoint } from "./_hub_http.ts";
 * console.log(hubEndpoint()); // "https://huggingface.co" unless HF_ENDPOINT is set
 * ```
 *
 * @returns `$GPTQ_HF_ENDPOINT`, `$HF_ENDPOINT` or `https://huggingface.co`, without a trailing slash.
 */
export function hubEndpoint(): string {
  return (env("GPTQ_HF_ENDPOINT") ?? env("HF_ENDPOINT") ?? "https://huggingface.co").replace(
    /\/+$/,
    "",
  );
}

/**
 * Whether `HF_HUB_OFFLINE` asks for cache-only operation (`1`, `true`, `yes`, `on`).
 *
 * @example
 * ```ts
 * import { hubOffline } from "./_hub_http.ts";
 * console.log(typeof hubOffline()); // "boolean"
 * ```
 *
 * @returns True when offline mode is on.
 */
export function hubOffline(): boolean {
  const v = env("HF_HUB_OFFLINE")?.trim().toLowerCase();
  return v === "1" || v === "true" || v === "yes" || v === "on";
}

/**
 * The Hub token from the environment (`HF_TOKEN`, or the older `HUGGING_FACE_HUB_TOKEN`).
 *
 * @returns The token, or `undefined`.
 */
export function hubToken(): string | undefined {
  return env("HF_TOKEN") ?? env("HUGGING_FACE_HUB_TOKEN");
}

/**
 * A timeout in milliseconds from an environment variable holding seconds.
 *
 * @param name The variable (e.g. `HF_HUB_ETAG_TIMEOUT`).
 * @param fallbackSeconds The default.
 * @returns Milliseconds.
 */
export function envTimeoutMs(name: string, fallbackSeconds: number): number {
  const v = Number(env(name));
  return (Number.isFinite(v) && v > 0 ? v : fallbackSeconds) * 1000;
}

/**
 * An error's message, with its cause's when that adds something.
 *
 * @param e The error.
 * @returns One line.
 */
export function reasonOf(e: unknown): string {
  if (e instanceof Error) {
    const c = (e as { cause?: unknown }).cause;
    return c instanceof Error && c.message && !e.message.includes(c.message)
      ? `${e.message}: ${c.message}`
      : e.message;
  }
  return String(e);
}

/**
 * An ETag header as `huggingface_hub` normalizes it (no `W/`, no quotes).
 *
 * @param v The header.
 * @returns The bare value, or `undefined`.
 */
export function normalizeEtag(v: string | null | undefined): string | undefined {
  if (!v) return undefined;
  const s = v.trim().replace(/^W\//, "").replace(/"/g, "").trim();
  return s === "" ? undefined : s;
}

/**
 * The SHA-256 an ETag carries (the Hub's `X-Linked-Etag` of LFS files), if it is one.
 *
 * @param v The header or normalized value.
 * @returns 64 lowercase hex digits, or `undefined`.
 */
export function etagSha256(v: string | null | undefined): string | undefined {
  const s = normalizeEtag(v)?.toLowerCase();
  return s !== undefined && /^[0-9a-f]{64}$/.test(s) ? s : undefined;
}

/** What went wrong in a {@linkcode HubHttpError}. */
export type HubHttpFailure =
  | "unreachable"
  | "status"
  | "redirects"
  | "broken"
  | "size"
  | "sha256"
  | "empty"
  | "write";

/** An HTTP or integrity failure; `message` is the short reason callers put in their error. */
export class HubHttpError extends Error {
  /** What went wrong. */
  readonly kind: HubHttpFailure;
  /** The HTTP status, for `status`. */
  readonly status: number | undefined;

  /**
   * @param kind What went wrong.
   * @param message The reason, one phrase.
   * @param status The HTTP status, if any.
   * @param cause The underlying error.
   */
  constructor(kind: HubHttpFailure, message: string, status?: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "HubHttpError";
    this.kind = kind;
    this.status = status;
  }
}

/** Headers the Hub answers with (from its own origin only, never the CDN's). */
export interface HubResponseMeta {
  /** `X-Repo-Commit`. */
  commit?: string;
  /** `X-Linked-Etag`, else `ETag`, normalized. */
  etag?: string;
  /** `X-Linked-Size`, else `Content-Length` of a plain 200 from the Hub. */
  size?: number;
}

/** Options of {@linkcode hubGet}. */
export interface HubGetOptions {
  /** The endpoint: only requests to its origin carry the token and are read for metadata. */
  endpoint: string;
  /** Sent as `Authorization: Bearer` to the endpoint's origin only. */
  token?: string | undefined;
  /** `HEAD` or `GET` (default). */
  method?: "GET" | "HEAD";
  /** Ask for the bytes from this offset on (`Range: bytes=N-`). */
  rangeFrom?: number;
  /** Return a redirect to another origin instead of following it. */
  stopAtOtherOrigin?: boolean;
  /** Give up when no response headers arrive in this time (default 10 s). */
  timeoutMs?: number;
  /** Extra query/accept headers. */
  headers?: Record<string, string>;
}

/** The answer of {@linkcode hubGet}. */
export interface HubGetResult {
  /** The final response (a redirect when `stopAtOtherOrigin` stopped at one). */
  res: Response;
  /** The Hub's headers seen on the way. */
  meta: HubResponseMeta;
  /** The URL that gave `res`. */
  url: string;
  /** The redirect target when `res` is a redirect that was not followed. */
  location: string | undefined;
  /** Aborts the request (used to time out a stalled body). */
  abort: AbortController;
}

/**
 * A header holding a non-negative integer.
 *
 * @param v The header.
 * @returns The number, or `undefined`.
 */
export function intHeader(v: string | null): number | undefined {
  return v !== null && /^\d+$/.test(v.trim()) ? Number(v.trim()) : undefined;
}

/**
 * Sends a request, following redirects by hand (at most 10): the token goes
 * only to the endpoint's origin, and the Hub's metadata headers are collected
 * from its own responses.
 *
 * @param url The URL.
 * @param opts Endpoint, token, range, timeout.
 * @returns The response and what the Hub said about the file.
 * @throws {HubHttpError} `unreachable` (connection refused, DNS, timeout) or `redirects`.
 */
export async function hubGet(url: string, opts: HubGetOptions): Promise<HubGetResult> {
  const origin = new URL(opts.endpoint).origin;
  const abort = new AbortController();
  const timeoutMs = opts.timeoutMs ?? envTimeoutMs("HF_HUB_ETAG_TIMEOUT", 10);
  const timer = setTimeout(
    () => abort.abort(new Error(`no answer in ${timeoutMs / 1000} s`)),
    timeoutMs,
  );
  const meta: HubResponseMeta = {};
  const linked: { etag?: string; size?: number } = {};
  let current = url;
  try {
    for (let hop = 0; hop < 10; hop++) {
      const here = new URL(current).origin;
      const headers: Record<string, string> = {
        "accept-encoding": "identity",
        "user-agent": "gptq-deno",
        ...opts.headers,
      };
      if (opts.token && here === origin) headers["authorization"] = `Bearer ${opts.token}`;
      if (opts.rangeFrom) headers["range"] = `bytes=${opts.rangeFrom}-`;
      let res: Response;
      try {
        res = await fetch(current, {
          method: opts.method ?? "GET",
          headers,
          redirect: "manual",
          signal: abort.signal,
        });
      } catch (e) {
        const why = abort.signal.aborted ? reasonOf(abort.signal.reason) : reasonOf(e);
        throw new HubHttpError("unreachable", why, undefined, e);
      }
      const location = res.headers.get("location");
      const redirect = res.status >= 300 && res.status < 400 && location !== null;
      if (here === origin) {
        // X-Linked-* (set on the Hub's redirect to its CDN) win over plain headers.
        const h = res.headers;
        const commit = h.get("x-repo-commit");
        if (commit) meta.commit = commit.trim();
        const linkedEtag = normalizeEtag(h.get("x-linked-etag"));
        const linkedSize = intHeader(h.get("x-linked-size"));
        if (linkedEtag) linked.etag = linkedEtag;
        if (linkedSize !== undefined) linked.size = linkedSize;
        const etag = normalizeEtag(h.get("etag"));
        if (etag) meta.etag = etag;
        if (!redirect && res.status === 200 && !h.get("content-encoding")) {
          const size = intHeader(h.get("content-length"));
          if (size !== undefined) meta.size = size;
        }
        if (linked.etag) meta.etag = linked.etag;
        if (linked.size !== undefined) meta.size = linked.size;
      }
      if (redirect) {
        const next = new URL(location!, current).href;
        if (opts.stopAtOtherOrigin && new URL(next).origin !== origin) {
          return { res, meta, url: current, location: next, abort };
        }
        await res.body?.cancel();
        current = next;
        continue;
      }
      return { res, meta, url: current, location: undefined, abort };
    }
    throw new HubHttpError("redirects", "too many redirects");
  } finally {
    clearTimeout(timer);
  }
}
