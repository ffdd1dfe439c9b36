// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Abuse test of `cli.ts serve` on loopback (issue 15, cases 12–15): the
 * server runs as a subprocess over the demo llama with a chat template that
 * is hostile on request (a 30-million-step loop, a range that allocates
 * gigabytes), while a monitor polls `/health` every 25 ms. Phases: ~1 MB
 * prompts, hostile templates, slow clients (half-open connections and
 * partial headers, bodies that never end), 32 concurrent clients, malformed
 * fields, and the open-connection cap. `/health`, polled from a Worker of
 * this test, must answer within 100 ms throughout (the latencies are
 * printed) and the process must stay up and exit cleanly.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { writeDemoModel } from "../tools/make_demo_model.ts";
import type { HealthReport } from "./_health_monitor.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const HEADER_TIMEOUT_MS = 1000;
const BODY_TIMEOUT_MS = 1000;
/** The bound on every /health answer while the server is abused. */
const HEALTH_BOUND_MS = 100;
const MAX_CONNECTIONS = 80;
const PROMPT_TIMEOUT_MS = 1000;

/** ChatML, except for two trigger words that make it loop or allocate without bound. */
const HOSTILE_TEMPLATE =
  "{% if messages[0]['content'] == 'LOOP' %}{% for i in range(30000000) %}{% endfor %}" +
  "{% elif messages[0]['content'] == 'ALLOC' %}{% for i in range(400000000) %}x{% endfor %}" +
  "{% else %}{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + " +
  "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}" +
  "{% endif %}{% endif %}";

interface Monitor {
  /** Settles once the first poll was answered. */
  ready: Promise<void>;
  phase(name: string): void;
  pause(paused: boolean): Promise<void>;
  stop(): Promise<HealthReport>;
}

/** Polls /health every 25 ms from a Worker (its own thread: the test's load does not delay it). */
function monitorHealth(base: string): Monitor {
  const w = new Worker(new URL("./_health_monitor.ts", import.meta.url), { type: "module" });
  let reply = Promise.withResolvers<unknown>();
  w.onmessage = (e) => reply.resolve(e.data);
  const ask = async <T>(msg: unknown): Promise<T> => {
    reply = Promise.withResolvers<unknown>();
    w.postMessage(msg);
    return (await reply.promise) as T;
  };
  let stopped: Promise<HealthReport> | null = null;
  return {
    ready: ask({ type: "start", base }).then(() => {}),
    phase: (name) => w.postMessage({ type: "phase", name }),
    pause: async (paused) => void await ask({ type: "pause", paused }),
    stop: () =>
      stopped ??= ask<{ report: HealthReport }>({ type: "stop" }).then((r) => {
        w.terminate();
        return r.report;
      }),
  };
}

/** The latency at quantile `q` of the samples (nearest rank). */
function quantile(samples: number[], q: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
}

async function readAll(conn: Deno.Conn, timeoutMs: number): Promise<string> {
  const buf = new Uint8Array(4096);
  let text = "";
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`connection still open after ${timeoutMs} ms`);
    const n = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise<"timeout">((r) => setTimeout(() => r("timeout"), left)),
    ]);
    if (n === "timeout") throw new Error(`connection still open after ${timeoutMs} ms`);
    if (n === null) return text;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
}

