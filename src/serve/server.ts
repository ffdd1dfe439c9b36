// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * An OpenAI-compatible HTTP server over one loaded model:
 * `POST /v1/completions`, `POST /v1/chat/completions` (both with SSE
 * streaming), `GET /v1/models` and `GET /health`.
 *
 * Requests are validated and tokenized (in a Worker) as they arrive, then
 * generations run one at a time in arrival order (the model has one set of
 * buffers); each has its own KV cache and seeded sampler, so a request's
 * output does not depend on what else is running. {@linkcode serve} as the
 * CLI runs it has the model in a Worker (`ServedModel.generateTokens`), so
 * the event loop only does HTTP; a model on this thread yields to the loop
 * between tokens (at least every 10 ms). A client that disconnects (its
 * request signal aborts, or its response stream is cancelled) stops its
 * generation within a token or 10 ms, and a disconnected client still waiting
 * in the queue is dropped.
 *
 * @module
 */

import type { TextTokenizer } from "../io/tokenizer.ts";
import type { ModelConfig } from "../io/hf_config.ts";
import {
  type GenerateOptions,
  type GenerateStats,
  generateTokens,
  newGenerateStats,
} from "../runtime/generate.ts";
import { CausalLM } from "../runtime/model.ts";
import type { ChatTemplate } from "./chat_template.ts";
import {
  type ChatParams,
  chunkBody,
  type CompletionParams,
  type FinishReason,
  newMeta,
  OpenAIError,
  parseChatRequest,
  parseCompletionRequest,
  responseBody,
  SSE_DONE,
  sseEvent,
  type Usage,
} from "./openai.ts";
import { FifoQueue } from "./_queue.ts";
import { StopFilter } from "./_stop.ts";
import { createTicker } from "./_ticker.ts";
import { PromptPreparer } from "./_prep_pool.ts";
import { maxTokenBytes, preparePrompt, type PrepRequest } from "./_prompt_prep.ts";
import { serveGuarded } from "./_conn_guard.ts";

/**
 * Runs one generation: the new token ids after a prompt, as
 * {@linkcode generateTokens} yields them; stopping the iteration stops it.
 */
export type TokenGenerator = (
  prompt: number[],
  opts: GenerateOptions,
  stats: GenerateStats,
) => AsyncGenerator<number>;

/** The model a server runs: what {@linkcode loadModel} returns fits. */
export interface ServedModel {
  /** The causal LM, or only its config when `generateTokens` runs it elsewhere. */
  readonly lm: CausalLM | { readonly config: ModelConfig };
  /** Its tokenizer. */
  readonly tokenizer: TextTokenizer;
  /** Which backend runs it, in words (shown by `/health`). */
  readonly backend?: string;
  /**
   * Runs generations somewhere else than the server's event loop (the CLI
   * runs the model in a Worker); default: `lm` on this thread, between
   * whose forward passes the loop answers other requests.
   */
  readonly generateTokens?: TokenGenerator;
}

/** Options of {@linkcode createServer}. */
export interface ServerOptions {
  /** The loaded model. */
  model: ServedModel;
  /** The id clients name in `model` and `/v1/models` lists. */
  modelId: string;
  /** The chat template; null or absent makes chat requests fail with 400. */
  chatTemplate?: ChatTemplate | null;
  /** Largest request body in bytes (else 413). Default 1 MiB. */
  maxBodyBytes?: number;
  /** Milliseconds a request's body has to arrive once its headers have (else 408). Default 30000. */
  bodyTimeoutMs?: number;
  /** Longest prompt in tokens (else 400). Default and cap: the model's context. */
  maxPromptTokens?: number;
  /** Largest `max_tokens` a request may ask for (else 400). Default: the model's context. */
  maxTokensLimit?: number;
  /** Where to write one line per request. Default: nowhere. */
  log?: (line: string) => void;
  /**
   * The folder whose `tokenizer.json` the preparation Worker loads. Default:
   * the folder of `model.tokenizer.source`; without one, prompts are
   * prepared on the main thread (no budgets).
   */
  tokenizerDir?: string;
  /** Time budget of rendering the chat template and tokenizing one prompt (else 400). Default 2000 ms. */
  promptTimeoutMs?: number;
  /** Memory budget of the same, as growth of resident memory (else 400). Default 256 MiB. */
  promptMemoryBytes?: number;
}

