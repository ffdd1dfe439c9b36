// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The model half of the GGUF importer: a Hugging Face `config.json` from a
 * GGUF's metadata, and the plan mapping every GGUF tensor to its Hugging Face
 * name (with its expected shape and whether its rows need llama.cpp's rotary
 * permutation undone). Architectures: `llama` (Llama, Mistral, SmolLM, …) and
 * `qwen2`.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import type { GgufHeader, GgufTensorInfo } from "./gguf.ts";

/** The hyper-parameters read from a GGUF's metadata. */
export interface GgufModelParams {
  /** `general.architecture`. */
  arch: "llama" | "qwen2";
  /** `embedding_length` (`hidden_size`). */
  hidden: number;
  /** `block_count`. */
  layers: number;
  /** `feed_forward_length` (`intermediate_size`). */
  ffn: number;
  /** `attention.head_count`. */
  heads: number;
  /** `attention.head_count_kv` (default: `heads`). */
  kvHeads: number;
  /** `attention.key_length`, else hidden / heads. */
  headDim: number;
  /** `vocab_size`, else the number of tokens. */
  vocab: number;
  /** `context_length` (`max_position_embeddings`). */
  context: number;
  /** `attention.layer_norm_rms_epsilon`. */
  normEps: number;
  /** `rope.freq_base` (default 10000). */
  ropeTheta: number;
  /** HF `rope_scaling` (linear, yarn, or llama3 recovered from `rope_freqs.weight`), or null. */
  ropeScaling: Record<string, unknown> | null;
  /** No `output.weight`: the head shares the embedding. */
  tied: boolean;
  /** q/k/v (and for llama o) projections have biases. */
  attentionBias: boolean;
  /** `tokenizer.ggml.bos_token_id`, or null. */
  bosId: number | null;
  /** `tokenizer.ggml.eos_token_id`, or null. */
  eosId: number | null;
  /** `tokenizer.ggml.padding_token_id`, or null. */
  padId: number | null;
}

/** One tensor to write. */
export interface GgufTensorPlan {
  /** The GGUF tensor. */
  src: GgufTensorInfo;
  /** Its Hugging Face name. */
  name: string;
  /** Rotary heads whose rows llama.cpp permuted (q: heads, k: kv heads), else 0. */
  permuteHeads: number;
}

function metaError(h: GgufHeader, reason: string): GptqError {
  return new GptqError("GGUF", reason, {
    file: h.file,
    hint: "the GGUF metadata is incomplete or inconsistent; re-convert it with llama.cpp",
  });
}

function int(h: GgufHeader, key: string, fallback?: number): number {
  const v = h.metadata.get(key);
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw metaError(h, `metadata '${key}' is missing`);
  }
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
    throw metaError(h, `metadata '${key}' is ${String(v).slice(0, 40)}, not a positive integer`);
  }
  return v;
}

function float(h: GgufHeader, key: string, fallback: number): number {
  const v = h.metadata.get(key);
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw metaError(h, `metadata '${key}' is ${String(v).slice(0, 40)}, not a positive number`);
  }
  return v;
}

function optId(h: GgufHeader, key: string): number | null {
  const v = h.metadata.get(key);
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : null;
}

/**
 * Llama-3 `rope_scaling` recovered from llama.cpp's `rope_freqs.weight`
 * (per-frequency divisors): the standard parameters (low 1, high 4, original
 * context 8192) with the largest divisor as `factor`, accepted only when they
 * reproduce every divisor.
 */
function llama3Scaling(
  h: GgufHeader,
  freqs: Float32Array,
  theta: number,
  headDim: number,
): Record<string, unknown> {
  const factor = Math.max(...freqs);
  const low = 1, high = 4, old = 8192;
  const ok = freqs.length === headDim / 2 && [...freqs].every((f, i) => {
    const inv = 1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim)));
    const wavelen = (2 * Math.PI) / inv;
    let want = 1;
    if (wavelen > old / low) want = factor;
    else if (wavelen >= old / high) {
      const smooth = (old / wavelen - low) / (high - low);
      want = 1 / ((1 - smooth) / factor + smooth);
    }
    return Math.abs(want - f) <= 1e-4 * want;
  });
  if (!ok) {
    throw new GptqError("UNSUPPORTED_FORMAT", "RoPE frequency factors are not Llama-3 scaling", {
      file: h.file,
      tensor: "rope_freqs.weight",
      hint: "only Llama-3.1-style rope_freqs (factor, low 1, high 4, original 8192) are supported",
    });
  }
  return {
    rope_type: "llama3",
    factor,
    low_freq_factor: low,
    high_freq_factor: high,
    original_max_position_embeddings: old,
  };
}

/**
 * Reads the model's hyper-parameters from a GGUF header.
 *
 * @param h The header.
 * @param ropeFreqs The `rope_freqs.weight` values, when the file has that tensor.
 * @returns The parameters.
 * @throws {GptqError} `UNSUPPORTED_ARCHITECTURE` for architectures other than llama/qwen2.
 */
