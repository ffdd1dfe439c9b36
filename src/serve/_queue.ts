// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * A FIFO lock that serializes generations over the one loaded model. A
 * waiter whose signal aborts (its client disconnected) leaves the queue
 * without ever running.
 *
 * @module
 */

/** Releases a held turn; calling it more than once is harmless. */
export type Release = () => void;

interface Waiter {
  grant: (release: Release) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

/**
 * A first-in first-out mutex.
 *
 * @example
 * ```ts
 * import { FifoQueue } from "./_queue.ts";
 * const q = new FifoQueue();
 * const release = await q.acquire();
 * console.log(q.busy, q.waiting); // true 0
 * release();
 * console.log(q.busy); // false
 * ```
 */
export class FifoQueue {
  #busy = false;
  readonly #waiters: Waiter[] = [];

  /** Whether a turn is held. */
  get busy(): boolean {
    return this.#busy;
  }

  /** How many callers wait for a turn. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * Waits for this caller's turn.
   *
   * @param signal Aborting it while waiting drops the caller from the queue.
   * @returns A function that ends the turn.
   * @throws The signal's reason when it aborts before the turn comes.
   */
  acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.#busy) {
      this.#busy = true;
      return Promise.resolve(this.#releaser());
    }
    return new Promise<Release>((grant, fail) => {
      const w: Waiter = {
        grant,
        signal,
        onAbort: () => {
          const i = this.#waiters.indexOf(w);
          if (i >= 0) this.#waiters.splice(i, 1);
          fail(signal!.reason);
        },
      };
      signal?.addEventListener("abort", w.onAbort, { once: true });
      this.#waiters.push(w);
    });
  }

  #releaser(): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.#waiters.shift();
      if (!next) {
        this.#busy = false;
        return;
      }
      next.signal?.removeEventListener("abort", next.onAbort);
      next.grant(this.#releaser());
    };
  }
}
