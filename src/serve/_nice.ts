// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Lowers the scheduling priority of the calling thread (a Worker's), so that
 * on a machine with few cores the server's HTTP loop wins the CPU over
 * generation and prompt preparation. On Linux the nice value is per thread
 * and threads started afterwards (the WASM helper threads, the preparation
 * Workers) inherit it; elsewhere, or without the permission, nothing happens.
 *
 * @module
 */

import { setPriority } from "node:os";

/**
 * Sets the calling thread's nice value (0 = normal, 19 = lowest).
 *
 * @param nice The nice value.
 * @returns Whether it was set.
 */
export function lowerThreadPriority(nice: number): boolean {
  if (Deno.build.os !== "linux") return false;
  try {
    setPriority(0, nice);
    return true;
  } catch {
    return false;
  }
}
