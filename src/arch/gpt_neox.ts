// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * GPT-NeoX / Pythia (`GPTNeoXForCausalLM`): LayerNorm, partial rotary
 * positions, GELU MLP, fused per-head `query_key_value`, parallel residual,
 * separate `embed_out` head.
 *
 * @module
 */

import type { ModelConfig } from "../io/hf_config.ts";
import type { ArchSpec, LinearSpec } from "./spec.ts";

const h = (c: ModelConfig): number => c.hiddenSize;
const inter = (c: ModelConfig): number => c.intermediateSize;
const attnBias = (c: ModelConfig): boolean => c.attentionBias;
const yes = (): boolean => true;

const NEOX_LINEARS: LinearSpec[] = [
  {
    name: "attention.query_key_value",
    inFeatures: h,
    outFeatures: (c) => 3 * c.numHeads * c.headDim,
    bias: attnBias,
    layout: "linear",
    input: "attn_in",
  },
  {
    name: "attention.dense",
    inFeatures: (c) => c.numHeads * c.headDim,
    outFeatures: h,
    bias: attnBias,
    layout: "linear",
    input: "attn_out",
  },
  {
    name: "mlp.dense_h_to_4h",
    inFeatures: h,
    outFeatures: inter,
    bias: yes,
    layout: "linear",
    input: "mlp_in",
  },
  {
    name: "mlp.dense_4h_to_h",
    inFeatures: inter,
    outFeatures: h,
    bias: yes,
    layout: "linear",
    input: "mlp_mid",
  },
];

/**
 * The GPT-NeoX family.
 *
 * @example
 * ```ts
 * import { GPT_NEOX } from "./gpt_neox.ts";
 * console.log(GPT_NEOX.lmHead); // "embed_out.weight"
 * ```
 */
export const GPT_NEOX: ArchSpec = {
  family: "gpt_neox",
  modelTypes: ["gpt_neox"],
  architectures: ["GPTNeoXForCausalLM"],
  blockPrefix: "gpt_neox.layers",
  optionalPrefix: null,
  embedding: "gpt_neox.embed_in.weight",
  outer: [],
  finalNorm: { name: "gpt_neox.final_layer_norm", bias: true },
  lmHead: "embed_out.weight",
  blockNorms: {
    attn: { name: "input_layernorm", bias: true },
    mlp: { name: "post_attention_layernorm", bias: true },
  },
  linears: NEOX_LINEARS,
  sequentialGroups: [
    ["attention.query_key_value"],
    ["attention.dense"],
    ["mlp.dense_h_to_4h"],
    ["mlp.dense_4h_to_h"],
  ],
  fused: { "attention.query_key_value": { parts: ["q", "k", "v"], layout: "per_head" } },
  norm: "layernorm",
  positions: { kind: "rope", style: "neox" },
  parallelResidual: (c) => c.useParallelResidual,
  gatedMlp: false,
  ignoredSuffixes: ["attention.bias", "attention.masked_bias", "attention.rotary_emb.inv_freq"],
  config: {
    normEps: ["layer_norm_eps"],
    defaultNormEps: 1e-5,
    activation: ["hidden_act"],
    defaultActivation: "gelu",
    tieWordEmbeddings: false,
    defaultMaxPositions: 2048,
    defaultIntermediate: null,
    defaultAttentionBias: true,
    defaultMlpBias: true,
  },
};
