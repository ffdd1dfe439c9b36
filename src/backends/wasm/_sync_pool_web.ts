// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The browser build's `_sync_pool.ts` (swapped in by
 * `tools/build_browser.ts`): the synchronous helper Worker needs
 * Node's `worker_threads`, so in the browser {@linkcode helperUnavailable} says
 * why and `createWasmKernels` runs one thread (its `threads: 2` is refused
 * with that reason). The other exports are never reached there and throw the
 * same typed error if they are.
 *
 * @module
 */

import { GptqError } from "../../errors.ts";
import type * as Sync from "./_sync_pool.ts";

export type { GptqHalf, HalfWeight } from "./_sync_pool.ts";

const WHY = "the browser build has no synchronous helper Worker (it needs Node's worker_threads)";

function unavailable(): never {
  throw new GptqError("WASM", `cannot split a linear across threads: ${WHY}`, {
    hint: "use createWasmKernels({ threads: 1 })",
  });
}

/**
 * Why the helper Worker cannot start: always, in the browser build.
 *
 * @example
 * ```ts ignore
 * import { helperUnavailable } from "./_sync_pool_web.ts";
 * console.log(helperUnavailable()); // "the browser build has no synchronous helper Worker …"
 * ```
 *
 * @returns The reason.
 */
export const helperUnavailable: typeof Sync.helperUnavailable = () => WHY;

/** Not available in the browser build (throws). */
export const sliceHalf: typeof Sync.sliceHalf = unavailable;
/** Not available in the browser build (throws). */
export const sliceGptqHalf: typeof Sync.sliceGptqHalf = unavailable;
/** Not available in the browser build (throws). */
export const halfBytes: typeof Sync.halfBytes = unavailable;
/** The helper Worker: `start` throws in the browser build. */
export const SyncWorker = { start: unavailable } as unknown as typeof Sync.SyncWorker;
