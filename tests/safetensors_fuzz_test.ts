// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Seeded fuzzing of the safetensors reader and {@linkcode CheckpointReader}
 * with corrupted copies of the real golden files. Every case must either read
 * cleanly or fail with a {@linkcode GptqError} whose code is `SAFETENSORS_*`
 * or `FILE_NOT_FOUND`, within a time bound and without large allocations.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../src/errors.ts";
import { CheckpointReader } from "../src/io/checkpoint.ts";
import { SafetensorsFile } from "../src/io/safetensors.ts";
import { ShardedWriter } from "../src/io/safetensors_writer.ts";
import { mulberry32 } from "../src/runtime/sample.ts";

const GOLDEN = fileURLToPath(new URL("../../shared/data/golden/", import.meta.url));
const SOURCES = [
  "models/llama-gptq-4bit-g32/model.safetensors", // I32 + F16, AutoGPTQ layout
  "models/gpt_neox/model.safetensors", // BF16
  "autogptq/b3_g64_asym.safetensors", // F32/I32/F16 with metadata
  "models/opt/golden.safetensors", // two tensors
];
const SEED = 0x5eed_2026;
const TOTAL_BUDGET_MS = 90_000;
const CASE_BUDGET_MS = 5_000;
const MAX_RSS_GROWTH = 400 * 1024 * 1024;

interface Source {
  name: string;
  bytes: Uint8Array;
  headerLen: number;
  header: Record<string, unknown>;
}

interface FuzzCase {
  kind: string;
  bytes: Uint8Array;
  /** "ok": must read; "error": must fail; "any": either. */
  expect: "ok" | "error" | "any";
}

const enc = new TextEncoder();