/** Counters shown by `GET /health`. */
export interface ServerStats {
  /** Generations that ran to their end. */
  completed: number;
  /** Generations dropped or stopped because the client disconnected. */
  cancelled: number;
  /** Generations that failed with a server error. */
  failed: number;
  /** Requests waiting for the model. */
  queued: number;
  /** Whether a generation is running. */
  active: boolean;
  /** The last cancelled generation: tokens it made of how many it could have made. */
  last_cancelled: { completion_tokens: number; max_tokens: number } | null;
}

/** A server: a request handler for `Deno.serve` and its counters. */
export interface OpenAIServer {
  /**
   * Answers one HTTP request.
   *
   * @param req The request.
   * @returns The response.
   */
  handler(req: Request): Promise<Response>;
  /**
   * The current counters.
   *
   * @returns A snapshot.
   */
  stats(): ServerStats;
  /**
   * Starts the prompt preparation Workers now rather than at the first
   * request (starting a Worker holds the event loop for tens of ms).
   *
   * @returns A promise that settles once they are ready (or failed, then
   * prompts are prepared on the event loop).
   */
  warmUp(): Promise<void>;
  /** Stops the prompt preparation Worker (a later request starts it again). */
  close(): void;
}

/** One validated, tokenized generation request. */
interface Job {
  kind: "completion" | "chat";
  ids: number[];
  maxNew: number;
  params: CompletionParams | ChatParams;
}

/** What a generation reports at its end (null when the client went away). */
interface Outcome {
  text: string;
  finish: FinishReason;
  usage: Usage;
}

const JSON_HEADERS = { "content-type": "application/json" };
const ROUTES: Record<string, string> = {
  "/health": "GET",
  "/v1/models": "GET",
  "/v1/completions": "POST",
  "/v1/chat/completions": "POST",
};

function json(value: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: { ...JSON_HEADERS, ...headers },
  });
}

function errorResponse(e: OpenAIError, headers: Record<string, string> = {}): Response {
  return json(e.body(), e.status, headers);
}

