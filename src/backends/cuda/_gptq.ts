// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * GPTQ linears on a CUDA/HIP device: validation, act-order resolution and the
 * load-time layout of `ffi/src/gptq.cu` (ExLlama's reorder; the repacking
 * itself runs on the device).
 *
 * - Groups: `g_idx`, or `k / (K/G)` without one. When `g_idx` is not sorted
 *   (act-order) the input rows are sorted by group (stable counting sort), the
 *   permutation kept on the device, and at run time `gptq_gather_cols`
 *   gathers x's columns into that order first.
 * - `qw`: GPTQ's `qweight` as is for 2/4/8 bits in order, else repacked by
 *   `gptq_gptq_repack` (sorted rows; 3 bits without straddling codes).
 * - `sz`: `[G, N]` u32, the fp16 scale in the low half and the zero point as
 *   fp16 in the high half (v1 zeros get their +1 back here).
 * - `gtab`: the sorted rows' groups `[K]` when they are not all `gs` long.
 *
 * @module
 */

import type { Bits } from "../../gptq/pack.ts";
import { gptqLayout, ZERO_HIGH_BITS } from "../_gptq_layout.ts";
import type { LinearHandle, QuantLinearSource } from "../backend.ts";
import type { DeviceMemory } from "./_memory.ts";
import type { GpuLibrary } from "./ffi.ts";

/** A GPTQ linear on the device. */
export interface CudaGptqLinear extends LinearHandle {
  /** Bit width. */
  readonly bits: Bits;
  /** Groups. */
  readonly G: number;
  /** Group size in sorted order, or 0 when `gtab` holds each row's group. */
  readonly gs: number;
  /** Packed codes (kernel layout). */
  readonly qw: bigint;
  /** Scale/zero pairs `[G, N]`. */
  readonly sz: bigint;
  /** Groups of the sorted rows `[K]` int32, or 0n. */
  readonly gtab: bigint;
  /** Act-order permutation `[K]` int32 (sorted row i is input row perm[i]), or 0n. */
  readonly perm: bigint;
  /** Bias `[N]` f32, or 0n. */
  readonly bias: bigint;
  /** Owned allocations and their sizes (freed on release). */
  readonly allocations: [bigint, number][];
}

/**
 * Validates a GPTQ linear and uploads it in the kernels' layout.
 *
 * @example
 * ```ts ignore
 * const w = uploadGptq(lib, mem, { tensors, format: "gptq" });
 * ```
 *
 * @param lib The library.
 * @param mem The device memory.
 * @param q The packed tensors and zero format.
 * @returns The handle.
 * @throws {GptqError} `SHAPE`/`GPTQ_FORMAT` on inconsistent tensors.
 */
export function uploadGptq(
  lib: GpuLibrary,
  mem: DeviceMemory,
  q: QuantLinearSource,
): CudaGptqLinear {
  const t = q.tensors;
  const { K, N, G, bits } = t;
  const { perm: permHost, sortedGroups: sorted, groupSize: gs, zeros } = gptqLayout(q);
  const szHost = new Uint32Array(G * N);
  for (let i = 0; i < G * N; i++) szHost[i] = t.scales[i]! | ZERO_HIGH_BITS[zeros[i]!]!;

  const allocations: [bigint, number][] = [];
  const own = (bytes: number): bigint => {
    const p = mem.alloc(bytes);
    allocations.push([p, bytes]);
    return p;
  };
  try {
    const qBytes = t.qweight.byteLength;
    const qw = own(qBytes);
    const perm = permHost ? own(K * 4) : 0n;
    if (permHost) lib.upload(perm, permHost);
    if (permHost || bits === 3) {
      const tmp = mem.take(qBytes);
      lib.upload(tmp.ptr, t.qweight);
      lib.check(
        lib.symbols.gptq_gptq_repack(tmp.ptr, K, N, bits, perm, qw),
        "repacking a GPTQ layer",
      );
      mem.give(tmp.ptr, tmp.bytes); // stream order: the repack reads it before any reuse
    } else {
      lib.upload(qw, t.qweight);
    }
    const sz = own(szHost.byteLength);
    lib.upload(sz, szHost);
    const gtab = gs ? 0n : own(K * 4);
    if (!gs) lib.upload(gtab, sorted);
    const bias = t.bias ? own(N * 4) : 0n;
    if (t.bias) lib.upload(bias, t.bias);
    const w: CudaGptqLinear = {
      N,
      K,
      bytes: allocations.reduce((s, [, b]) => s + b, 0),
      bits,
      G,
      gs,
      qw,
      sz,
      gtab,
      perm,
      bias,
      allocations,
    };
    return w;
  } catch (e) {
    for (const [p, b] of allocations) mem.release(p, b);
    throw e;
  }
}
