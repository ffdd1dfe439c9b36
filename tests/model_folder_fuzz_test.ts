// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Seeded fuzzing of whole model folders through the public loaders: copies of
 * the real golden models (plain Llama/OPT/GPT-2/GPT-NeoX, the AutoGPTQ 4-bit
 * Llama, a sharded variant) and of stories260K converted from llama2.c, each
 * with one mutation (safetensors header or data, `config.json`,
 * `quantize_config.json`, `generation_config.json`, `tokenizer_config.json`,
 * the shard index, `tokenizer.json`), run through `inspectPath`, `loadModel`
 * and a 3-token `generate` in a supervised child process
 * (`tests/_fuzz_driver.ts`) with a per-case time limit and an RSS limit.
 *
 * Outcomes: ok, typed (a one-line `GptqError`), untyped, hang, memory
 * blow-up. The test asserts no untyped errors, hangs or blow-ups and prints
 * the counts. `GPTQ_FUZZ_CASES` sets the case count (default 2000, about 2.5
 * minutes on two cores), `GPTQ_FUZZ_SEED` the seed, `GPTQ_FUZZ_DENO_FLAGS` extra
 * `deno run` flags for the child.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { convertLlama2c } from "../src/io/llama2c.ts";
import { mulberry32 } from "../src/runtime/sample.ts";

const DATA = fileURLToPath(new URL("../../shared/data/", import.meta.url));
const DRIVER = fileURLToPath(new URL("./_fuzz_driver.ts", import.meta.url));
const CASES = Number(Deno.env.get("GPTQ_FUZZ_CASES") ?? 2000);
const SEED = Number(Deno.env.get("GPTQ_FUZZ_SEED") ?? 0x15_2026);
/** Time one case may take inside the child (tiny models load in well under a second). */
const CASE_LIMIT_MS = 30_000;
/** RSS limit of the child (it normally stays under 250 MiB). */
const RSS_LIMIT = 1536 * 1024 * 1024;
/** V8 heap limit of the child. */
const HEAP_MB = 768;
const BATCH = 40;
/** Extra `deno run` flags for the child (e.g. `--import-map=…`), space-separated. */
const EXTRA_FLAGS = (Deno.env.get("GPTQ_FUZZ_DENO_FLAGS") ?? "").split(" ").filter((f) => f);

type Json = Record<string, unknown>;
type Kind = "ok" | "typed" | "untyped" | "hang" | "blowup";

interface Source {
  name: string;
  dir: string;
  files: Map<string, Uint8Array>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

async function loadSource(name: string, dir: string): Promise<Source> {
  const files = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name !== "golden.safetensors") {
      files.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
    }
  }
  return { name, dir, files };
}

/** A sharded copy: the weights split in two shards with an index. */
function shardSource(src: Source): Source {
  const b = src.files.get("model.safetensors")!;
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  const h = JSON.parse(dec.decode(b.subarray(8, 8 + n))) as Record<string, Json>;
  const names = Object.keys(h).filter((k) => k !== "__metadata__");
  const parts = [names.slice(0, names.length >> 1), names.slice(names.length >> 1)];
  const files = new Map(src.files);
  files.delete("model.safetensors");
  const wm: Json = {};
  parts.forEach((list, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    const header: Json = { __metadata__: { format: "pt" } };
    const chunks: Uint8Array[] = [];
    let off = 0;
    for (const t of list) {
      const [a, z] = h[t]!.data_offsets as [number, number];
      header[t] = { ...h[t], data_offsets: [off, off + z - a] };
      chunks.push(b.subarray(8 + n + a, 8 + n + z));
      off += z - a;
      wm[t] = file;
    }
    files.set(file, safetensorsBytes(header, chunks));
  });
  files.set(
    "model.safetensors.index.json",
    enc.encode(JSON.stringify({ metadata: {}, weight_map: wm })),
  );
  return { name: `${src.name}-sharded`, dir: src.dir, files };
}

