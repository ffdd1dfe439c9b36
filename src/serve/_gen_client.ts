// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The server's side of the generation Worker (`_gen_worker.ts`): the model
 * is loaded and run in the Worker, and the server's event loop only forwards
 * token ids, so `/health` and other requests are answered while a forward
 * pass runs. A client that goes away sets the job's shared cancel flag; the
 * Worker stops within a token.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import type { ModelConfig } from "../io/hf_config.ts";
import { TextTokenizer } from "../io/tokenizer.ts";
import type { GenerateOptions, GenerateStats } from "../runtime/generate.ts";
import type { GenInit, GenInitError, GenJob, GenReply } from "./_gen_worker.ts";

/** What one generation's listener is told. */
interface JobSink {
  tokens(ids: number[]): void;
  end(stats: GenerateStats): void;
  fail(message: string): void;
}

/** A model loaded and run in a Worker. */
export interface ModelWorker {
  /** The model's config (context length, vocabulary, special ids). */
  readonly lm: { readonly config: ModelConfig };
  /** Its tokenizer, loaded on this thread (decoding, special ids). */
  readonly tokenizer: TextTokenizer;
  /** Which backend runs it, in words. */
  readonly backend: string;
  /** Why that backend was chosen, one line. */
  readonly backendChoice: string;
  /** Runs one generation in the Worker: the new ids, as `generateTokens` yields them. */
  generateTokens(
    prompt: number[],
    opts: GenerateOptions,
    stats: GenerateStats,
  ): AsyncGenerator<number>;
  /** Stops the Worker and frees the model. */
  close(): void;
}

function rethrow(e: GenInitError): never {
  if (e.gptq) {
    const { code, reason, ...details } = e.gptq;
    throw new GptqError(code, reason, details);
  }
  throw new Error(`the generation worker could not load the model: ${e.message}`);
}

/**
 * Loads a model folder in a new Worker.
 *
 * @param dir The model folder (already resolved from a Hub id).
 * @param load Backend, threads and zero format, as for `loadModel`.
 * @returns The model, once loaded.
 */
export async function startModelWorker(
  dir: string,
  load: GenInit["load"],
): Promise<ModelWorker> {
  const worker = new Worker(new URL("./_gen_worker.ts", import.meta.url), { type: "module" });
  const jobs = new Map<number, JobSink>();
  let dead: string | null = null;
  const ready = Promise.withResolvers<Extract<GenReply, { type: "ready" }>>();
  worker.onmessage = (e: MessageEvent<GenReply>) => {
    const r = e.data;
    if (r.type === "ready") ready.resolve(r);
    else if (r.type === "init-error") ready.reject(r.error);
    else if (r.type === "tokens") jobs.get(r.id)?.tokens(r.ids);
    else if (r.type === "end") jobs.get(r.id)?.end(r.stats);
    else jobs.get(r.id)?.fail(r.message);
  };
  worker.onerror = (e) => {
    e.preventDefault();
    dead = `the generation worker failed: ${e.message}`;
    ready.reject({ message: e.message, gptq: null } satisfies GenInitError);
    for (const j of jobs.values()) j.fail(dead);
    worker.terminate();
  };
  worker.postMessage({ type: "init", dir, load } satisfies GenInit);
  let info;
  try {
    info = await ready.promise;
  } catch (e) {
    worker.terminate();
    rethrow(e as GenInitError);
  }
  const tokenizer = await TextTokenizer.fromFolder(dir, {
    bosTokenId: info.config.bosTokenId,
    eosTokenIds: info.config.eosTokenIds,
  });
  let nextId = 0;

  async function* generate(
    prompt: number[],
    opts: GenerateOptions,
    stats: GenerateStats,
  ): AsyncGenerator<number> {
    if (dead) throw new Error(dead);
    const id = nextId++;
    const cancel = new Int32Array(new SharedArrayBuffer(4));
    const queue: number[] = [];
    let error = null as string | null;
    let ended = false;
    let endStats = null as GenerateStats | null;
    let wake: (() => void) | null = null;
    const finished = Promise.withResolvers<void>();
    Object.assign(stats, { promptTokens: prompt.length, newTokens: 0, stop: "length" });
    jobs.set(id, {
      tokens(ids) {
        queue.push(...ids);
        wake?.();
      },
      end(s) {
        endStats = s;
        ended = true;
        finished.resolve();
        wake?.();
      },
      fail(message) {
        error = message;
        ended = true;
        finished.resolve();
        wake?.();
      },
    });
    worker.postMessage({ type: "gen", id, prompt, opts, cancel } satisfies GenJob);
    try {
      for (let i = 0;;) {
        while (i < queue.length) {
          stats.newTokens++;
          yield queue[i++]!;
        }
        if (error !== null) throw new Error(error);
        if (ended) break;
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    } finally {
      if (!ended) {
        Atomics.store(cancel, 0, 1);
        await finished.promise;
      }
      jobs.delete(id);
      // The ids this side consumed count, not the few the Worker made past a cancel.
      if (endStats) Object.assign(stats, { ...endStats, newTokens: stats.newTokens });
    }
  }

  return {
    lm: { config: info.config },
    tokenizer,
    backend: info.backend,
    backendChoice: info.backendChoice,
    generateTokens: generate,
    close() {
      worker.postMessage({ type: "close" });
      // The Worker closes itself once its last job ends; a hung one is terminated.
      Deno.unrefTimer(setTimeout(() => worker.terminate(), 2000));
    },
  };
}
