// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The OpenAI wire format of the server: validation of `/v1/completions` and
 * `/v1/chat/completions` request bodies into typed parameters, builders of
 * responses and streaming chunks, and OpenAI-style error objects
 * (`{"error":{"message","type","param","code"}}`).
 *
 * @module
 */

/** One chat message, as the chat template receives it. */
export interface ChatMessage {
  /** `system`, `user`, `assistant`, `tool`, … */
  role: string;
  /** The text (content parts are joined). */
  content: string;
  /** Any other fields the client sent (`name`, …), passed to the template. */
  [extra: string]: unknown;
}

/** Sampling and stopping parameters shared by both endpoints. */
export interface SamplingParams {
  /** The `model` field, if given. */
  model: string | undefined;
  /** `max_tokens` (or `max_completion_tokens`), if given. */
  maxTokens: number | undefined;
  /** 0 = greedy. Default 1. */
  temperature: number;
  /** Nucleus threshold in (0, 1]. Default 1. */
  topP: number;
  /** Keep the k most likely tokens (0 = off; an extension, as in vLLM). */
  topK: number;
  /** PRNG seed. Default 0. */
  seed: number;
  /** Stop strings (not included in the output). */
  stop: string[];
  /** Whether to stream server-sent events. */
  stream: boolean;
  /** `stream_options.include_usage`: send a last chunk with `usage`. */
  includeUsage: boolean;
  /** Keep generating past EOS (an extension, as in vLLM; for benchmarks). */
  ignoreEos: boolean;
}

/** A validated `/v1/completions` request. */
export interface CompletionParams extends SamplingParams {
  /** Discriminant. */
  kind: "completion";
  /** The prompt: text, or token ids. */
  prompt: string | number[];
}

/** A validated `/v1/chat/completions` request. */
export interface ChatParams extends SamplingParams {
  /** Discriminant. */
  kind: "chat";
  /** The conversation. */
  messages: ChatMessage[];
}

/** Token counts of a response. */
export interface Usage {
  /** Prompt tokens. */
  prompt_tokens: number;
  /** Generated tokens. */
  completion_tokens: number;
  /** Their sum. */
  total_tokens: number;
}

/** Why generation ended, in OpenAI's words. */
export type FinishReason = "stop" | "length";

/** The JSON body of an OpenAI error response. */
export interface ErrorBody {
  /** The error. */
  error: {
    /** What is wrong and how to fix it. */
    message: string;
    /** `invalid_request_error`, `not_found_error`, `server_error`, … */
    type: string;
    /** The request field concerned, or null. */
    param: string | null;
    /** A stable code, or null. */
    code: string | null;
  };
}

/**
 * An error that becomes an HTTP error response with an OpenAI error body.
 *
 * @example
 * ```ts
 * import { OpenAIError } from "./openai.ts";
 * const e = new OpenAIError(400, "'n' must be 1", { param: "n", code: "invalid_value" });
 * console.log(e.status, JSON.stringify(e.body().error.param)); // 400 "n"
 * ```
 */
export class OpenAIError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The error type; by default derived from the status. */
  readonly type: string;
  /** The request field concerned, or null. */
  readonly param: string | null;
  /** A stable code, or null. */
  readonly code: string | null;

  /**
   * Makes an error.
   *
   * @param status The HTTP status (4xx or 5xx).
   * @param message What is wrong and how to fix it.
   * @param opts The field (`param`), a stable `code` and the `type`.
   */
  constructor(
    status: number,
    message: string,
    opts: { param?: string | null; code?: string | null; type?: string } = {},
  ) {
    super(message);
    this.name = "OpenAIError";
    this.status = status;
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
    this.type = opts.type ??
      (status >= 500
        ? "server_error"
        : status === 404
        ? "not_found_error"
        : "invalid_request_error");
  }

  /**
   * The error's JSON body.
   *
   * @returns `{error: {message, type, param, code}}`.
   */
  body(): ErrorBody {
    return {
      error: { message: this.message, type: this.type, param: this.param, code: this.code },
    };
  }
}

type Json = Record<string, unknown>;

function bad(message: string, param: string, code = "invalid_value"): OpenAIError {
  return new OpenAIError(400, message, { param, code });
}

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function optNumber(
  body: Json,
  key: string,
  fallback: number,
  ok: (n: number) => boolean,
  range: string,
): number {
  const v = body[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || !ok(v)) {
    throw bad(`'${key}' must be ${range}, got ${JSON.stringify(v)?.slice(0, 64)}`, key);
  }
  return v;
}

