// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The browser build's `_memory.ts` (swapped in by `tools/build_browser.ts`):
 * `navigator.deviceMemory` (GiB, rounded by the browser; Chromium only), else
 * unknown.
 *
 * @module
 */

import type * as Native from "./_memory.ts";

/**
 * Total device memory in bytes as the browser reports it, or null.
 *
 * @example
 * ```ts ignore
 * import { totalMemoryBytes } from "./_memory_web.ts";
 * console.log(totalMemoryBytes());
 * ```
 *
 * @returns Bytes, or null.
 */
export const totalMemoryBytes: typeof Native.totalMemoryBytes = () => {
  const gib = (globalThis.navigator as { deviceMemory?: number } | undefined)?.deviceMemory;
  return typeof gib === "number" && gib > 0 ? gib * 1024 ** 3 : null;
};
