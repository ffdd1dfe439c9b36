// Copyright 2026 the GPTQ toolkit authors. MIT license.
// The GGUF reader and dequantizers, against vectors made by PyPI `gguf` (see
// tests/fixtures/gguf/make_fixtures.py), and against truncated and hostile files.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../errors.ts";
import { GgufReader, GgufType } from "./gguf.ts";
import { DEQUANT_TYPES, dequantize } from "./gguf_dequant.ts";
import { buildGguf, type KvSpec } from "./_gguf_test_util.ts";

const FIXTURES = fileURLToPath(new URL("../../tests/fixtures/gguf/", import.meta.url));
const DEQUANT = `${FIXTURES}dequant.gguf`;

/** Asserts `fn` rejects with a one-line GptqError of `code` whose message contains `parts`. */
async function rejects(fn: () => Promise<unknown>, code: string, ...parts: string[]) {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof GptqError, `not a GptqError: ${(e as Error)?.stack}`);
    assert.equal(e.code, code, e.message);
    assert.ok(!e.message.includes("\n"), `multi-line message: ${e.message}`);
    for (const p of parts) assert.ok(e.message.includes(p), `'${p}' not in: ${e.message}`);
    return e;
  }
  assert.fail("did not throw");
}

Deno.test("gguf: every dequantizer matches gguf-py bit for bit on the fixture", async () => {
  using r = await GgufReader.open(DEQUANT);
  const seen: string[] = [];
  for (const t of r.header.tensors) {
    if (!t.name.startsWith("q.") || t.name === "q.IQ4_NL") continue;
    const got = await r.readTensor(t);
    const want = await r.readTensor(`expect.${t.name.slice(2)}`);
    assert.equal(got.length, want.length, t.name);
    for (let i = 0; i < got.length; i++) {
      assert.ok(Object.is(got[i], want[i]), `${t.name}[${i}]: ${got[i]} != ${want[i]}`);
    }
    seen.push(t.typeName);
  }
  assert.deepEqual(seen.sort(), [...DEQUANT_TYPES].sort());
});

Deno.test("gguf: metadata of every value type, arrays, nesting and alignment", async () => {
  using r = await GgufReader.open(DEQUANT);
  const h = r.header;
  const m = h.metadata;
  assert.equal(h.version, 3);
  assert.equal(h.alignment, 64);
  assert.equal(h.dataOffset % 64, 0);
  assert.equal(m.get("general.architecture"), "llama");
  assert.equal(m.get("test.u8"), 250);
  assert.equal(m.get("test.i8"), -120);
  assert.equal(m.get("test.u16"), 65000);
  assert.equal(m.get("test.i16"), -32000);
  assert.equal(m.get("test.u32"), 4_000_000_000);
  assert.equal(m.get("test.i32"), -2_000_000_000);
  assert.equal(m.get("test.f32"), Math.fround(0.1));
  assert.equal(m.get("test.bool_true"), true);
  assert.equal(m.get("test.bool_false"), false);
  assert.equal(m.get("test.str"), "héllo ▁ wörld \u2728");
  assert.equal(m.get("test.u64"), Number.MAX_SAFE_INTEGER);
  assert.equal(m.get("test.i64"), -(2 ** 40));
  assert.equal(m.get("test.f64"), 1e-300);
  assert.equal(m.get("test.u64_big"), 2n ** 63n + 5n);
  assert.deepEqual(m.get("test.arr_u8"), new Uint8Array([1, 2, 255]));
  assert.deepEqual(m.get("test.arr_i16"), new Int16Array([-1, 7]));
  assert.deepEqual(m.get("test.arr_i32"), new Int32Array([-5, 0, 5]));
  assert.deepEqual(m.get("test.arr_f32"), new Float32Array([0.5, -2.25]));
  assert.deepEqual(m.get("test.arr_u64"), [3, 2 ** 40]);
  assert.deepEqual(m.get("test.arr_f64"), new Float64Array([1.5]));
  assert.deepEqual(m.get("test.arr_bool"), [true, false]);
  assert.deepEqual(m.get("test.arr_str"), ["a", "", "ü"]);
  assert.deepEqual(m.get("test.arr_nested"), [["x", "y"], ["z"]]);
  assert.deepEqual(h.types.get("test.arr_nested"), { type: GgufType.ARRAY, itemType: 9 });
  const q = r.tensor("q.Q4_K")!;
  assert.deepEqual([q.ne, q.shape, q.typeName, q.byteLength], [[256, 3], [3, 256], "Q4_K", 432]);
  assert.equal(q.fileOffset % 64, 0);
});

