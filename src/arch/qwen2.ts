// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Qwen2 (`Qwen2ForCausalLM`): Llama's layout plus biases on q/k/v.
 *
 * @module
 */

import { LLAMA } from "./llama.ts";
import type { ArchSpec } from "./spec.ts";

const QKV = new Set(["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]);

/**
 * The Qwen2 family.
 *
 * @example
 * ```ts
 * import { QWEN2 } from "./qwen2.ts";
 * import { findLinear } from "./spec.ts";
 * console.log(findLinear(QWEN2, "self_attn.q_proj").bias); // a function returning true
 * ```
 */
export const QWEN2: ArchSpec = {
  ...LLAMA,
  family: "qwen2",
  modelTypes: ["qwen2"],
  architectures: ["Qwen2ForCausalLM"],
  linears: LLAMA.linears.map((l) =>
    QKV.has(l.name) ? { ...l, bias: () => true } : { ...l, bias: () => false }
  ),
  config: { ...LLAMA.config, defaultMaxPositions: 32768 },
};
