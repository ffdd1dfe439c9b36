// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * GPT-2 (`GPT2LMHeadModel`): LayerNorm, learned positions, `gelu_new` MLP,
 * biases everywhere, tied head, and `transformers.Conv1D` linears whose
 * weights are stored `[in, out]`.
 *
 * @module
 */

import type { ModelConfig } from "../io/hf_config.ts";
import type { ArchSpec, LinearSpec } from "./spec.ts";

const h = (c: ModelConfig): number => c.hiddenSize;
const inter = (c: ModelConfig): number => c.intermediateSize;
const yes = (): boolean => true;

const GPT2_LINEARS: LinearSpec[] = [
  {
    name: "attn.c_attn",
    inFeatures: h,
    outFeatures: (c) => 3 * c.hiddenSize,
    bias: yes,
    layout: "conv1d",
    input: "attn_in",
  },
  {
    name: "attn.c_proj",
    inFeatures: h,
    outFeatures: h,
    bias: yes,
    layout: "conv1d",
    input: "attn_out",
  },
  {
    name: "mlp.c_fc",
    inFeatures: h,
    outFeatures: inter,
    bias: yes,
    layout: "conv1d",
    input: "mlp_in",
  },
  {
    name: "mlp.c_proj",
    inFeatures: inter,
    outFeatures: h,
    bias: yes,
    layout: "conv1d",
    input: "mlp_mid",
  },
];

/**
 * The GPT-2 family.
 *
 * @example
 * ```ts
 * import { GPT2 } from "./gpt2.ts";
 * console.log(GPT2.linears[0]?.layout); // "conv1d"
 * ```
 */
export const GPT2: ArchSpec = {
  family: "gpt2",
  modelTypes: ["gpt2"],
  architectures: ["GPT2LMHeadModel"],
  blockPrefix: "transformer.h",
  optionalPrefix: "transformer.",
  embedding: "transformer.wte.weight",
  outer: [
    {
      name: "transformer.wpe.weight",
      role: "position_embedding",
      shape: (c) => [c.maxPositions, c.hiddenSize],
    },
  ],
  finalNorm: { name: "transformer.ln_f", bias: true },
  lmHead: "lm_head.weight",
  blockNorms: {
    attn: { name: "ln_1", bias: true },
    mlp: { name: "ln_2", bias: true },
  },
  linears: GPT2_LINEARS,
  sequentialGroups: [["attn.c_attn"], ["attn.c_proj"], ["mlp.c_fc"], ["mlp.c_proj"]],
  fused: { "attn.c_attn": { parts: ["q", "k", "v"], layout: "concat" } },
  norm: "layernorm",
  positions: { kind: "learned", tensor: "transformer.wpe.weight", offset: 0 },
  parallelResidual: () => false,
  gatedMlp: false,
  ignoredSuffixes: ["attn.bias", "attn.masked_bias"],
  config: {
    normEps: ["layer_norm_epsilon"],
    defaultNormEps: 1e-5,
    activation: ["activation_function"],
    defaultActivation: "gelu_new",
    tieWordEmbeddings: true,
    defaultMaxPositions: 1024,
    defaultIntermediate: (hidden) => 4 * hidden,
    defaultAttentionBias: true,
    defaultMlpBias: true,
  },
};
