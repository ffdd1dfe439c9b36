// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Architectures as data. An {@linkcode ArchSpec} says, for one family of
 * decoder-only transformers, which tensors a checkpoint holds (as functions of
 * the normalized {@linkcode ModelConfig}), which linear modules GPTQ quantizes
 * and in which true-sequential order (AutoGPTQ's `inside_layer_modules`), and
 * the few numeric facts a forward pass needs (norm kind, positions,
 * activation, residual layout). No code path anywhere branches on a
 * `model_type` string; it reads these records instead.
 *
 * @module
 */

import type { ModelConfig } from "../io/hf_config.ts";

/** A size computed from the model's config. */
export type ConfigFn<T> = (c: ModelConfig) => T;

/** How a block normalizes its input. */
export type NormKind = "rmsnorm" | "layernorm";

/** The MLP's activation function, by its Hugging Face name. */
export type Activation = "silu" | "relu" | "gelu_new" | "gelu";

/** One normalization layer (`<name>.weight`, and `<name>.bias` for biased layer norms). */
export interface NormSpec {
  /** Module path, relative to the block (inside blocks) or absolute (outside). */
  name: string;
  /** Whether the layer has a `.bias` (true for LayerNorm, false for RMSNorm). */
  bias: boolean;
  /** Whether the layer exists for this config (default: always). */
  present?: ConfigFn<boolean>;
}

/** One linear module inside a block. */
export interface LinearSpec {
  /** Module path relative to the block, e.g. `self_attn.q_proj`. */
  name: string;
  /** Input features K. */
  inFeatures: ConfigFn<number>;
  /** Output features N. */
  outFeatures: ConfigFn<number>;
  /** Whether the module has a bias vector. */
  bias: ConfigFn<boolean>;
  /**
   * `linear`: `nn.Linear`, weight stored `[out, in]`.
   * `conv1d`: GPT-2's `transformers.Conv1D`, weight stored `[in, out]`.
   */
  layout: "linear" | "conv1d";
  /**
   * Which activation feeds it. Modules with the same `input` see the same
   * activations and therefore share one GPTQ Hessian (q/k/v, up/gate).
   */
  input: "attn_in" | "attn_out" | "mlp_in" | "mlp_mid";
}

/** A tensor outside the repeated blocks that is not a norm. */
export interface OuterTensorSpec {
  /** Full tensor name, e.g. `model.embed_tokens.weight`. */
  name: string;
  /** What it is. */
  role: "embedding" | "position_embedding" | "projection";
  /** Its shape. */
  shape: ConfigFn<number[]>;
  /** Whether it exists for this config (default: always). */
  present?: ConfigFn<boolean>;
}

/** How token positions enter the model. */
export type PositionSpec =
  | {
    /** Rotary embeddings, applied to the first `rotaryDim` dims of each head. */
    kind: "rope";
    /** `neox` rotates halves (HF `rotate_half`), the layout all four families use. */
    style: "neox";
  }
  | {
    /** A learned position table added to the token embeddings. */
    kind: "learned";
    /** The table's tensor name. */
    tensor: string;
    /** Index offset (OPT stores 2 extra rows and looks up `position + 2`). */
    offset: number;
  };

/** Defaults and key names for reading this family's `config.json`. */
export interface ConfigKeys {
  /** Keys holding the norm epsilon, first match wins. */
  normEps: string[];
  /** Epsilon when no key is present. */
  defaultNormEps: number;
  /** Keys holding the activation name, first match wins. */
  activation: string[];
  /** Activation when no key is present. */
  defaultActivation: Activation;
  /** `tie_word_embeddings` when the config omits it (the family's transformers default). */
  tieWordEmbeddings: boolean;
  /** `max_position_embeddings` when the config omits it, or null when it is required. */
  defaultMaxPositions: number | null;
  /** `intermediate_size` when the config omits it, or null when it is required. */
  defaultIntermediate: ((hidden: number) => number) | null;
  /** Attention biases when neither `attention_bias` nor `enable_bias` is given. */
  defaultAttentionBias: boolean;
  /** MLP biases when neither `mlp_bias` nor `enable_bias` is given. */
  defaultMlpBias: boolean;
  /** Whether `head_dim` may differ from hidden / heads (Llama family); otherwise it must equal it. */
  freeHeadDim?: boolean;
}

/** A linear module that computes several projections at once (GPT-2 `c_attn`, NeoX `query_key_value`). */
export interface FusedSpec {
  /** The logical projections, in order. */
  parts: readonly string[];
  /**
   * `concat`: the output rows are `[all q | all k | all v]` (GPT-2).
   * `per_head`: rows are grouped per head, `[head][part][headDim]` (GPT-NeoX).
   */
  layout: "concat" | "per_head";
}

/** One architecture family, described as data. */
export interface ArchSpec {
  /** Family name, e.g. `llama`. */
  family: string;
  /** `model_type` values this spec covers. */
  modelTypes: readonly string[];
  /** Hugging Face `architectures` class names (causal-LM heads). */
  architectures: readonly string[];
  /** Prefix of the repeated blocks; block i is `${blockPrefix}.${i}`. */
  blockPrefix: string;
  /** Name prefix that some checkpoints omit (GPT-2's hub weights lack `transformer.`). */
  optionalPrefix: string | null;
  /** The token embedding tensor. */
  embedding: string;
  /** Other tensors outside the blocks (position tables, OPT projections). */
  outer: OuterTensorSpec[];
  /** The final norm before the head. */
  finalNorm: NormSpec;
  /** The output head's weight, `[vocab, hidden]`; when tied it is not stored and `embedding` is used. */
  lmHead: string;
  /** Norms inside a block: before attention and before the MLP. */
  blockNorms: { attn: NormSpec; mlp: NormSpec };
  /** Every linear module of a block, in checkpoint order. */
  linears: LinearSpec[];
  /** AutoGPTQ's true-sequential groups: module names quantized together, in order. */
  sequentialGroups: string[][];
  /** Fused projections: modules that hold several logical ones along N. */
  fused: Record<string, FusedSpec>;
  /** The normalization kind used throughout. */
  norm: NormKind;
  /** How positions are encoded. */
  positions: PositionSpec;
  /** Whether attention and MLP both read the block input (GPT-NeoX `use_parallel_residual`). */
  parallelResidual: ConfigFn<boolean>;
  /** Whether the MLP is gated (`down(act(gate(x)) * up(x))`). */
  gatedMlp: boolean;
  /** Tensor-name suffixes of non-weight buffers old checkpoints carry, ignored on read. */
  ignoredSuffixes: readonly string[];
  /** How to read this family's config. */
  config: ConfigKeys;
}

/**
 * Looks up a linear module of a spec by name.
 *
 * @example
 * ```ts
 * import { findLinear } from "./spec.ts";
 * import { LLAMA } from "./llama.ts";
 * console.log(findLinear(LLAMA, "mlp.down_proj").layout); // "linear"
 * ```
 *
 * @param spec The architecture.
 * @param name Module path relative to the block.
 * @returns The module's spec; throws when the spec has no such module.
 */
export function findLinear(spec: ArchSpec, name: string): LinearSpec {
  const l = spec.linears.find((x) => x.name === name);
  if (!l) throw new Error(`bug: ${spec.family} has no linear '${name}'`);
  return l;
}
