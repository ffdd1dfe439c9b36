// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Where a long causal-attention prefill is cut across threads: each query
 * row's work grows with its position, so equal parts of rows are not equal
 * parts of work. Shared by the WASM kernels (Deno and browser builds).
 *
 * @module
 */

/**
 * Row boundaries `[0, b1, …, T]` that give `parts` threads about equal
 * causal attention work (row `r` reads `past + r + 1` keys), every part at
 * least 2 rows (a 1-row call takes the decode path, which sums scores in
 * another order); `[0, T]` when that is not possible.
 *
 * @example
 * ```ts
 * import { attentionBounds } from "./_attention_split.ts";
 * console.log(attentionBounds(64, 0, 2)); // [ 0, 46, 64 ]
 * ```
 *
 * @param T Query rows.
 * @param past Cached positions before the first row.
 * @param parts Threads to share the rows.
 * @returns The boundaries, `parts + 1` of them (or `[0, T]`).
 */
export function attentionBounds(T: number, past: number, parts: number): number[] {
  if (parts < 2 || T < 2 * parts) return [0, T];
  const cum = (r: number) => r * past + (r * (r + 1)) / 2;
  const b = [0];
  for (let p = 1; p < parts; p++) {
    const target = (p / parts) * cum(T);
    let r = b.at(-1)! + 2;
    while (r < T && cum(r) < target) r++;
    b.push(r);
  }
  b.push(T);
  for (let i = 1; i < b.length; i++) if (b[i]! - b[i - 1]! < 2) return [0, T];
  return b;
}
