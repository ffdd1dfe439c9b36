// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import {
  chunkBody,
  newMeta,
  OpenAIError,
  parseChatRequest,
  parseCompletionRequest,
  responseBody,
  SSE_DONE,
  sseEvent,
} from "./openai.ts";

function rejects400(fn: () => unknown, param: string | null, code?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof OpenAIError, String(e));
    assert.equal(e.status, 400);
    assert.equal(e.param, param);
    if (code) assert.equal(e.code, code);
    const body = e.body();
    assert.equal(body.error.type, "invalid_request_error");
    assert.equal(body.error.message, e.message);
    return true;
  });
}

Deno.test("openai: completion defaults and accepted prompt forms", () => {
  const p = parseCompletionRequest({ model: "m", prompt: "Hi" });
  assert.deepEqual(p, {
    kind: "completion",
    prompt: "Hi",
    model: "m",
    maxTokens: undefined,
    temperature: 1,
    topP: 1,
    topK: 0,
    seed: 0,
    stop: [],
    stream: false,
    includeUsage: false,
    ignoreEos: false,
  });
  assert.equal(parseCompletionRequest({ prompt: ["one"] }).prompt, "one");
  assert.deepEqual(parseCompletionRequest({ prompt: [1, 2, 3] }).prompt, [1, 2, 3]);
  assert.deepEqual(parseCompletionRequest({ prompt: [[4, 5]] }).prompt, [4, 5]);
  const q = parseCompletionRequest({
    prompt: "x",
    max_tokens: 7,
    temperature: 0,
    top_p: 0.5,
    top_k: 3,
    seed: -5,
    stop: ["\n", ""],
    stream: true,
    stream_options: { include_usage: true },
    n: 1,
    user: "ignored",
  });
  assert.deepEqual(
    [q.maxTokens, q.temperature, q.topP, q.topK, q.seed, q.stop, q.stream, q.includeUsage],
    [7, 0, 0.5, 3, -5, ["\n"], true, true],
  );
  assert.deepEqual(parseCompletionRequest({ prompt: "x", stop: "END" }).stop, ["END"]);
});

Deno.test("openai: invalid completion fields are 400 naming the field", () => {
  rejects400(() => parseCompletionRequest(null), null, "invalid_request");
  rejects400(() => parseCompletionRequest([1]), null);
  rejects400(() => parseCompletionRequest({}), "prompt", "missing_required_parameter");
  rejects400(() => parseCompletionRequest({ prompt: ["a", "b"] }), "prompt");
  rejects400(() => parseCompletionRequest({ prompt: [1.5] }), "prompt");
  rejects400(() => parseCompletionRequest({ prompt: "x", n: 2 }), "n");
  rejects400(() => parseCompletionRequest({ prompt: "x", best_of: 3 }), "best_of");
  rejects400(() => parseCompletionRequest({ prompt: "x", echo: true }), "echo");
  rejects400(() => parseCompletionRequest({ prompt: "x", logprobs: 2 }), "logprobs");
  rejects400(() => parseCompletionRequest({ prompt: "x", max_tokens: 0 }), "max_tokens");
  rejects400(() => parseCompletionRequest({ prompt: "x", max_tokens: "5" }), "max_tokens");
  rejects400(() => parseCompletionRequest({ prompt: "x", temperature: -1 }), "temperature");
  rejects400(() => parseCompletionRequest({ prompt: "x", temperature: 3 }), "temperature");
  rejects400(() => parseCompletionRequest({ prompt: "x", top_p: 0 }), "top_p");
  rejects400(() => parseCompletionRequest({ prompt: "x", seed: 1.5 }), "seed");
  rejects400(() => parseCompletionRequest({ prompt: "x", stop: [1] }), "stop");
  rejects400(
    () => parseCompletionRequest({ prompt: "x", stop: ["a", "b", "c", "d", "e"] }),
    "stop",
  );
  rejects400(() => parseCompletionRequest({ prompt: "x", stream: "yes" }), "stream");
  rejects400(() => parseCompletionRequest({ prompt: "x", model: 3 }), "model");
});

Deno.test("openai: chat messages, content parts and max_completion_tokens", () => {
  const p = parseChatRequest({
    messages: [
      { role: "system", content: "Be brief." },
      {
        role: "user",
        content: [{ type: "text", text: "Hel" }, { type: "text", text: "lo" }],
        name: "ann",
      },
      { role: "assistant", content: null },
    ],
    max_completion_tokens: 9,
    max_tokens: 100,
  });
  assert.deepEqual(p.messages, [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hello", name: "ann" },
    { role: "assistant", content: "" },
  ]);
  assert.equal(p.maxTokens, 9);
  rejects400(() => parseChatRequest({ messages: [] }), "messages");
  rejects400(() => parseChatRequest({}), "messages", "missing_required_parameter");
  rejects400(() => parseChatRequest({ messages: [{ content: "x" }] }), "messages");
  rejects400(
    () => parseChatRequest({ messages: [{ role: "user", content: [{ type: "image_url" }] }] }),
    "messages[0].content",
  );
  rejects400(() => parseChatRequest({ messages: [{ role: "user", content: "x" }], n: 3 }), "n");
});