/** Longest stop string accepted (characters). */
const MAX_STOP_CHARS = 256;
/** Longest role name accepted (characters). */
const MAX_ROLE_CHARS = 64;

function optInt(body: Json, key: string, min: number, note = ""): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    throw bad(
      `'${key}' must be an integer ≥ ${min}${note ? ` ${note}` : ""}, got ${
        JSON.stringify(v)?.slice(0, 64)
      }`,
      key,
    );
  }
  return v;
}

function parseSampling(body: Json, chat: boolean): SamplingParams {
  if (body["model"] !== undefined && typeof body["model"] !== "string") {
    throw bad("'model' must be a string", "model");
  }
  const n = body["n"];
  if (n !== undefined && n !== null && n !== 1) {
    throw bad(`only 'n' = 1 is supported, got ${JSON.stringify(n)}`, "n");
  }
  const bestOf = body["best_of"];
  if (!chat && bestOf !== undefined && bestOf !== null && bestOf !== 1) {
    throw bad(`only 'best_of' = 1 is supported, got ${JSON.stringify(bestOf)}`, "best_of");
  }
  if (!chat && body["echo"] !== undefined && body["echo"] !== null && body["echo"] !== false) {
    throw bad("'echo' is not supported", "echo");
  }
  for (const key of ["logprobs", "top_logprobs", "suffix", "tools", "functions"]) {
    const v = body[key];
    if (v !== undefined && v !== null && v !== false) {
      throw bad(`'${key}' is not supported by this server`, key, "unsupported_parameter");
    }
  }
  const maxTokens = chat
    ? optInt(body, "max_completion_tokens", 1) ?? optInt(body, "max_tokens", 1)
    : optInt(body, "max_tokens", 1);
  const temperature = optNumber(body, "temperature", 1, (t) => t >= 0 && t <= 2, "in [0, 2]");
  const topP = optNumber(body, "top_p", 1, (p) => p > 0 && p <= 1, "in (0, 1]");
  // vLLM's convention: -1 (and 0) turn top-k off; anything below -1 is an error.
  const topK = Math.max(0, optInt(body, "top_k", -1, "(0 or -1 turn top-k off, as in vLLM)") ?? 0);
  const seed = optInt(body, "seed", -Number.MAX_SAFE_INTEGER) ?? 0;
  // Accepted for compatibility and ignored: checked all the same, so a typo is not silent.
  for (const key of ["presence_penalty", "frequency_penalty"]) {
    optNumber(body, key, 0, (x) => x >= -2 && x <= 2, "a number in [-2, 2]");
  }
  optNumber(body, "repetition_penalty", 1, (x) => x === 1, "1 (not supported otherwise)");
  if (body["user"] !== undefined && body["user"] !== null && typeof body["user"] !== "string") {
    throw bad("'user' must be a string", "user");
  }
  const lb = body["logit_bias"];
  if (lb !== undefined && lb !== null && (!isObject(lb) || Object.keys(lb).length > 0)) {
    throw bad(
      "'logit_bias' is not supported by this server",
      "logit_bias",
      "unsupported_parameter",
    );
  }
  const rf = body["response_format"];
  if (rf !== undefined && rf !== null && !(isObject(rf) && rf["type"] === "text")) {
    throw bad(
      'only \'response_format\' {"type": "text"} is supported',
      "response_format",
      "unsupported_parameter",
    );
  }
  let stop: string[] = [];
  const s = body["stop"];
  if (typeof s === "string" && s.length <= MAX_STOP_CHARS) stop = [s];
  else if (Array.isArray(s)) {
    if (s.length > 4 || !s.every((x) => typeof x === "string" && x.length <= MAX_STOP_CHARS)) {
      throw bad(
        `'stop' must be a string or a list of at most 4 strings of at most ${MAX_STOP_CHARS} characters`,
        "stop",
      );
    }
    stop = s as string[];
  } else if (s !== undefined && s !== null) {
    throw bad(
      `'stop' must be a string or a list of at most 4 strings of at most ${MAX_STOP_CHARS} characters`,
      "stop",
    );
  }
  stop = stop.filter((x) => x.length > 0);
  const stream = body["stream"] ?? false;
  if (typeof stream !== "boolean") throw bad("'stream' must be a boolean", "stream");
  const so = body["stream_options"];
  if (so !== undefined && so !== null && !isObject(so)) {
    throw bad("'stream_options' must be an object", "stream_options");
  }
  const iu = isObject(so) ? so["include_usage"] : undefined;
  if (iu !== undefined && iu !== null && typeof iu !== "boolean") {
    throw bad("'stream_options.include_usage' must be a boolean", "stream_options.include_usage");
  }
  const includeUsage = iu === true;
  const ignoreEos = body["ignore_eos"] ?? false;
  if (typeof ignoreEos !== "boolean") throw bad("'ignore_eos' must be a boolean", "ignore_eos");
  return {
    model: body["model"] as string | undefined,
    maxTokens,
    temperature,
    topP,
    topK,
    seed,
    stop,
    stream,
    includeUsage,
    ignoreEos,
  };
}

