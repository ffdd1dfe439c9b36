// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Load-time layout of a GPTQ linear shared by the device backends (WebGPU,
 * CUDA/HIP): the tensor checks, the group of each input row, the act-order
 * permutation that sorts the rows by group, and the zero points with the
 * scale/zero word the kernels read.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { f32ToF16Bits } from "../io/dtype.ts";
import { type Bits, isBits, unpackQZeros } from "../gptq/pack.ts";
import type { QuantLinearSource } from "./backend.ts";

/** What {@linkcode gptqLayout} derives from a layer. */
export interface GptqLayout {
  /** The group of each input row (`g_idx`, or `k / (K/G)` without one). */
  groups: Int32Array;
  /** Stable sort of the rows by group (sorted row i is input row perm[i]), or null when in order. */
  perm: Int32Array | null;
  /** The groups in sorted row order. */
  sortedGroups: Int32Array;
  /** The common group size when sorted row k is in group `k / gs` for every k, else 0. */
  groupSize: number;
  /** Zero point of each `[G, N]` entry, unpacked in the layer's zero format. */
  zeros: Uint8Array | Int16Array;
}

function shapeError(reason: string, tensor?: string): GptqError {
  return new GptqError("SHAPE", reason, tensor ? { tensor } : {});
}

/**
 * Validates a GPTQ linear's tensors against its `K`, `N`, `G` and bits.
 *
 * @example
 * ```ts ignore
 * checkGptqTensors(q); // throws on inconsistent tensors
 * ```
 *
 * @param q The layer.
 * @throws {GptqError} `SHAPE`/`GPTQ_FORMAT` on inconsistent tensors.
 */
export function checkGptqTensors(q: QuantLinearSource): void {
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
 * import { sortByGroup } from "./_gptq_layout.ts";
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
 * import { uniformGroupSize } from "./_gptq_layout.ts";
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

/** `f16(z) << 16` for every zero point 0..256: the high half of a scale/zero word. */
export const ZERO_HIGH_BITS: Uint32Array = Uint32Array.from(
  { length: 257 },
  (_, z) => f32ToF16Bits(z) << 16,
);

/**
 * Checks a layer and derives its load-time layout.
 *
 * @example
 * ```ts ignore
 * const { perm, groupSize, zeros } = gptqLayout(q);
 * ```
 *
 * @param q The layer.
 * @returns The layout.
 * @throws {GptqError} `SHAPE`/`GPTQ_FORMAT` on inconsistent tensors.
 */
export function gptqLayout(q: QuantLinearSource): GptqLayout {
  checkGptqTensors(q);
  const { G, N, bits } = q.tensors;
  const groups = groupsOf(q);
  const perm = sortByGroup(groups, G);
  const sortedGroups = perm ? Int32Array.from(perm, (k) => groups[k]!) : groups;
  return {
    groups,
    perm,
    sortedGroups,
    groupSize: uniformGroupSize(sortedGroups),
    zeros: unpackQZeros(q.tensors.qzeros, G, N, bits as Bits, q.format),
  };
}