/** Reads a body of at most `max` bytes (413 beyond) that arrives within `timeoutMs` (408 beyond). */
async function readBody(req: Request, max: number, timeoutMs: number): Promise<Uint8Array> {
  const tooLarge = () =>
    new OpenAIError(413, `the request body is larger than the limit of ${max} bytes`, {
      code: "request_too_large",
    });
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > max) throw tooLarge();
  if (!req.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), timeoutMs)));
  try {
    for (;;) {
      const chunk = await Promise.race([reader.read(), late]);
      if (chunk === "late") {
        await reader.cancel().catch(() => {});
        throw new OpenAIError(
          408,
          `the request body did not arrive within ${timeoutMs} ms: send it at once`,
          { code: "request_timeout" },
        );
      }
      if (chunk.done) break;
      total += chunk.value.length;
      if (total > max) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      parts.push(chunk.value);
    }
  } finally {
    clearTimeout(timer);
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function localGenerator(lm: ServedModel["lm"]): TokenGenerator {
  if (!(lm instanceof CausalLM)) {
    throw new TypeError("a served model without a CausalLM needs its own `generateTokens`");
  }
  return (prompt, o, stats) => generateTokens(lm, prompt, o, stats);
}

/**
 * Makes a server over a loaded model.
 *
 * @example Serve a model on a free port
 * ```ts ignore
 * import { loadModel } from "../load_model.ts";
 * import { loadChatTemplate } from "./chat_template.ts";
 * import { createServer } from "./server.ts";
 * const model = await loadModel("./demo");
 * const srv = createServer({ model, modelId: "demo", chatTemplate: await loadChatTemplate("./demo") });
 * Deno.serve({ port: 0 }, srv.handler);
 * ```
 *
 * @param opts The model, its id and the limits.
 * @returns The handler and its counters.
 */
export function createServer(opts: ServerOptions): OpenAIServer {
  const { lm, tokenizer: tok } = opts.model;
  const genTokens = opts.model.generateTokens ?? localGenerator(lm);
  const backendName = opts.model.backend ??
    (lm instanceof CausalLM ? `${lm.backend.name} (${lm.backend.device})` : "unknown");
  const ctx = lm.config.maxPositions;
  const maxBody = opts.maxBodyBytes ?? 1 << 20;
  const bodyTimeoutMs = opts.bodyTimeoutMs ?? 30_000;
  const maxPrompt = Math.min(opts.maxPromptTokens ?? ctx, ctx);
  const maxTokensLimit = opts.maxTokensLimit ?? ctx;
  const log = opts.log ?? (() => {});
  const queue = new FifoQueue();
  // One ticker for the server, not one per job: queued jobs hand over to each other through
  // promises (microtasks), so a fresh per-job slice would let a run of short generations hold
  // the event loop (and /health) for their whole total.
  const ticker = createTicker();
  const counters = {
    completed: 0,
    cancelled: 0,
    failed: 0,
    active: false,
    last_cancelled: null as ServerStats["last_cancelled"],
  };

  const stats = (): ServerStats => ({ ...counters, queued: queue.waiting });

  const tokDir = opts.tokenizerDir ??
    (tok.source.endsWith("/tokenizer.json")
      ? tok.source.slice(0, -"/tokenizer.json".length)
      : null);
  const budget = {
    timeoutMs: opts.promptTimeoutMs ?? 2000,
    memoryBytes: opts.promptMemoryBytes ?? 256 * 2 ** 20,
  };
  let preparer: Promise<PromptPreparer | null> | null = null;
  let inlineMaxBytes: number | null = null;
  /** The Worker that renders and tokenizes prompts, started by the first request. */
  function getPreparer(): Promise<PromptPreparer | null> {
    if (preparer) return preparer;
    const t = opts.chatTemplate ?? null;
    preparer = tokDir === null ? Promise.resolve(null) : PromptPreparer.start({
      type: "init",
      tokenizerDir: tokDir,
      ids: { bosTokenId: tok.bosTokenId, eosTokenIds: [...tok.eosTokenIds] },
      template: t &&
        { text: t.text, source: t.source, bosToken: t.bosToken, eosToken: t.eosToken },
    }, budget).catch((e) => {
      log(`prompts are prepared on the main thread: ${(e as Error).message}`);
      return null;
    });
    return preparer;
  }

  async function promptIds(p: CompletionParams | ChatParams): Promise<number[]> {
    let ids: number[];
    const limit = Math.min(maxPrompt, ctx - 1);
    if (p.kind === "chat" || typeof p.prompt === "string") {
      if (p.kind === "chat" && !opts.chatTemplate) {
        throw new OpenAIError(
          400,
          `model '${opts.modelId}' has no chat template (no chat_template in its ` +
            "tokenizer_config.json, no chat_template.jinja): use /v1/completions with a plain " +
            "prompt, or restart the server with --chat-template FILE",
          { param: "messages", code: "no_chat_template" },
        );
      }
      const param = p.kind === "chat" ? "messages" : "prompt";
      const prep = await getPreparer();
      const perToken = prep?.maxTokenBytes ?? (inlineMaxBytes ??= maxTokenBytes(tok));
      // Refuse what cannot fit before any tokenizing: no token stands for more
      // than `perToken` UTF-8 bytes, and a text has at least as many bytes as
      // UTF-16 code units, so C code units are at least C / perToken tokens
      // (an O(1) bound: even measuring the bytes of 1 MB takes long cold).
      const chars = p.kind === "chat"
        ? p.messages.reduce((a, m) => a + m.content.length + m.role.length, 0)
        : (p.prompt as string).length;
      const atLeast = Math.ceil(chars / perToken);
      if (atLeast > limit) {
        throw new OpenAIError(
          400,
          `the prompt is ${chars} characters, so at least ${atLeast} tokens; this server accepts at ` +
            `most ${limit} (the model's context is ${ctx} tokens): shorten the prompt`,
          { param, code: "context_length_exceeded" },
        );
      }
      const req: PrepRequest = p.kind === "chat"
        ? { kind: "chat", messages: p.messages }
        : { kind: "completion", prompt: p.prompt as string };
      const r = prep ? await prep.prepare(req) : preparePrompt(tok, opts.chatTemplate ?? null, req);
      if (!r.ok) throw new OpenAIError(r.status, r.message, { param, code: r.code });
      ids = r.ids;
    } else {
      ids = p.prompt;
      const vocab = lm.config.vocabSize;
      const badId = ids.find((id) => id >= vocab);
      if (badId !== undefined) {
        throw new OpenAIError(
          400,
          `token id ${badId} is outside the vocabulary (0..${vocab - 1})`,
          {
            param: "prompt",
            code: "invalid_value",
          },
        );
      }
    }
    if (ids.length === 0) {
      const bos = tok.bosTokenId ?? lm.config.bosTokenId;
      ids = [bos ?? 0];
    }
    return ids;
  }

  async function prepare(p: CompletionParams | ChatParams): Promise<Job> {
    if (p.model !== undefined && p.model !== opts.modelId) {
      throw new OpenAIError(
        404,
        `the model '${p.model}' does not exist on this server; it serves '${opts.modelId}'`,
        { param: "model", code: "model_not_found" },
      );
    }
    if (p.maxTokens !== undefined && p.maxTokens > maxTokensLimit) {
      throw new OpenAIError(
        400,
        `max_tokens is ${p.maxTokens}, more than this server's limit of ${maxTokensLimit}`,
        { param: "max_tokens", code: "invalid_value" },
      );
    }
    const ids = await promptIds(p);
    if (ids.length > maxPrompt || ids.length >= ctx) {
      throw new OpenAIError(
        400,
        `the prompt is ${ids.length} tokens; this server accepts at most ${
          Math.min(maxPrompt, ctx - 1)
        } (the model's context is ${ctx} tokens): shorten the prompt`,
        { param: p.kind === "chat" ? "messages" : "prompt", code: "context_length_exceeded" },
      );
    }
    const room = ctx - ids.length;
    if (p.maxTokens !== undefined && p.maxTokens > room) {
      throw new OpenAIError(
        400,
        `the model's context is ${ctx} tokens; the prompt uses ${ids.length} and max_tokens ` +
          `asks for ${p.maxTokens} more: lower max_tokens to at most ${room} or shorten the prompt`,
        { param: "max_tokens", code: "context_length_exceeded" },
      );
    }
    const fallback = p.kind === "completion" ? 16 : maxTokensLimit;
    return { kind: p.kind, ids, maxNew: p.maxTokens ?? Math.min(fallback, room), params: p };
  }

  /**
   * Runs one generation when its turn comes, handing final text to `emit`.
   * Returns null when the signal aborted (client gone) before the end.
   */
  async function run(
    job: Job,
    signal: AbortSignal,
    emit: (text: string) => void,
  ): Promise<Outcome | null> {
    let release;
    try {
      release = await queue.acquire(signal);
    } catch {
      counters.cancelled++;
      counters.last_cancelled = { completion_tokens: 0, max_tokens: job.maxNew };
      return null;
    }
    counters.active = true;
    const st: GenerateStats = newGenerateStats();
    try {
      const p = job.params;
      const dec = tok.createStreamDecoder({ skipSpecialTokens: true });
      const stop = new StopFilter(p.stop);
      let text = "";
      const put = (piece: string): boolean => {
        const step = stop.push(piece);
        if (step.text) {
          text += step.text;
          emit(step.text);
        }
        return step.stopped;
      };
      let stopped = false;
      let aborted = signal.aborted;
      if (!aborted) {
        const tokens = genTokens(job.ids, {
          max_new_tokens: job.maxNew,
          temperature: p.temperature,
          top_p: p.topP,
          top_k: p.topK,
          seed: p.seed,
          ...(p.ignoreEos ? { eos_token_id: [] } : {}),
        }, st);
        for await (const id of tokens) {
          const piece = dec.push(id);
          if (piece && put(piece)) {
            stopped = true;
            break;
          }
          await ticker.tick();
          if (signal.aborted) {
            aborted = true;
            break;
          }
        }
      }
      if (aborted) {
        counters.cancelled++;
        counters.last_cancelled = { completion_tokens: st.newTokens, max_tokens: job.maxNew };
        return null;
      }
      if (!stopped) {
        const rest = dec.flush();
        stopped = rest !== "" && put(rest);
        if (!stopped) {
          const held = stop.end();
          if (held) {
            text += held;
            emit(held);
          }
        }
      }
      counters.completed++;
      const finish: FinishReason = stopped || st.stop === "eos" ? "stop" : "length";
      const usage = {
        prompt_tokens: job.ids.length,
        completion_tokens: st.newTokens,
        total_tokens: job.ids.length + st.newTokens,
      };
      return { text, finish, usage };
    } catch (e) {
      counters.failed++;
      throw e;
    } finally {
      counters.active = false;
      release();
    }
  }

  function streamResponse(job: Job, req: Request, model: string, t0: number): Response {
    const meta = newMeta(job.kind, model);
    // A client that goes away cancels the body stream. (req.signal is not used
    // here: Deno also aborts it when a response completes normally.)
    const abort = new AbortController();
    const enc = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const send = (v: unknown) => {
          if (!abort.signal.aborted) controller.enqueue(enc.encode(sseEvent(v)));
        };
        if (job.kind === "chat") send(chunkBody("chat", meta, { role: true, text: "" }));
        run(job, abort.signal, (text) => send(chunkBody(job.kind, meta, { text })))
          .then((out) => {
            if (out === null || abort.signal.aborted) {
              log(`${req.method} ${new URL(req.url).pathname} client disconnected`);
              return;
            }
            send(chunkBody(job.kind, meta, { finish: out.finish }));
            if (job.params.includeUsage) send(chunkBody(job.kind, meta, { usage: out.usage }));
            controller.enqueue(enc.encode(SSE_DONE));
            controller.close();
            logDone(req, 200, out, t0);
          })
          .catch((e) => {
            log(`${req.method} ${new URL(req.url).pathname} failed: ${(e as Error).stack ?? e}`);
            if (abort.signal.aborted) return;
            const err = new OpenAIError(500, `generation failed: ${(e as Error).message}`);
            controller.enqueue(enc.encode(sseEvent(err.body())));
            controller.close();
          });
      },
      cancel() {
        abort.abort();
      },
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      },
    });
  }

  function logDone(req: Request, status: number, out: Outcome, t0: number): void {
    log(
      `${req.method} ${
        new URL(req.url).pathname
      } ${status} ${out.usage.prompt_tokens}+${out.usage.completion_tokens} tokens ${out.finish} ${
        (performance.now() - t0).toFixed(0)
      } ms`,
    );
  }

  async function generate(req: Request, kind: "completion" | "chat"): Promise<Response> {
    const t0 = performance.now();
    const raw = await readBody(req, maxBody, bodyTimeoutMs);
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
    } catch (e) {
      throw new OpenAIError(400, `the request body is not valid JSON: ${(e as Error).message}`, {
        code: "invalid_json",
      });
    }
    const params = kind === "chat" ? parseChatRequest(body) : parseCompletionRequest(body);
    const job = await prepare(params);
    if (params.stream) return streamResponse(job, req, opts.modelId, t0);
    const meta = newMeta(kind, opts.modelId);
    const out = await run(job, req.signal, () => {});
    if (out === null) {
      log(`${req.method} ${new URL(req.url).pathname} client disconnected`);
      // Nobody reads it: 499 is nginx's "client closed request".
      return errorResponse(
        new OpenAIError(499, "client closed the request", { code: "cancelled" }),
      );
    }
    logDone(req, 200, out, t0);
    return json(responseBody(kind, meta, out.text, out.finish, out.usage));
  }

  async function handler(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname.replace(/\/+$/, "") || "/";
    try {
      const method = ROUTES[path];
      if (method === undefined) {
        throw new OpenAIError(404, `no route ${req.method} ${path}`, { code: "not_found" });
      }
      if (req.method !== method) {
        return errorResponse(
          new OpenAIError(405, `${path} accepts ${method} only, got ${req.method}`, {
            code: "method_not_allowed",
          }),
          { allow: method },
        );
      }
      switch (path) {
        case "/health":
          return json({
            status: "ok",
            model: opts.modelId,
            backend: backendName,
            ...stats(),
          });
        case "/v1/models":
          return json({
            object: "list",
            data: [{
              id: opts.modelId,
              object: "model",
              created: 0,
              owned_by: "gptq-toolkit",
              max_model_len: ctx,
            }],
          });
        case "/v1/completions":
          return await generate(req, "completion");
        default:
          return await generate(req, "chat");
      }
    } catch (e) {
      if (e instanceof OpenAIError) {
        log(`${req.method} ${path} ${e.status} ${e.message}`);
        return errorResponse(e);
      }
      log(`${req.method} ${path} 500 ${(e as Error).stack ?? e}`);
      return errorResponse(new OpenAIError(500, `internal error: ${(e as Error).message}`));
    }
  }

  function close(): void {
    const p = preparer;
    preparer = null;
    p?.then((w) => w?.close());
  }

  return { handler, stats, warmUp: () => getPreparer().then(() => {}), close };
}