function requireObject(body: unknown): Json {
  if (!isObject(body)) {
    throw new OpenAIError(400, "the request body must be a JSON object", {
      code: "invalid_request",
    });
  }
  return body;
}

function isIdList(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => Number.isSafeInteger(x) && x >= 0);
}

/**
 * Validates a `/v1/completions` body.
 *
 * @example
 * ```ts
 * import { parseCompletionRequest } from "./openai.ts";
 * const p = parseCompletionRequest({ prompt: "Hi", max_tokens: 5, seed: 3 });
 * console.log(p.prompt, p.maxTokens, p.seed, p.temperature); // Hi 5 3 1
 * ```
 *
 * @param body The parsed JSON body.
 * @returns The typed parameters.
 * @throws {OpenAIError} 400 naming the offending field.
 */
export function parseCompletionRequest(body: unknown): CompletionParams {
  const b = requireObject(body);
  let prompt = b["prompt"];
  if (
    Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === "string" ||
      isIdList(prompt[0]))
  ) {
    prompt = prompt[0];
  }
  if (typeof prompt !== "string" && !isIdList(prompt)) {
    throw bad(
      "'prompt' must be a string, a list of one string, or a list of token ids " +
        "(batches of several prompts are not supported: send one request per prompt)",
      "prompt",
      prompt === undefined ? "missing_required_parameter" : "invalid_value",
    );
  }
  return { kind: "completion", prompt, ...parseSampling(b, false) };
}

function messageText(content: unknown, i: number): string {
  if (typeof content === "string") return content;
  if (content === null || content === undefined) return "";
  if (Array.isArray(content)) {
    let text = "";
    for (const part of content) {
      if (!isObject(part) || part["type"] !== "text" || typeof part["text"] !== "string") {
        throw bad(
          `messages[${i}].content: only text parts ({"type":"text","text":…}) are supported`,
          `messages[${i}].content`,
        );
      }
      text += part["text"];
    }
    return text;
  }
  throw bad(`messages[${i}].content must be a string or a list of text parts`, `messages`);
}

/**
 * Validates a `/v1/chat/completions` body.
 *
 * @example
 * ```ts
 * import { parseChatRequest } from "./openai.ts";
 * const p = parseChatRequest({ messages: [{ role: "user", content: "Hi" }], stream: true });
 * console.log(p.messages[0].content, p.stream); // Hi true
 * ```
 *
 * @param body The parsed JSON body.
 * @returns The typed parameters.
 * @throws {OpenAIError} 400 naming the offending field.
 */
export function parseChatRequest(body: unknown): ChatParams {
  const b = requireObject(body);
  const msgs = b["messages"];
  if (!Array.isArray(msgs) || msgs.length === 0) {
    throw bad(
      "'messages' must be a non-empty list of {role, content}",
      "messages",
      msgs === undefined ? "missing_required_parameter" : "invalid_value",
    );
  }
  const messages = msgs.map((m, i): ChatMessage => {
    if (!isObject(m) || typeof m["role"] !== "string") {
      throw bad(`messages[${i}] must be an object with a string 'role'`, "messages");
    }
    if (m["role"].length === 0 || m["role"].length > MAX_ROLE_CHARS) {
      throw bad(`messages[${i}].role must be 1 to ${MAX_ROLE_CHARS} characters`, "messages");
    }
    if (m["name"] !== undefined && m["name"] !== null && typeof m["name"] !== "string") {
      throw bad(`messages[${i}].name must be a string`, "messages");
    }
    return { ...m, role: m["role"], content: messageText(m["content"], i) };
  });
  return { kind: "chat", messages, ...parseSampling(b, true) };
}

