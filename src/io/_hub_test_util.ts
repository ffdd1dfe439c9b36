// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Test helper: a fake Hugging Face Hub on 127.0.0.1 that answers the routes
 * and headers `huggingface_hub` uses (`/api/models/{id}/revision/{rev}` with
 * `sha` and `siblings`, `/{id}/resolve/{rev}/{file}` with `X-Repo-Commit`,
 * `ETag`/`X-Linked-Etag`, `X-Linked-Size` and a 302 to a CDN on another
 * origin for LFS files), with `Range` support and injectable faults.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** A file of a fake repository. */
export interface FakeFile {
  /** Path in the repository. */
  name: string;
  /** Content. */
  bytes: Uint8Array<ArrayBuffer>;
  /** Stored with LFS (served through the CDN redirect, SHA-256 reported). */
  lfs: boolean;
}

/** A fake repository: revision name → commit, commit → files. */
export interface FakeRepo {
  /** Branches and tags. */
  refs: Record<string, string>;
  /** Files of each commit. */
  commits: Record<string, FakeFile[]>;
}

/** One request the fake saw. */
export interface FakeRequest {
  /** Which server. */
  server: "hub" | "cdn";
  /** URL path (decoded). */
  path: string;
  /** `Authorization` header. */
  auth: string | null;
  /** `Range` header. */
  range: string | null;
}

/** The running fake. */
export interface FakeHub {
  /** The Hub endpoint, `http://127.0.0.1:PORT`. */
  url: string;
  /** Every request, in order. */
  requests: FakeRequest[];
  /** SHA-256s whose next CDN response stops halfway through. */
  breakOnce: Set<string>;
  /** SHA-256s whose CDN bytes are served with one byte changed. */
  corrupt: Set<string>;
  /** Stops both servers. */
  close(): Promise<void>;
}

/**
 * SHA-256 in hex.
 *
 * @param b Bytes.
 * @returns The digest.
 */
export function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/**
 * The git blob id of some content (what the Hub's `ETag` of a non-LFS file is).
 *
 * @param b Bytes.
 * @returns The SHA-1 of `blob <size>\0<content>`.
 */
export function gitBlobId(b: Uint8Array): string {
  return createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");
}

function ranged(req: Request, bytes: Uint8Array<ArrayBuffer>, headers: Headers): Response {
  const m = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
  if (!m) {
    headers.set("content-length", `${bytes.length}`);
    return new Response(bytes, { status: 200, headers });
  }
  const from = Number(m[1]);
  if (from >= bytes.length) {
    headers.set("content-range", `bytes */${bytes.length}`);
    return new Response(null, { status: 416, headers });
  }
  headers.set("content-range", `bytes ${from}-${bytes.length - 1}/${bytes.length}`);
  headers.set("content-length", `${bytes.length - from}`);
  return new Response(bytes.subarray(from), { status: 206, headers });
}

/**
 * Starts a fake Hub (and its CDN on a second port).
 *
 * @param repos Repositories by `owner/name`.
 * @returns The fake.
 */
