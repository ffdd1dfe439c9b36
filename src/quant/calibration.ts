// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Calibration samples for GPTQ.
 *
 * How samples are chosen (documented for users in the README):
 * - a `.txt` file is read whole and tokenized once (with the tokenizer's
 *   special tokens, as the GPTQ paper's `get_wikitext2` does); then `nsamples`
 *   windows of `seqlen` tokens start at offsets drawn uniformly from
 *   `[0, tokens − seqlen − 1]` by a PRNG seeded with `seed` (the paper's
 *   `random.randint(0, len − seqlen − 1)`; our PRNG is mulberry32, not
 *   Python's Mersenne Twister, so offsets differ from Python's for the same seed);
 * - a `.jsonl` file gives one example per line from its `text` field,
 *   tokenized separately and truncated to `seqlen` (as optimum treats a list
 *   of strings); the first `nsamples` non-empty lines are used, in order;
 * - `wikitext2`, `c4` and `c4-new` are downloaded from the Hugging Face Hub
 *   once and cached, then sampled as the GPTQ paper does (see datasets.ts).
 *
 * @module
 */

import { fsError, GptqError } from "../errors.ts";
import type { TextTokenizer } from "../io/tokenizer.ts";
import { mulberry32 } from "../runtime/sample.ts";
import { loadHubCalibration } from "./datasets.ts";

/** Options of {@linkcode loadCalibration}. */
export interface CalibrationOptions {
  /** Number of samples. Default 128. */
  nsamples?: number;
  /** Tokens per sample. Default 2048. */
  seqlen?: number;
  /** PRNG seed for window offsets. Default 0. */
  seed?: number;
}

/** Calibration samples (token ids; each at most `seqlen` long). */
export interface Calibration {
  /** The samples. */
  samples: number[][];
  /** Where they came from. */
  source: string;
  /** How they were chosen, in words (for reports). */
  method: string;
}

/**
 * Applies the defaults (128 samples of 2048 tokens, seed 0) and validates them.
 *
 * @example
 * ```ts
 * import { calibrationParams } from "./calibration.ts";
 * console.log(calibrationParams({ nsamples: 8 })); // { nsamples: 8, seqlen: 2048, seed: 0 }
 * ```
 *
 * @param opts The options.
 * @returns Count, length and seed.
 */
export function calibrationParams(opts: CalibrationOptions): Required<CalibrationOptions> {
  const nsamples = opts.nsamples ?? 128, seqlen = opts.seqlen ?? 2048, seed = opts.seed ?? 0;
  if (!Number.isInteger(nsamples) || nsamples < 1) {
    throw new GptqError("INVALID_ARGUMENT", `nsamples must be a positive integer, got ${nsamples}`);
  }
  if (!Number.isInteger(seqlen) || seqlen < 2) {
    throw new GptqError("INVALID_ARGUMENT", `seqlen must be an integer ≥ 2, got ${seqlen}`);
  }
  return { nsamples, seqlen, seed };
}

/**
 * Loads calibration samples from a `.txt` or `.jsonl` file, or from a named
 * Hub dataset (`wikitext2`, `c4`, `c4-new`).
 *
 * @example
 * ```ts ignore
 * const cal = await loadCalibration("wikitext2_train.txt", tok, { nsamples: 128, seqlen: 2048 });
 * ```
 *
 * @param spec The dataset file.
 * @param tok The model's tokenizer.
 * @param opts Count, length and seed.
 * @returns The samples.
 */
export async function loadCalibration(
  spec: string,
  tok: TextTokenizer,
  opts: CalibrationOptions = {},
): Promise<Calibration> {
  const { nsamples, seqlen, seed } = calibrationParams(opts);
  if (spec === "wikitext2" || spec === "c4" || spec === "c4-new") {
    return await loadHubCalibration(spec, tok, { nsamples, seqlen, seed });
  }
  let text: string;
  try {
    text = await Deno.readTextFile(spec);
  } catch (e) {
    throw fsError(e, spec);
  }
  if (spec.endsWith(".jsonl")) {
    const samples: number[][] = [];
    const lines = text.split("\n");
    for (let i = 0; i < lines.length && samples.length < nsamples; i++) {
      const line = lines[i]!.trim();
      if (!line) continue;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch {
        throw new GptqError("DATASET", `line ${i + 1} is not JSON`, {
          file: spec,
          hint: "one JSON object per line",
        });
      }
      const t = (obj as { text?: unknown })?.text;
      if (typeof t !== "string") {
        throw new GptqError("DATASET", `line ${i + 1} has no string 'text' field`, { file: spec });
      }
      const ids = tok.encode(t).slice(0, seqlen);
      if (ids.length > 0) samples.push(ids);
    }
    if (samples.length === 0) {
      throw new GptqError("DATASET", "no non-empty examples", {
        file: spec,
        hint: 'add lines like {"text": "..."}',
      });
    }
    return {
      samples,
      source: spec,
      method: `first ${samples.length} examples, truncated to ${seqlen} tokens`,
    };
  }
  const ids = tok.encode(text);
  if (ids.length < seqlen + 1) {
    throw new GptqError(
      "DATASET",
      `the text has ${ids.length} tokens, too few for one window of ${seqlen}`,
      {
        file: spec,
        hint: "use a longer text or a smaller --seqlen",
      },
    );
  }
  const rand = mulberry32(seed);
  const span = ids.length - seqlen - 1;
  const samples: number[][] = [];
  for (let s = 0; s < nsamples; s++) {
    const i = Math.floor(rand() * (span + 1));
    samples.push(ids.slice(i, i + seqlen));
  }
  return {
    samples,
    source: spec,
    method:
      `${nsamples} random windows of ${seqlen} tokens (mulberry32 seed ${seed}) from ${ids.length} tokens`,
  };
}
