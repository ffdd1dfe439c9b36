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

import { GptqError } from "../../errors.ts";
import { f32ToF16Bits } from "../../io/dtype.ts";
import { type Bits, isBits, unpackQZeros } from "../../gptq/pack.ts";
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

function shapeError(reason: string, tensor?: string): GptqError {
  return new GptqError("SHAPE", reason, tensor ? { tensor } : {});
}

/**
 * The group of each input row, validated.
 *
 * @example
 * ```ts ignore
 * const groups = groupsOf(q); // Int32Array [K]
 * ```
 *
 * @param q The layer.
 * @returns `g_idx`, or `k / (K/G)` when the checkpoint has none.
 */
export function groupsOf(q: QuantLinearSource): Int32Array {
  const { K, G, gIdx } = q.tensors;
  if (gIdx === null) {
    if (K % G !== 0) {
      throw new GptqError("GPTQ_FORMAT", `no g_idx and K = ${K} is not a multiple of G = ${G}`, {
        tensor: "g_idx",
        hint: "pass the config's group_size when reading the layer",
      });
    }
    const g = K / G;
    return new Int32Array(K).map((_, k) => Math.floor(k / g));
  }
  if (gIdx.length !== K) throw shapeError(`g_idx has ${gIdx.length} elements, expected K = ${K}`);
  for (let k = 0; k < K; k++) {
    const g = gIdx[k]!;
    if (g < 0 || g >= G) {
      throw new GptqError("GPTQ_FORMAT", `g_idx[${k}] = ${g} is outside 0..${G - 1}`, {
        tensor: "g_idx",
      });
    }
  }
  return gIdx;
}

/**
 * A stable sort of the rows by group (counting sort), or null when already in order.
 *
 * @example
 * ```ts
 * import { sortByGroup } from "./_gptq.ts";
 * console.log(sortByGroup(new Int32Array([1, 0, 1, 0]), 2)); // Int32Array [1, 3, 0, 2]
 * ```
 *
 * @param groups Group of each row.
 * @param G Groups.
 * @returns The permutation (sorted row i is row perm[i]) or null.
 */
export function sortByGroup(groups: Int32Array, G: number): Int32Array | null {
  let sorted = true;
  for (let k = 1; k < groups.length && sorted; k++) sorted = groups[k]! >= groups[k - 1]!;
  if (sorted) return null;
  const start = new Int32Array(G + 1);
  for (const g of groups) start[g + 1]!++;
  for (let g = 0; g < G; g++) start[g + 1]! += start[g]!;
  const perm = new Int32Array(groups.length);
  groups.forEach((g, k) => perm[start[g]!++] = k);
  return perm;
}

/**
 * The common group size when sorted row k is in group `k / gs` for every k, else 0.
 *
 * @example
 * ```ts
 * import { uniformGroupSize } from "./_gptq.ts";
 * console.log(uniformGroupSize([0, 0, 1, 1]), uniformGroupSize([0, 1, 1, 1])); // 2 0
 * ```
 *
 * @param sorted Groups in sorted order.
 * @returns The group size or 0.
 */
export function uniformGroupSize(sorted: ArrayLike<number>): number {
  const K = sorted.length;
  if (sorted[0] !== 0) return 0;
  let gs = 1;
  while (gs < K && sorted[gs] === 0) gs++;
  for (let k = 0; k < K; k++) if (sorted[k] !== Math.floor(k / gs)) return 0;
  return gs;
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
  if (!isBits(bits)) throw new GptqError("GPTQ_FORMAT", `bits must be 2, 3, 4 or 8, got ${bits}`);
  if (K <= 0 || N <= 0 || K % 32 !== 0 || N % 32 !== 0) {
    throw shapeError(`K = ${K} and N = ${N} must be positive multiples of 32`);
  }
  if (G < 1 || G > K) throw shapeError(`G = ${G} groups for K = ${K} input features`, "qzeros");
  if (t.qweight.length !== (K / 32) * bits * N) {
    throw shapeError(
      `qweight has ${t.qweight.length} elements, expected K*bits/32*N = ${(K / 32) * bits * N}`,
      "qweight",
    );
  }
  if (t.qzeros.length !== G * (N / 32) * bits) {
    throw new GptqError(
      "GPTQ_FORMAT",
      `qzeros has ${t.qzeros.length} elements, expected G*N*bits/32 = ${G * (N / 32) * bits}`,
      { tensor: "qzeros" },
    );
  }
  if (t.scales.length !== G * N) {
    throw shapeError(`scales has ${t.scales.length} elements, expected G*N = ${G * N}`, "scales");
  }
  if (t.bias && t.bias.length !== N) {
    throw shapeError(`bias has ${t.bias.length} elements, expected N = ${N}`, "bias");
  }
  const groups = groupsOf(q);
  const permHost = sortByGroup(groups, G);
  const sorted = permHost ? Int32Array.from(permHost, (k) => groups[k]!) : groups;
  const gs = uniformGroupSize(sorted);

  const zeros = unpackQZeros(t.qzeros, G, N, bits, q.format);
  const zeroBits = Uint32Array.from({ length: 257 }, (_, z) => f32ToF16Bits(z) << 16);
  const szHost = new Uint32Array(G * N);
  for (let i = 0; i < G * N; i++) szHost[i] = t.scales[i]! | zeroBits[zeros[i]!]!;

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
