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
  /** Findings worth a warning (e.g. a text file that is mostly binary). */
  warnings?: string[];
}

/**
 * The share of a text's characters that are undecodable bytes (U+FFFD) or
 * control characters other than tab, newline, carriage return and form feed:
 * near 0 for text, large for a binary file read as text.
 *
 * @example
 * ```ts
 * import { junkFraction } from "./calibration.ts";
 * console.log(junkFraction("Once upon a time.")); // 0
 * console.log(junkFraction("\u0000\u0001ab")); // 0.5
 * ```
 *
 * @param text The decoded text.
 * @returns A fraction in [0, 1] (0 for an empty text).
 */
export function junkFraction(text: string): number {
  let junk = 0, n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff) continue; // second half of a surrogate pair
    n++;
    if (c === 0xfffd || c === 0x7f || (c < 0x20 && c !== 9 && c !== 10 && c !== 13 && c !== 12)) {
      junk++;
    }
  }
  return n === 0 ? 0 : junk / n;
}

/** Above this share of junk characters a calibration text is reported as likely binary. */
const JUNK_WARN = 0.1;

function junkWarnings(text: string, file: string): string[] {
  const f = junkFraction(text);
  if (f <= JUNK_WARN) return [];
  return [
    `${file}: ${(f * 100).toFixed(0)}% of the calibration text is undecodable bytes or control ` +
    "characters: it looks like a binary file, and calibrating on it will hurt the quantized " +
    "model (use plain UTF-8 text)",
  ];
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
 * Calibration samples from a list of texts (transformers' `GPTQConfig`
 * `dataset=["…", "…"]`): each text is tokenized on its own (with the
 * tokenizer's special tokens) and truncated to `seqlen`; empty ones are
 * dropped; all the others are used, in order, as optimum does.
 *
 * @example
 * ```ts ignore
 * const cal = calibrationFromTexts(["auto-gptq is an easy-to-use model quantization library"], tok, 2048);
 * ```
 *
 * @param texts The texts.
 * @param tok The model's tokenizer.
 * @param seqlen Largest sample length in tokens.
 * @returns The samples.
 */
export function calibrationFromTexts(
  texts: readonly string[],
  tok: TextTokenizer,
  seqlen: number,
): Calibration {
  const samples = texts.map((t) => tok.encode(t).slice(0, seqlen)).filter((s) => s.length > 0);
  if (samples.length === 0) {
    throw new GptqError("DATASET", "every text of the calibration list is empty", {
      hint: "give at least one non-empty string",
    });
  }
  return {
    samples,
    source: `(${texts.length} texts given by the caller)`,
    method: `${samples.length} texts, each tokenized and truncated to ${seqlen} tokens`,
  };
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
    const warnings = junkWarnings(text, spec);
    return {
      samples,
      source: spec,
      method: `first ${samples.length} examples, truncated to ${seqlen} tokens`,
      ...(warnings.length ? { warnings } : {}),
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
  const warnings = junkWarnings(text, spec);
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
    ...(warnings.length ? { warnings } : {}),
  };
}