export function fakeHub(repos: Record<string, FakeRepo>): FakeHub {
  const requests: FakeRequest[] = [];
  const breakOnce = new Set<string>();
  const corrupt = new Set<string>();
  const blobs = new Map<string, Uint8Array<ArrayBuffer>>();
  for (const r of Object.values(repos)) {
    for (const files of Object.values(r.commits)) {
      for (const f of files) if (f.lfs) blobs.set(sha256(f.bytes), f.bytes);
    }
  }
  const log = (server: "hub" | "cdn", req: Request) =>
    requests.push({
      server,
      path: decodeURIComponent(new URL(req.url).pathname),
      auth: req.headers.get("authorization"),
      range: req.headers.get("range"),
    });

  const cdn = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    log("cdn", req);
    const sha = new URL(req.url).pathname.replace(/^\/blob\//, "");
    let bytes = blobs.get(sha);
    if (!bytes) return new Response("no such blob", { status: 404 });
    if (corrupt.has(sha)) {
      bytes = bytes.slice();
      bytes[bytes.length >> 1]! ^= 0xff;
    }
    if (breakOnce.delete(sha)) {
      // Half of what was asked for, then the connection is dropped.
      const from = Number(/^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "")?.[1] ?? 0);
      const rest = bytes.subarray(from);
      let sent = false;
      return new Response(
        new ReadableStream<Uint8Array>({
          pull(c) {
            if (!sent) {
              sent = true;
              c.enqueue(rest.slice(0, rest.length >> 1));
            } else c.error(new Error("connection dropped"));
          },
        }),
        {
          status: from > 0 ? 206 : 200,
          headers: from > 0
            ? { "content-range": `bytes ${from}-${bytes.length - 1}/${bytes.length}` }
            : {},
        },
      );
    }
    return ranged(req, bytes, new Headers());
  });
  const cdnUrl = `http://127.0.0.1:${cdn.addr.port}`;

  const hub = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    log("hub", req);
    const path = new URL(req.url).pathname;
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(path);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const m = api ?? resolve;
    if (!m) return new Response("not found", { status: 404 });
    const repo = repos[m[1]!];
    if (!repo) {
      return new Response("Repository not found", {
        status: 401,
        headers: { "x-error-code": "RepoNotFound", "x-error-message": "Repository not found" },
      });
    }
    const rev = decodeURIComponent(m[2]!);
    const commit = repo.refs[rev] ?? (repo.commits[rev] ? rev : undefined);
    if (!commit) {
      return new Response("Revision not found", {
        status: 404,
        headers: { "x-error-code": "RevisionNotFound", "x-error-message": "Invalid rev id" },
      });
    }
    const files = repo.commits[commit]!;
    if (api) {
      return Response.json({
        id: m[1],
        sha: commit,
        siblings: files.map((f) => ({
          rfilename: f.name,
          size: f.bytes.length,
          blobId: gitBlobId(f.bytes),
          ...(f.lfs
            ? { lfs: { sha256: sha256(f.bytes), size: f.bytes.length, pointerSize: 134 } }
            : {}),
        })),
      });
    }
    const name = decodeURIComponent(m[3]!);
    const f = files.find((x) => x.name === name);
    if (!f) {
      return new Response("Entry not found", {
        status: 404,
        headers: { "x-error-code": "EntryNotFound", "x-repo-commit": commit },
      });
    }
    const headers = new Headers({ "x-repo-commit": commit });
    if (f.lfs) {
      const sha = sha256(f.bytes);
      headers.set("x-linked-etag", `"${sha}"`);
      headers.set("x-linked-size", `${f.bytes.length}`);
      headers.set("etag", `"${gitBlobId(new TextEncoder().encode(`oid sha256:${sha}`))}"`);
      headers.set("location", `${cdnUrl}/blob/${sha}`);
      return new Response(null, { status: 302, headers });
    }
    headers.set("etag", `"${gitBlobId(f.bytes)}"`);
    return ranged(req, f.bytes, headers);
  });

  return {
    url: `http://127.0.0.1:${hub.addr.port}`,
    requests,
    breakOnce,
    corrupt,
    close: async () => {
      await Promise.all([hub.shutdown(), cdn.shutdown()]);
    },
  };
}

/**
 * Splits a safetensors file into two shards and writes the index, as
 * transformers' `save_pretrained(max_shard_size=…)` does.
 *
 * @param bytes The single file.
 * @returns The two shards and `model.safetensors.index.json`.
 */
export function splitSafetensors(bytes: Uint8Array): FakeFile[] {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const data = bytes.subarray(8 + n);
  const names = Object.keys(header).filter((k) => k !== "__metadata__").sort();
  const groups = [names.slice(0, names.length >> 1), names.slice(names.length >> 1)];
  const shardNames = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
  const weightMap: Record<string, string> = {};
  const out: FakeFile[] = [];
  groups.forEach((group, i) => {
    const h: Record<string, unknown> = { __metadata__: { format: "pt" } };
    const parts: Uint8Array[] = [];
    let off = 0;
    for (const name of group) {
      const t = header[name];
      const [a, b] = t.data_offsets as [number, number];
      h[name] = { ...t, data_offsets: [off, off + (b - a)] };
      parts.push(data.subarray(a, b));
      off += b - a;
      weightMap[name] = shardNames[i]!;
    }
    let json = JSON.stringify(h);
    json += " ".repeat((8 - (json.length % 8)) % 8);
    const hb = new TextEncoder().encode(json);
    const file = new Uint8Array(8 + hb.length + off);
    new DataView(file.buffer).setBigUint64(0, BigInt(hb.length), true);
    file.set(hb, 8);
    let p = 8 + hb.length;
    for (const part of parts) {
      file.set(part, p);
      p += part.length;
    }
    out.push({ name: shardNames[i]!, bytes: file, lfs: true });
  });
  const total = out.reduce((a, f) => a + f.bytes.length, 0);
  out.push({
    name: "model.safetensors.index.json",
    bytes: new TextEncoder().encode(
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
    ),
    lfs: false,
  });
  return out;
}
