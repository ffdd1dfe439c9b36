// Copyright 2026 the GPTQ toolkit authors. MIT license.
// Tests for the Hub datasets against a local HTTP server that mimics the Hub's
// `resolve/main` URLs (302 with X-Linked-Size / X-Linked-Etag, then the bytes).
// The documents are real WikiText-2 text from ../shared/data; the Parquet file
// is written here with hyparquet-writer (a separate writer implementation).
import nodeAssert from "node:assert/strict";
import { parquetWriteBuffer } from "npm:hyparquet-writer@^0.17.0";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { GptqError } from "../errors.ts";
import { TextTokenizer } from "../io/tokenizer.ts";
import { loadCalibration } from "./calibration.ts";
import {
  datasetCachePath,
  datasetUrl,
  fetchDataset,
  HUB_DATASETS,
  loadHubCalibration,
} from "./datasets.ts";

// Tiny assertion helpers over node:assert (npm:@std/assert does not resolve here).
const assert: (ok: unknown, msg?: string) => asserts ok = nodeAssert.ok;
const assertEquals = <T>(a: T, b: T): void => nodeAssert.deepStrictEqual(a, b);
const assertNotEquals = <T>(a: T, b: T): void => nodeAssert.notDeepStrictEqual(a, b);
async function assertRejects(
  fn: () => Promise<unknown>,
  cls: typeof GptqError,
): Promise<GptqError> {
  try {
    await fn();
  } catch (e) {
    nodeAssert.ok(e instanceof cls, `expected a GptqError, got ${e}`);
    return e;
  }
  throw new nodeAssert.AssertionError({ message: "expected a rejection" });
}

const DATA = fileURLToPath(new URL("../../../shared/data/", import.meta.url));
const WIKI_TEST = await Deno.readTextFile(`${DATA}text/wikitext2_test.txt`);
// Real rows: paragraphs of the WikiText-2 test split, with empty rows kept.
const WIKI_ROWS = WIKI_TEST.split("\n\n").slice(0, 240).map((r, i) => (i % 7 === 3 ? "" : r));
// C4-like documents: short ones (a line) and long ones (several paragraphs).
const C4_DOCS: string[] = [];
{
  const paras = WIKI_TEST.split("\n\n").filter((p) => p.trim().length > 0).slice(0, 400);
  for (let i = 0; i < paras.length; i += 10) {
    C4_DOCS.push(paras[i]!.slice(0, 60)); // short
    C4_DOCS.push(paras.slice(i, i + 10).join("\n")); // long
    C4_DOCS.push(`“unicode” — ${i} ✓`); // short, non-ASCII
  }
}

const PARQUET = new Uint8Array(parquetWriteBuffer({
  columnData: [{ name: "text", data: WIKI_ROWS, type: "STRING" }],
}));
const JSONL = C4_DOCS.map((t) => JSON.stringify({ text: t, timestamp: "2019-04-25T12:57:54Z" }))
  .join("\n") + "\n";
const JSONL_GZ = new Uint8Array(
  await new Response(
    new Blob([JSONL]).stream().pipeThrough(new CompressionStream("gzip")),
  ).arrayBuffer(),
);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

const tok = await TextTokenizer.fromFolder(`${DATA}golden/models/llama`);

type Mode = "ok" | "404" | "truncate" | "badsize" | "badsha";

