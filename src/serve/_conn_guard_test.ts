// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { serveGuarded } from "./_conn_guard.ts";

async function readUntilClosed(conn: Deno.Conn, timeoutMs: number): Promise<string | "open"> {
  const buf = new Uint8Array(4096);
  let text = "";
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return "open";
    const n = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise<"open">((r) => setTimeout(() => r("open"), left)),
    ]);
    if (n === "open") return "open";
    if (n === null) return text;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
}

Deno.test("conn guard: header timeout, idle timeout and the connection cap (issue 15, case 14)", async () => {
  let release = () => {};
  const slow = new Promise<void>((r) => (release = r));
  const srv = serveGuarded({
    hostname: "127.0.0.1",
    port: 0,
    maxConnections: 4,
    headerTimeoutMs: 300,
    idleTimeoutMs: 600,
  }, async (req) => {
    if (new URL(req.url).pathname === "/slow") await slow;
    return new Response("ok");
  });
  const port = srv.addr.port;
  const enc = new TextEncoder();
  try {
    // A silent client and one with half its headers are closed after the header timeout.
    const silent = await Deno.connect({ hostname: "127.0.0.1", port });
    const partial = await Deno.connect({ hostname: "127.0.0.1", port });
    await partial.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\n"));
    const t0 = performance.now();
    assert.equal(await readUntilClosed(silent, 3000), "");
    assert.equal(await readUntilClosed(partial, 3000), "");
    const ms = performance.now() - t0;
    assert.ok(ms >= 250 && ms < 2500, `closed after ${ms} ms`);
    silent.close();
    partial.close();

    // A keep-alive connection is closed once idle past the idle timeout.
    const ka = await Deno.connect({ hostname: "127.0.0.1", port });
    await ka.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const t1 = performance.now();
    const answered = await readUntilClosed(ka, 4000);
    const idleMs = performance.now() - t1;
    ka.close();
    assert.match(String(answered), /^HTTP\/1\.1 200 OK[\s\S]*\bok\b/);
    assert.ok(idleMs >= 500 && idleMs < 3500, `idle connection closed after ${idleMs} ms`);

    // A request that runs longer than both timeouts is not cut.
    const long = fetch(`http://127.0.0.1:${port}/slow`);
    await new Promise((r) => setTimeout(r, 900));
    release();
    assert.equal(await (await long).text(), "ok");

    // Over the cap: 503 and closed; the cap frees up when connections close.
    const held: Deno.Conn[] = [];
    for (let i = 0; i < 4; i++) held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    await new Promise((r) => setTimeout(r, 50));
    const extra = await Deno.connect({ hostname: "127.0.0.1", port });
    const reply = await readUntilClosed(extra, 2000);
    extra.close();
    assert.match(String(reply), /^HTTP\/1\.1 503 Service Unavailable/);
    for (const c of held) c.close();
    await new Promise((r) => setTimeout(r, 200));
    const r = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await r.text(), "ok");
  } finally {
    await srv.shutdown();
    await srv.finished;
  }
});
