// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Text generation: prefill the prompt, then decode token by token through
 * the KV cache, streaming text pieces as they become printable.
 *
 * @module
 */

import type { TextTokenizer } from "../io/tokenizer.ts";
import type { CausalLM } from "./model.ts";
import { createSampler, type SamplingOptions } from "./sample.ts";

/** Options of {@linkcode generateTokens} and {@linkcode generateText}. */
export interface GenerateOptions extends SamplingOptions {
  /** How many tokens to generate at most. Default 128. */
  max_new_tokens?: number;
  /** Stop at these ids (default: the model's EOS ids). */
  eos_token_id?: number[];
}

/** Timings of one generation. */
export interface GenerateStats {
  /** Prompt tokens. */
  promptTokens: number;
  /** Generated tokens. */
  newTokens: number;
  /** Prefill time in ms. */
  prefillMs: number;
  /** Decode time in ms. */
  decodeMs: number;
  /** Why it stopped. */
  stop: "eos" | "length";
}

/**
 * Fresh, zeroed {@linkcode GenerateStats} to pass to a generation.
 *
 * @example
 * ```ts
 * import { newGenerateStats } from "./generate.ts";
 * console.log(newGenerateStats().newTokens); // 0
 * ```
 *
 * @returns Stats with every count and time 0 and `stop: "length"`.
 */
export function newGenerateStats(): GenerateStats {
  return { promptTokens: 0, newTokens: 0, prefillMs: 0, decodeMs: 0, stop: "length" };
}

/**
 * Generates token ids after a prompt. Greedy decoding (temperature 0) reads
 * back one token id per step (the argmax runs on the backend); sampling reads
 * back the last logits row.
 *
 * @example
 * ```ts ignore
 * for await (const id of generateTokens(lm, [1], { temperature: 0, max_new_tokens: 20 })) {
 *   console.log(id);
 * }
 * ```
 *
 * @param lm The model.
 * @param prompt Prompt ids (non-empty).
 * @param opts Sampling and stopping.
 * @param stats Filled in as generation proceeds (reset at the start).
 * @returns The new ids, one at a time (EOS is not yielded).
 */
export async function* generateTokens(
  lm: CausalLM,
  prompt: number[],
  opts: GenerateOptions = {},
  stats?: GenerateStats,
): AsyncGenerator<number> {
  const maxNew = opts.max_new_tokens ?? 128;
  const eos = new Set(opts.eos_token_id ?? lm.config.eosTokenIds);
  const cap = Math.min(lm.config.maxPositions, prompt.length + maxNew);
  const pick = createSampler(opts);
  const greedy = (opts.temperature ?? 1) === 0;
  const V = lm.config.vocabSize;
  const next = async (ids: number[]): Promise<number> => {
    if (greedy) return await lm.greedy(ids, cache);
    const logits = await lm.forward(ids, cache, { lastOnly: true });
    return pick(logits.subarray(logits.length - V));
  };
  const st: GenerateStats = stats ?? newGenerateStats();
  Object.assign(st, { promptTokens: prompt.length, newTokens: 0, decodeMs: 0, stop: "length" });
  const cache = lm.newCache(cap);
  let t0 = performance.now();
  try {
    let id = await next(prompt);
    st.prefillMs = performance.now() - t0;
    t0 = performance.now();
    for (let i = 0; i < maxNew; i++) {
      if (eos.has(id)) {
        st.stop = "eos";
        break;
      }
      st.newTokens++;
      yield id;
      if (cache.length >= cap || i === maxNew - 1) break;
      id = await next([id]);
    }
  } finally {
    // Also runs when the consumer stops iterating early.
    st.decodeMs = performance.now() - t0;
    lm.freeCache(cache);
  }
}

/**
 * Generates text after a prompt, as an async iterator of printable pieces.
 *
 * @example
 * ```ts ignore
 * import { CausalLM } from "./model.ts";
 * import { generateText } from "./generate.ts";
 * const lm = await CausalLM.load("./stories260K-hf");
 * const tok = await lm.folder.tokenizer();
 * for await (const piece of generateText(lm, tok, "Once upon a time", { temperature: 0 })) {
 *   Deno.stdout.writeSync(new TextEncoder().encode(piece));
 * }
 * ```
 *
 * @param lm The model.
 * @param tok Its tokenizer.
 * @param prompt The prompt text (BOS is added as the tokenizer's config says), or
 *   token ids used as they are (e.g. a rendered chat template's).
 * @param opts Sampling and stopping.
 * @param stats Filled in as generation proceeds.
 * @returns Text pieces.
 */
export async function* generateText(
  lm: CausalLM,
  tok: TextTokenizer,
  prompt: string | number[],
  opts: GenerateOptions = {},
  stats?: GenerateStats,
): AsyncGenerator<string> {
  let ids = typeof prompt === "string" ? tok.encode(prompt) : prompt;
  if (ids.length === 0) ids = tok.bosTokenId !== null ? [tok.bosTokenId] : [];
  if (ids.length === 0) ids = lm.config.bosTokenId !== null ? [lm.config.bosTokenId] : [0];
  const dec = tok.createStreamDecoder();
  for await (const id of generateTokens(lm, ids, opts, stats)) {
    const piece = dec.push(id);
    if (piece) yield piece;
  }
  const rest = dec.flush();
  if (rest) yield rest;
}
