// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../errors.ts";
import { f16BitsToF32 } from "./dtype.ts";
import {
  MAX_HEADER_BYTES,
  parseHeader,
  parseHeaderLength,
  SafetensorsFile,
} from "./safetensors.ts";

const GOLDEN = fileURLToPath(new URL("../../../shared/data/golden/", import.meta.url));

interface Case {
  file: string;
  K: number;
  N: number;
  bits: string;
  group_size: string;
  sym: string;
  desc_act: string;
  dead_columns: number[];
}

function isCode(code: string): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof GptqError, `expected GptqError, got ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

/** Builds a safetensors file from a header object and a data section. */
function build(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("SafetensorsFile reads AutoGPTQ goldens with the shapes cases.json describes", async () => {
  const cases = JSON.parse(await Deno.readTextFile(`${GOLDEN}autogptq/cases.json`)).cases as Case[];
  assert.equal(cases.length, 8);
  for (const c of cases) {
    using f = await SafetensorsFile.open(`${GOLDEN}autogptq/${c.file}`);
    const bits = Number(c.bits);
    const g = Number(c.group_size) === -1 ? 1 : Math.ceil(c.K / Number(c.group_size));
    assert.equal(f.metadata.bits, c.bits);
    assert.equal(f.metadata.group_size, c.group_size);
    assert.equal(f.metadata.desc_act, c.desc_act);
    assert.deepEqual(JSON.parse(f.metadata.dead_columns!), c.dead_columns);
    const shapes = Object.fromEntries(f.infos().map((t) => [t.name, [t.dtype, t.shape]]));
    assert.deepEqual(shapes.W, ["F32", [c.N, c.K]]);
    assert.deepEqual(shapes.H, ["F32", [c.K, c.K]]);
    assert.deepEqual(shapes.Q, ["F32", [c.N, c.K]]);
    assert.deepEqual(shapes.scale, ["F32", [c.N, g]]);
    assert.deepEqual(shapes.g_idx, ["I32", [c.K]]);
    assert.deepEqual(shapes.qweight, ["I32", [(c.K * bits) / 32, c.N]]);
    assert.deepEqual(shapes.qzeros, ["I32", [g, (c.N * bits) / 32]]);
    assert.deepEqual(shapes.scales, ["F16", [g, c.N]]);
    // H is a Gram matrix: symmetric with a non-negative diagonal.
    const H = await f.readFloat32("H");
    for (let i = 0; i < c.K; i += 17) {
      assert.ok(H[i * c.K + i]! >= 0);
      for (let j = 0; j < c.K; j += 13) {
        assert.ok(
          Math.abs(H[i * c.K + j]! - H[j * c.K + i]!) <= 1e-3 * Math.abs(H[i * c.K + j]!) + 1e-6,
        );
      }
    }
    // packer's fp16 scales are the solver's fp32 scales rounded to fp16 (transposed)
    const scale = await f.readFloat32("scale");
    const scales = await f.read("scales");
    const s16 = new Uint16Array(scales.data.slice().buffer);
    for (let n = 0; n < c.N; n++) {
      for (let k = 0; k < g; k++) {
        const want = scale[n * g + k]!;
        const got = f16BitsToF32(s16[k * c.N + n]!);
        assert.ok(Math.abs(got - want) <= Math.abs(want) * 2 ** -10, `${c.file} scale[${n},${k}]`);
      }
    }
    const gidx = await f.readFloat32("g_idx");
    if (c.desc_act === "false" && g > 1) {
      for (let k = 0; k < c.K; k++) assert.equal(gidx[k], Math.floor(k / Number(c.group_size)));
    }
  }
});

Deno.test("SafetensorsFile reads transformers' goldens; logits and input_ids have the documented shapes", async () => {
  for (const m of ["gpt2", "gpt_neox", "llama", "opt"]) {
    using g = await SafetensorsFile.open(`${GOLDEN}models/${m}/golden.safetensors`);
    assert.deepEqual(g.info("input_ids").shape, [96]);
    assert.deepEqual(g.info("logits").shape, [96, 1024]);
    const ids = await g.readFloat32("input_ids");
    assert.ok(ids.every((v) => Number.isInteger(v) && v >= 0 && v < 1024));
    const logits = await g.readFloat32("logits");
    assert.ok(logits.every(Number.isFinite));
    using model = await SafetensorsFile.open(`${GOLDEN}models/${m}/model.safetensors`);
    assert.deepEqual(model.metadata, { format: "pt" });
    const want = { gpt2: "F32", gpt_neox: "BF16", llama: "F16", opt: "F16" }[m];
    const floats = model.infos().filter((t) => t.dtype.startsWith("F") || t.dtype === "BF16");
    assert.ok(floats.length > 0 && floats.every((t) => t.dtype === want), m);
    // names are in data order, data is contiguous from offset dataStart, file ends at the last tensor
    let pos = model.dataStart;
    for (const t of model.infos()) {
      assert.equal(t.offset, pos);
      pos += t.byteLength;
    }
    assert.equal(pos, model.size);
    for (const t of model.infos()) {
      const v = await model.readFloat32(t.name);
      assert.ok(v.every(Number.isFinite), `${m}: ${t.name}`);
    }
  }
});

Deno.test("SafetensorsFile.read is safe to call concurrently", async () => {
  const path = `${GOLDEN}models/llama/model.safetensors`;
  using f = await SafetensorsFile.open(path);
  const seq = [];
  for (const n of f.names()) seq.push(await f.read(n));
  const par = await Promise.all(f.names().map((n) => f.read(n)));
  assert.deepEqual(par, seq);
  const raw = await Deno.readFile(path);
  for (const t of f.infos()) {
    const got = par[f.names().indexOf(t.name)]!.data;
    assert.deepEqual(got, raw.subarray(t.offset, t.offset + t.byteLength));
  }
});

Deno.test("SafetensorsFile errors name the file and tensor", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(SafetensorsFile.open(`${dir}/none.safetensors`), isCode("FILE_NOT_FOUND"));
    await assert.rejects(SafetensorsFile.open(dir), isCode("FILE_NOT_FOUND"));
    const p = `${dir}/x.safetensors`;
    await Deno.writeFile(
      p,
      build({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
    );
    const f = await SafetensorsFile.open(p);
    assert.throws(() => f.info("b"), (e) => {
      isCode("SAFETENSORS_MISSING_TENSOR")(e);
      assert.equal((e as GptqError).file, p);
      assert.equal((e as GptqError).tensor, "b");
      return true;
    });
    f.close();
    f.close();
    await assert.rejects(f.read("a"), isCode("INVALID_ARGUMENT"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseHeaderLength bounds the length before anything is allocated", () => {
  const prefix = (n: bigint) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, n, true);
    return b;
  };
  assert.equal(parseHeaderLength(prefix(16n), 100, "f"), 16);
  assert.throws(() => parseHeaderLength(prefix(16n), 7, "f"), isCode("SAFETENSORS_TRUNCATED"));
  assert.throws(() => parseHeaderLength(prefix(1n), 100, "f"), isCode("SAFETENSORS_HEADER"));
  assert.throws(() => parseHeaderLength(prefix(93n), 100, "f"), isCode("SAFETENSORS_TRUNCATED"));
  assert.throws(() => parseHeaderLength(prefix(2n ** 63n), 100, "f"), isCode("SAFETENSORS_HEADER"));
  assert.throws(
    () => parseHeaderLength(prefix(2n ** 64n - 1n), 100, "f"),
    isCode("SAFETENSORS_HEADER"),
  );
  assert.throws(
    () => parseHeaderLength(prefix(BigInt(MAX_HEADER_BYTES) + 1n), 2 ** 40, "f"),
    isCode("SAFETENSORS_HEADER"),
  );
});

Deno.test("parseHeader rejects every malformed header with a typed error", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  const t = (v: unknown) => JSON.stringify({ a: v });
  const ok = { dtype: "F32", shape: [2], data_offsets: [0, 8] };
  const bad: [Uint8Array, string, RegExp][] = [
    [new Uint8Array([0x7b, 0xff, 0x7d]), "SAFETENSORS_HEADER", /UTF-8/],
    [enc("{"), "SAFETENSORS_HEADER", /JSON/],
    [enc("[]"), "SAFETENSORS_HEADER", /not a JSON object/],
    [enc("null"), "SAFETENSORS_HEADER", /not a JSON object/],
    [enc('{"__metadata__":[]}'), "SAFETENSORS_HEADER", /__metadata__/],
    [enc('{"__metadata__":{"k":1}}'), "SAFETENSORS_HEADER", /__metadata__\['k'\]/],
    [enc(t(3)), "SAFETENSORS_HEADER", /not an object/],
    [enc(t({ ...ok, dtype: "Q4" })), "SAFETENSORS_HEADER", /unknown dtype/],
    [enc(t({ ...ok, shape: [-2] })), "SAFETENSORS_HEADER", /shape/],
    [enc(t({ ...ok, shape: [1.5] })), "SAFETENSORS_HEADER", /shape/],
    [enc(t({ ...ok, shape: "2" })), "SAFETENSORS_HEADER", /shape/],
    [enc(t({ ...ok, shape: [2 ** 40, 2 ** 40] })), "SAFETENSORS_HEADER", /too large/],
    [enc(t({ ...ok, data_offsets: [0] })), "SAFETENSORS_HEADER", /data_offsets/],
    [enc(t({ ...ok, data_offsets: [8, 0] })), "SAFETENSORS_HEADER", /end before begin/],
    [enc(t({ ...ok, data_offsets: [0, 4] })), "SAFETENSORS_HEADER", /needs 8 bytes/],
    [enc(t({ ...ok, data_offsets: [8, 16] })), "SAFETENSORS_TRUNCATED", /runs past/],
    [
      enc(JSON.stringify({ a: ok, b: { ...ok, data_offsets: [4, 12] } })),
      "SAFETENSORS_HEADER",
      /overlaps/,
    ],
  ];
  for (const [json, code, re] of bad) {
    // data section: 12 bytes
    assert.throws(() => parseHeader(json, 8 + json.length + 12, "f.safetensors"), (e) => {
      isCode(code)(e);
      assert.equal((e as GptqError).file, "f.safetensors");
      assert.match((e as GptqError).message, re);
      return true;
    }, new TextDecoder().decode(json));
  }
});

Deno.test("parseHeader keeps data order, odd names and a __proto__ metadata key", () => {
  // Written by hand: a JS object literal would turn "__proto__" into a prototype.
  const text = '{"__metadata__":{"__proto__":"x","format":"pt"},' +
    '"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},' +
    '"10":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},' +
    '"2":{"dtype":"U8","shape":[],"data_offsets":[2,3]},' +
    '"":{"dtype":"BOOL","shape":[0],"data_offsets":[3,3]},' +
    '"__proto__":{"dtype":"I16","shape":[1],"data_offsets":[3,5]}}';
  const json = new TextEncoder().encode(text);
  const h = parseHeader(json, 8 + json.length + 5, "f");
  assert.deepEqual(h.tensors.map((t) => t.name), ["b", "10", "2", "", "__proto__"]);
  assert.equal(Object.getPrototypeOf(h.metadata), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(h.metadata, "__proto__")?.value, "x");
  assert.equal(h.metadata.format, "pt");
});
