// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The generation Worker: loads the model once, then runs generations one at
 * a time, so that the forward passes (synchronous on the CPU backends) never
 * hold the server's event loop, which only does HTTP.
 *
 * Messages in: `{type: "init", dir, load}`, then `{type: "gen", id, prompt,
 * opts, cancel}` (`cancel` is a shared Int32Array the server sets to stop a
 * generation within a token) and `{type: "close"}`. Out: `{type: "ready",
 * config, backend, backendChoice}` or `{type: "init-error", error}`, then per
 * generation `{type: "tokens", id, ids}`… and `{type: "end", id, stats}` or
 * `{type: "error", id, message}`.
 *
 * @module
 */

import { GptqError, type GptqErrorCode } from "../errors.ts";
import { loadModel, type LoadOptions, type Model } from "../load_model.ts";
import {
  type GenerateOptions,
  type GenerateStats,
  generateTokens,
  newGenerateStats,
} from "../runtime/generate.ts";
import type { ModelConfig } from "../io/hf_config.ts";
import { lowerThreadPriority } from "./_nice.ts";

/** The first message: what to load. */
export interface GenInit {
  type: "init";
  dir: string;
  load: Pick<LoadOptions, "backend" | "threads" | "zeroFormat" | "actQuant">;
}

/** One generation. */
export interface GenJob {
  type: "gen";
  id: number;
  prompt: number[];
  opts: GenerateOptions;
  /** Element 0 becomes 1 when the client went away. */
  cancel: Int32Array;
}

/** A load error, as sent to the server. */
export interface GenInitError {
  message: string;
  gptq:
    | { code: GptqErrorCode; reason: string; file?: string; tensor?: string; hint?: string }
    | null;
}

/** Replies. */
export type GenReply =
  | { type: "ready"; config: ModelConfig; backend: string; backendChoice: string }
  | { type: "init-error"; error: GenInitError }
  | { type: "tokens"; id: number; ids: number[] }
  | { type: "end"; id: number; stats: GenerateStats }
  | { type: "error"; id: number; message: string };

/** Nice value of generation threads: the HTTP loop (0) gets ~3× their CPU share when both run. */
const GEN_NICE = 5;
// deno-lint-ignore no-explicit-any
const scope = self as any;
const post = (r: GenReply) => scope.postMessage(r);
let model: Model | null = null;
let chain: Promise<void> = Promise.resolve();

function initError(e: unknown): GenInitError {
  const g = e instanceof GptqError
    ? {
      code: e.code,
      reason: e.reason,
      ...(e.file ? { file: e.file } : {}),
      ...(e.tensor ? { tensor: e.tensor } : {}),
      ...(e.hint ? { hint: e.hint } : {}),
    }
    : null;
  return { message: (e as Error).message ?? String(e), gptq: g };
}

async function run(job: GenJob): Promise<void> {
  const stats: GenerateStats = newGenerateStats();
  try {
    for await (const id of generateTokens(model!.lm, job.prompt, job.opts, stats)) {
      post({ type: "tokens", id: job.id, ids: [id] });
      if (Atomics.load(job.cancel, 0) !== 0) break;
    }
    post({ type: "end", id: job.id, stats });
  } catch (e) {
    post({ type: "error", id: job.id, message: (e as Error).message ?? String(e) });
  }
}

scope.onmessage = async (e: MessageEvent<GenInit | GenJob | { type: "close" }>) => {
  const m = e.data;
  if (m.type === "init") {
    // Below the HTTP loop (and inherited by the WASM helper threads started by loadModel).
    lowerThreadPriority(GEN_NICE);
    try {
      model = await loadModel(m.dir, m.load);
      post({
        type: "ready",
        config: model.lm.config,
        backend: model.backend,
        backendChoice: model.backendChoice,
      });
    } catch (err) {
      post({ type: "init-error", error: initError(err) });
    }
  } else if (m.type === "gen") {
    chain = chain.then(() => run(m));
  } else {
    await chain;
    model?.close();
    scope.close();
  }
};