/** Identity of one response, shared by all its chunks. */
export interface ResponseMeta {
  /** `cmpl-…` or `chatcmpl-…`. */
  id: string;
  /** Unix seconds. */
  created: number;
  /** The served model's id. */
  model: string;
}

/**
 * Makes a response identity.
 *
 * @example
 * ```ts
 * import { newMeta } from "./openai.ts";
 * console.log(newMeta("chat", "demo").id.startsWith("chatcmpl-")); // true
 * ```
 *
 * @param kind Which endpoint.
 * @param model The served model's id.
 * @returns A fresh id, the time, the model.
 */
export function newMeta(kind: "completion" | "chat", model: string): ResponseMeta {
  const id = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${crypto.randomUUID().replaceAll("-", "")}`;
  return { id, created: Math.floor(Date.now() / 1000), model };
}

/**
 * A whole (non-streamed) response.
 *
 * @example
 * ```ts
 * import { newMeta, responseBody } from "./openai.ts";
 * const r = responseBody("completion", newMeta("completion", "m"), "Hi", "length", {
 *   prompt_tokens: 1, completion_tokens: 2, total_tokens: 3,
 * });
 * console.log(r.object); // text_completion
 * ```
 *
 * @param kind Which endpoint.
 * @param meta The response identity.
 * @param text The generated text.
 * @param finish Why it ended.
 * @param usage Token counts.
 * @returns The JSON body.
 */
export function responseBody(
  kind: "completion" | "chat",
  meta: ResponseMeta,
  text: string,
  finish: FinishReason,
  usage: Usage,
): Record<string, unknown> {
  const choice = kind === "chat"
    ? {
      index: 0,
      message: { role: "assistant", content: text },
      logprobs: null,
      finish_reason: finish,
    }
    : { index: 0, text, logprobs: null, finish_reason: finish };
  return {
    id: meta.id,
    object: kind === "chat" ? "chat.completion" : "text_completion",
    created: meta.created,
    model: meta.model,
    choices: [choice],
    usage,
  };
}

/**
 * One streamed chunk. For chat, `role` starts the stream with the
 * assistant's role; `text` is the new content; `finish` ends it.
 *
 * @example
 * ```ts
 * import { chunkBody, newMeta } from "./openai.ts";
 * const c = chunkBody("chat", newMeta("chat", "m"), { text: "Hel" });
 * console.log(JSON.stringify(c.choices)); // [{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}]
 * ```
 *
 * @param kind Which endpoint.
 * @param meta The response identity.
 * @param part The new text, the role (first chat chunk), the finish reason (last chunk), or usage alone.
 * @returns The JSON chunk.
 */
export function chunkBody(
  kind: "completion" | "chat",
  meta: ResponseMeta,
  part: { text?: string; role?: boolean; finish?: FinishReason; usage?: Usage },
): Record<string, unknown> & { choices: Record<string, unknown>[] } {
  const finish = part.finish ?? null;
  let choices: Json[];
  if (part.usage) choices = [];
  else if (kind === "chat") {
    const delta: Json = {};
    if (part.role) delta["role"] = "assistant";
    if (part.text !== undefined) delta["content"] = part.text;
    choices = [{ index: 0, delta, logprobs: null, finish_reason: finish }];
  } else {
    choices = [{ index: 0, text: part.text ?? "", logprobs: null, finish_reason: finish }];
  }
  const out: Record<string, unknown> & { choices: Json[] } = {
    id: meta.id,
    object: kind === "chat" ? "chat.completion.chunk" : "text_completion",
    created: meta.created,
    model: meta.model,
    choices,
  };
  if (part.usage) out["usage"] = part.usage;
  return out;
}

/**
 * Frames a JSON value as one server-sent event.
 *
 * @example
 * ```ts
 * import { sseEvent } from "./openai.ts";
 * console.log(JSON.stringify(sseEvent({ a: 1 }))); // "data: {\"a\":1}\n\n"
 * ```
 *
 * @param value The JSON value.
 * @returns `data: JSON\n\n`.
 */
export function sseEvent(value: unknown): string {
  return `data: ${JSON.stringify(value)}\n\n`;
}

/** The event that ends an OpenAI stream. */
export const SSE_DONE = "data: [DONE]\n\n";
