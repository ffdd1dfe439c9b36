// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The machine's memory size (platform module): `Deno.systemMemoryInfo` here;
 * the browser build (`tools/build_browser.ts`) swaps in `_memory_web.ts`.
 *
 * @module
 */

/**
 * Total system memory in bytes, or null when it cannot be read (no
 * `--allow-sys`).
 *
 * @example
 * ```ts
 * import { totalMemoryBytes } from "./_memory.ts";
 * console.log(totalMemoryBytes());
 * ```
 *
 * @returns Bytes, or null.
 */
export function totalMemoryBytes(): number | null {
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return null;
  }
}