export function ggufModelParams(h: GgufHeader, ropeFreqs: Float32Array | null): GgufModelParams {
  const arch = h.metadata.get("general.architecture");
  if (arch !== "llama" && arch !== "qwen2") {
    throw new GptqError(
      "UNSUPPORTED_ARCHITECTURE",
      `GGUF architecture '${String(arch ?? "(none)")}' is not supported`,
      {
        file: h.file,
        hint: "supported: llama (Llama, Mistral, SmolLM, …) and qwen2; convert the original " +
          "Hugging Face model instead",
      },
    );
  }
  const k = (s: string) => `${arch}.${s}`;
  const hidden = int(h, k("embedding_length"));
  const heads = int(h, k("attention.head_count"));
  const kvRaw = h.metadata.get(k("attention.head_count_kv"));
  if (kvRaw !== undefined && typeof kvRaw !== "number") {
    throw new GptqError(
      "UNSUPPORTED_FORMAT",
      "per-layer attention.head_count_kv is not supported",
      {
        file: h.file,
      },
    );
  }
  const kvHeads = int(h, k("attention.head_count_kv"), heads);
  if (heads % kvHeads !== 0) {
    throw metaError(h, `head_count ${heads} is not a multiple of head_count_kv ${kvHeads}`);
  }
  const defaultHeadDim = hidden % heads === 0 ? hidden / heads : undefined;
  const headDim = int(h, k("attention.key_length"), defaultHeadDim);
  const valueDim = int(h, k("attention.value_length"), headDim);
  const ropeDim = int(h, k("rope.dimension_count"), headDim);
  if (valueDim !== headDim || ropeDim !== headDim || headDim % 2 !== 0) {
    throw new GptqError(
      "UNSUPPORTED_FORMAT",
      `head sizes key ${headDim}, value ${valueDim}, rotary ${ropeDim} are not one even size`,
      { file: h.file, hint: "partial rotary or asymmetric heads are not supported for " + arch },
    );
  }
  if (arch === "qwen2" && headDim !== defaultHeadDim) {
    throw metaError(h, `qwen2 head size ${headDim} is not hidden ${hidden} / heads ${heads}`);
  }
  const tokens = h.metadata.get("tokenizer.ggml.tokens");
  const names = new Set(h.tensors.map((t) => t.name));
  const embed = h.tensors.find((t) => t.name === "token_embd.weight");
  const vocab = int(
    h,
    k("vocab_size"),
    Array.isArray(tokens) ? tokens.length : embed?.shape[0],
  );
  const ropeTheta = float(h, k("rope.freq_base"), 10000);
  let ropeScaling: Record<string, unknown> | null = null;
  const scalingType = h.metadata.get(k("rope.scaling.type"));
  const factor = h.metadata.get(k("rope.scaling.factor")) ?? h.metadata.get(k("rope.scale_linear"));
  if (ropeFreqs) ropeScaling = llama3Scaling(h, ropeFreqs, ropeTheta, headDim);
  else if (scalingType === "linear" || (scalingType === undefined && factor !== undefined)) {
    ropeScaling = {
      rope_type: "linear",
      factor: float(h, k("rope.scaling.factor"), Number(factor)),
    };
  } else if (scalingType === "yarn") {
    ropeScaling = {
      rope_type: "yarn",
      factor: float(h, k("rope.scaling.factor"), 1),
      original_max_position_embeddings: int(h, k("rope.scaling.original_context_length")),
    };
  } else if (scalingType !== undefined && scalingType !== "none") {
    throw metaError(h, `rope.scaling.type '${String(scalingType)}' is not supported`);
  }
  return {
    arch,
    hidden,
    layers: int(h, k("block_count")),
    ffn: int(h, k("feed_forward_length")),
    heads,
    kvHeads,
    headDim,
    vocab,
    context: int(h, k("context_length"), 2048),
    normEps: float(h, k("attention.layer_norm_rms_epsilon"), 1e-5),
    ropeTheta,
    ropeScaling,
    tied: !names.has("output.weight"),
    attentionBias: names.has("blk.0.attn_q.bias"),
    bosId: optId(h, "tokenizer.ggml.bos_token_id"),
    eosId: optId(h, "tokenizer.ggml.eos_token_id"),
    padId: optId(h, "tokenizer.ggml.padding_token_id"),
  };
}

const BLOCK: Record<string, string> = {
  "attn_norm.weight": "input_layernorm.weight",
  "ffn_norm.weight": "post_attention_layernorm.weight",
  "attn_q.weight": "self_attn.q_proj.weight",
  "attn_k.weight": "self_attn.k_proj.weight",
  "attn_v.weight": "self_attn.v_proj.weight",
  "attn_output.weight": "self_attn.o_proj.weight",
  "attn_q.bias": "self_attn.q_proj.bias",
  "attn_k.bias": "self_attn.k_proj.bias",
  "attn_v.bias": "self_attn.v_proj.bias",
  "attn_output.bias": "self_attn.o_proj.bias",
  "ffn_gate.weight": "mlp.gate_proj.weight",
  "ffn_up.weight": "mlp.up_proj.weight",
  "ffn_down.weight": "mlp.down_proj.weight",
};