/** A fake Hub. Counts requests; `mode` picks a failure. */
function hub(mode: Mode = "ok") {
  let requests = 0;
  const wikiPath =
    `/datasets/${HUB_DATASETS.wikitext2.repo}/resolve/main/${HUB_DATASETS.wikitext2.path}`;
  const c4Path = `/datasets/${HUB_DATASETS.c4.repo}/resolve/main/${HUB_DATASETS.c4.path}`;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    requests++;
    const p = new URL(req.url).pathname;
    if (mode === "404") return new Response("Entry not found", { status: 404 });
    if (p === wikiPath) {
      // The Hub answers LFS files with a redirect to its CDN and the file's size and sha256.
      const size = mode === "badsize" ? PARQUET.length + 10 : PARQUET.length;
      const etag = mode === "badsha" ? sha(new Uint8Array([1])) : sha(PARQUET);
      return new Response(null, {
        status: 302,
        headers: {
          location: "/cdn/wiki.parquet",
          "x-linked-size": `${size}`,
          "x-linked-etag": `"${etag}"`,
        },
      });
    }
    if (p === "/cdn/wiki.parquet") return new Response(PARQUET);
    if (p === c4Path) {
      if (mode === "truncate") {
        // Half the bytes, then the connection breaks.
        let sent = false;
        return new Response(
          new ReadableStream<Uint8Array>({
            pull(c) {
              if (!sent) {
                sent = true;
                c.enqueue(JSONL_GZ.subarray(0, JSONL_GZ.length >> 1));
              } else c.error(new Error("connection reset"));
            },
          }),
        );
      }
      return new Response(JSONL_GZ);
    }
    return new Response("not found", { status: 404 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    get requests() {
      return requests;
    },
    close: () => server.shutdown(),
  };
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(`${d}/${e.name}`);
      else out.push(`${d}/${e.name}`);
    }
  };
  try {
    await walk(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

/** Runs `fn` with env variables set, restoring them afterwards. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>) {
  const old: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(vars)) {
    old[k] = Deno.env.get(k);
    if (v === undefined) Deno.env.delete(k);
    else Deno.env.set(k, v);
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(old)) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  }
}

Deno.test("datasetUrl matches the Hub's resolve URLs", () => {
  assertEquals(
    datasetUrl("wikitext2", "https://huggingface.co/"),
    "https://huggingface.co/datasets/Salesforce/wikitext/resolve/main/wikitext-2-raw-v1/train-00000-of-00001.parquet",
  );
  assertEquals(
    datasetUrl("c4", "https://huggingface.co"),
    "https://huggingface.co/datasets/allenai/c4/resolve/main/en/c4-train.00000-of-01024.json.gz",
  );
});

Deno.test("fetchDataset downloads wikitext2 (Parquet) once, then reads the cache offline", async () => {
  const cacheDir = await Deno.makeTempDir();
  const h = hub();
  try {
    const docs = await fetchDataset("wikitext2", { baseUrl: h.url, cacheDir });
    assertEquals(docs, WIKI_ROWS);
    assertEquals(h.requests, 2); // resolve (302) + CDN
    const path = datasetCachePath("wikitext2", cacheDir);
    assertEquals(sha(await Deno.readFile(path)), sha(PARQUET));
    assertEquals(await listFiles(cacheDir), [path]);
    await fetchDataset("wikitext2", { baseUrl: h.url, cacheDir });
    assertEquals(h.requests, 2); // cache hit: no request
  } finally {
    await h.close();
  }
  // Server gone, and offline mode on: still served from the cache.
  const again = await withEnv(
    { HF_HUB_OFFLINE: "1" },
    () => fetchDataset("wikitext2", { baseUrl: h.url, cacheDir }),
  );
  assertEquals(again, WIKI_ROWS);
  await Deno.remove(cacheDir, { recursive: true });
});

Deno.test("fetchDataset downloads c4 (gzip JSON lines) and reads the cache with the server stopped", async () => {
  const cacheDir = await Deno.makeTempDir();
  const h = hub();
  try {
    assertEquals(await fetchDataset("c4", { baseUrl: h.url, cacheDir }), C4_DOCS);
    assertEquals(h.requests, 1);
  } finally {
    await h.close();
  }
  assertEquals(await fetchDataset("c4", { baseUrl: h.url, cacheDir }), C4_DOCS);
  assertEquals(
    sha(await Deno.readFile(datasetCachePath("c4", cacheDir))),
    sha(JSONL_GZ),
  );
  await Deno.remove(cacheDir, { recursive: true });
});

Deno.test("HF_ENDPOINT and GPTQ_CACHE are honoured when no options are given", async () => {
  const cacheDir = await Deno.makeTempDir();
  const h = hub();
  try {
    const docs = await withEnv(
      {
        HF_ENDPOINT: h.url,
        GPTQ_HF_ENDPOINT: undefined,
        GPTQ_CACHE: cacheDir,
        HF_HUB_OFFLINE: undefined,
      },
      () => fetchDataset("c4"),
    );
    assertEquals(docs.length, C4_DOCS.length);
    assertEquals(h.requests, 1);
    assertEquals(await listFiles(cacheDir), [datasetCachePath("c4", cacheDir)]);
  } finally {
    await h.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("HF_HUB_OFFLINE without a cache gives a clear error and makes no request", async () => {
  const cacheDir = await Deno.makeTempDir();
  const h = hub();
  try {
    const e = await withEnv(
      { HF_HUB_OFFLINE: "1" },
      () => assertRejects(() => fetchDataset("wikitext2", { baseUrl: h.url, cacheDir }), GptqError),
    );
    assertEquals(e.code, "DATASET");
    assert(e.message.includes("HF_HUB_OFFLINE"), e.message);
    assert(e.message.includes(datasetUrl("wikitext2", h.url)), e.message);
    assertEquals(h.requests, 0);
  } finally {
    await h.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("an unreachable Hub gives a clear error naming the URL and the way out", async () => {
  const cacheDir = await Deno.makeTempDir();
  const h = hub();
  const url = h.url;
  await h.close(); // nothing listens there now
  const e = await assertRejects(() => fetchDataset("c4", { baseUrl: url, cacheDir }), GptqError);
  assertEquals(e.code, "DATASET");
  assert(e.message.startsWith(`could not download c4 from ${datasetUrl("c4", url)}: `), e.message);
  assert(e.message.includes("pass a local .txt/.jsonl file with --dataset"), e.message);
  assert(e.message.includes("HF_ENDPOINT"), e.message);
  assertEquals(await listFiles(cacheDir), []);
  await Deno.remove(cacheDir, { recursive: true });
});

for (
  const [mode, name, words] of [
    ["404", "wikitext2", "HTTP 404"],
    ["truncate", "c4", "connection broke"],
    ["badsize", "wikitext2", "truncated download"],
    ["badsha", "wikitext2", "corrupted download"],
  ] as const
) {
  Deno.test(`a bad download (${mode}) gives a clear error and leaves no cache file`, async () => {
    const cacheDir = await Deno.makeTempDir();
    const h = hub(mode);
    try {
      const e = await assertRejects(
        () => fetchDataset(name, { baseUrl: h.url, cacheDir }),
        GptqError,
      );
      assertEquals(e.code, "DATASET");
      assert(e.message.includes(words), e.message);
      assert(e.message.includes(datasetUrl(name, h.url)), e.message);
      assertEquals(await listFiles(cacheDir), []);
    } finally {
      await h.close();
    }
    // A later good download works.
    const ok = hub();
    try {
      const docs = await fetchDataset(name, { baseUrl: ok.url, cacheDir });
      assertEquals(docs, name === "c4" ? C4_DOCS : WIKI_ROWS);
    } finally {
      await ok.close();
      await Deno.remove(cacheDir, { recursive: true });
    }
  });
}

Deno.test("a damaged cache file gives a clear error telling to delete it", async () => {
  const cacheDir = await Deno.makeTempDir();
  const path = datasetCachePath("c4", cacheDir);
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeFile(path, JSONL_GZ.subarray(0, JSONL_GZ.length - 40));
  const e = await assertRejects(() => fetchDataset("c4", { cacheDir, offline: true }), GptqError);
  assert(e.message.startsWith(`${path}: `), e.message);
  assert(e.message.includes("delete it"), e.message);
  await Deno.remove(cacheDir, { recursive: true });
});

Deno.test("wikitext2 calibration: paper's windows over the train split joined with ' '", async () => {
  const cacheDir = await Deno.makeTempDir();
  const h = hub();
  try {
    const opts = { nsamples: 12, seqlen: 64, seed: 3 };
    const cal = await withEnv(
      {
        HF_ENDPOINT: h.url,
        GPTQ_HF_ENDPOINT: undefined,
        GPTQ_CACHE: cacheDir,
        HF_HUB_OFFLINE: undefined,
      },
      () => loadCalibration("wikitext2", tok, opts),
    );
    assertEquals(cal.samples.length, 12);
    for (const s of cal.samples) assertEquals(s.length, 64);
    assertEquals(cal.source, datasetUrl("wikitext2", h.url));
    // Same as giving the joined train text as a .txt file.
    const txt = await Deno.makeTempFile({ suffix: ".txt" });
    await Deno.writeTextFile(txt, WIKI_ROWS.join(" "));
    assertEquals(cal.samples, (await loadCalibration(txt, tok, opts)).samples);
    await Deno.remove(txt);
    // Every sample is a contiguous window of the tokenized text.
    const ids = tok.encode(WIKI_ROWS.join(" ")).join(",");
    for (const s of cal.samples) assert(ids.includes(s.join(",")));
    // Deterministic for a seed (now from the cache), different for another seed.
    const again = await loadHubCalibration("wikitext2", tok, { ...opts, cacheDir, offline: true });
    assertEquals(again.samples, cal.samples);
    const other = await loadHubCalibration("wikitext2", tok, {
      ...opts,
      seed: 4,
      cacheDir,
      offline: true,
    });
    assertNotEquals(other.samples, cal.samples);
  } finally {
    await h.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("c4 calibration: one window per random document of at least seqlen tokens", async () => {
  const cacheDir = await Deno.makeTempDir();
  const h = hub();
  try {
    const seqlen = 96;
    const encoded = C4_DOCS.map((d) => tok.encode(d));
    const long = encoded.filter((ids) => ids.length >= seqlen).map((ids) => ids.join(","));
    const short = encoded.filter((ids) => ids.length < seqlen).length;
    assert(long.length >= 10 && short >= 20, `fixture: ${long.length} long, ${short} short`);
    const opts = { nsamples: 16, seqlen, seed: 0, baseUrl: h.url, cacheDir };
    const cal = await loadHubCalibration("c4", tok, opts);
    assertEquals(cal.samples.length, 16);
    const fromDocs = new Set<number>();
    for (const s of cal.samples) {
      assertEquals(s.length, seqlen);
      const j = long.findIndex((ids) => ids.includes(s.join(",")));
      assert(j >= 0, "sample is not a window of a long document");
      fromDocs.add(j);
    }
    assert(fromDocs.size > 4, `samples come from only ${fromDocs.size} documents`);
    await h.close();
    // c4-new is the same procedure; deterministic for a seed; cache only now.
    const again = await loadHubCalibration("c4-new", tok, { ...opts, offline: true });
    assertEquals(again.samples, cal.samples);
    const other = await loadHubCalibration("c4", tok, { ...opts, seed: 1, offline: true });
    assertNotEquals(other.samples, cal.samples);
    // No document long enough: a clear error, not an endless loop.
    const e = await assertRejects(
      () => loadHubCalibration("c4", tok, { ...opts, seqlen: 100_000, offline: true }),
      GptqError,
    );
    assert(e.message.includes("none of its"), e.message);
  } finally {
    await h.close().catch(() => {});
    await Deno.remove(cacheDir, { recursive: true });
  }
});
