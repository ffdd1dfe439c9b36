// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Next-token sampling: greedy at temperature 0, otherwise temperature,
 * top-k and top-p (nucleus) with a seeded PRNG so runs are reproducible.
 *
 * @module
 */

import { GptqError } from "../errors.ts";

/** Sampling settings, named as in transformers' `generate`. */
export interface SamplingOptions {
  /** 0 means greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = off). */
  top_k?: number;
  /** Keep the smallest set whose probability reaches p (1 = off). */
  top_p?: number;
  /** PRNG seed. Default 0. */
  seed?: number;
}

/**
 * A small, fast, seedable PRNG (mulberry32) returning floats in [0, 1).
 *
 * @example
 * ```ts
 * import { mulberry32 } from "./sample.ts";
 * const r = mulberry32(1);
 * console.log(r() < 1); // true
 * ```
 *
 * @param seed The seed.
 * @returns The generator.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Index of the largest value (first on ties).
 *
 * @example
 * ```ts
 * import { argmax } from "./sample.ts";
 * console.log(argmax(new Float32Array([1, 3, 3]))); // 1
 * ```
 *
 * @param x Values.
 * @returns The index.
 */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/**
 * Makes a sampler for one sequence.
 *
 * @example
 * ```ts
 * import { createSampler } from "./sample.ts";
 * const pick = createSampler({ temperature: 0 });
 * console.log(pick(new Float32Array([0.1, 2, 0.3]))); // 1
 * ```
 *
 * @param opts Sampling settings.
 * @returns A function from logits to the next token id.
 */
export function createSampler(opts: SamplingOptions = {}): (logits: Float32Array) => number {
  const temperature = opts.temperature ?? 1;
  const topK = opts.top_k ?? 0;
  const topP = opts.top_p ?? 1;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new GptqError("INVALID_ARGUMENT", `temperature must be ≥ 0, got ${temperature}`);
  }
  if (!Number.isInteger(topK) || topK < 0) {
    throw new GptqError("INVALID_ARGUMENT", `top_k must be a non-negative integer, got ${topK}`);
  }
  if (!(topP > 0 && topP <= 1)) {
    throw new GptqError("INVALID_ARGUMENT", `top_p must be in (0, 1], got ${topP}`);
  }
  if (temperature === 0) return argmax;
  const rand = mulberry32(opts.seed ?? 0);
  return (logits) => {
    const V = logits.length;
    let idx = Array.from({ length: V }, (_, i) => i);
    idx.sort((a, b) => logits[b]! - logits[a]! || a - b);
    if (topK > 0 && topK < V) idx = idx.slice(0, topK);
    const max = logits[idx[0]!]!;
    const p = idx.map((i) => Math.exp((logits[i]! - max) / temperature));
    let sum = p.reduce((a, b) => a + b, 0);
    if (topP < 1) {
      let acc = 0, keep = p.length;
      for (let j = 0; j < p.length; j++) {
        acc += p[j]! / sum;
        if (acc >= topP) {
          keep = j + 1;
          break;
        }
      }
      idx = idx.slice(0, keep);
      p.length = keep;
      sum = p.reduce((a, b) => a + b, 0);
    }
    let r = rand() * sum;
    for (let j = 0; j < p.length; j++) {
      r -= p[j]!;
      if (r < 0) return idx[j]!;
    }
    return idx[p.length - 1]!;
  };
}
