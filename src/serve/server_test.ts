// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * In-process tests of the server's handler over the demo llama: responses
 * match the library's own generation with the same settings, limits give the
 * documented 4xx errors.
 *
 * @module
 */

import assert from "node:assert/strict";
import { loadModel, type Model } from "../load_model.ts";
import { type GenerateStats, generateText } from "../runtime/generate.ts";
import { writeDemoModel } from "../../tools/make_demo_model.ts";
import { createChatTemplate } from "./chat_template.ts";
import { createServer, type OpenAIServer, type ServerOptions } from "./server.ts";
import { startModelWorker } from "./_gen_client.ts";

const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

async function withServer(
  opts: Partial<ServerOptions>,
  fn: (srv: OpenAIServer, m: Model) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  await writeDemoModel(`${dir}/demo`);
  const m = await loadModel(`${dir}/demo`);
  const srv = createServer({ model: m, modelId: "demo", ...opts });
  try {
    await fn(srv, m);
  } finally {
    srv.close();
    m.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function post(path: string, body: unknown, headers: Record<string, string> = {}): Request {
  return new Request(`http://localhost${path}`, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers,
  });
}

/** What the library itself generates for a prompt (the reference). */
async function reference(
  m: Model,
  prompt: string,
  o: { temperature: number; seed: number; max: number },
): Promise<{ text: string; stats: GenerateStats }> {
  const stats = {
    promptTokens: 0,
    newTokens: 0,
    prefillMs: 0,
    decodeMs: 0,
    stop: "length",
  } as GenerateStats;
  let text = "";
  for await (
    const p of generateText(m.lm, m.tokenizer, prompt, {
      temperature: o.temperature,
      seed: o.seed,
      max_new_tokens: o.max,
    }, stats)
  ) text += p;
  return { text, stats };
}

async function sse(res: Response): Promise<{ events: Record<string, unknown>[]; done: boolean }> {
  const raw = await res.text();
  assert.ok(raw.endsWith("\n\n"));
  const frames = raw.slice(0, -2).split("\n\n");
  const done = frames.at(-1) === "data: [DONE]";
  const events = frames.filter((f) => f !== "data: [DONE]").map((f) => {
    assert.ok(f.startsWith("data: "), f);
    return JSON.parse(f.slice(6));
  });
  return { events, done };
}

Deno.test("server: completions match the library's generation, streamed or not", async () => {
  await withServer({}, async (srv, m) => {
    for (const [seed, temperature] of [[1, 1], [2, 0.7], [0, 0]] as const) {
      const ref = await reference(m, "Hello", { temperature, seed, max: 20 });
      const res = await srv.handler(
        post("/v1/completions", {
          model: "demo",
          prompt: "Hello",
          max_tokens: 20,
          seed,
          temperature,
        }),
      );
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.object, "text_completion");
      assert.equal(body.choices[0].text, ref.text);
      assert.equal(body.choices[0].finish_reason, ref.stats.stop === "eos" ? "stop" : "length");
      assert.deepEqual(body.usage, {
        prompt_tokens: ref.stats.promptTokens,
        completion_tokens: ref.stats.newTokens,
        total_tokens: ref.stats.promptTokens + ref.stats.newTokens,
      });

      const s = await srv.handler(post("/v1/completions", {
        prompt: "Hello",
        max_tokens: 20,
        seed,
        temperature,
        stream: true,
        stream_options: { include_usage: true },
      }));
      assert.equal(s.headers.get("content-type"), "text/event-stream");
      const { events, done } = await sse(s);
      assert.ok(done);
      const usage = events.at(-1)!;
      assert.deepEqual(usage["usage"], body.usage);
      const chunks = events.slice(0, -1) as {
        choices: { text: string; finish_reason: string }[];
      }[];
      assert.equal(chunks.map((c) => c.choices[0]!.text).join(""), ref.text);
      assert.equal(chunks.at(-1)!.choices[0]!.finish_reason, body.choices[0].finish_reason);
      assert.ok(chunks.slice(0, -1).every((c) => c.choices[0]!.finish_reason === null));
    }
    // Default max_tokens for completions is 16, as in OpenAI's API; ignore_eos runs to it.
    const d = await (await srv.handler(post("/v1/completions", { prompt: "A", ignore_eos: true })))
      .json();
    assert.equal(d.usage.completion_tokens, 16);
    assert.deepEqual(srv.stats().completed, 7);
  });
});

