// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Llama and Mistral (`LlamaForCausalLM`, `MistralForCausalLM`): RMSNorm,
 * rotary positions, grouped-query attention, gated SiLU MLP, no biases unless
 * `attention_bias` / `mlp_bias` say so.
 *
 * @module
 */

import type { ModelConfig } from "../io/hf_config.ts";
import type { ArchSpec, LinearSpec } from "./spec.ts";

const h = (c: ModelConfig): number => c.hiddenSize;
const qDim = (c: ModelConfig): number => c.numHeads * c.headDim;
const kvDim = (c: ModelConfig): number => c.numKvHeads * c.headDim;
const inter = (c: ModelConfig): number => c.intermediateSize;
const attnBias = (c: ModelConfig): boolean => c.attentionBias;
const mlpBias = (c: ModelConfig): boolean => c.mlpBias;

const LLAMA_LINEARS: LinearSpec[] = [
  {
    name: "self_attn.q_proj",
    inFeatures: h,
    outFeatures: qDim,
    bias: attnBias,
    layout: "linear",
    input: "attn_in",
  },
  {
    name: "self_attn.k_proj",
    inFeatures: h,
    outFeatures: kvDim,
    bias: attnBias,
    layout: "linear",
    input: "attn_in",
  },
  {
    name: "self_attn.v_proj",
    inFeatures: h,
    outFeatures: kvDim,
    bias: attnBias,
    layout: "linear",
    input: "attn_in",
  },
  {
    name: "self_attn.o_proj",
    inFeatures: qDim,
    outFeatures: h,
    bias: attnBias,
    layout: "linear",
    input: "attn_out",
  },
  {
    name: "mlp.gate_proj",
    inFeatures: h,
    outFeatures: inter,
    bias: mlpBias,
    layout: "linear",
    input: "mlp_in",
  },
  {
    name: "mlp.up_proj",
    inFeatures: h,
    outFeatures: inter,
    bias: mlpBias,
    layout: "linear",
    input: "mlp_in",
  },
  {
    name: "mlp.down_proj",
    inFeatures: inter,
    outFeatures: h,
    bias: mlpBias,
    layout: "linear",
    input: "mlp_mid",
  },
];

/**
 * The Llama family.
 *
 * @example
 * ```ts
 * import { LLAMA } from "./llama.ts";
 * console.log(LLAMA.sequentialGroups[0]); // ["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"]
 * ```
 */
export const LLAMA: ArchSpec = {
  family: "llama",
  modelTypes: ["llama"],
  architectures: ["LlamaForCausalLM"],
  blockPrefix: "model.layers",
  optionalPrefix: null,
  embedding: "model.embed_tokens.weight",
  outer: [],
  finalNorm: { name: "model.norm", bias: false },
  lmHead: "lm_head.weight",
  blockNorms: {
    attn: { name: "input_layernorm", bias: false },
    mlp: { name: "post_attention_layernorm", bias: false },
  },
  linears: LLAMA_LINEARS,
  sequentialGroups: [
    ["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"],
    ["self_attn.o_proj"],
    ["mlp.up_proj", "mlp.gate_proj"],
    ["mlp.down_proj"],
  ],
  fused: {},
  norm: "rmsnorm",
  positions: { kind: "rope", style: "neox" },
  parallelResidual: () => false,
  gatedMlp: true,
  ignoredSuffixes: ["rotary_emb.inv_freq"],
  config: {
    normEps: ["rms_norm_eps"],
    defaultNormEps: 1e-6,
    activation: ["hidden_act"],
    defaultActivation: "silu",
    tieWordEmbeddings: false,
    defaultMaxPositions: 2048,
    defaultIntermediate: null,
    defaultAttentionBias: false,
    defaultMlpBias: false,
    freeHeadDim: true,
  },
};

/**
 * Mistral: Llama's layout under another name (sliding-window attention is a
 * config value, not a different set of tensors).
 *
 * @example
 * ```ts
 * import { MISTRAL } from "./llama.ts";
 * console.log(MISTRAL.blockPrefix); // "model.layers"
 * ```
 */
export const MISTRAL: ArchSpec = {
  ...LLAMA,
  family: "mistral",
  modelTypes: ["mistral"],
  architectures: ["MistralForCausalLM"],
  config: { ...LLAMA.config, defaultMaxPositions: 32768 },
};