function safetensorsBytes(header: unknown, chunks: Uint8Array[]): Uint8Array {
  const json = enc.encode(JSON.stringify(header));
  const size = chunks.reduce((a, c) => a + c.length, 0);
  const out = new Uint8Array(8 + json.length + size);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Values that break loaders: bounds, wrong types, huge sizes. */
const NASTY: unknown[] = [
  -1,
  0,
  1,
  2,
  3,
  7,
  33,
  1.5,
  -0.5,
  1e-30,
  65536,
  2 ** 31,
  2 ** 32 + 1,
  1e9,
  1e308,
  2 ** 53 + 2,
  "x",
  "",
  "float16",
  "int32",
  null,
  true,
  false,
  [],
  [1, 2],
  {},
  { type: "llama3" },
  "a".repeat(5000),
];

interface Mutation {
  what: string;
  /** Files to write (replacing the source's), or a symlink target. */
  files: Map<string, Uint8Array | { link: string }>;
  remove?: string[];
}

function mutate(src: Source, r: () => number): Mutation {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const files = new Map<string, Uint8Array | { link: string }>();
  const names = [...src.files.keys()];
  const jsonFiles = names.filter((n) => n.endsWith(".json"));
  const stFiles = names.filter((n) => n.endsWith(".safetensors"));
  const op = pick(
    [
      "json-key",
      "json-key",
      "json-key",
      "json-delete",
      "json-bytes",
      "json-truncate",
      "st-header",
      "st-header",
      "st-header-bytes",
      "st-data",
      "st-truncate",
      "tokenizer",
      "tokenizer",
      "index",
      "special-file",
      "remove",
    ] as const,
  );
  const setJson = (file: string, f: (j: Json) => string) => {
    const j = JSON.parse(dec.decode(src.files.get(file)!)) as Json;
    const what = f(j);
    files.set(file, enc.encode(JSON.stringify(j)));
    return `${file}: ${what}`;
  };
  const allPaths = (j: unknown, prefix: string[] = [], out: string[][] = []): string[][] => {
    if (j !== null && typeof j === "object" && out.length < 4000) {
      for (const [k, v] of Object.entries(j)) {
        out.push([...prefix, k]);
        if (prefix.length < 3) allPaths(v, [...prefix, k], out);
      }
    }
    return out;
  };
  const setPath = (j: unknown, path: string[], v: unknown, del = false) => {
    let o = j as Json;
    for (const k of path.slice(0, -1)) o = o[k] as Json;
    if (del) delete o[path.at(-1)!];
    else o[path.at(-1)!] = v;
  };
  let what: string;
  switch (op) {
    case "json-key":
    case "json-delete": {
      const file = pick(jsonFiles.filter((f) => f !== "tokenizer.json"));
      what = setJson(file, (j) => {
        const paths = allPaths(j);
        if (paths.length === 0) return "empty";
        const p = pick(paths);
        const v = op === "json-delete" ? undefined : pick(NASTY);
        setPath(j, p, v, op === "json-delete");
        return `${p.join(".")} = ${
          op === "json-delete" ? "(deleted)" : JSON.stringify(v)?.slice(0, 40)
        }`;
      });
      break;
    }
    case "json-bytes": {
      const file = pick(jsonFiles);
      const b = src.files.get(file)!.slice();
      for (let i = int(1, 4); i > 0; i--) {
        b[int(0, b.length - 1)] = pick([0x22, 0x7b, 0x7d, 0x0a, 0x00, 0xff, int(0, 255)]);
      }
      files.set(file, b);
      what = `${file}: bytes`;
      break;
    }
    case "json-truncate": {
      const file = pick(jsonFiles);
      const b = src.files.get(file)!;
      files.set(file, b.slice(0, int(0, b.length - 1)));
      what = `${file}: truncated`;
      break;
    }
    case "st-header": {
      const file = pick(stFiles);
      const b = src.files.get(file)!;
      const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
      const h = JSON.parse(dec.decode(b.subarray(8, 8 + n))) as Record<string, Json>;
      const tensors = Object.keys(h).filter((k) => k !== "__metadata__");
      const t = pick(tensors);
      const field = pick(["dtype", "dtype", "shape", "shape", "data_offsets", "rename", "delete"]);
      if (field === "dtype") {
        h[t]!.dtype = pick([
          "I16",
          "I32",
          "U32",
          "U16",
          "F16",
          "BF16",
          "F32",
          "I64",
          "U8",
          "BOOL",
          "F8_E4M3",
          "Q4",
        ]);
      } else if (field === "shape") {
        const s = [...(h[t]!.shape as number[])];
        const k = int(0, Math.max(0, s.length - 1));
        const op2 = pick(["swap", "scale", "nasty", "drop", "add"]);
        if (op2 === "swap") s.reverse();
        else if (op2 === "scale" && s.length) s[k] = s[k]! * pick([2, 0.5, 0, 1024]);
        else if (op2 === "nasty" && s.length) (s as unknown[])[k] = pick(NASTY);
        else if (op2 === "drop") s.pop();
        else s.push(1);
        h[t]!.shape = s;
      } else if (field === "data_offsets") {
        const o = [...(h[t]!.data_offsets as number[])];
        (o as unknown[])[int(0, 1)] = pick([...NASTY, o[0]! + 2, o[1]! - 2]);
        h[t]!.data_offsets = o;
      } else if (field === "rename") {
        h[
          pick([
            `${t}x`,
            t.replace(/\.\d+\./, ".99."),
            t.replace(/\.\d+\./, ".1000000000."),
            "model.layers.4294967296.mlp.up_proj.weight",
          ])
        ] = h[t]!;
        delete h[t];
      } else delete h[t];
      // Re-serialize with the original data section (offsets may no longer tile it).
      files.set(file, safetensorsBytes(h, [b.subarray(8 + n)]));
      what = `${file}: ${t}.${field}`;
      break;
    }
    case "st-header-bytes": {
      const file = pick(stFiles);
      const b = src.files.get(file)!.slice();
      const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
      for (let i = int(1, 3); i > 0; i--) b[int(0, 8 + n - 1)] = int(0, 255);
      files.set(file, b);
      what = `${file}: header bytes`;
      break;
    }
    case "st-data": {
      const file = pick(stFiles);
      const b = src.files.get(file)!.slice();
      const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
      for (let i = int(1, 64); i > 0; i--) b[int(8 + n, b.length - 1)] = int(0, 255);
      files.set(file, b);
      what = `${file}: data bytes`;
      break;
    }
    case "st-truncate": {
      const file = pick(stFiles);
      const b = src.files.get(file)!;
      files.set(file, b.slice(0, int(0, b.length - 1)));
      what = `${file}: truncated`;
      break;
    }
    case "tokenizer": {
      what = setJson("tokenizer.json", (j) => {
        const m = j.model as Json;
        const k = pick([
          "type",
          "vocab-id",
          "vocab-id",
          "added-id",
          "added-content",
          "merges",
          "unk",
          "normalizer",
          "pre",
          "decoder",
          "post",
        ]);
        if (k === "type") {
          m.type = pick(["BPE", "Unigram", "WordPiece", "WordLevel", "Foo", null, 3]);
        } else if (k === "vocab-id" && m.vocab && !Array.isArray(m.vocab)) {
          const v = m.vocab as Json;
          v[pick(Object.keys(v))] = pick(NASTY);
        } else if (k === "vocab-id" && Array.isArray(m.vocab)) {
          (m.vocab as unknown[])[int(0, (m.vocab as unknown[]).length - 1)] = pick(NASTY);
        } else if (k === "added-id" || k === "added-content") {
          const a = (j.added_tokens as Json[] | undefined) ?? [];
          const t: Json = { id: 0, content: "<x>", special: true, ...(a[0] ?? {}) };
          if (k === "added-id") t.id = pick(NASTY);
          else t.content = pick(NASTY);
          j.added_tokens = [...a, t];
        } else if (k === "merges" && Array.isArray(m.merges)) {
          (m.merges as unknown[])[int(0, (m.merges as unknown[]).length - 1)] = pick(NASTY);
        } else if (k === "unk") m.unk_token = pick(NASTY);
        else {
          const key = {
            normalizer: "normalizer",
            pre: "pre_tokenizer",
            decoder: "decoder",
            post: "post_processor",
          }[k as "normalizer"] ?? "normalizer";
          j[key] = pick([
            null,
            { type: "Foo" },
            { type: "Sequence", pretokenizers: pick(NASTY) },
            pick(NASTY),
          ]);
        }
        return k;
      });
      break;
    }
    case "index": {
      const has = src.files.has("model.safetensors.index.json");
      if (!has) {
        // Add an index to a single-file folder that points at odd names.
        const name = pick([
          "a".repeat(300) + ".safetensors",
          "x\u0000y.safetensors",
          "model.safetensors/",
          "../model.safetensors",
          "/dev/zero",
          "missing.safetensors",
          "model.safetensors",
        ]);
        files.set(
          "model.safetensors.index.json",
          enc.encode(JSON.stringify({ weight_map: { "lm_head.weight": name } })),
        );
        what = `index: ${JSON.stringify(name).slice(0, 30)}`;
      } else {
        what = setJson("model.safetensors.index.json", (j) => {
          const wm = j.weight_map as Json;
          const t = pick(Object.keys(wm));
          const v = pick([
            ...NASTY,
            "a".repeat(300) + ".safetensors",
            "x\u0000y.safetensors",
            "model-00001-of-00002.safetensors/",
            "../x.safetensors",
            "/etc/passwd",
            "model-00002-of-00002.safetensors",
            "nope.safetensors",
          ]);
          if (r() < 0.2) delete wm[t];
          else wm[t] = v;
          return `${t} -> ${JSON.stringify(v)?.slice(0, 30)}`;
        });
      }
      break;
    }
    case "special-file": {
      const file = pick([...jsonFiles, ...stFiles]);
      const how = pick(["/dev/zero", "/dev/null", "dir", "huge"]);
      if (how === "dir") files.set(file, { link: "." });
      else if (how === "huge") {
        const b = src.files.get(file)!;
        const big = new Uint8Array(b.length + 70 * 1024 * 1024);
        big.set(b);
        big.fill(0x20, b.length);
        files.set(file, big);
      } else files.set(file, { link: how });
      what = `${file}: ${how}`;
      break;
    }
    default: {
      const file = pick(names);
      what = `${file}: removed`;
      return { what, files, remove: [file] };
    }
  }
  return { what, files };
}

async function writeCase(root: string, i: number, src: Source, m: Mutation): Promise<string> {
  const dir = `${root}/case${i}`;
  await Deno.mkdir(dir);
  for (const name of src.files.keys()) {
    if (m.remove?.includes(name) || m.files.has(name)) continue;
    // Unchanged files: a link to the pristine copy written once per source.
    await Deno.symlink(`${root}/src-${src.name}/${name}`, `${dir}/${name}`);
  }
  for (const [name, v] of m.files) {
    if (v instanceof Uint8Array) await Deno.writeFile(`${dir}/${name}`, v);
    else await Deno.symlink(v.link, `${dir}/${name}`);
  }
  return dir;
}

function rssOf(pid: number): number {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /VmRSS:\s+(\d+) kB/.exec(s);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

interface Result {
  kind: Kind;
  detail: string;
}

/** Runs a batch of case folders in one supervised child; returns one result per case run. */
async function runBatch(dirs: string[]): Promise<Result[]> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `--v8-flags=--max-old-space-size=${HEAP_MB}`, ...EXTRA_FLAGS, DRIVER],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(enc.encode(dirs.join("\n") + "\n"));
  await w.close();
  const results: Result[] = [];
  let current = -1;
  let lastStart = performance.now();
  let killed: Kind | null = null;
  const timer = setInterval(() => {
    if (killed) return;
    if (rssOf(child.pid) > RSS_LIMIT) killed = "blowup";
    else if (current >= 0 && performance.now() - lastStart > CASE_LIMIT_MS) killed = "hang";
    if (killed) {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
    }
  }, 100);
  const stderr = new Response(child.stderr).text();
  let buf = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let msg: { start?: number; done?: number; stages?: { kind: Kind; message?: string }[] };
      try {
        msg = JSON.parse(line);
      } catch {
        continue; // stray output
      }
      if (msg.start !== undefined) {
        current = msg.start;
        lastStart = performance.now();
      } else if (msg.done !== undefined) {
        const stages = msg.stages!;
        const bad = stages.find((s) => s.kind === "untyped");
        const typed = stages.find((s) => s.kind === "typed");
        results.push(
          bad
            ? { kind: "untyped", detail: bad.message ?? "" }
            : typed
            ? { kind: "typed", detail: typed.message ?? "" }
            : { kind: "ok", detail: "" },
        );
        current = -1;
      }
    }
  }
  const status = await child.status;
  clearInterval(timer);
  const err = await stderr;
  if (results.length < dirs.length) {
    // The case in flight when the child died: killed by us, or crashed (V8 OOM, abort).
    const kind: Kind = killed ??
      (/heap out of memory|Allocation failed/i.test(err) ? "blowup" : "untyped");
    results.push({ kind, detail: `${kind}: exit ${status.code} ${err.slice(-500)}` });
  }
  return results;
}