/**
 * Maps every GGUF tensor to its Hugging Face name and checks its shape; every
 * tensor the HF model needs must be there, and no unknown tensor may be.
 *
 * @param h The header.
 * @param p The model's parameters.
 * @returns The tensors to write, in HF order.
 */
export function ggufTensorPlan(h: GgufHeader, p: GgufModelParams): GgufTensorPlan[] {
  const { hidden: H, heads, kvHeads, headDim: D, ffn: F, vocab: V } = p;
  const want = new Map<string, { name: string; shape: number[]; permute: number }>();
  const put = (g: string, name: string, shape: number[], permute = 0) =>
    want.set(g, { name, shape, permute });
  put("token_embd.weight", "model.embed_tokens.weight", [V, H]);
  const bias = p.arch === "qwen2" ? ["q", "k", "v"] : p.attentionBias ? ["q", "k", "v", "o"] : [];
  for (let l = 0; l < p.layers; l++) {
    const g = `blk.${l}.`, hf = `model.layers.${l}.`;
    const rot = (n: number) => p.arch === "llama" ? n : 0;
    const shapes: Record<string, [number[], number]> = {
      "attn_norm.weight": [[H], 0],
      "ffn_norm.weight": [[H], 0],
      "attn_q.weight": [[heads * D, H], rot(heads)],
      "attn_k.weight": [[kvHeads * D, H], rot(kvHeads)],
      "attn_v.weight": [[kvHeads * D, H], 0],
      "attn_output.weight": [[H, heads * D], 0],
      "ffn_gate.weight": [[F, H], 0],
      "ffn_up.weight": [[F, H], 0],
      "ffn_down.weight": [[H, F], 0],
    };
    const biasRows: Record<string, [number, number]> = {
      q: [heads * D, rot(heads)],
      k: [kvHeads * D, rot(kvHeads)],
      v: [kvHeads * D, 0],
      o: [H, 0],
    };
    for (const b of bias) {
      shapes[`attn_${b === "o" ? "output" : b}.bias`] = [[biasRows[b]![0]], biasRows[b]![1]];
    }
    for (const [suffix, [shape, permute]] of Object.entries(shapes)) {
      put(g + suffix, hf + BLOCK[suffix]!, shape, permute);
    }
  }
  put("output_norm.weight", "model.norm.weight", [H]);
  if (!p.tied) put("output.weight", "lm_head.weight", [V, H]);

  const byName = new Map(h.tensors.map((t) => [t.name, t]));
  for (const t of h.tensors) {
    if (t.name === "rope_freqs.weight" || want.has(t.name)) continue;
    throw new GptqError(
      "UNSUPPORTED_FORMAT",
      `unexpected tensor for a ${p.arch} model with ${p.layers} layers`,
      {
        file: h.file,
        tensor: t.name,
        hint: "mixture-of-experts, vision or other extra tensors are not supported",
      },
    );
  }
  const plan: GgufTensorPlan[] = [];
  for (const [g, w] of want) {
    const src = byName.get(g);
    if (!src) {
      throw new GptqError("GGUF", `tensor is missing (a ${p.arch} model needs it)`, {
        file: h.file,
        tensor: g,
        hint: "the file is incomplete or not a plain decoder model",
      });
    }
    if (src.shape.join(",") !== w.shape.join(",")) {
      throw new GptqError(
        "SHAPE",
        `has shape [${src.shape}], expected [${w.shape}] from the metadata`,
        { file: h.file, tensor: g, hint: "the metadata and tensors disagree; re-convert" },
      );
    }
    plan.push({ src, name: w.name, permuteHeads: w.permute });
  }
  return plan;
}

/**
 * The Hugging Face `config.json` for the imported model.
 *
 * @param p The parameters.
 * @param torchDtype The weights' dtype name (`float32`, `float16`, `bfloat16`).
 * @returns The config object.
 */
export function ggufHfConfig(p: GgufModelParams, torchDtype: string): Record<string, unknown> {
  const common = {
    hidden_size: p.hidden,
    intermediate_size: p.ffn,
    num_hidden_layers: p.layers,
    num_attention_heads: p.heads,
    num_key_value_heads: p.kvHeads,
    max_position_embeddings: p.context,
    rms_norm_eps: p.normEps,
    rope_theta: p.ropeTheta,
    rope_scaling: p.ropeScaling,
    hidden_act: "silu",
    attention_dropout: 0.0,
    initializer_range: 0.02,
    tie_word_embeddings: p.tied,
    vocab_size: p.vocab,
    bos_token_id: p.bosId,
    eos_token_id: p.eosId,
    pad_token_id: p.padId,
    use_cache: true,
    torch_dtype: torchDtype,
  };
  if (p.arch === "qwen2") {
    return {
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      ...common,
      use_sliding_window: false,
      sliding_window: null,
      max_window_layers: p.layers,
    };
  }
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    ...common,
    head_dim: p.headDim,
    attention_bias: p.attentionBias,
    mlp_bias: false,
    pretraining_tp: 1,
  };
}