Deno.test("server: stop strings cut the text and finish with 'stop'", async () => {
  await withServer({}, async (srv, m) => {
    const ref = await reference(m, "Hello", { temperature: 0, seed: 0, max: 40 });
    assert.ok(ref.text.length >= 8, "reference text too short for the test");
    const stop = ref.text.slice(5, 7);
    const cut = ref.text.indexOf(stop);
    for (const stream of [false, true]) {
      const res = await srv.handler(
        post("/v1/completions", { prompt: "Hello", max_tokens: 40, temperature: 0, stop, stream }),
      );
      let text: string, finish: string;
      if (stream) {
        const { events } = await sse(res);
        const cs = events as { choices: { text: string; finish_reason: string }[] }[];
        text = cs.map((c) => c.choices[0]!.text).join("");
        finish = cs.at(-1)!.choices[0]!.finish_reason;
      } else {
        const body = await res.json();
        text = body.choices[0].text;
        finish = body.choices[0].finish_reason;
      }
      assert.equal(text, ref.text.slice(0, cut));
      assert.equal(finish, "stop");
    }
  });
});

Deno.test("server: chat renders the template and streams a role chunk first", async () => {
  const chatTemplate = createChatTemplate(CHATML, { source: "test" });
  await withServer({ chatTemplate }, async (srv, m) => {
    const messages = [{ role: "user", content: "Hi there" }];
    const prompt = chatTemplate.render(messages);
    // The demo tokenizer adds no special tokens, so the library reference sees the same ids.
    assert.deepEqual(
      m.tokenizer.encode(prompt),
      m.tokenizer.encode(prompt, { addSpecialTokens: false }),
    );
    const ref = await reference(m, prompt, { temperature: 0.8, seed: 5, max: 12 });
    const res = await srv.handler(
      post("/v1/chat/completions", { messages, max_tokens: 12, temperature: 0.8, seed: 5 }),
    );
    const body = await res.json();
    assert.equal(body.object, "chat.completion");
    assert.deepEqual(body.choices[0].message, { role: "assistant", content: ref.text });
    assert.equal(body.usage.prompt_tokens, ref.stats.promptTokens);

    const s = await srv.handler(post("/v1/chat/completions", {
      messages,
      max_tokens: 12,
      temperature: 0.8,
      seed: 5,
      stream: true,
    }));
    const { events, done } = await sse(s);
    assert.ok(done);
    type Chunk = { object: string; id: string; choices: { delta: Record<string, string> }[] };
    const cs = events as Chunk[];
    assert.deepEqual(cs[0]!.choices[0]!.delta, { role: "assistant", content: "" });
    assert.ok(cs.every((c) => c.object === "chat.completion.chunk" && c.id === cs[0]!.id));
    assert.equal(cs.map((c) => c.choices[0]!.delta["content"] ?? "").join(""), ref.text);
  });
});

Deno.test("server: routes, methods, limits and bad input give OpenAI errors", async () => {
  await withServer(
    { maxBodyBytes: 2000, maxPromptTokens: 50, maxTokensLimit: 100 },
    async (srv) => {
      const expectError = async (res: Response, status: number, code: string | null) => {
        assert.equal(res.status, status);
        const { error } = await res.json();
        assert.equal(error.code, code, error.message);
        assert.equal(typeof error.message, "string");
        assert.ok("param" in error && "type" in error);
      };
      const health = await (await srv.handler(new Request("http://localhost/health"))).json();
      assert.deepEqual([health.status, health.model, health.completed], ["ok", "demo", 0]);
      const models = await (await srv.handler(new Request("http://localhost/v1/models"))).json();
      assert.equal(models.data[0].id, "demo");
      await expectError(await srv.handler(new Request("http://localhost/v2/x")), 404, "not_found");
      const wrong = await srv.handler(new Request("http://localhost/v1/completions"));
      assert.equal(wrong.headers.get("allow"), "POST");
      await expectError(wrong, 405, "method_not_allowed");
      await expectError(await srv.handler(post("/v1/completions", "{nope")), 400, "invalid_json");
      await expectError(
        await srv.handler(post("/v1/completions", { prompt: "x".repeat(3000) })),
        413,
        "request_too_large",
      );
      await expectError(
        await srv.handler(post("/v1/completions", { prompt: "x".repeat(60) })),
        400,
        "context_length_exceeded",
      );
      await expectError(
        await srv.handler(post("/v1/completions", { prompt: "x", max_tokens: 101 })),
        400,
        "invalid_value",
      );
      await expectError(
        await srv.handler(post("/v1/completions", { prompt: "x", n: 2 })),
        400,
        "invalid_value",
      );
      await expectError(
        await srv.handler(post("/v1/completions", { prompt: [5000] })),
        400,
        "invalid_value",
      );
      await expectError(
        await srv.handler(post("/v1/completions", { model: "gpt-4", prompt: "x" })),
        404,
        "model_not_found",
      );
      await expectError(
        await srv.handler(
          post("/v1/chat/completions", { messages: [{ role: "user", content: "x" }] }),
        ),
        400,
        "no_chat_template",
      );
      assert.equal(srv.stats().completed, 0);
    },
  );
});

