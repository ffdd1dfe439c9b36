// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * OPT (`OPTForCausalLM`): LayerNorm, learned positions looked up at
 * `position + 2`, ReLU MLP, biases everywhere, optional
 * `word_embed_proj_dim` projections (OPT-350m), tied head by default.
 *
 * @module
 */

import type { ModelConfig } from "../io/hf_config.ts";
import type { ArchSpec, LinearSpec } from "./spec.ts";

const h = (c: ModelConfig): number => c.hiddenSize;
const inter = (c: ModelConfig): number => c.intermediateSize;
const attnBias = (c: ModelConfig): boolean => c.attentionBias;
const mlpBias = (c: ModelConfig): boolean => c.mlpBias;
const projected = (c: ModelConfig): boolean => c.wordEmbedProjDim !== c.hiddenSize;

const OPT_LINEARS: LinearSpec[] = [
  {
    name: "self_attn.q_proj",
    inFeatures: h,
    outFeatures: h,
    bias: attnBias,
    layout: "linear",
    input: "attn_in",
  },
  {
    name: "self_attn.k_proj",
    inFeatures: h,
    outFeatures: h,
    bias: attnBias,
    layout: "linear",
    input: "attn_in",
  },
  {
    name: "self_attn.v_proj",
    inFeatures: h,
    outFeatures: h,
    bias: attnBias,
    layout: "linear",
    input: "attn_in",
  },
  {
    name: "self_attn.out_proj",
    inFeatures: h,
    outFeatures: h,
    bias: attnBias,
    layout: "linear",
    input: "attn_out",
  },
  {
    name: "fc1",
    inFeatures: h,
    outFeatures: inter,
    bias: mlpBias,
    layout: "linear",
    input: "mlp_in",
  },
  {
    name: "fc2",
    inFeatures: inter,
    outFeatures: h,
    bias: mlpBias,
    layout: "linear",
    input: "mlp_mid",
  },
];

/**
 * The OPT family.
 *
 * @example
 * ```ts
 * import { OPT } from "./opt.ts";
 * console.log(OPT.positions); // { kind: "learned", tensor: "model.decoder.embed_positions.weight", offset: 2 }
 * ```
 */
export const OPT: ArchSpec = {
  family: "opt",
  modelTypes: ["opt"],
  architectures: ["OPTForCausalLM"],
  blockPrefix: "model.decoder.layers",
  optionalPrefix: null,
  embedding: "model.decoder.embed_tokens.weight",
  outer: [
    {
      name: "model.decoder.embed_positions.weight",
      role: "position_embedding",
      shape: (c) => [c.maxPositions + 2, c.hiddenSize],
    },
    {
      name: "model.decoder.project_in.weight",
      role: "projection",
      shape: (c) => [c.hiddenSize, c.wordEmbedProjDim],
      present: projected,
    },
    {
      name: "model.decoder.project_out.weight",
      role: "projection",
      shape: (c) => [c.wordEmbedProjDim, c.hiddenSize],
      present: projected,
    },
  ],
  finalNorm: {
    name: "model.decoder.final_layer_norm",
    bias: true,
    present: (c) => c.doLayerNormBefore && c.raw["_remove_final_layer_norm"] !== true,
  },
  lmHead: "lm_head.weight",
  blockNorms: {
    attn: { name: "self_attn_layer_norm", bias: true },
    mlp: { name: "final_layer_norm", bias: true },
  },
  linears: OPT_LINEARS,
  sequentialGroups: [
    ["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"],
    ["self_attn.out_proj"],
    ["fc1"],
    ["fc2"],
  ],
  fused: {},
  norm: "layernorm",
  positions: { kind: "learned", tensor: "model.decoder.embed_positions.weight", offset: 2 },
  parallelResidual: () => false,
  gatedMlp: false,
  ignoredSuffixes: [],
  config: {
    normEps: ["layer_norm_eps"],
    defaultNormEps: 1e-5,
    activation: ["activation_function"],
    defaultActivation: "relu",
    tieWordEmbeddings: true,
    defaultMaxPositions: 2048,
    defaultIntermediate: null,
    defaultAttentionBias: true,
    defaultMlpBias: true,
  },
};
