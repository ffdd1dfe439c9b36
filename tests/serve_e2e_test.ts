// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * End-to-end test of `cli.ts serve` over HTTP on loopback: the server runs
 * as a subprocess on a free port (`--port 0`; the port is read from its
 * `listening on http://…` line) with the demo llama given a ChatML chat
 * template. Covers a streaming chat request, 8 concurrent requests with
 * different seeds against the same requests run one by one, malformed JSON,
 * an oversize body, clients that disconnect mid-stream, mid-generation and
 * while queued, and checks that the process stays up and exits cleanly on
 * SIGTERM.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { writeDemoModel } from "../tools/make_demo_model.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
// Qwen1.5-Chat's published ChatML template.
const CHATML =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']}}{% if (loop.last and add_generation_prompt) or not loop.last %}{{ '<|im_end|>' + '\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const LONG = 4000; // tokens a disconnecting client asks for

interface Health {
  status: string;
  completed: number;
  cancelled: number;
  failed: number;
  queued: number;
  active: boolean;
  last_cancelled: { completion_tokens: number; max_tokens: number } | null;
}

/** The demo model with a chat template and a 4096-token context (room for long generations). */
async function makeModel(dir: string): Promise<void> {
  await writeDemoModel(dir);
  const edit = async (file: string, f: (o: Record<string, unknown>) => void) => {
    const o = JSON.parse(await Deno.readTextFile(`${dir}/${file}`));
    f(o);
    await Deno.writeTextFile(`${dir}/${file}`, JSON.stringify(o, null, 2));
  };
  await edit("tokenizer_config.json", (o) => (o["chat_template"] = CHATML));
  await edit("config.json", (o) => (o["max_position_embeddings"] = 4096));
}

/** Reads SSE `data:` payloads from a response until `[DONE]`. */
async function readSse(
  res: Response,
): Promise<{ events: Record<string, unknown>[]; done: boolean }> {
  const events: Record<string, unknown>[] = [];
  let done = false;
  const text = await res.text();
  for (const frame of text.split("\n\n")) {
    if (frame === "") continue;
    assert.ok(frame.startsWith("data: "), `bad SSE frame ${JSON.stringify(frame)}`);
    const data = frame.slice(6);
    if (data === "[DONE]") done = true;
    else events.push(JSON.parse(data));
  }
  return { events, done };
}

/** Whether a WebGPU adapter exists (the same suite then runs on `--backend webgpu`). */
async function webgpuReason(): Promise<string | null> {
  try {
    const a = await navigator.gpu?.requestAdapter();
    return a ? null : "no WebGPU adapter";
  } catch (e) {
    return `no WebGPU adapter (${(e as Error).message})`;
  }
}
const noWebGpu = await webgpuReason();
if (noWebGpu) console.warn(`serve e2e on webgpu: skipped: ${noWebGpu}`);

Deno.test("serve: OpenAI-compatible server end to end over HTTP", () => serveEndToEnd("wasm"));

Deno.test({
  name: `serve --backend webgpu: the same end-to-end suite${
    noWebGpu ? ` (skipped: ${noWebGpu})` : ""
  }`,
  ignore: noWebGpu !== null,
  fn: () => serveEndToEnd("webgpu"),
});