/** A server started by {@linkcode serve}. */
export interface RunningServer {
  /** The address it listens on. */
  readonly addr: Deno.NetAddr;
  /** Settles once the server has shut down. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting, closes every connection and stops the server.
   *
   * @returns A promise that settles once done.
   */
  shutdown(): Promise<void>;
}

/** Options of {@linkcode serve}. */
export interface ServeOptions extends ServerOptions {
  /** TCP port; 0 picks a free one. Default 8080. */
  port?: number;
  /** Interface to listen on. Default `127.0.0.1`. */
  hostname?: string;
  /** Aborting it shuts the server down. */
  signal?: AbortSignal;
  /** Most connections open at once; one more gets 503 and is closed. Default 128. */
  maxConnections?: number;
  /** Milliseconds a client has to send a request's headers before it is closed. Default 10000. */
  headerTimeoutMs?: number;
  /** Milliseconds a keep-alive connection may idle between requests. Default 60000. */
  idleTimeoutMs?: number;
  /**
   * Called once listening.
   *
   * @param addr The actual address (the chosen port when `port` is 0).
   */
  onListen?: (addr: { hostname: string; port: number }) => void;
}

/**
 * Starts an OpenAI-compatible server: `Deno.serve` behind connection limits
 * (an open-connection cap, header and idle timeouts).
 *
 * @example
 * ```ts ignore
 * import { loadModel } from "../load_model.ts";
 * import { serve } from "./server.ts";
 * const model = await loadModel("./demo");
 * const ac = new AbortController();
 * const srv = serve({ model, modelId: "demo", port: 0, signal: ac.signal,
 *   onListen: ({ port }) => console.log(`listening on http://127.0.0.1:${port}`) });
 * // …
 * ac.abort();
 * await srv.finished;
 * ```
 *
 * @param opts The model, limits and address.
 * @returns The running server.
 */
export function serve(opts: ServeOptions): RunningServer {
  const srv = createServer(opts);
  void srv.warmUp();
  const running = serveGuarded({
    hostname: opts.hostname ?? "127.0.0.1",
    port: opts.port ?? 8080,
    maxConnections: opts.maxConnections ?? 128,
    headerTimeoutMs: opts.headerTimeoutMs ?? 10_000,
    idleTimeoutMs: opts.idleTimeoutMs ?? 60_000,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.log ? { log: opts.log } : {}),
    onListen: (addr) => opts.onListen?.({ hostname: addr.hostname, port: addr.port }),
  }, srv.handler);
  running.finished.then(() => srv.close());
  return running;
}