Deno.test("gguf: an unsupported tensor type is a typed error naming tensor and type", async () => {
  using r = await GgufReader.open(DEQUANT);
  await rejects(() => r.readTensor("q.IQ4_NL"), "UNSUPPORTED_FORMAT", "q.IQ4_NL", "IQ4_NL");
  assert.throws(() => dequantize(new Uint8Array(3), 8, 32), GptqError); // wrong byte count
});

Deno.test("gguf: empty arrays, GGUF v2, and a file with no tensors", async () => {
  const kvs: KvSpec[] = [
    { key: "general.architecture", type: GgufType.STRING, value: "llama" },
    { key: "e", type: GgufType.ARRAY, itemType: GgufType.STRING, value: [] },
    { key: "f", type: GgufType.ARRAY, itemType: GgufType.FLOAT32, value: [] },
  ];
  using r = await GgufReader.fromBytes(buildGguf(kvs, [], { version: 2 }), "v2.gguf");
  assert.equal(r.header.version, 2);
  assert.deepEqual(r.header.metadata.get("e"), []);
  assert.deepEqual(r.header.metadata.get("f"), new Float32Array(0));
  assert.equal(r.header.tensors.length, 0);
});

/** A small valid file to corrupt. */
function sample(): Uint8Array {
  return buildGguf(
    [
      { key: "general.architecture", type: GgufType.STRING, value: "llama" },
      { key: "a", type: GgufType.ARRAY, itemType: GgufType.STRING, value: ["x", "yz"] },
      { key: "n", type: GgufType.UINT32, value: 7 },
    ],
    [{ name: "w", ne: [32, 2], type: 8, data: new Uint8Array(68) }],
  );
}

/** Offset just past the first GGUF string (uint64 length + bytes) equal to `s`. */
function after(hay: Uint8Array, s: string): number {
  const body = new TextEncoder().encode(s);
  const n = new Uint8Array(8 + body.length);
  new DataView(n.buffer).setBigUint64(0, BigInt(body.length), true);
  n.set(body, 8);
  outer: for (let i = 0; i + n.length <= hay.length; i++) {
    for (let j = 0; j < n.length; j++) if (hay[i + j] !== n[j]) continue outer;
    return i + n.length;
  }
  throw new Error(`${s} not found`);
}

function patch64(b: Uint8Array, at: number, v: bigint): Uint8Array {
  const c = b.slice();
  new DataView(c.buffer).setBigUint64(at, v, true);
  return c;
}

function patch32(b: Uint8Array, at: number, v: number): Uint8Array {
  const c = b.slice();
  new DataView(c.buffer).setUint32(at, v, true);
  return c;
}

Deno.test("gguf: every truncation of a file is a typed error naming the file", async () => {
  const whole = await Deno.readFile(DEQUANT);
  const h = (await GgufReader.fromBytes(whole)).header;
  const end = Math.max(...h.tensors.map((t) => t.fileOffset + t.byteLength)); // padding follows
  const t0 = performance.now();
  const cuts = new Set<number>([0, 3, 4, 8, 23, 24, 25, end - 1]);
  for (let i = 0; i < 300; i++) cuts.add(Math.floor((i / 300) * end));
  for (const cut of cuts) {
    await rejects(
      () => GgufReader.fromBytes(whole.subarray(0, cut), "cut.gguf"),
      "GGUF",
      "cut.gguf",
    );
  }
  assert.ok(performance.now() - t0 < 5000);
  // On disk too: the file's tensor table names the tensor that runs past the end.
  const tmp = await Deno.makeTempFile({ suffix: ".gguf" });
  try {
    await Deno.writeFile(tmp, whole.subarray(0, whole.length - 100));
    await rejects(() => GgufReader.open(tmp), "GGUF", tmp, "runs past the end");
  } finally {
    await Deno.remove(tmp);
  }
});

