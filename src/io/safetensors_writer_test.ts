// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../errors.ts";
import { type DType, DTYPE_SIZE } from "./dtype.ts";
import { SafetensorsFile } from "./safetensors.ts";
import {
  type NamedTensor,
  parseSize,
  ShardedWriter,
  writeSafetensors,
} from "./safetensors_writer.ts";
import { mulberry32 as rng } from "../runtime/sample.ts";

const DATA = fileURLToPath(new URL("../../../shared/data/", import.meta.url));

/** Every real safetensors file of the shared goldens (written by the reference implementation). */
async function goldenFiles(): Promise<string[]> {
  const out: string[] = [];
  for (const sub of ["golden/autogptq", "golden/models"]) {
    const stack = [`${DATA}${sub}`];
    while (stack.length) {
      const dir = stack.pop()!;
      for await (const e of Deno.readDir(dir)) {
        const p = `${dir}/${e.name}`;
        if (e.isDirectory) stack.push(p);
        else if (e.name.endsWith(".safetensors")) out.push(p);
      }
    }
  }
  return out.sort();
}

function randomTensor(name: string, dtype: DType, shape: number[], r: () => number): NamedTensor {
  const n = shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype];
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = (r() * 256) | 0;
  if (dtype === "BOOL") { for (let i = 0; i < n; i++) data[i]! &= 1; }
  return { name, dtype, shape, data };
}

async function* toAsync(ts: NamedTensor[]): AsyncGenerator<NamedTensor> {
  for (const t of ts) yield t;
}

async function* failing(t: NamedTensor): AsyncGenerator<NamedTensor> {
  yield t;
  throw new Error("producer failed");
}

async function assertGptqError(p: Promise<unknown>, code: string): Promise<GptqError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof GptqError, `expected GptqError, got ${e}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected GptqError ${code}`);
}

