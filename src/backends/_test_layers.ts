// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Test helpers shared by the backends' tests: seeded random GPTQ layers packed
 * as AutoGPTQ writes them.
 *
 * @module
 */

import { f32ToF16Bits } from "../io/dtype.ts";
import { type Bits, packQWeight, packQZeros, type ZeroFormat } from "../gptq/pack.ts";
import type { QuantLinearTensors } from "../gptq/quant_linear.ts";

/**
 * A random packed layer as AutoGPTQ writes it (act-order: g_idx[perm[i]] = i / group).
 *
 * @example
 * ```ts
 * import { randomLayer } from "./_test_layers.ts";
 * import { mulberry32 } from "../runtime/sample.ts";
 * const t = randomLayer(mulberry32(1), 64, 32, 4, 32, true, "gptq");
 * console.log(t.G, t.gIdx!.length); // 2 64
 * ```
 *
 * @param r A generator of floats in [0, 1).
 * @param K Input features (a multiple of 32).
 * @param N Output features (a multiple of 32).
 * @param bits The bit width.
 * @param group The group size (K for one group per row).
 * @param act Act-order: a random permutation of the input rows before grouping.
 * @param format The zero-point convention.
 * @returns The packed tensors, with a random bias.
 */
export function randomLayer(
  r: () => number,
  K: number,
  N: number,
  bits: Bits,
  group: number,
  act: boolean,
  format: ZeroFormat,
): QuantLinearTensors {
  const maxq = (1 << bits) - 1;
  const G = Math.ceil(K / group);
  const codes = new Uint8Array(K * N).map(() => Math.floor(r() * (maxq + 1)));
  // v1 cannot store a zero of 0 (it stores zero − 1).
  const lo = format === "gptq" ? 1 : 0;
  const zeros = new Uint8Array(G * N).map(() => lo + Math.floor(r() * (maxq + 1 - lo)));
  const scales = new Uint16Array(G * N).map(() => f32ToF16Bits(0.002 + 0.05 * r()));
  let gIdx: Int32Array | null = null;
  if (act) {
    const perm = Array.from({ length: K }, (_, i) => i);
    for (let i = K - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    gIdx = new Int32Array(K);
    perm.forEach((p, i) => gIdx![p] = Math.floor(i / group));
  } else if (K % group !== 0 || format === "gptq") {
    gIdx = new Int32Array(K).map((_, k) => Math.floor(k / group));
  }
  const bias = new Float32Array(N).map(() => r() - 0.5);
  return {
    qweight: packQWeight(codes, K, N, bits),
    qzeros: packQZeros(zeros, G, N, bits, format),
    scales,
    gIdx,
    bias,
    K,
    N,
    G,
    bits,
  };
}
