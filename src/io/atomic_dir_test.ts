// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { GptqError } from "../errors.ts";
import { AtomicOutputDir, atomicWriteFile } from "./atomic_dir.ts";
import { ShardedWriter } from "./safetensors_writer.ts";

async function list(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

function isCode(code: string): (e: unknown) => boolean {
  return (e) => e instanceof GptqError && e.code === code;
}

Deno.test("AtomicOutputDir commits a complete folder in one rename", async () => {
  const root = await Deno.makeTempDir();
  try {
    const out = await AtomicOutputDir.create(`${root}/nested/out/`);
    assert.ok(out.tmpPath.startsWith(`${root}/nested/out.partial-`));
    await Deno.writeTextFile(out.path("config.json"), "{}");
    await Deno.mkdir(out.path("sub"));
    await Deno.writeTextFile(out.path("sub/a.txt"), "a");
    assert.deepEqual(await list(`${root}/nested`), [out.tmpPath.split("/").pop()]);
    await out.commit();
    assert.deepEqual(await list(`${root}/nested`), ["out"]);
    assert.deepEqual(await list(`${root}/nested/out`), ["config.json", "sub"]);
    await out.abort(); // no-op after commit
    assert.deepEqual(await list(`${root}/nested/out`), ["config.json", "sub"]);
    await assert.rejects(out.commit(), isCode("INVALID_ARGUMENT"));
    assert.throws(() => out.path("../escape"), isCode("INVALID_ARGUMENT"));
    assert.throws(() => out.path("/etc/passwd"), isCode("INVALID_ARGUMENT"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("AtomicOutputDir refuses an existing output (even empty) without force", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/out`);
    const e = await AtomicOutputDir.create(`${root}/out`).catch((e) => e);
    assert.ok(e instanceof GptqError);
    assert.equal(e.code, "OUTPUT_EXISTS");
    assert.equal(e.file, `${root}/out`);
    assert.equal(e.hint, "pass --force to overwrite");
    await Deno.writeTextFile(`${root}/file`, "x");
    await assert.rejects(AtomicOutputDir.create(`${root}/file`), isCode("OUTPUT_EXISTS"));
    // The output appearing while we work is caught at commit time, and rename never
    // silently replaces it.
    const out = await AtomicOutputDir.create(`${root}/late`);
    await Deno.mkdir(`${root}/late`);
    await assert.rejects(out.commit(), isCode("OUTPUT_EXISTS"));
    await out.abort();
    assert.deepEqual(await list(root), ["file", "late", "out"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("AtomicOutputDir with force replaces the old output only at commit", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/out`);
    await Deno.writeTextFile(`${root}/out/old.txt`, "old");
    const out = await AtomicOutputDir.create(`${root}/out`, { force: true });
    await Deno.writeTextFile(out.path("new.txt"), "new");
    assert.deepEqual(await list(`${root}/out`), ["old.txt"]);
    await out.commit();
    assert.deepEqual(await list(`${root}/out`), ["new.txt"]);
    assert.deepEqual(await list(root), ["out"]);
    // An aborted forced run leaves the old output untouched.
    const again = await AtomicOutputDir.create(`${root}/out`, { force: true });
    await Deno.writeTextFile(again.path("other.txt"), "x");
    await again.abort();
    assert.deepEqual(await list(root), ["out"]);
    assert.deepEqual(await list(`${root}/out`), ["new.txt"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("AtomicOutputDir leaves nothing when a writer throws halfway", async () => {
  const root = await Deno.makeTempDir();
  try {
    const run = async () => {
      await using out = await AtomicOutputDir.create(`${root}/model`);
      const w = new ShardedWriter(out.tmpPath, { maxShardSize: 64 });
      await w.add({ name: "a", dtype: "F32", shape: [16], data: new Uint8Array(64) });
      await w.add({ name: "b", dtype: "F32", shape: [16], data: new Uint8Array(64) });
      // bad byte length: throws halfway through the checkpoint
      await w.add({ name: "c", dtype: "F32", shape: [16], data: new Uint8Array(3) });
      await w.finish();
      await out.commit();
    };
    await assert.rejects(run(), isCode("SAFETENSORS_TENSOR"));
    assert.deepEqual(await list(root), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("atomicWriteFile writes through a temp file and respects force", async () => {
  const root = await Deno.makeTempDir();
  try {
    const p = `${root}/config.json`;
    await atomicWriteFile(p, "{}\n");
    assert.equal(await Deno.readTextFile(p), "{}\n");
    await assert.rejects(atomicWriteFile(p, "x"), isCode("OUTPUT_EXISTS"));
    await atomicWriteFile(p, new Uint8Array([1, 2, 3]), { force: true });
    assert.deepEqual(await Deno.readFile(p), new Uint8Array([1, 2, 3]));
    await assert.rejects(atomicWriteFile(`${root}/missing/x`, "x"), isCode("FILE_NOT_FOUND"));
    assert.deepEqual(await list(root), ["config.json"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