Deno.test("writeSafetensors re-writes every golden file byte for byte", async () => {
  const files = await goldenFiles();
  assert.ok(files.length >= 17, `found only ${files.length} golden files`);
  const dir = await Deno.makeTempDir();
  try {
    for (const path of files) {
      const original = await Deno.readFile(path);
      using f = await SafetensorsFile.open(path);
      const tensors: NamedTensor[] = [];
      for (const info of f.infos()) {
        const t = await f.read(info.name);
        tensors.push({ name: info.name, ...t });
      }
      const hasMeta = new TextDecoder().decode(original.subarray(8, 24)).includes("__metadata__");
      const out = `${dir}/out.safetensors`;
      await writeSafetensors(out, tensors, hasMeta ? f.metadata : undefined);
      const written = await Deno.readFile(out);
      assert.equal(written.byteLength, original.byteLength, path);
      assert.ok(written.every((b, i) => b === original[i]), `${path} differs`);
      // The async-iterable (spooling) path gives the same bytes.
      await writeSafetensors(out, toAsync(tensors), hasMeta ? f.metadata : undefined);
      const again = await Deno.readFile(out);
      assert.ok(again.every((b, i) => b === original[i]), `${path} differs (async)`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSafetensors round-trips every dtype, scalars, empty tensors and metadata", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = rng(1);
    const dtypes: DType[] = [
      "F64",
      "F32",
      "F16",
      "BF16",
      "I64",
      "I32",
      "I16",
      "I8",
      "U64",
      "U32",
      "U16",
      "U8",
      "BOOL",
      "F8_E4M3",
      "F8_E5M2",
    ];
    const tensors: NamedTensor[] = [];
    for (const dt of dtypes) {
      tensors.push(randomTensor(`m.${dt}.w`, dt, [3, 5], r));
      tensors.push(randomTensor(`m.${dt}.scalar`, dt, [], r));
      tensors.push(randomTensor(`m.${dt}.empty`, dt, [0, 7], r));
    }
    tensors.push(randomTensor('unicodé ✓ "q" \\ \n', "F32", [2, 1, 3], r));
    const meta = { format: "pt", "clé": 'välue "x"\n', empty: "" };
    const path = `${dir}/all.safetensors`;
    await writeSafetensors(path, tensors, meta);
    const bytes = await Deno.readFile(path);
    const hlen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(hlen % 8, 0);
    using f = await SafetensorsFile.open(path);
    assert.deepEqual(f.metadata, meta);
    assert.deepEqual(f.names(), tensors.map((t) => t.name));
    for (const t of tensors) {
      const got = await f.read(t.name);
      assert.equal(got.dtype, t.dtype);
      assert.deepEqual(got.shape, t.shape);
      assert.deepEqual(got.data, t.data);
    }
    // No metadata → no __metadata__ key; no tensors → "{}" padded.
    await writeSafetensors(path, []);
    const empty = await Deno.readFile(path);
    assert.equal(new TextDecoder().decode(empty.subarray(8)), "{}      ");
    assert.equal(new DataView(empty.buffer).getBigUint64(0, true), 8n);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSafetensors rejects bad tensors and leaves no file behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/x.safetensors`;
    const ok: NamedTensor = { name: "a", dtype: "F32", shape: [2], data: new Uint8Array(8) };
    const e1 = await assertGptqError(
      writeSafetensors(path, [ok, { ...ok, data: new Uint8Array(7) }]),
      "SAFETENSORS_TENSOR",
    );
    assert.equal(e1.tensor, "a");
    assert.equal(e1.file, path);
    await assertGptqError(writeSafetensors(path, [ok, ok]), "SAFETENSORS_TENSOR");
    await assertGptqError(
      writeSafetensors(path, [{ ...ok, name: "__metadata__" }]),
      "SAFETENSORS_TENSOR",
    );
    await assertGptqError(
      writeSafetensors(path, [{ ...ok, dtype: "Q4" as DType }]),
      "SAFETENSORS_TENSOR",
    );
    await assertGptqError(
      writeSafetensors(path, [{ ...ok, shape: [-2] }]),
      "SAFETENSORS_TENSOR",
    );
    await assertGptqError(
      writeSafetensors(path, [ok], { a: 1 as unknown as string }),
      "INVALID_ARGUMENT",
    );
    await assert.rejects(writeSafetensors(path, failing(ok)), /producer failed/);
    await assertGptqError(
      writeSafetensors(
        path,
        (async function* () {
          yield ok;
          yield ok;
        })(),
      ),
      "SAFETENSORS_TENSOR",
    );
    const left = [];
    for await (const e of Deno.readDir(dir)) left.push(e.name);
    assert.deepEqual(left, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseSize follows transformers' convert_file_size_to_int", () => {
  assert.equal(parseSize("10GB"), 10_000_000_000);
  assert.equal(parseSize("500MB"), 500_000_000);
  assert.equal(parseSize("2GiB"), 2 * 2 ** 30);
  assert.equal(parseSize("5kb"), 5000);
  assert.equal(parseSize("1.5GB"), 1_500_000_000);
  assert.equal(parseSize("123"), 123);
  assert.equal(parseSize(4096), 4096);
  for (const bad of ["", "GB", "10XB", "-1GB", "1e3"]) {
    assert.throws(
      () => parseSize(bad),
      (e) => e instanceof GptqError && e.code === "INVALID_ARGUMENT",
    );
  }
  assert.throws(() => parseSize(0), GptqError);
  assert.throws(() => parseSize(1.5), GptqError);
});

Deno.test("ShardedWriter splits like huggingface_hub and writes transformers' index", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = rng(7);
    // max 1000 bytes: a(400) b(400) | c(300) big(1200, own shard, placed before the open one) d(600) | e(500)
    const ts = [
      randomTensor("a", "F32", [100], r),
      randomTensor("b", "F16", [200], r),
      randomTensor("c", "I8", [300], r),
      randomTensor("big", "F32", [300], r),
      randomTensor("d", "BF16", [300], r),
      randomTensor("e", "U8", [500], r),
    ];
    const w = new ShardedWriter(dir, { maxShardSize: 1000, metadata: { format: "pt" } });
    for (const t of ts) await w.add(t);
    const res = await w.finish();
    const names = res.files.map((p) => p.slice(dir.length + 1));
    assert.deepEqual(names, [
      "model-00001-of-00004.safetensors",
      "model-00002-of-00004.safetensors",
      "model-00003-of-00004.safetensors",
      "model-00004-of-00004.safetensors",
    ]);
    const weightMap: Record<string, string> = res.weightMap;
    assert.deepEqual({ ...weightMap }, {
      a: names[0],
      b: names[0],
      big: names[1],
      c: names[2],
      d: names[2],
      e: names[3],
    });
    assert.equal(res.totalSize, 400 + 400 + 300 + 1200 + 600 + 500);
    const index = await Deno.readTextFile(`${dir}/model.safetensors.index.json`);
    // json.dumps(index, indent=2, sort_keys=True) + "\n", as transformers writes it.
    assert.equal(
      index,
      `{\n  "metadata": {\n    "total_size": 3400\n  },\n  "weight_map": {\n` +
        `    "a": "${names[0]}",\n    "b": "${names[0]}",\n    "big": "${names[1]}",\n` +
        `    "c": "${names[2]}",\n    "d": "${names[2]}",\n    "e": "${names[3]}"\n  }\n}\n`,
    );
    for (const t of ts) {
      using f = await SafetensorsFile.open(`${dir}/${weightMap[t.name]}`);
      assert.deepEqual(f.metadata, { format: "pt" });
      const got = await f.read(t.name);
      assert.deepEqual(got.data, t.data);
      assert.deepEqual(got.shape, t.shape);
    }
    const left = [];
    for await (const e of Deno.readDir(dir)) left.push(e.name);
    assert.equal(left.length, 5, `unexpected files: ${left}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ShardedWriter writes one model.safetensors when everything fits", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = rng(3);
    const ts = [randomTensor("x", "F16", [64, 3], r), randomTensor("y", "I32", [5], r)];
    const w = new ShardedWriter(dir, { baseName: "gptq_model-4bit-128g" });
    for (const t of ts) await w.add(t);
    const res = await w.finish();
    assert.deepEqual(res.files, [`${dir}/gptq_model-4bit-128g.safetensors`]);
    const bytes = await Deno.readFile(res.files[0]!);
    // Same bytes as the single-file writer.
    await writeSafetensors(`${dir}/ref.safetensors`, ts);
    assert.deepEqual(bytes, await Deno.readFile(`${dir}/ref.safetensors`));
    const left = [];
    for await (const e of Deno.readDir(dir)) left.push(e.name);
    assert.deepEqual(left.sort(), ["gptq_model-4bit-128g.safetensors", "ref.safetensors"]);
    await assertGptqError(w.add(ts[0]!), "INVALID_ARGUMENT");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ShardedWriter rejects duplicates and cleans up on abort", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = rng(5);
    const w = new ShardedWriter(dir, { maxShardSize: 100 });
    await w.add(randomTensor("a", "F32", [20], r));
    await w.add(randomTensor("b", "F32", [20], r));
    await assertGptqError(w.add(randomTensor("a", "F32", [1], r)), "SAFETENSORS_TENSOR");
    await assertGptqError(
      w.add({ name: "z", dtype: "F32", shape: [3], data: new Uint8Array(4) }),
      "SAFETENSORS_TENSOR",
    );
    await w.abort();
    const left = [];
    for await (const e of Deno.readDir(dir)) left.push(e.name);
    assert.deepEqual(left, []);
    assert.throws(() => new ShardedWriter(dir, { baseName: "../x" }), GptqError);
    assert.throws(() => new ShardedWriter(dir, { maxShardSize: "ten" }), GptqError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
