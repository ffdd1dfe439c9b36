// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Lets a synchronous token loop share the event loop: after each token the
 * loop calls {@linkcode Ticker.tick}, which yields a full turn of the event
 * loop (HTTP I/O, client disconnects, new requests) once a time slice has
 * passed. Microtask- or message-based yields do not poll I/O in Deno, and a
 * timer costs a millisecond or two, so yielding on every token of a small
 * model would waste most of the time.
 *
 * @module
 */

/** Yields to the event loop at most once per time slice. */
export interface Ticker {
  /**
   * Yields when the slice is over; otherwise returns at once.
   *
   * @returns A promise.
   */
  tick(): Promise<void>;
}

/**
 * Makes a ticker.
 *
 * @example
 * ```ts
 * import { createTicker } from "./_ticker.ts";
 * const t = createTicker(5);
 * const t0 = performance.now();
 * while (performance.now() - t0 < 20) await t.tick(); // timers and I/O run every 5 ms
 * ```
 *
 * @param sliceMs Longest time between yields, in ms. Default 10.
 * @returns The ticker.
 */
export function createTicker(sliceMs = 10): Ticker {
  let last = performance.now();
  return {
    async tick() {
      if (performance.now() - last < sliceMs) return;
      await new Promise<void>((resolve) => setTimeout(resolve, 0));
      last = performance.now();
    },
  };
}
