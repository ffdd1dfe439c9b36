// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Perplexity exactly as the GPTQ paper computes it (`opt_eval`): the text is
 * tokenized once, cut into non-overlapping windows of `seqlen` tokens (the
 * remainder is dropped), each window runs with no context carried over, and
 * `ppl = exp(Σ_windows mean_NLL(window) · seqlen / (windows · seqlen))`, the
 * mean over each window's `seqlen − 1` shifted targets.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import type { CausalLM } from "./model.ts";
import { nllOf } from "../backends/host.ts";

/** Options of {@linkcode perplexity}. */
export interface PerplexityOptions {
  /** Window length in tokens. Default 2048 (capped by nothing: too long is an error). */
  seqlen?: number;
  /** Use at most this many windows. */
  maxSamples?: number;
  /** Called after each window. */
  onProgress?: (done: number, total: number) => void;
}

/** The result of {@linkcode perplexity}. */
export interface PerplexityResult {
  /** The perplexity. */
  ppl: number;
  /** Mean NLL per predicted token (nats). */
  meanNll: number;
  /** Windows evaluated. */
  windows: number;
  /** Window length. */
  seqlen: number;
  /** Tokens in the text. */
  tokens: number;
  /** Tokens dropped at the end. */
  droppedTokens: number;
}

/**
 * Mean negative log-likelihood of `targets[t]` under `logits[t]`.
 *
 * @example
 * ```ts
 * import { meanNll } from "./perplexity.ts";
 * console.log(meanNll(new Float32Array([0, 0]), 2, [1])); // ln 2
 * ```
 *
 * @param logits `[T, V]`.
 * @param V Vocabulary size.
 * @param targets `T` target ids.
 * @returns The mean NLL.
 */
export function meanNll(logits: Float32Array, V: number, targets: ArrayLike<number>): number {
  let total = 0;
  for (let t = 0; t < targets.length; t++) {
    total += nllOf(logits.subarray(t * V, (t + 1) * V), targets[t]!);
  }
  return total / targets.length;
}

/**
 * Evaluates perplexity over a token stream.
 *
 * @example
 * ```ts ignore
 * const ids = tok.encode(text);
 * const { ppl } = await perplexity(lm, ids, { seqlen: 512 });
 * ```
 *
 * @param lm The model.
 * @param ids The tokenized text.
 * @param opts Window length and limits.
 * @returns The perplexity and counts.
 */
export async function perplexity(
  lm: CausalLM,
  ids: ArrayLike<number>,
  opts: PerplexityOptions = {},
): Promise<PerplexityResult> {
  const seqlen = opts.seqlen ?? 2048;
  if (!Number.isInteger(seqlen) || seqlen < 2) {
    throw new GptqError("INVALID_ARGUMENT", `seqlen must be an integer ≥ 2, got ${seqlen}`);
  }
  if (seqlen > lm.config.maxPositions) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `--seqlen ${seqlen} exceeds the model's ${lm.config.maxPositions} positions`,
      {
        file: lm.config.file,
        hint: `use --seqlen ${lm.config.maxPositions} or less`,
      },
    );
  }
  let windows = Math.floor(ids.length / seqlen);
  if (windows === 0) {
    throw new GptqError(
      "DATASET",
      `the text has ${ids.length} tokens, fewer than one window of ${seqlen}`,
      {
        hint: "use a longer text or a smaller --seqlen",
      },
    );
  }
  if (opts.maxSamples !== undefined) windows = Math.min(windows, opts.maxSamples);
  let sum = 0;
  for (let w = 0; w < windows; w++) {
    const win = Array.from({ length: seqlen }, (_, i) => ids[w * seqlen + i]!);
    // The backend computes each position's NLL on the device; only T numbers come back.
    const nll = await lm.windowNll(win);
    let total = 0;
    for (let t = 0; t < nll.length; t++) total += nll[t]!;
    sum += (total / nll.length) * seqlen;
    opts.onProgress?.(w + 1, windows);
  }
  const nll = sum / (windows * seqlen);
  return {
    ppl: Math.exp(nll),
    meanNll: nll,
    windows,
    seqlen,
    tokens: ids.length,
    droppedTokens: ids.length - Math.floor(ids.length / seqlen) * seqlen,
  };
}