Deno.test("server: prompt plus max_tokens beyond the context is a 400", async () => {
  await withServer({}, async (srv, m) => {
    const ctx = m.lm.config.maxPositions;
    const res = await srv.handler(post("/v1/completions", { prompt: "ab", max_tokens: ctx }));
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error.code, "context_length_exceeded");
  });
});

Deno.test("server: huge prompts are refused before tokenizing; templates run off the loop under a budget (issue 15)", async () => {
  const hostile = createChatTemplate(
    "{% if messages[0]['content'] == 'LOOP' %}{% for i in range(30000000) %}{% endfor %}{% endif %}" +
      CHATML,
    { source: "hostile.jinja" },
  );
  await withServer(
    { chatTemplate: hostile, maxBodyBytes: 4 << 20, promptTimeoutMs: 500 },
    async (srv) => {
      // Warm up (starts the preparation Worker).
      const warm = await srv.handler(post("/v1/completions", { prompt: "Hi", max_tokens: 1 }));
      assert.equal(warm.status, 200);
      await warm.text();
      let lag = 0, last = performance.now();
      const tick = setInterval(() => {
        const now = performance.now();
        lag = Math.max(lag, now - last);
        last = now;
      }, 5);
      try {
        const huge = "Once upon a time, a cat sat on a mat. ".repeat(27_000);
        const t0 = performance.now();
        const r = await srv.handler(post("/v1/completions", { prompt: huge }));
        const body = await r.json();
        assert.equal(r.status, 400, JSON.stringify(body));
        assert.equal(body.error.code, "context_length_exceeded");
        assert.match(body.error.message, /the prompt is \d+ characters, so at least \d+ tokens/);
        const hugeMs = performance.now() - t0;
        const t1 = performance.now();
        const h = await srv.handler(
          post("/v1/chat/completions", { messages: [{ role: "user", content: "LOOP" }] }),
        );
        const hb = await h.json();
        const loopMs = performance.now() - t1;
        assert.equal(h.status, 400, JSON.stringify(hb));
        assert.equal(hb.error.code, "prompt_budget_exceeded");
        // range(30000000) may allocate a list: either budget may be the one that trips.
        assert.match(hb.error.message, /took more than 500 ms|used more than \d+ MiB of memory/);
        console.log(
          `1 MB prompt refused in ${hugeMs.toFixed(0)} ms; hostile template refused in ` +
            `${loopMs.toFixed(0)} ms; worst event-loop gap meanwhile ${lag.toFixed(0)} ms`,
        );
        // The loop that answers /health was never held for long (the template alone runs for seconds).
        assert.ok(lag < 250, `event loop blocked for ${lag.toFixed(0)} ms`);
      } finally {
        clearInterval(tick);
      }
      // A fresh Worker serves the next chat.
      const ok = await srv.handler(
        post("/v1/chat/completions", {
          messages: [{ role: "user", content: "Hi" }],
          max_tokens: 2,
        }),
      );
      assert.equal(ok.status, 200, await ok.text());
    },
  );
});

