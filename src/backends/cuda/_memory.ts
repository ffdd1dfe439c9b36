// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Device memory of the CUDA backend: a pool of activation buffers by size
 * class (so a decode step allocates nothing), and owned allocations for
 * weights. Reusing a pooled buffer right after `free` is safe because every
 * kernel and copy runs on the library's one stream, in the order enqueued.
 *
 * @module
 */

import { GptqError } from "../../errors.ts";
import type { GpuLibrary } from "./ffi.ts";

/**
 * The pool's size class of `bytes`: at least 256, then the next of 2^k, 1.25·2^k,
 * 1.5·2^k, 1.75·2^k (at most 25 % waste).
 *
 * @example
 * ```ts
 * import { sizeClass } from "./_memory.ts";
 * console.log(sizeClass(1000), sizeClass(4097)); // 1024 5120
 * ```
 *
 * @param bytes Bytes asked for.
 * @returns Bytes allocated.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes));
  for (const f of [1, 1.25, 1.5, 1.75, 2]) if (p * f >= bytes) return p * f;
  return 2 * p;
}

/** Pooled buffers and owned allocations on one device. */
export class DeviceMemory {
  readonly #lib: GpuLibrary;
  readonly #free = new Map<number, bigint[]>();
  readonly #owned = new Set<bigint>();
  readonly #pooled = new Set<bigint>();
  /** Bytes held in pooled buffers (in use or free). */
  pooledBytes = 0;
  /** Bytes of owned (weight) allocations. */
  ownedBytes = 0;

  /**
   * Memory of the device the library was initialised on.
   *
   * @param lib The library.
   */
  constructor(lib: GpuLibrary) {
    this.#lib = lib;
  }

  #malloc(bytes: number): bigint {
    try {
      return this.#lib.malloc(bytes);
    } catch (e) {
      if (!(e instanceof GptqError) || this.#free.size === 0) throw e;
      this.trim(); // give the pool's free buffers back and try once more
      return this.#lib.malloc(bytes);
    }
  }

  /**
   * A pooled buffer of at least `bytes` (its class size is returned with it).
   *
   * @param bytes Bytes needed.
   * @returns The pointer and its class size.
   */
  take(bytes: number): { ptr: bigint; bytes: number } {
    const size = sizeClass(Math.max(bytes, 1));
    const list = this.#free.get(size);
    const ptr = list?.pop();
    if (ptr !== undefined) return { ptr, bytes: size };
    const p = this.#malloc(size);
    this.#pooled.add(p);
    this.pooledBytes += size;
    return { ptr: p, bytes: size };
  }

  /**
   * Returns a pooled buffer (later kernels may reuse it at once: stream order).
   *
   * @param ptr The pointer from {@linkcode DeviceMemory.take}.
   * @param bytes Its class size.
   */
  give(ptr: bigint, bytes: number): void {
    let list = this.#free.get(bytes);
    if (!list) this.#free.set(bytes, list = []);
    list.push(ptr);
  }

  /**
   * An owned allocation (weights), freed by {@linkcode DeviceMemory.release}.
   *
   * @param bytes Bytes (> 0).
   * @returns The pointer.
   */
  alloc(bytes: number): bigint {
    const p = this.#malloc(Math.max(bytes, 16));
    this.#owned.add(p);
    this.ownedBytes += bytes;
    return p;
  }

  /**
   * Frees an owned allocation (waits for the device, as cudaFree does).
   *
   * @param ptr The pointer (ignored when not owned, so a second release is harmless).
   * @param bytes Its size, for the statistics.
   */
  release(ptr: bigint, bytes: number): void {
    if (!this.#owned.delete(ptr)) return;
    this.ownedBytes -= bytes;
    this.#lib.check(this.#lib.symbols.gptq_free(ptr), "freeing device memory");
  }

  /** Frees the pool's unused buffers. */
  trim(): void {
    for (const [size, list] of this.#free) {
      for (const p of list) {
        this.#pooled.delete(p);
        this.#lib.symbols.gptq_free(p);
        this.pooledBytes -= size;
      }
    }
    this.#free.clear();
  }

  /** Frees everything (pooled buffers in use included): every pointer becomes invalid. */
  dispose(): void {
    this.#free.clear();
    for (const p of [...this.#pooled, ...this.#owned]) this.#lib.symbols.gptq_free(p);
    this.#pooled.clear();
    this.pooledBytes = 0;
    this.#owned.clear();
    this.ownedBytes = 0;
  }
}