function withHeaderText(src: Source, text: string | Uint8Array, lenOverride?: bigint): Uint8Array {
  const json = typeof text === "string" ? enc.encode(text) : text;
  const data = src.bytes.subarray(8 + src.headerLen);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function withHeader(src: Source, header: unknown): Uint8Array {
  return withHeaderText(src, JSON.stringify(header));
}

function tensorNames(src: Source): string[] {
  return Object.keys(src.header).filter((k) => k !== "__metadata__");
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function* makeCases(src: Source, r: () => number): Generator<FuzzCase> {
  const n = src.headerLen;
  const size = src.bytes.length;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const names = tensorNames(src);

  // 1. truncation: fixed points and random ones in the header and in the data
  for (const at of [0, 1, 7, 8, 9, 8 + n - 1, 8 + n, 8 + n + 1, size - 1]) {
    yield { kind: "truncate-fixed", bytes: src.bytes.slice(0, at), expect: "error" };
  }
  for (let i = 0; i < 12; i++) {
    yield { kind: "truncate-header", bytes: src.bytes.slice(0, int(0, 8 + n)), expect: "error" };
    yield {
      kind: "truncate-data",
      bytes: src.bytes.slice(0, int(8 + n, size - 1)),
      expect: "error",
    };
  }
  // 2. header length field
  const lens = [
    0n,
    1n,
    2n,
    BigInt(n - 1),
    BigInt(n + 1),
    BigInt(size - 8),
    BigInt(size - 7),
    BigInt(size + 1),
    2n ** 32n,
    2n ** 32n + BigInt(n),
    2n ** 53n + 1n,
    2n ** 63n,
    2n ** 64n - 1n,
    BigInt(100 * 1024 * 1024 + 1),
  ];
  for (const len of lens) {
    const b = src.bytes.slice();
    new DataView(b.buffer).setBigUint64(0, len, true);
    yield { kind: "header-length", bytes: b, expect: "error" };
  }
  for (let i = 0; i < 6; i++) {
    const b = src.bytes.slice();
    b[int(0, 7)] = int(0, 255);
    yield { kind: "header-length-byte", bytes: b, expect: "any" };
  }
  // 3. random bytes in the header
  for (let i = 0; i < 30; i++) {
    const b = src.bytes.slice();
    const k = int(1, 6);
    for (let j = 0; j < k; j++) b[int(8, 8 + n - 1)] = int(0, 255);
    yield { kind: "header-bytes", bytes: b, expect: "any" };
  }
  for (let i = 0; i < 8; i++) {
    const b = src.bytes.slice();
    const at = int(8, 8 + n - 1);
    b[at] = pick([0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x5c, 0x00]); // JSON punctuation
    yield { kind: "header-punct", bytes: b, expect: "any" };
  }
  // 4. non-UTF-8 sequences inside a tensor name
  for (
    const bad of [[0xff], [0xc3], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [
      0x80,
    ]]
  ) {
    const text = enc.encode(JSON.stringify(src.header));
    const name = enc.encode(JSON.stringify(pick(names)));
    let at = -1;
    for (let i = 0; i + name.length <= text.length && at < 0; i++) {
      if (name.every((c, j) => text[i + j] === c)) at = i + 1;
    }
    const out = new Uint8Array(text.length + bad.length);
    out.set(text.subarray(0, at));
    out.set(bad, at);
    out.set(text.subarray(at), at + bad.length);
    yield { kind: "non-utf8", bytes: withHeaderText(src, out), expect: "error" };
  }
  // 5. JSON that is not an object, or junk
  for (
    const text of [
      "[]",
      "null",
      "1",
      '"str"',
      "true",
      "{}x",
      "",
      "  ",
      "{",
      "[".repeat(5000) + "]".repeat(5000),
      '{"a":' + "[".repeat(5000) + "]".repeat(5000) + "}",
      '{"a":' + '{"b":'.repeat(3000) + "1" + "}".repeat(3000) + "}",
      '{"__metadata__":{"k":{"x":1}}}',
      '{"__metadata__":{"k":[1]}}',
      '{"__metadata__":"pt"}',
      '{"__metadata__":null}',
      '{"a":[]}',
      '{"a":null}',
      '{"a":"F32"}',
      '{"a":{}}',
      '{"a":{"dtype":"F32"}}',
      '{"a":{"dtype":"F32","shape":[]}}',
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}\u0000',
      JSON.stringify(src.header) + "\u0000".repeat(7),
    ]
  ) {
    yield { kind: "json-junk", bytes: withHeaderText(src, text), expect: "any" };
  }
  // 6. wrong dtypes
  for (let i = 0; i < 24; i++) {
    const h = clone(src.header) as Record<string, Record<string, unknown>>;
    h[pick(names)]!.dtype = pick([
      "F31",
      "",
      "f32",
      "float32",
      5,
      null,
      ["F32"],
      "F8_E4M3",
      "F64",
      "BOOL",
      "I64",
      "U16",
      "__proto__",
      "toString",
      "constructor",
    ]);
    yield { kind: "dtype", bytes: withHeader(src, h), expect: "any" };
  }
  // 7. huge and bad shapes
  const shapes: unknown[] = [
    [2 ** 53, 2],
    [1e30],
    [2 ** 31, 2 ** 31, 2 ** 31],
    [Number.MAX_SAFE_INTEGER],
    [-1],
    [1.5],
    ["4"],
    [null],
    {},
    "[4]",
    [0],
    [],
    Array(2000).fill(1),
  ];
  for (const shape of shapes) {
    const h = clone(src.header) as Record<string, Record<string, unknown>>;
    h[pick(names)]!.shape = shape;
    yield { kind: "shape", bytes: withHeader(src, h), expect: "any" };
  }
  // 8. offsets: overlapping, out of range, reversed, odd types
  for (let i = 0; i < 30; i++) {
    const h = clone(src.header) as Record<string, Record<string, unknown>>;
    const a = pick(names);
    const b = pick(names);
    const offA = h[a]!.data_offsets as number[];
    const offB = h[b]!.data_offsets as number[];
    const dataSize = size - 8 - n;
    const choice = int(0, 9);
    if (choice === 0) h[a]!.data_offsets = [...offB]; // overlap (same bytes)
    else if (choice === 1) h[a]!.data_offsets = [offA[0]! + 1, offA[1]! + 1];
    else if (choice === 2) {
      h[a]!.data_offsets = [dataSize - (offA[1]! - offA[0]!) + 1, dataSize + 1];
    } else if (choice === 3) h[a]!.data_offsets = [offA[1], offA[0]];
    else if (choice === 4) h[a]!.data_offsets = [-1, offA[1]! - offA[0]! - 1];
    else if (choice === 5) h[a]!.data_offsets = [0.5, 4.5];
    else if (choice === 6) h[a]!.data_offsets = [String(offA[0]), offA[1]];
    else if (choice === 7) h[a]!.data_offsets = [2 ** 60, 2 ** 60 + (offA[1]! - offA[0]!)];
    else if (choice === 8) h[a]!.data_offsets = [offA[0]];
    else h[a]!.data_offsets = [offA[0], offA[1], 0];
    yield {
      kind: "offsets",
      bytes: withHeader(src, h),
      expect: choice === 0 && a === b ? "ok" : "error",
    };
  }
  // 9. duplicate keys, extra fields, renamed metadata
  {
    const text = JSON.stringify(src.header);
    const first = pick(names);
    const entry = JSON.stringify({ [first]: src.header[first] }).slice(1, -1);
    yield {
      kind: "duplicate-key",
      bytes: withHeaderText(src, text.slice(0, -1) + "," + entry + "}"),
      expect: "any",
    };
    const h = clone(src.header) as Record<string, Record<string, unknown>>;
    h[first]!.extra = { nested: [1, { deep: "junk" }] };
    yield { kind: "extra-field", bytes: withHeader(src, h), expect: "ok" };
  }
  // 10. corruption inside tensor data only: always harmless
  for (let i = 0; i < 20; i++) {
    const b = src.bytes.slice();
    for (let j = 0; j < 16; j++) b[int(8 + n, size - 1)] = int(0, 255);
    yield { kind: "data-bytes", bytes: b, expect: "ok" };
  }
  // 11. trailing bytes after the data (the reference rejects them too)
  for (const extra of [1, 8, 13]) {
    const b = new Uint8Array(size + extra);
    b.set(src.bytes);
    yield { kind: "trailing", bytes: b, expect: "error" };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms (hang?)`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function checkError(e: unknown, what: string): void {
  if (!(e instanceof GptqError)) {
    throw new Error(
      `${what}: threw ${e instanceof Error ? e.name : typeof e} instead of GptqError: ${e}`,
      {
        cause: e,
      },
    );
  }
  assert.ok(
    e.code.startsWith("SAFETENSORS_") || e.code === "FILE_NOT_FOUND",
    `${what}: unexpected code ${e.code}: ${e.message}`,
  );
  assert.ok(e.file, `${what}: error does not name the file: ${e.message}`);
}

/** Opens and fully reads a file; returns whether it read cleanly. */
async function readFully(path: string): Promise<boolean> {
  try {
    using f = await SafetensorsFile.open(path);
    for (const name of f.names()) {
      const t = await f.read(name);
      assert.equal(t.data.byteLength, f.info(name).byteLength);
      await f.readFloat32(name);
    }
    return true;
  } catch (e) {
    checkError(e, path);
    return false;
  }
}

async function readCheckpoint(dir: string): Promise<boolean> {
  try {
    using c = await CheckpointReader.open(dir);
    await Promise.all(c.names().map((n) => c.readFloat32(n)));
    return true;
  } catch (e) {
    checkError(e, dir);
    return false;
  }
}

async function loadSources(): Promise<Source[]> {
  const out: Source[] = [];
  for (const name of SOURCES) {
    const bytes = await Deno.readFile(`${GOLDEN}${name}`);
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
    out.push({ name, bytes, headerLen, header });
  }
  return out;
}

Deno.test("fuzz: corrupted golden files read cleanly or fail with a typed error", async () => {
  const start = performance.now();
  const r = mulberry32(SEED);
  const dir = await Deno.makeTempDir({ prefix: "st-fuzz-" });
  const rss0 = Deno.memoryUsage().rss;
  let maxRss = rss0;
  const stats = new Map<string, { ok: number; error: number }>();
  let total = 0;
  try {
    for (const src of await loadSources()) {
      for (const c of makeCases(src, r)) {
        total++;
        const what = `seed ${SEED} case #${total} ${c.kind} on ${src.name}`;
        const path = `${dir}/model.safetensors`;
        await Deno.writeFile(path, c.bytes);
        const ok = await withTimeout(readFully(path), CASE_BUDGET_MS, what);
        const ok2 = await withTimeout(readCheckpoint(dir), CASE_BUDGET_MS, what);
        assert.equal(ok2, ok, `${what}: CheckpointReader and SafetensorsFile disagree`);
        if (c.expect !== "any") assert.equal(ok ? "ok" : "error", c.expect, what);
        const s = stats.get(c.kind) ?? { ok: 0, error: 0 };
        s[ok ? "ok" : "error"]++;
        stats.set(c.kind, s);
        maxRss = Math.max(maxRss, Deno.memoryUsage().rss);
        assert.ok(
          performance.now() - start < TOTAL_BUDGET_MS,
          `fuzz ran past ${TOTAL_BUDGET_MS} ms`,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  console.log(
    `${total} cases in ${(performance.now() - start).toFixed(0)} ms, rss +${
      ((maxRss - rss0) / 2 ** 20).toFixed(0)
    } MiB:`,
    Object.fromEntries(stats),
  );
  assert.ok(total >= 500, `only ${total} cases`);
  assert.ok(maxRss - rss0 < MAX_RSS_GROWTH, `rss grew by ${maxRss - rss0} bytes`);
  // every category produced both outcomes where both are possible
  assert.ok(stats.get("header-bytes")!.error > 0);
  assert.ok(stats.get("dtype")!.error > 0);
});

Deno.test("fuzz: corrupted sharded indexes fail with a typed error naming the index", async () => {
  const r = mulberry32(SEED + 1);
  const dir = await Deno.makeTempDir({ prefix: "st-fuzz-index-" });
  try {
    const [src] = await loadSources();
    using f = await SafetensorsFile.open(`${GOLDEN}${src!.name}`);
    const w = new ShardedWriter(dir, { maxShardSize: 100_000 });
    for (const name of f.names()) await w.add({ name, ...(await f.read(name)) });
    const res = await w.finish();
    assert.ok(res.files.length >= 3);
    const indexPath = `${dir}/model.safetensors.index.json`;
    const original = await Deno.readTextFile(indexPath);
    const shardNames = [...new Set(Object.values(res.weightMap))];
    let n = 0;
    let failures = 0;
    for (let i = 0; i < 150; i++) {
      const idx = JSON.parse(original);
      const names = Object.keys(idx.weight_map);
      const t = names[Math.floor(r() * names.length)]!;
      let text: string;
      switch (i % 10) {
        case 0: { // random byte edits
          const chars = [...original];
          for (let j = 0; j < 3; j++) {
            chars[Math.floor(r() * chars.length)] = String.fromCharCode(r() * 128);
          }
          text = chars.join("");
          break;
        }
        case 1:
          text = original.slice(0, Math.floor(r() * original.length));
          break;
        case 2:
          idx.weight_map[t] = shardNames[Math.floor(r() * shardNames.length)];
          text = JSON.stringify(idx);
          break;
        case 3:
          idx.weight_map[t] = "model-99999-of-99999.safetensors";
          text = JSON.stringify(idx);
          break;
        case 4:
          idx.weight_map[t] = ["../../etc/passwd", "/abs.safetensors", "", 7, null][i % 5];
          text = JSON.stringify(idx);
          break;
        case 5:
          idx.weight_map = [["a", "b"], null, "x", 3][i % 4];
          text = JSON.stringify(idx);
          break;
        case 6:
          idx.weight_map["not.a.tensor"] = shardNames[0];
          text = JSON.stringify(idx);
          break;
        case 7:
          text = ["[]", "null", "", "{", '{"weight_map":{}}'][i % 5]!;
          break;
        case 8: // a shard file itself truncated
          await Deno.writeFile(
            res.files[i % res.files.length]!,
            (await Deno.readFile(res.files[0]!)).slice(0, 50),
          );
          text = original;
          break;
        default:
          delete idx.weight_map[t]; // harmless: an unlisted tensor is ignored
          text = JSON.stringify(idx);
      }
      await Deno.writeTextFile(indexPath, text);
      n++;
      const ok = await withTimeout(readCheckpoint(dir), CASE_BUDGET_MS, `index case ${i}`);
      if (!ok) failures++;
      if (i % 10 === 8) {
        // restore the shards for the next cases
        const w2 = new ShardedWriter(`${dir}/restore`, { maxShardSize: 100_000 });
        await Deno.mkdir(`${dir}/restore`, { recursive: true });
        for (const name of f.names()) await w2.add({ name, ...(await f.read(name)) });
        const res2 = await w2.finish();
        for (const p of res2.files) await Deno.rename(p, `${dir}/${p.split("/").pop()}`);
        await Deno.remove(`${dir}/restore`, { recursive: true });
      }
    }
    assert.equal(n, 150);
    assert.ok(failures >= 100, `only ${failures} of ${n} corrupt indexes failed`);
    await Deno.writeTextFile(indexPath, original);
    assert.ok(await readCheckpoint(dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