Deno.test("openai: response and chunk shapes follow the OpenAI API", () => {
  const meta = newMeta("chat", "demo");
  assert.match(meta.id, /^chatcmpl-[0-9a-f]{32}$/);
  assert.ok(Math.abs(meta.created - Date.now() / 1000) < 5);
  const usage = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 };
  assert.deepEqual(responseBody("chat", meta, "Hi", "stop", usage), {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: "demo",
    choices: [{
      index: 0,
      message: { role: "assistant", content: "Hi" },
      logprobs: null,
      finish_reason: "stop",
    }],
    usage,
  });
  const cm = newMeta("completion", "demo");
  assert.match(cm.id, /^cmpl-/);
  assert.deepEqual(responseBody("completion", cm, "Hi", "length", usage).choices, [
    { index: 0, text: "Hi", logprobs: null, finish_reason: "length" },
  ]);
  assert.deepEqual(chunkBody("chat", meta, { role: true, text: "" }).choices, [
    { index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
  ]);
  const last = chunkBody("chat", meta, { finish: "length" });
  assert.equal(last.object, "chat.completion.chunk");
  assert.deepEqual(last.choices, [
    { index: 0, delta: {}, logprobs: null, finish_reason: "length" },
  ]);
  const u = chunkBody("completion", cm, { usage });
  assert.deepEqual([u.object, u.choices, u["usage"]], ["text_completion", [], usage]);
  assert.equal(sseEvent({ a: "b" }), 'data: {"a":"b"}\n\n');
  assert.equal(SSE_DONE, "data: [DONE]\n\n");
  assert.equal(new OpenAIError(404, "x").type, "not_found_error");
  assert.equal(new OpenAIError(500, "x").type, "server_error");
});

Deno.test("openai: every field is checked for type and range (issue 15, case 15)", () => {
  rejects400(() => parseCompletionRequest({ prompt: "x", top_k: -2 }), "top_k");
  // vLLM's "off" value is accepted and means off.
  assert.equal(parseCompletionRequest({ prompt: "x", top_k: -1 }).topK, 0);
  rejects400(() => parseCompletionRequest({ prompt: "x", top_k: 1.5 }), "top_k");
  rejects400(
    () => parseCompletionRequest({ prompt: "x", stream_options: { include_usage: "x" } }),
    "stream_options.include_usage",
  );
  rejects400(
    () => parseCompletionRequest({ prompt: "x", presence_penalty: 3 }),
    "presence_penalty",
  );
  rejects400(
    () => parseCompletionRequest({ prompt: "x", frequency_penalty: "0" }),
    "frequency_penalty",
  );
  rejects400(
    () => parseCompletionRequest({ prompt: "x", repetition_penalty: 1.2 }),
    "repetition_penalty",
  );
  rejects400(() => parseCompletionRequest({ prompt: "x", user: 5 }), "user");
  rejects400(() => parseCompletionRequest({ prompt: "x", logit_bias: { "1": 5 } }), "logit_bias");
  rejects400(
    () => parseCompletionRequest({ prompt: "x", response_format: { type: "json_object" } }),
    "response_format",
  );
  rejects400(() => parseCompletionRequest({ prompt: "x", stop: "x".repeat(257) }), "stop");
  rejects400(() => parseCompletionRequest({ prompt: "x", seed: 2 ** 60 }), "seed");
  rejects400(() => parseChatRequest({ messages: [{ role: "", content: "a" }] }), "messages");
  rejects400(
    () => parseChatRequest({ messages: [{ role: "r".repeat(65), content: "a" }] }),
    "messages",
  );
  rejects400(
    () => parseChatRequest({ messages: [{ role: "user", content: "a", name: 3 }] }),
    "messages",
  );
  // The neutral values stay accepted.
  const ok = parseCompletionRequest({
    prompt: "x",
    top_k: 0,
    presence_penalty: 0,
    frequency_penalty: -2,
    logit_bias: {},
    response_format: { type: "text" },
    stream_options: { include_usage: false },
  });
  assert.equal(ok.topK, 0);
  assert.equal(ok.includeUsage, false);
});