Deno.test("server: a template that allocates hundreds of MiB at once gets 400; the process lives", async () => {
  // Doubling a string 28 times asks for 256 MiB in one allocation: under a V8 heap limit on the
  // Worker (resourceLimits) this aborted the whole process ("Fatal JavaScript out of memory").
  const hostile = createChatTemplate(
    "{% if messages[0]['content'] == 'DOUBLE' %}{% set ns = namespace(s='x') %}" +
      "{% for i in range(28) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}{% endif %}" +
      CHATML,
    { source: "hostile.jinja" },
  );
  await withServer(
    { chatTemplate: hostile, promptMemoryBytes: 64 * 2 ** 20, promptTimeoutMs: 5000 },
    async (srv) => {
      for (const content of ["DOUBLE", "DOUBLE"]) {
        const t0 = performance.now();
        const r = await srv.handler(
          post("/v1/chat/completions", { messages: [{ role: "user", content }] }),
        );
        const body = await r.json();
        console.log(`${content}: ${r.status} in ${(performance.now() - t0).toFixed(0)} ms`);
        assert.equal(r.status, 400, JSON.stringify(body));
        assert.equal(body.error.code, "prompt_budget_exceeded");
      }
      const ok = await srv.handler(
        post("/v1/chat/completions", {
          messages: [{ role: "user", content: "Hi" }],
          max_tokens: 2,
        }),
      );
      assert.equal(ok.status, 200, await ok.text());
    },
  );
});

Deno.test("server: a body that does not arrive in time gets 408 (slow-loris on the body)", async () => {
  await withServer({ bodyTimeoutMs: 300 }, async (srv) => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"prompt": "Hel'));
      }, // …and nothing more
      cancel() {
        cancelled = true;
      },
    });
    const t0 = performance.now();
    const res = await srv.handler(
      new Request("http://localhost/v1/completions", { method: "POST", body }),
    );
    const ms = performance.now() - t0;
    const err = await res.json();
    assert.equal(res.status, 408, JSON.stringify(err));
    assert.equal(err.error.code, "request_timeout");
    assert.match(err.error.message, /did not arrive within 300 ms/);
    assert.ok(ms >= 290 && ms < 2000, `${ms} ms`);
    assert.ok(cancelled, "the body stream was not cancelled");
    // A body that arrives in time is served.
    const ok = await srv.handler(post("/v1/completions", { prompt: "Hi", max_tokens: 2 }));
    assert.equal(ok.status, 200, await ok.text());
  });
});

Deno.test("server: a model run in a Worker gives the library's completions; the loop stays free", async () => {
  const dir = await Deno.makeTempDir();
  await writeDemoModel(`${dir}/demo`);
  const m = await loadModel(`${dir}/demo`);
  const w = await startModelWorker(`${dir}/demo`, { backend: "wasm", threads: 1 });
  const srv = createServer({ model: w, modelId: "demo" });
  try {
    assert.equal(w.lm.config.maxPositions, m.lm.config.maxPositions);
    for (const [seed, temperature] of [[1, 1], [0, 0]] as const) {
      const ref = await reference(m, "Hello", { temperature, seed, max: 20 });
      const body = await (await srv.handler(
        post("/v1/completions", { prompt: "Hello", max_tokens: 20, seed, temperature }),
      )).json();
      assert.equal(body.choices[0].text, ref.text);
      assert.equal(body.usage.completion_tokens, ref.stats.newTokens);
    }
    // A stream cancelled by its client stops the Worker's generation; the next one runs.
    const s = await srv.handler(post("/v1/completions", {
      prompt: "Hello",
      max_tokens: 200,
      ignore_eos: true,
      stream: true,
    }));
    const reader = s.body!.getReader();
    await reader.read();
    await reader.cancel();
    let lag = 0, last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      lag = Math.max(lag, now - last);
      last = now;
    }, 5);
    const long = await srv.handler(
      post("/v1/completions", { prompt: "Hi", max_tokens: 200, ignore_eos: true }),
    );
    clearInterval(tick);
    const lb = await long.json();
    assert.equal(lb.usage.completion_tokens, 200);
    assert.equal(srv.stats().cancelled, 1);
    assert.ok(srv.stats().last_cancelled!.completion_tokens < 200);
    console.log(`200 tokens in the Worker; worst event-loop gap meanwhile ${lag.toFixed(0)} ms`);
    assert.ok(lag < 250, `event loop blocked for ${lag.toFixed(0)} ms`);
  } finally {
    srv.close();
    w.close();
    m.close();
    await Deno.remove(dir, { recursive: true });
  }
});