Deno.test("serve abuse: big prompts, hostile templates, slow and many clients, bad fields; /health stays fast", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "gptq-abuse-" });
  const model = `${tmp}/demo`;
  await writeDemoModel(model);
  await Deno.writeTextFile(`${tmp}/hostile.jinja`, HOSTILE_TEMPLATE);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      CLI,
      "serve",
      model,
      "--port",
      "0",
      "--model-name",
      "demo",
      "--chat-template",
      `${tmp}/hostile.jinja`,
      "--max-body-bytes",
      String(2 << 20),
      "--max-connections",
      String(MAX_CONNECTIONS),
      "--header-timeout-ms",
      String(HEADER_TIMEOUT_MS),
      "--body-timeout-ms",
      String(BODY_TIMEOUT_MS),
      "--idle-timeout-ms",
      "3000",
      "--prompt-timeout-ms",
      String(PROMPT_TIMEOUT_MS),
      "--backend",
      "wasm",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const listening = Promise.withResolvers<string>();
  const pump = (async () => {
    const dec = new TextDecoder();
    for await (const b of child.stderr) {
      log += dec.decode(b, { stream: true });
      const m = log.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) listening.resolve(m[1]!);
    }
    listening.reject(new Error(`server exited before listening:\n${log}`));
  })();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const timer = setTimeout(() => listening.reject(new Error(`no listening line:\n${log}`)), 60_000);
  let mon: Monitor | null = null;
  try {
    const base = await listening.promise;
    clearTimeout(timer);
    const port = Number(new URL(base).port);
    const post = async (path: string, body: unknown) => {
      const r = await fetch(`${base}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      return { status: r.status, body: await r.json() };
    };
    // Warm the preparation Worker, then build the big bodies before measuring.
    assert.equal((await post("/v1/completions", { prompt: "Hi", max_tokens: 2 })).status, 200);
    const huge = "Once upon a time, a cat sat on a mat. ".repeat(27_000); // ~1 MB
    const hugeBodies = [
      JSON.stringify({ prompt: huge, max_tokens: 4 }),
      JSON.stringify({ messages: [{ role: "user", content: huge }], max_tokens: 4 }),
    ];
    mon = monitorHealth(base);
    await mon.ready;
    const step = (name: string, fn: () => Promise<void>) => {
      mon!.phase(name.split(":")[0]!.slice(0, 24));
      return t.step(name, fn);
    };

    await step("baseline: an idle server", async () => {
      await new Promise((r) => setTimeout(r, 1500));
    });

    await step("~1 MB prompts are refused before tokenizing", async () => {
      for (let i = 0; i < 4; i++) {
        const t0 = performance.now();
        const path = i % 2 ? "/v1/chat/completions" : "/v1/completions";
        const r = await post(path, hugeBodies[i % 2]!);
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.equal(r.body.error.code, "context_length_exceeded");
        assert.match(r.body.error.message, /characters, so at least \d+ tokens/);
        console.log(`1 MB prompt on ${path}: 400 in ${(performance.now() - t0).toFixed(0)} ms`);
      }
      // Under the byte bound but over the token limit: tokenized off the loop, then refused.
      const r = await post("/v1/completions", { prompt: "cat ".repeat(400) });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error.message, /the prompt is \d+ tokens/);
    });

    await step("hostile chat templates: 400 within the budget, the server goes on", async () => {
      for (const word of ["LOOP", "ALLOC", "LOOP"]) {
        const t0 = performance.now();
        const r = await post("/v1/chat/completions", {
          messages: [{ role: "user", content: word }],
          max_tokens: 2,
        });
        const ms = performance.now() - t0;
        console.log(`template '${word}': ${r.status} in ${ms.toFixed(0)} ms`);
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.equal(r.body.error.code, "prompt_budget_exceeded");
        assert.ok(ms < PROMPT_TIMEOUT_MS + 4000, `${ms} ms`);
      }
      const ok = await post("/v1/chat/completions", {
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: 3,
      });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
    });

    await step("slow clients: silent and partial-header connections are closed", async () => {
      const conns: Deno.Conn[] = [];
      const enc = new TextEncoder();
      for (let i = 0; i < 40; i++) {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        if (i % 2) await c.write(enc.encode("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"));
        conns.push(c);
      }
      const t0 = performance.now();
      const results = await Promise.allSettled(
        conns.map((c) => readAll(c, HEADER_TIMEOUT_MS + 3000)),
      );
      const ms = performance.now() - t0;
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      const held = results.filter((r) => r.status === "rejected").length;
      console.log(`40 slow clients closed by the server after ${ms.toFixed(0)} ms; held: ${held}`);
      assert.equal(held, 0);
    });

    await step("slow bodies: a body not sent within the timeout gets 408", async () => {
      const enc = new TextEncoder();
      const conns: Deno.Conn[] = [];
      for (let i = 0; i < 10; i++) {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        await c.write(enc.encode(
          "POST /v1/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n" +
            'content-length: 100\r\n\r\n{"prompt": "Hel',
        ));
        conns.push(c);
      }
      const t0 = performance.now();
      const replies = await Promise.all(conns.map((c) => readAll(c, BODY_TIMEOUT_MS + 5000)));
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      console.log(
        `10 slow bodies answered and closed after ${(performance.now() - t0).toFixed(0)} ms`,
      );
      for (const r of replies) {
        assert.match(r, /^HTTP\/1\.1 408 /);
        assert.match(r, /did not arrive within 1000 ms/);
      }
    });

    await step("32 concurrent clients all get their completion", async () => {
      const t0 = performance.now();
      const rs = await Promise.all(
        Array.from(
          { length: 32 },
          (_, i) =>
            post(i % 2 ? "/v1/chat/completions" : "/v1/completions", {
              ...(i % 2
                ? { messages: [{ role: "user", content: `Hello ${i}` }] }
                : { prompt: `Once upon a time ${i}` }),
              max_tokens: 8,
              seed: i,
            }),
        ),
      );
      for (const r of rs) assert.equal(r.status, 200, JSON.stringify(r.body));
      console.log(`32 concurrent completions in ${(performance.now() - t0).toFixed(0)} ms`);
    });

    await step("malformed fields are 400 naming the field", async () => {
      const cases: [string, unknown, string | null][] = [
        ["/v1/completions", { prompt: "x", top_k: -2 }, "top_k"],
        [
          "/v1/completions",
          { prompt: "x", stream_options: { include_usage: "x" } },
          "stream_options.include_usage",
        ],
        ["/v1/completions", { prompt: "x", temperature: "hot" }, "temperature"],
        ["/v1/completions", { prompt: "x", max_tokens: 1e300 }, "max_tokens"],
        ["/v1/completions", { prompt: [1, 2, 1e9] }, "prompt"],
        ["/v1/completions", { prompt: { a: 1 } }, "prompt"],
        ["/v1/completions", { prompt: "x", stop: [1] }, "stop"],
        ["/v1/completions", { prompt: "x", seed: "1" }, "seed"],
        ["/v1/completions", { prompt: "x", n: 3 }, "n"],
        ["/v1/chat/completions", { messages: "hi" }, "messages"],
        ["/v1/chat/completions", { messages: [{ role: 5, content: "x" }] }, "messages"],
        [
          "/v1/chat/completions",
          { messages: [{ role: "user", content: [{ type: "image" }] }] },
          "messages[0].content",
        ],
        ["/v1/completions", "[1,2", null],
        ["/v1/completions", "[]", null],
      ];
      for (const [path, body, param] of cases) {
        const r = await post(path, body);
        assert.equal(r.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.param, param, JSON.stringify(r.body));
      }
    });

    await step("the open-connection cap answers 503, and frees up", async () => {
      await mon!.pause(true); // the cap refuses /health too while it is reached
      await new Promise((r) => setTimeout(r, 100));
      const conns: Deno.Conn[] = [];
      for (let i = 0; i < MAX_CONNECTIONS; i++) {
        conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      }
      const extra = await Deno.connect({ hostname: "127.0.0.1", port });
      const reply = await readAll(extra, 2000);
      extra.close();
      assert.match(reply, /^HTTP\/1\.1 503 /);
      assert.match(reply, /open connections, its limit/);
      await Promise.allSettled(conns.map((c) => readAll(c, HEADER_TIMEOUT_MS + 3000)));
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      const r = await fetch(`${base}/health`);
      assert.equal(r.status, 200);
      await r.body?.cancel();
      await mon!.pause(false);
    });

    const rep = await mon.stop();
    const worst = Math.max(...rep.samples);
    console.log(
      `/health: ${rep.samples.length} polls, worst ${worst.toFixed(1)} ms, p99 ` +
        `${quantile(rep.samples, 0.99).toFixed(1)} ms, median ${
          quantile(rep.samples, 0.5).toFixed(1)
        } ms, failures ${rep.failures.length}; worst per phase (ms): ${JSON.stringify(rep.phases)}`,
    );
    assert.deepEqual(rep.failures, []);
    assert.ok(rep.samples.length > 50, `only ${rep.samples.length} /health polls`);
    assert.ok(
      worst < HEALTH_BOUND_MS,
      `/health took ${worst.toFixed(1)} ms at worst (bound ${HEALTH_BOUND_MS} ms); per phase: ` +
        JSON.stringify(rep.phases),
    );
    assert.ok(!exited, `the server exited:\n${log}`);
    assert.doesNotMatch(log, /internal error|Uncaught|out of memory/i);
  } finally {
    clearTimeout(timer);
    await mon?.stop();
    if (!exited) child.kill("SIGTERM");
    const st = await status;
    await pump;
    await Deno.remove(tmp, { recursive: true });
    if (st.signal === null) assert.equal(st.code, 0, log);
  }
});