Deno.test({
  name: `model folder fuzz: ${CASES} mutated folders through inspect, loadModel and generate`,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t0 = performance.now();
    const root = await Deno.makeTempDir({ prefix: "gptq_folder_fuzz_" });
    try {
      const golden = `${DATA}golden/models/`;
      const sources: Source[] = [];
      for (const m of ["llama", "opt", "gpt2", "gpt_neox", "llama-gptq-4bit-g32"]) {
        sources.push(await loadSource(m, golden + m));
      }
      sources.push(shardSource(sources[0]!));
      const stories = `${root}/stories260K-hf`;
      await convertLlama2c(
        `${DATA}stories260K/stories260K.bin`,
        `${DATA}stories260K/tok512.bin`,
        stories,
      );
      sources.push(await loadSource("stories260K", stories));
      for (const s of sources) {
        await Deno.mkdir(`${root}/src-${s.name}`);
        for (const [n, b] of s.files) await Deno.writeFile(`${root}/src-${s.name}/${n}`, b);
      }
      const r = mulberry32(SEED);
      const counts: Record<Kind, number> = { ok: 0, typed: 0, untyped: 0, hang: 0, blowup: 0 };
      const failures: string[] = [];
      let next = 0;
      while (next < CASES) {
        const batch: { dir: string; what: string }[] = [];
        for (let k = 0; k < BATCH && next + k < CASES; k++) {
          const i = next + k;
          const src = sources[i % sources.length]!;
          const m = mutate(src, r);
          batch.push({ dir: await writeCase(root, i, src, m), what: `${src.name}: ${m.what}` });
        }
        let done = 0;
        while (done < batch.length) {
          const res = await runBatch(batch.slice(done).map((b) => b.dir));
          for (const x of res) {
            counts[x.kind]++;
            if (x.kind !== "ok" && x.kind !== "typed") {
              failures.push(`${batch[done]!.what} → ${x.kind}: ${x.detail.slice(0, 300)}`);
            }
            await Deno.remove(batch[done]!.dir, { recursive: true });
            done++;
          }
        }
        next += batch.length;
      }
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      console.log(
        `model folder fuzz: ${CASES} cases in ${secs} s: ok ${counts.ok}, typed ${counts.typed}, ` +
          `untyped ${counts.untyped}, hang ${counts.hang}, blow-up ${counts.blowup}`,
      );
      for (const f of failures.slice(0, 30)) console.log(`  ${f}`);
      assert.equal(
        counts.untyped + counts.hang + counts.blowup,
        0,
        failures.slice(0, 5).join("\n"),
      );
      assert.ok(counts.ok > 0 && counts.typed > 0, "the mutations exercise both outcomes");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