Deno.test("gguf: absurd counts and lengths fail fast without allocating", async () => {
  const b = sample();
  const open = (bytes: Uint8Array) => () => GgufReader.fromBytes(bytes, "bad.gguf");
  const t0 = performance.now();
  await rejects(open(patch64(b, 8, 1n << 60n)), "GGUF", "tensor count");
  await rejects(open(patch64(b, 16, 0xffffffffffffffffn)), "GGUF", "metadata count");
  // key length, string length, array length
  await rejects(open(patch64(b, 24, 1n << 62n)), "GGUF", "metadata key #0");
  const arr = after(b, "a") + 8; // key "a", value type, item type -> count
  await rejects(open(patch64(b, arr, 1n << 40n)), "GGUF", "array length");
  const str = after(b, "llama") - 13;
  await rejects(open(patch64(b, str, (1n << 63n) + 1n)), "GGUF", "claims");
  // tensor table: dims, a dimension, the offset, the type
  const w = after(b, "w"); // n_dims, 2 dims, type, offset
  await rejects(open(patch32(b, w, 1000)), "GGUF", "dimensions");
  await rejects(open(patch64(b, w + 4, 1n << 40n)), "GGUF", "runs past the end");
  await rejects(open(patch64(b, w + 4, 1n << 60n)), "GGUF", "dimension 0");
  await rejects(open(patch64(b, w + 4, 1n << 52n)), "GGUF", "absurd");
  await rejects(open(patch32(b, w + 20, 999)), "UNSUPPORTED_FORMAT", "999", "'w'");
  await rejects(open(patch64(b, w + 24, 5n)), "GGUF", "not a multiple of 32");
  await rejects(open(patch64(b, w + 24, 1n << 50n)), "GGUF", "runs past the end");
  assert.ok(performance.now() - t0 < 1000);
});

Deno.test("gguf: structural errors are typed and one line", async () => {
  const open = (bytes: Uint8Array) => () => GgufReader.fromBytes(bytes, "bad.gguf");
  const b = sample();
  await rejects(
    open(new TextEncoder().encode("not a gguf file at all, nope")),
    "GGUF",
    "not a GGUF",
  );
  await rejects(open(patch32(b, 4, 1)), "GGUF", "version 1");
  await rejects(open(patch32(b, 4, 0x03000000)), "GGUF", "big-endian");
  const n = after(b, "n"); // value type of "n"
  await rejects(open(patch32(b, n, 77)), "GGUF", "unknown value type 77");
  const kv = (v: KvSpec) => buildGguf([v], []);
  await rejects(open(kv({ key: "b", type: GgufType.BOOL, value: 2 })), "GGUF", "not 0 or 1");
  await rejects(
    open(kv({ key: "general.alignment", type: GgufType.UINT32, value: 48 })),
    "GGUF",
    "power of two",
  );
  const dup = buildGguf([
    { key: "k", type: GgufType.UINT8, value: 1 },
    { key: "k", type: GgufType.UINT8, value: 2 },
  ], []);
  await rejects(open(dup), "GGUF", "'k' appears twice");
  const bad = kv({ key: "s", type: GgufType.STRING, value: "ab" });
  bad[after(bad, "s") + 4 + 8 + 1] = 0xff; // "a\xff"
  await rejects(open(bad), "GGUF", "UTF-8");
  // arrays nested 1000 deep: refused at depth 8, not a stack overflow
  let v: unknown = [];
  for (let i = 0; i < 1000; i++) v = [{ itemType: GgufType.ARRAY, value: v }];
  const deep = kv({ key: "d", type: GgufType.ARRAY, itemType: GgufType.ARRAY, value: v });
  await rejects(open(deep), "GGUF", "nested");
  await rejects(
    open(buildGguf([], [{ name: "x".repeat(65), ne: [1], type: 0, data: new Uint8Array(4) }])),
    "GGUF",
    "over 64",
  );
  await rejects(
    open(buildGguf([], [{ name: "q", ne: [33], type: 8, data: new Uint8Array(68) }])),
    "GGUF",
    "not a multiple of Q8_0 blocks",
  );
});

Deno.test("gguf: random corruption of a header never escapes as an untyped error", async () => {
  const whole = await Deno.readFile(DEQUANT);
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const t0 = performance.now();
  for (let i = 0; i < 300; i++) {
    const b = whole.slice(0, 2048);
    for (let k = 0; k < 3; k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    try {
      await GgufReader.fromBytes(b, "fuzz.gguf");
    } catch (e) {
      assert.ok(e instanceof GptqError, `untyped: ${(e as Error)?.stack}`);
    }
  }
  assert.ok(performance.now() - t0 < 10000);
});
