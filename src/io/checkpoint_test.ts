// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../errors.ts";
import { CheckpointReader } from "./checkpoint.ts";
import { SafetensorsFile } from "./safetensors.ts";
import { type NamedTensor, ShardedWriter, writeSafetensors } from "./safetensors_writer.ts";

const MODELS = fileURLToPath(new URL("../../../shared/data/golden/models/", import.meta.url));
const MODEL_DIRS = ["gpt2", "gpt_neox", "llama", "llama-gptq-4bit-g32", "opt"];

async function readAll(path: string): Promise<NamedTensor[]> {
  using f = await SafetensorsFile.open(path);
  const out: NamedTensor[] = [];
  for (const name of f.names()) out.push({ name, ...(await f.read(name)) });
  return out;
}

function isCode(code: string, file?: string): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof GptqError, `expected GptqError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (file !== undefined) assert.equal(e.file, file, e.message);
    return true;
  };
}

Deno.test("CheckpointReader reads every golden model folder like SafetensorsFile", async () => {
  for (const m of MODEL_DIRS) {
    const file = `${MODELS}${m}/model.safetensors`;
    const expected = await readAll(file);
    using ckpt = await CheckpointReader.open(`${MODELS}${m}`);
    assert.equal(ckpt.indexPath, null);
    assert.deepEqual(ckpt.metadata, { format: "pt" });
    assert.deepEqual(ckpt.names(), expected.map((t) => t.name));
    const size = (await Deno.stat(file)).size;
    assert.deepEqual(ckpt.files(), [{ path: file, size, tensors: expected.length }]);
    // concurrent reads on one file must not interleave
    const got = await Promise.all(expected.map((t) => ckpt.read(t.name)));
    for (let i = 0; i < expected.length; i++) {
      const e = expected[i]!;
      assert.equal(got[i]!.dtype, e.dtype);
      assert.deepEqual(got[i]!.shape, e.shape);
      assert.deepEqual(got[i]!.data, e.data, `${m}: ${e.name}`);
      assert.equal(ckpt.info(e.name).file, file);
    }
    const f32 = await ckpt.readFloat32(expected[0]!.name);
    assert.equal(f32.length, expected[0]!.shape.reduce((a, b) => a * b, 1));
    assert.throws(() => ckpt.info("nope"), isCode("SAFETENSORS_MISSING_TENSOR", file));
    await assert.rejects(ckpt.read("nope"), isCode("SAFETENSORS_MISSING_TENSOR"));
    assert.equal(ckpt.has("nope"), false);
  }
});

Deno.test("ShardedWriter → index → CheckpointReader gives back every tensor", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const m of ["llama", "gpt2"]) {
      const expected = await readAll(`${MODELS}${m}/model.safetensors`);
      const out = `${dir}/${m}`;
      await Deno.mkdir(out);
      const w = new ShardedWriter(out, { maxShardSize: "200kB", metadata: { format: "pt" } });
      for (const t of expected) await w.add(t);
      const res = await w.finish();
      assert.ok(res.files.length > MAX_OPEN_IN_TEST, `${m}: only ${res.files.length} shards`);
      using ckpt = await CheckpointReader.open(out);
      assert.equal(ckpt.indexPath, `${out}/model.safetensors.index.json`);
      assert.deepEqual(ckpt.files().map((f) => f.path), res.files);
      assert.equal(
        ckpt.files().reduce((a, f) => a + f.tensors, 0),
        expected.length,
      );
      // shard order, not add order: huggingface_hub puts an oversized tensor's own shard first
      assert.deepEqual(ckpt.names().sort(), expected.map((t) => t.name).sort());
      // all at once, across more shards than the reader keeps open
      const got = await Promise.all(expected.map((t) => ckpt.read(t.name)));
      for (let i = 0; i < expected.length; i++) {
        assert.deepEqual(got[i]!.data, expected[i]!.data, expected[i]!.name);
        assert.deepEqual(got[i]!.shape, expected[i]!.shape);
        assert.equal(got[i]!.dtype, expected[i]!.dtype);
        assert.equal(
          ckpt.info(expected[i]!.name).file,
          `${out}/${res.weightMap[expected[i]!.name]}`,
        );
      }
      // the index file itself can be opened too
      using viaIndex = await CheckpointReader.open(`${out}/model.safetensors.index.json`);
      assert.equal(viaIndex.names().length, expected.length);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const MAX_OPEN_IN_TEST = 4;

Deno.test("CheckpointReader finds AutoGPTQ's gptq_model-*.safetensors and single files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const src = `${MODELS}llama-gptq-4bit-g32/model.safetensors`;
    await Deno.copyFile(src, `${dir}/gptq_model-4bit-32g.safetensors`);
    await Deno.writeTextFile(`${dir}/quantize_config.json`, "{}");
    using a = await CheckpointReader.open(dir);
    assert.equal(a.files()[0]!.path, `${dir}/gptq_model-4bit-32g.safetensors`);
    using b = await CheckpointReader.open(src);
    assert.deepEqual(a.names(), b.names());
    // model.safetensors wins over gptq_model-*
    await Deno.copyFile(`${MODELS}llama/model.safetensors`, `${dir}/model.safetensors`);
    using c = await CheckpointReader.open(dir);
    assert.equal(c.files()[0]!.path, `${dir}/model.safetensors`);
    await Deno.remove(`${dir}/model.safetensors`);
    await Deno.copyFile(src, `${dir}/gptq_model-4bit-128g.safetensors`);
    await assert.rejects(CheckpointReader.open(dir), isCode("FILE_NOT_FOUND", dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CheckpointReader explains missing checkpoints", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(CheckpointReader.open(`${dir}/missing`), isCode("FILE_NOT_FOUND"));
    await assert.rejects(CheckpointReader.open(dir), (e) => {
      isCode("FILE_NOT_FOUND", dir)(e);
      assert.match((e as GptqError).hint ?? "", /converted to safetensors/);
      return true;
    });
    await Deno.writeFile(`${dir}/model-00001-of-00002.safetensors`, new Uint8Array(0));
    await assert.rejects(CheckpointReader.open(dir), (e) => {
      isCode("FILE_NOT_FOUND", dir)(e);
      assert.match((e as GptqError).hint ?? "", /model-00001-of-00002\.safetensors/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CheckpointReader rejects inconsistent indexes naming the index file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const t = (name: string, v: number): NamedTensor => ({
      name,
      dtype: "F32",
      shape: [1],
      data: new Uint8Array(new Float32Array([v]).buffer),
    });
    await writeSafetensors(`${dir}/s1.safetensors`, [t("a", 1), t("b", 2)]);
    await writeSafetensors(`${dir}/s2.safetensors`, [t("c", 3), t("b", 4)]);
    const index = `${dir}/model.safetensors.index.json`;
    const cases: [unknown, RegExp][] = [
      ["{not json", /not valid JSON/],
      [[1, 2], /not a JSON object/],
      [{ metadata: {} }, /weight_map/],
      [{ weight_map: { a: 1 } }, /not a file name/],
      [{ weight_map: {} }, /empty/],
      [{ weight_map: { a: "../s1.safetensors" } }, /outside the folder/],
      [{ weight_map: { a: "s1.safetensors", x: "gone.safetensors" } }, /does not exist/],
      [
        { weight_map: { a: "s1.safetensors", c: "s1.safetensors" } },
        /mapped to 's1.safetensors' but not in it/,
      ],
      [{ weight_map: { a: "s1.safetensors", c: "s2.safetensors" } }, /stored in both/],
    ];
    for (const [content, re] of cases) {
      await Deno.writeTextFile(
        index,
        typeof content === "string" ? content : JSON.stringify(content),
      );
      await assert.rejects(CheckpointReader.open(dir), (e) => {
        isCode("SAFETENSORS_INDEX", index)(e);
        assert.match((e as GptqError).message, re);
        return true;
      });
    }
    // a corrupt shard is reported by its own path
    await writeSafetensors(`${dir}/s2.safetensors`, [t("c", 3)]);
    await Deno.writeTextFile(
      index,
      JSON.stringify({ weight_map: { a: "s1.safetensors", c: "s2.safetensors" } }),
    );
    using ok = await CheckpointReader.open(dir);
    assert.deepEqual(ok.names(), ["a", "c"]); // "b" is in s1 but not in the index: ignored
    assert.deepEqual(await ok.readFloat32("c"), new Float32Array([3]));
    await Deno.writeFile(`${dir}/s2.safetensors`, new Uint8Array([1, 2, 3]));
    await assert.rejects(
      CheckpointReader.open(dir),
      isCode("SAFETENSORS_TRUNCATED", `${dir}/s2.safetensors`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
