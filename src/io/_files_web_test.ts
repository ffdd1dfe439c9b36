// Copyright 2026 the GPTQ toolkit authors. MIT license.
// The browser build's file layer against a loopback server, with and without Range support.
import assert from "node:assert/strict";
import { isNotFound, listFiles, openFile, registerFolder, statPath } from "./_files_web.ts";
import { fsError, GptqError } from "../errors.ts";

const BYTES = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);

function serve(ranges: boolean) {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    seen.push(`${req.method} ${path} ${req.headers.get("range") ?? ""}`.trim());
    if (path === "/m/chunked.bin") {
      // A streamed answer: chunked, no Content-Length (HEAD too).
      return new Response(ReadableStream.from(req.method === "HEAD" ? [] : [BYTES]));
    }
    if (path !== "/m/model.safetensors") return new Response("no", { status: 404 });
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.get("range") ?? "");
    if (ranges && m && req.method === "GET") {
      const a = Number(m[1]), b = Math.min(Number(m[2]), BYTES.length - 1);
      return new Response(BYTES.slice(a, b + 1), {
        status: 206,
        headers: { "content-range": `bytes ${a}-${b}/${BYTES.length}` },
      });
    }
    return new Response(req.method === "HEAD" ? null : BYTES, {
      headers: { "content-length": String(BYTES.length) },
    });
  });
  return { server, seen, base: `http://127.0.0.1:${server.addr.port}/m` };
}

Deno.test("_files_web: range reads, size from HEAD, short read at the end", async () => {
  const { server, seen, base } = serve(true);
  try {
    const f = await openFile(`${base}/model.safetensors`);
    assert.equal((await f.stat()).size, 1000);
    assert.deepEqual(await f.read(10, 5), BYTES.slice(10, 15));
    assert.deepEqual(await f.read(990, 50), BYTES.slice(990)); // fewer only at the end
    assert.equal((await f.read(1000, 4)).length, 0);
    f.close();
    assert.deepEqual(seen, [
      "HEAD /m/model.safetensors",
      "GET /m/model.safetensors bytes=10-14",
      "GET /m/model.safetensors bytes=990-999",
    ]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("_files_web: a server that ignores Range is read once and sliced", async () => {
  const { server, seen, base } = serve(false);
  try {
    const f = await openFile(`${base}/model.safetensors`);
    assert.deepEqual(await f.read(100, 3), BYTES.slice(100, 103));
    assert.deepEqual(await f.read(500, 2), BYTES.slice(500, 502));
    f.close();
    assert.equal(seen.filter((s) => s.startsWith("GET")).length, 1);
  } finally {
    await server.shutdown();
  }
});

Deno.test("_files_web: 404 is NotFound (FILE_NOT_FOUND via fsError); folders", async () => {
  const { server, base } = serve(true);
  try {
    const err = await statPath(`${base}/config.json`).catch((e) => e);
    assert.ok(isNotFound(err));
    const typed = fsError(err, `${base}/config.json`);
    assert.ok(typed instanceof GptqError && typed.code === "FILE_NOT_FOUND");
    // An unregistered folder offers the weight files that exist.
    assert.deepEqual(await listFiles(base), ["model.safetensors"]);
    registerFolder(`${base}/`, ["a.safetensors"]);
    assert.deepEqual(await statPath(base), {
      isFile: false,
      isDirectory: true,
      size: 0,
      mtime: null,
    });
    assert.deepEqual(await listFiles(base), ["a.safetensors"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("_files_web: an answer without Content-Length is read whole at open", async () => {
  const { server, base } = serve(true);
  try {
    const f = await openFile(`${base}/chunked.bin`);
    assert.equal((await f.stat()).size, 1000);
    assert.deepEqual(await f.read(995, 10), BYTES.slice(995));
    f.close();
  } finally {
    await server.shutdown();
  }
});