async function serveEndToEnd(backend: "wasm" | "webgpu"): Promise<void> {
  const tmp = await Deno.makeTempDir();
  const model = `${tmp}/demo`;
  await makeModel(model);
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
      "--max-body-bytes",
      "65536",
      "--max-tokens-limit",
      `${LONG}`,
      "--backend",
      backend,
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
  try {
    const timer = setTimeout(
      () => listening.reject(new Error(`no listening line:\n${log}`)),
      30_000,
    );
    const base = await listening.promise;
    clearTimeout(timer);
    assert.match(log, /backend: /, "startup names the backend");
    const health = async (): Promise<Health> => await (await fetch(`${base}/health`)).json();
    const post = (path: string, body: unknown, signal?: AbortSignal) =>
      fetch(`${base}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
        ...(signal ? { signal } : {}),
      });

    assert.equal((await health()).status, "ok");
    const models = await (await fetch(`${base}/v1/models`)).json();
    assert.deepEqual(models.data.map((d: { id: string }) => d.id), ["demo"]);

    // 1. A streaming chat request: role chunk, content chunks, finish chunk, usage, [DONE];
    // its text equals the same request answered without streaming.
    const messages = [{ role: "user", content: "Tell me a story." }];
    const chatReq = { model: "demo", messages, max_tokens: 24, temperature: 0.9, seed: 11 };
    const s = await post("/v1/chat/completions", {
      ...chatReq,
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.equal(s.status, 200);
    assert.equal(s.headers.get("content-type"), "text/event-stream");
    const { events, done } = await readSse(s);
    assert.ok(done, "stream ends with [DONE]");
    type Chunk = {
      id: string;
      object: string;
      choices: { delta: { role?: string; content?: string }; finish_reason: string | null }[];
      usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    };
    const chunks = events as Chunk[];
    assert.deepEqual(chunks[0]!.choices[0]!.delta, { role: "assistant", content: "" });
    assert.ok(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0]!.id));
    const usageChunk = chunks.at(-1)!;
    assert.deepEqual(usageChunk.choices, []);
    const finishChunk = chunks.at(-2)!;
    assert.ok(["stop", "length"].includes(finishChunk.choices[0]!.finish_reason!));
    const streamed = chunks.slice(0, -1).map((c) => c.choices[0]!.delta.content ?? "").join("");
    const whole = await (await post("/v1/chat/completions", chatReq)).json();
    assert.equal(whole.choices[0].message.content, streamed);
    assert.equal(whole.choices[0].finish_reason, finishChunk.choices[0]!.finish_reason);
    assert.deepEqual(whole.usage, usageChunk.usage);
    assert.ok(whole.usage.completion_tokens > 0);

    // 2. Eight requests with different seeds, one by one, then all at once (half streamed):
    // each seed gives the same text either way.
    const req = (seed: number) => ({
      model: "demo",
      prompt: "Once upon a time",
      max_tokens: 32,
      temperature: 1,
      seed,
    });
    const textOf = async (seed: number, stream: boolean): Promise<string> => {
      const r = await post("/v1/completions", { ...req(seed), stream });
      assert.equal(r.status, 200);
      if (!stream) return (await r.json()).choices[0].text;
      const { events, done } = await readSse(r);
      assert.ok(done);
      return (events as { choices: { text: string }[] }[]).map((e) => e.choices[0]!.text).join("");
    };
    const seeds = [1, 2, 3, 4, 5, 6, 7, 8];
    const sequential: string[] = [];
    for (const seed of seeds) sequential.push(await textOf(seed, false));
    assert.ok(new Set(sequential).size >= 6, "different seeds give different texts");
    const concurrent = await Promise.all(seeds.map((seed, i) => textOf(seed, i % 2 === 0)));
    assert.deepEqual(concurrent, sequential);

    // 3. Malformed JSON and an oversize body: 4xx with an OpenAI error object.
    const bad = await post("/v1/completions", '{"prompt": "x",');
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.code, "invalid_json");
    const big = await post("/v1/completions", { prompt: "x".repeat(100_000) });
    assert.equal(big.status, 413);
    const bigErr = (await big.json()).error;
    assert.equal(bigErr.code, "request_too_large");
    assert.match(bigErr.message, /65536 bytes/);
    const tooMany = await post("/v1/completions", { prompt: "x", max_tokens: LONG + 1 });
    assert.equal(tooMany.status, 400);
    assert.equal((await tooMany.json()).error.param, "max_tokens");
    assert.equal((await health()).status, "ok");

    // 4. A client that disconnects mid-stream stops its generation; the next request is
    // served promptly.
    const before = await health();
    const ac = new AbortController();
    const long = await post(
      "/v1/completions",
      { prompt: "x", max_tokens: LONG, ignore_eos: true, stream: true },
      ac.signal,
    );
    const reader = long.body!.getReader();
    const first = await reader.read();
    assert.ok(!first.done && first.value.length > 0);
    ac.abort();
    await reader.cancel().catch(() => {});
    const t0 = performance.now();
    const next = await post("/v1/completions", { prompt: "Hi", max_tokens: 4 });
    assert.equal(next.status, 200);
    await next.body?.cancel();
    const waited = performance.now() - t0;
    assert.ok(waited < 5000, `next request waited ${waited.toFixed(0)} ms`);
    let h = await health();
    assert.equal(h.cancelled, before.cancelled + 1);
    assert.equal(h.last_cancelled?.max_tokens, LONG);
    assert.ok(h.last_cancelled!.completion_tokens < LONG, JSON.stringify(h.last_cancelled));

    // 5. The same without streaming: the request's signal aborts when the client goes away.
    const ac2 = new AbortController();
    const pending = post(
      "/v1/completions",
      { prompt: "x", max_tokens: LONG, ignore_eos: true },
      ac2.signal,
    )
      .then((r) => r.body?.cancel(), (e) => e);
    while (!(await health()).active) await new Promise((r) => setTimeout(r, 5));
    ac2.abort();
    assert.equal((await pending as Error).name, "AbortError");
    for (let i = 0; i < 200 && (h = await health()).active; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(h.active, false, "the generation stopped");
    assert.equal(h.cancelled, before.cancelled + 2);
    assert.ok(h.last_cancelled!.completion_tokens < LONG, JSON.stringify(h.last_cancelled));

    // 6. A client that gives up while queued is dropped without running.
    const ac3 = new AbortController();
    const running = await post(
      "/v1/completions",
      { prompt: "x", max_tokens: LONG, ignore_eos: true, stream: true },
      ac3.signal,
    );
    const r3 = running.body!.getReader();
    await r3.read();
    const ac4 = new AbortController();
    const queued = post("/v1/completions", { prompt: "y", max_tokens: 8 }, ac4.signal).catch((e) =>
      e
    );
    while ((await health()).queued < 1) await new Promise((r) => setTimeout(r, 5));
    ac4.abort();
    assert.equal((await queued as Error).name, "AbortError");
    for (let i = 0; i < 200 && (h = await health()).queued > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(h.queued, 0);
    assert.equal(h.last_cancelled?.completion_tokens, 0, "the queued request never ran");
    ac3.abort();
    await r3.cancel().catch(() => {});
    for (let i = 0; i < 200 && (h = await health()).active; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(h.cancelled, before.cancelled + 4);
    assert.equal(h.failed, 0);

    // The process stayed up throughout, still answers, and exits cleanly on SIGTERM.
    const after = await post("/v1/completions", { prompt: "Hi", max_tokens: 3 });
    assert.equal(after.status, 200);
    assert.equal((await after.json()).usage.completion_tokens <= 3, true);
    assert.equal(exited, false, `server exited:\n${log}`);
    child.kill("SIGTERM");
    const st = await status;
    await pump;
    assert.equal(st.code, 0, log);
    assert.match(log, /client disconnected/);
    assert.match(log, /server stopped/);
  } finally {
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }
    await status;
    await pump.catch(() => {});
    await Deno.remove(tmp, { recursive: true });
  }
}
