// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The named calibration datasets (`--dataset wikitext2`, `--dataset c4`):
 * download from the Hugging Face Hub once, cache locally, and draw samples
 * the way the GPTQ paper (IST-DASLab `datautils.py`) and optimum do.
 *
 * Where the data comes from:
 * - `wikitext2`: `Salesforce/wikitext`, `wikitext-2-raw-v1/train-00000-of-00001.parquet`
 *   (Parquet, column `text`; one document per row, empty rows included);
 * - `c4` (and `c4-new`, which optimum draws from the same training shard in
 *   the same way): `allenai/c4`, `en/c4-train.00000-of-01024.json.gz` (gzip
 *   JSON lines with a `text` field).
 *
 * Downloads go to `<cache>/datasets/<owner>--<repo>/<path>` where `<cache>` is
 * `opts.cacheDir`, else `$GPTQ_CACHE`, else `$XDG_CACHE_HOME/gptq-deno`, else
 * `~/.cache/gptq-deno`. The Hub is `opts.baseUrl`, else `$GPTQ_HF_ENDPOINT`,
 * else `$HF_ENDPOINT` (as `huggingface_hub` reads it), else
 * `https://huggingface.co`; `$HF_TOKEN` is sent to that host when set. A file
 * is written to a temporary name and renamed into place only after its size
 * (`X-Linked-Size` or `Content-Length`) and, when the Hub gives it
 * (`X-Linked-Etag` of LFS files), its SHA-256 have been checked, so the cache
 * never holds a partial file; later calls read the cache without touching the
 * network. `HF_HUB_OFFLINE=1` (or `opts.offline`) means cache only.
 *
 * How calibration samples are drawn (mulberry32 PRNG seeded with `seed`; the
 * paper uses Python's `random`, so offsets differ from Python's for the same
 * seed, the procedure does not):
 * - `wikitext2`: the train rows are joined with `" "` (the paper's
 *   `" ".join(traindata['text'])`; the *test* split is joined with `"\n\n"`
 *   for perplexity) and tokenized once with special tokens; then `nsamples`
 *   windows of `seqlen` tokens start at offsets uniform in
 *   `[0, tokens − seqlen − 1]`, exactly as a `.txt` file given to
 *   `loadCalibration` (calibration.ts) is treated;
 * - `c4`: for each sample, documents are drawn uniformly at random until one
 *   has at least `seqlen` tokens, then one window of `seqlen` tokens starts at
 *   an offset uniform in `[0, max(0, tokens − seqlen − 1)]` (the paper's and
 *   optimum's `get_c4`).
 *
 * @module
 */

import { parquetReadObjects } from "npm:hyparquet@^1.31.5";
import { compressors } from "npm:hyparquet-compressors@^1.1.2";
import { GptqError } from "../errors.ts";
import { downloadToPartial } from "../io/_hub_download.ts";
import {
  env,
  etagSha256,
  hubEndpoint,
  hubGet,
  HubHttpError,
  hubOffline,
  hubToken,
  reasonOf,
} from "../io/_hub_http.ts";
import type { TextTokenizer } from "../io/tokenizer.ts";
import { mulberry32 } from "../runtime/sample.ts";
import { type Calibration, type CalibrationOptions, calibrationParams } from "./calibration.ts";

/** The datasets {@linkcode fetchDataset} knows. */
export type HubDatasetName = "wikitext2" | "c4";

/** Where a named dataset lives on the Hub. */
export interface HubDatasetSource {
  /** Dataset repository, `owner/name`. */
  repo: string;
  /** File inside the repository (revision `main`). */
  path: string;
  /** How the file is stored. */
  format: "parquet" | "jsonl.gz";
}

/**
 * The Hub files behind each named dataset.
 *
 * @example
 * ```ts
 * import { HUB_DATASETS } from "./datasets.ts";
 * console.log(HUB_DATASETS.c4.repo); // "allenai/c4"
 * ```
 */
export const HUB_DATASETS: Readonly<Record<HubDatasetName, HubDatasetSource>> = Object.freeze({
  wikitext2: {
    repo: "Salesforce/wikitext",
    path: "wikitext-2-raw-v1/train-00000-of-00001.parquet",
    format: "parquet",
  },
  c4: {
    repo: "allenai/c4",
    path: "en/c4-train.00000-of-01024.json.gz",
    format: "jsonl.gz",
  },
});

/** Options of {@linkcode fetchDataset}. */
export interface FetchDatasetOptions {
  /** Hub endpoint. Default `$GPTQ_HF_ENDPOINT`, `$HF_ENDPOINT` or `https://huggingface.co`. */
  baseUrl?: string;
  /** Cache folder. Default `$GPTQ_CACHE`, `$XDG_CACHE_HOME/gptq-deno` or `~/.cache/gptq-deno`. */
  cacheDir?: string;
  /** Use the cache only (also set by `HF_HUB_OFFLINE=1`). */
  offline?: boolean;
}

function join(...parts: string[]): string {
  return parts.map((
    p,
    i,
  ) => (i === 0 ? p.replace(/[\\/]+$/, "") : p.replace(/^[\\/]+|[\\/]+$/g, "")))
    .join("/");
}

export { hubEndpoint, hubOffline };

/**
 * The cache folder used when no `cacheDir` is given.
 *
 * @example
 * ```ts
 * import { defaultCacheDir } from "./datasets.ts";
 * console.log(defaultCacheDir()); // e.g. "/home/me/.cache/gptq-deno"
 * ```
 *
 * @returns `$GPTQ_CACHE`, `$XDG_CACHE_HOME/gptq-deno` or `~/.cache/gptq-deno`.
 */
export function defaultCacheDir(): string {
  const explicit = env("GPTQ_CACHE");
  if (explicit) return explicit;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return join(xdg, "gptq-deno");
  const home = env("HOME") ?? env("USERPROFILE");
  if (!home) {
    throw new GptqError("DATASET", "cannot find a cache folder: HOME is not set", {
      hint: "set GPTQ_CACHE to a writable folder (and run with --allow-env)",
    });
  }
  return join(home, ".cache", "gptq-deno");
}

/**
 * The Hub URL of a named dataset's file.
 *
 * @example
 * ```ts
 * import { datasetUrl } from "./datasets.ts";
 * console.log(datasetUrl("c4", "https://huggingface.co"));
 * // https://huggingface.co/datasets/allenai/c4/resolve/main/en/c4-train.00000-of-01024.json.gz
 * ```
 *
 * @param name The dataset.
 * @param baseUrl The Hub endpoint (default {@linkcode hubEndpoint}).
 * @returns The `resolve/main` URL.
 */
export function datasetUrl(name: HubDatasetName, baseUrl: string = hubEndpoint()): string {
  const src = HUB_DATASETS[name];
  return `${baseUrl.replace(/\/+$/, "")}/datasets/${src.repo}/resolve/main/${src.path}`;
}

/**
 * Where a named dataset's file is cached.
 *
 * @example
 * ```ts
 * import { datasetCachePath } from "./datasets.ts";
 * console.log(datasetCachePath("wikitext2", "/tmp/cache"));
 * // /tmp/cache/datasets/Salesforce--wikitext/wikitext-2-raw-v1/train-00000-of-00001.parquet
 * ```
 *
 * @param name The dataset.
 * @param cacheDir The cache folder (default {@linkcode defaultCacheDir}).
 * @returns The file's path.
 */
export function datasetCachePath(
  name: HubDatasetName,
  cacheDir: string = defaultCacheDir(),
): string {
  const src = HUB_DATASETS[name];
  return join(cacheDir, "datasets", src.repo.replace("/", "--"), src.path);
}

function checkName(name: string): HubDatasetName {
  if (name === "wikitext2" || name === "c4") return name;
  throw new GptqError("INVALID_ARGUMENT", `unknown dataset '${name}'`, {
    hint: "use wikitext2, c4 or c4-new, or pass a local .txt/.jsonl file",
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Downloads a named dataset's file into the cache (once) and returns its path.
 * Nothing is written under the final name unless the whole file arrived
 * intact.
 *
 * @example
 * ```ts ignore
 * import { downloadDataset } from "./datasets.ts";
 * const path = await downloadDataset("wikitext2");
 * ```
 *
 * @param name `wikitext2` or `c4`.
 * @param opts Endpoint, cache folder, offline mode.
 * @returns The cached file's path.
 */
export async function downloadDataset(
  name: HubDatasetName,
  opts: FetchDatasetOptions = {},
): Promise<string> {
  name = checkName(name);
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const dest = datasetCachePath(name, cacheDir);
  if (await exists(dest)) return dest;
  const baseUrl = (opts.baseUrl ?? hubEndpoint()).replace(/\/+$/, "");
  const url = datasetUrl(name, baseUrl);
  const hint =
    "pass a local .txt/.jsonl file with --dataset, or set HF_ENDPOINT to a reachable mirror";
  if (opts.offline ?? hubOffline()) {
    throw new GptqError(
      "DATASET",
      `'${name}' is not in the cache and offline mode (HF_HUB_OFFLINE) forbids downloading ${url}`,
      { file: dest, hint: `unset HF_HUB_OFFLINE to download it once, or ${hint}` },
    );
  }
  const fail = (reason: string, cause?: unknown): GptqError =>
    new GptqError("DATASET", `could not download ${name} from ${url}: ${reason}`, { hint, cause });

  // Redirects are followed by hand to read the Hub's X-Linked-Size / X-Linked-Etag on the 302.
  const token = hubToken();
  let first;
  try {
    first = await hubGet(url, { endpoint: baseUrl, token });
  } catch (e) {
    throw fail(reasonOf(e), e);
  }
  const { res, meta } = first;
  if (!res.ok) {
    await res.body?.cancel();
    const why = res.status === 401 || res.status === 403
      ? " (set HF_TOKEN if the dataset needs a login)"
      : "";
    throw fail(`HTTP ${res.status} ${res.statusText}${why}`);
  }
  const dir = dest.slice(0, dest.lastIndexOf("/"));
  const tmp = `${dest}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.incomplete`;
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    await res.body?.cancel();
    throw new GptqError("DATASET", `cannot write the dataset cache: ${reasonOf(e)}`, {
      file: tmp,
      hint: "set GPTQ_CACHE to a writable folder, or run with --allow-write",
      cause: e,
    });
  }
  try {
    await downloadToPartial({
      url,
      endpoint: baseUrl,
      token,
      partial: tmp,
      resume: false,
      first,
      expectSize: meta.size,
      expectSha256: etagSha256(meta.etag),
      refuseEmpty: true,
    });
    await Deno.rename(tmp, dest);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    if (e instanceof HubHttpError && e.kind === "write") {
      throw new GptqError("DATASET", `cannot write the dataset cache: ${e.message}`, {
        file: tmp,
        hint: "set GPTQ_CACHE to a writable folder, or run with --allow-write",
        cause: e,
      });
    }
    throw fail(e instanceof HubHttpError ? e.message : reasonOf(e), e);
  }
  return dest;
}

/**
 * Reads the `text` column of a Parquet file.
 *
 * @example
 * ```ts ignore
 * import { readParquetText } from "./datasets.ts";
 * const rows = await readParquetText(await Deno.readFile("train.parquet"), "train.parquet");
 * ```
 *
 * @param bytes The file's bytes.
 * @param file The file's name, for messages.
 * @returns One string per row (null cells become "").
 */
export async function readParquetText(bytes: Uint8Array, file: string): Promise<string[]> {
  const buf = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes.buffer as ArrayBuffer
    : bytes.slice().buffer as ArrayBuffer;
  let rows: Record<string, unknown>[];
  try {
    rows = await parquetReadObjects({ file: buf, columns: ["text"], compressors });
  } catch (e) {
    throw new GptqError("DATASET", `cannot read it as Parquet: ${reasonOf(e)}`, {
      file,
      hint: "the cached file may be damaged: delete it to download it again",
      cause: e,
    });
  }
  const out = new Array<string>(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const t = rows[i]!["text"];
    if (t === undefined && i === 0) {
      throw new GptqError("DATASET", "has no 'text' column", { file });
    }
    out[i] = typeof t === "string" ? t : t == null ? "" : String(t);
  }
  return out;
}

/**
 * Reads the `text` fields of a gzip-compressed JSON-lines stream.
 *
 * @example
 * ```ts ignore
 * import { readJsonlGzText } from "./datasets.ts";
 * const f = await Deno.open("c4.json.gz");
 * const docs = await readJsonlGzText(f.readable, "c4.json.gz");
 * ```
 *
 * @param stream The compressed bytes.
 * @param file The file's name, for messages.
 * @returns One string per non-empty line.
 */
export async function readJsonlGzText(
  stream: ReadableStream<BufferSource>,
  file: string,
): Promise<string[]> {
  const docs: string[] = [];
  let rest = "";
  let lineNo = 0;
  const take = (line: string) => {
    lineNo++;
    if (line.trim() === "") return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      throw new GptqError("DATASET", `line ${lineNo} is not JSON`, {
        file,
        hint: "the cached file may be damaged: delete it to download it again",
      });
    }
    const t = (obj as { text?: unknown } | null)?.text;
    if (typeof t !== "string") {
      throw new GptqError("DATASET", `line ${lineNo} has no string 'text' field`, { file });
    }
    docs.push(t);
  };
  try {
    const text = stream.pipeThrough(new DecompressionStream("gzip")).pipeThrough(
      new TextDecoderStream(),
    );
    for await (const chunk of text) {
      let start = 0;
      for (let nl = chunk.indexOf("\n"); nl >= 0; nl = chunk.indexOf("\n", start)) {
        take(rest + chunk.slice(start, nl));
        rest = "";
        start = nl + 1;
      }
      rest += chunk.slice(start);
    }
    take(rest);
  } catch (e) {
    if (e instanceof GptqError) throw e;
    throw new GptqError("DATASET", `cannot decompress it as gzip: ${reasonOf(e)}`, {
      file,
      hint: "the cached file may be damaged: delete it to download it again",
      cause: e,
    });
  }
  return docs;
}

/**
 * Fetches a named dataset (from the cache when present, else from the Hub)
 * and returns its documents: the `text` rows of WikiText-2's train split, or
 * the `text` fields of the first C4 English training shard.
 *
 * @example
 * ```ts ignore
 * import { fetchDataset } from "./datasets.ts";
 * const docs = await fetchDataset("wikitext2");
 * console.log(docs.length); // 36718
 * ```
 *
 * @param name `wikitext2` or `c4`.
 * @param opts Endpoint, cache folder, offline mode.
 * @returns The documents, in file order.
 */
export async function fetchDataset(
  name: HubDatasetName,
  opts: FetchDatasetOptions = {},
): Promise<string[]> {
  const path = await downloadDataset(name, opts);
  if (HUB_DATASETS[name].format === "parquet") {
    return await readParquetText(await Deno.readFile(path), path);
  }
  const f = await Deno.open(path);
  return await readJsonlGzText(f.readable, path);
}

/** Options of {@linkcode loadHubCalibration}: sampling plus download settings. */
export interface HubCalibrationOptions extends CalibrationOptions, FetchDatasetOptions {}

/**
 * Draws calibration samples from a named dataset as the GPTQ paper does (see
 * the module doc). `loadCalibration` (calibration.ts) calls this for `wikitext2`,
 * `c4` and `c4-new`.
 *
 * @example
 * ```ts ignore
 * import { loadHubCalibration } from "./datasets.ts";
 * const cal = await loadHubCalibration("c4", tok, { nsamples: 128, seqlen: 2048, seed: 0 });
 * ```
 *
 * @param name `wikitext2`, `c4` or `c4-new`.
 * @param tok The model's tokenizer.
 * @param opts Count, length, seed, endpoint and cache folder.
 * @returns The samples.
 */
export async function loadHubCalibration(
  name: string,
  tok: TextTokenizer,
  opts: HubCalibrationOptions = {},
): Promise<Calibration> {
  const { nsamples, seqlen, seed } = calibrationParams(opts);
  const ds = checkName(name === "c4-new" ? "c4" : name);
  const docs = await fetchDataset(ds, opts);
  const source = datasetUrl(ds, opts.baseUrl ?? hubEndpoint());
  const rand = mulberry32(seed);
  const samples: number[][] = [];
  if (ds === "wikitext2") {
    const ids = tok.encode(docs.join(" "));
    if (ids.length < seqlen + 1) {
      throw new GptqError(
        "DATASET",
        `the train split has ${ids.length} tokens, too few for one window of ${seqlen}`,
        { file: source, hint: "use a smaller --seqlen" },
      );
    }
    const span = ids.length - seqlen - 1;
    for (let s = 0; s < nsamples; s++) {
      const i = Math.floor(rand() * (span + 1));
      samples.push(ids.slice(i, i + seqlen));
    }
    return {
      samples,
      source,
      method: `${nsamples} random windows of ${seqlen} tokens (mulberry32 seed ${seed}) from ` +
        `${ids.length} tokens of the train split joined with " "`,
    };
  }
  if (docs.length === 0) {
    throw new GptqError("DATASET", "has no documents", {
      file: source,
      hint: "delete the cached file to download it again",
    });
  }
  const tooShort = new Set<number>();
  let tried = 0;
  for (let s = 0; s < nsamples; s++) {
    let ids: number[];
    for (;;) {
      const d = Math.floor(rand() * docs.length);
      if (tooShort.has(d)) continue;
      ids = tok.encode(docs[d]!);
      tried++;
      if (ids.length >= seqlen) break;
      tooShort.add(d);
      if (tooShort.size === docs.length) {
        throw new GptqError(
          "DATASET",
          `none of its ${docs.length} documents has ${seqlen} tokens or more`,
          { file: source, hint: "use a smaller --seqlen" },
        );
      }
    }
    const span = Math.max(0, ids.length - seqlen - 1);
    const i = Math.floor(rand() * (span + 1));
    samples.push(ids.slice(i, i + seqlen));
  }
  return {
    samples,
    source,
    method: `${nsamples} random windows of ${seqlen} tokens (mulberry32 seed ${seed}), one per ` +
      `random document of ≥ ${seqlen} tokens (${tried} documents tokenized)`,
  };
}
