// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Reads a Hugging Face `config.json` into one normalized
 * {@linkcode ModelConfig}, whatever the family's key names (`n_embd` or
 * `hidden_size`, `ffn_dim` or `intermediate_size`, …) and whatever the
 * transformers version (`rope_parameters` in v5, `rope_theta` /
 * `rope_scaling` before; `dtype` or `torch_dtype`).
 *
 * @module
 */

import { findArch } from "../arch/registry.ts";
import type { ArchSpec } from "../arch/spec.ts";
import { GptqError } from "../errors.ts";
import { MAX_CONFIG_BYTES, parseJsonText, readBoundedText } from "./_json_file.ts";
import { isNotFound } from "./_files.ts";

/** RoPE frequency scaling (`rope_scaling` / `rope_parameters`). */
export interface RopeScaling {
  /** `llama3`, `linear`, `dynamic`, or another name (kept as-is; unsupported by the forward pass). */
  type: string;
  /** Scaling factor. */
  factor: number;
  /** llama3: low-frequency factor. */
  lowFreqFactor: number | null;
  /** llama3: high-frequency factor. */
  highFreqFactor: number | null;
  /** llama3: the pre-training context length. */
  originalMaxPositionEmbeddings: number | null;
}

/** A model's config, normalized across families and transformers versions. */
export interface ModelConfig {
  /** The file it came from. */
  file: string;
  /** `model_type`, e.g. `llama`. */
  modelType: string;
  /** The registry family (`llama`, `mistral`, `qwen2`, `opt`, `gpt2`, `gpt_neox`), or null when unsupported. */
  family: string | null;
  /** The HF class name (first of `architectures`), or null. */
  arch: string | null;
  /** All of `architectures`. */
  architectures: string[];
  /** Model width (`hidden_size`, `n_embd`, `d_model`). */
  hiddenSize: number;
  /** Number of blocks (`num_hidden_layers`, `n_layer`). */
  numLayers: number;
  /** Attention heads (`num_attention_heads`, `n_head`). */
  numHeads: number;
  /** Key/value heads (`num_key_value_heads`; equals `numHeads` without GQA). */
  numKvHeads: number;
  /** Per-head dimension (`head_dim`, else hidden / heads). */
  headDim: number;
  /** MLP width (`intermediate_size`, `ffn_dim`, `n_inner`, or the family default). */
  intermediateSize: number;
  /** Vocabulary size. */
  vocabSize: number;
  /** Maximum positions (`max_position_embeddings`, `n_positions`). */
  maxPositions: number;
  /** Norm epsilon. */
  normEps: number;
  /** RoPE base, or null for learned positions / unknown families without one. */
  ropeTheta: number | null;
  /** RoPE scaling, or null. */
  ropeScaling: RopeScaling | null;
  /** Fraction of each head that is rotated (`partial_rotary_factor`, `rotary_pct`); 1 for full RoPE. */
  partialRotaryFactor: number;
  /** Rotated dims per head: `floor(headDim * partialRotaryFactor)`. */
  rotaryDim: number;
  /** Whether the head shares the embedding matrix. */
  tieWordEmbeddings: boolean;
  /** Beginning-of-sequence id, or null. */
  bosTokenId: number | null;
  /** End-of-sequence ids (configs may give one or a list). */
  eosTokenIds: number[];
  /** Padding id, or null. */
  padTokenId: number | null;
  /** Weight dtype as the config names it (`float16`, `bfloat16`, `float32`), or null. */
  dtype: string | null;
  /** Activation name (`hidden_act`, `activation_function`). */
  hiddenAct: string;
  /** Whether attention projections have biases (`attention_bias`, `enable_bias`). */
  attentionBias: boolean;
  /** Whether MLP projections have biases (`mlp_bias`, `enable_bias`). */
  mlpBias: boolean;
  /** OPT: pre-norm (true) or post-norm (OPT-350m). True for other families. */
  doLayerNormBefore: boolean;
  /** OPT: embedding width (`word_embed_proj_dim`); equals `hiddenSize` elsewhere. */
  wordEmbedProjDim: number;
  /** GPT-NeoX: parallel attention and MLP residual. False elsewhere. */
  useParallelResidual: boolean;
  /** Mistral/Qwen2 sliding-window size, or null. */
  slidingWindow: number | null;
  /** The raw `quantization_config` object, or null. */
  quantizationConfig: Record<string, unknown> | null;
  /** The whole parsed JSON. */
  raw: Record<string, unknown>;
}

const HINT = "fix config.json or re-export the model with transformers' save_pretrained";

type Raw = Record<string, unknown>;

function first(raw: Raw, keys: readonly string[]): [string, unknown] | undefined {
  for (const k of keys) {
    if (raw[k] !== undefined && raw[k] !== null) return [k, raw[k]];
  }
  return undefined;
}

function bad(file: string, key: string, value: unknown, want: string): GptqError {
  return new GptqError("CONFIG", `'${key}' is ${JSON.stringify(value)}, expected ${want}`, {
    file,
    hint: HINT,
  });
}

/**
 * Upper bounds of the size fields, far above any real model (the largest have
 * about 130 layers, 256k-token vocabularies and 16k-wide hidden states) and
 * low enough that no size derived from them overflows or stalls a loop
 * before the weights are checked.
 */
const MAX_SIZE = {
  hidden: 1 << 20,
  layers: 1 << 14,
  heads: 1 << 14,
  headDim: 1 << 14,
  intermediate: 1 << 22,
  vocab: 1 << 24,
  positions: 1 << 24,
} as const;

function posInt(
  raw: Raw,
  keys: readonly string[],
  file: string,
  fallback?: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number {
  const hit = first(raw, keys);
  if (!hit) {
    if (fallback !== undefined) return fallback;
    throw new GptqError("CONFIG", `missing '${keys[0]}'`, {
      file,
      hint: keys.length > 1
        ? `add '${keys[0]}' (also accepted: ${keys.slice(1).join(", ")}); ${HINT}`
        : HINT,
    });
  }
  const [k, v] = hit;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
    throw bad(file, k, v, "a positive integer");
  }
  if (v > max) throw bad(file, k, v, `a positive integer of at most ${max}`);
  return v;
}

function num(raw: Raw, keys: readonly string[], file: string, fallback: number): number {
  const hit = first(raw, keys);
  if (!hit) return fallback;
  const [k, v] = hit;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw bad(file, k, v, "a positive number");
  }
  return v;
}

function bool(raw: Raw, keys: readonly string[], file: string, fallback: boolean): boolean {
  const hit = first(raw, keys);
  if (!hit) return fallback;
  const [k, v] = hit;
  if (typeof v !== "boolean") throw bad(file, k, v, "true or false");
  return v;
}

function str(raw: Raw, keys: readonly string[], file: string): string | null {
  const hit = first(raw, keys);
  if (!hit) return null;
  const [k, v] = hit;
  if (typeof v !== "string") throw bad(file, k, v, "a string");
  return v;
}

function tokenId(raw: Raw, key: string, file: string): number | null {
  const v = raw[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw bad(file, key, v, "a token id");
  }
  return v;
}

function tokenIds(raw: Raw, key: string, file: string): number[] {
  const v = raw[key];
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  for (const x of list) {
    if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0) {
      throw bad(file, key, v, "a token id or a list of them");
    }
  }
  return list as number[];
}

function obj(v: unknown): Raw | null {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? v as Raw : null;
}

function parseRopeScaling(r: Raw | null, file: string, key: string): RopeScaling | null {
  if (!r) return null;
  const type = r["rope_type"] ?? r["type"] ?? "default";
  if (typeof type !== "string") throw bad(file, `${key}.rope_type`, type, "a string");
  if (type === "default") return null;
  const optNum = (k: string): number | null => {
    const v = r[k];
    if (v === undefined || v === null) return null;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw bad(file, `${key}.${k}`, v, "a positive number");
    }
    return v;
  };
  const factor = optNum("factor");
  if (factor === null) {
    throw new GptqError("CONFIG", `missing '${key}.factor' for rope type '${type}'`, {
      file,
      hint: HINT,
    });
  }
  const s: RopeScaling = {
    type,
    factor,
    lowFreqFactor: optNum("low_freq_factor"),
    highFreqFactor: optNum("high_freq_factor"),
    originalMaxPositionEmbeddings: optNum("original_max_position_embeddings"),
  };
  if (type === "llama3") {
    for (const k of ["low_freq_factor", "high_freq_factor", "original_max_position_embeddings"]) {
      if (r[k] === undefined || r[k] === null) {
        throw new GptqError("CONFIG", `missing '${key}.${k}' for rope type 'llama3'`, {
          file,
          hint: HINT,
        });
      }
    }
  }
  return s;
}

/**
 * Normalizes a parsed `config.json`.
 *
 * @example
 * ```ts
 * import { parseModelConfig } from "./hf_config.ts";
 * const c = parseModelConfig({
 *   model_type: "gpt2", n_embd: 768, n_layer: 12, n_head: 12, vocab_size: 50257, n_positions: 1024,
 * }, "config.json");
 * console.log(c.hiddenSize, c.intermediateSize, c.tieWordEmbeddings); // 768 3072 true
 * ```
 *
 * @param json The parsed JSON.
 * @param file Its path, for error messages.
 * @returns The normalized config.
 */
export function parseModelConfig(json: unknown, file: string): ModelConfig {
  const raw = obj(json);
  if (!raw) throw new GptqError("CONFIG", "is not a JSON object", { file, hint: HINT });
  const modelType = str(raw, ["model_type"], file);
  if (modelType === null) {
    throw new GptqError("CONFIG", "missing 'model_type'", {
      file,
      hint: 'a transformers config.json names its model_type (e.g. "llama")',
    });
  }
  const spec: ArchSpec | undefined = findArch(modelType);
  const keys = spec?.config;

  const archs = raw["architectures"];
  const architectures = Array.isArray(archs)
    ? archs.filter((x): x is string => typeof x === "string")
    : [];

  const M = MAX_SIZE;
  const hiddenSize = posInt(raw, ["hidden_size", "n_embd", "d_model"], file, undefined, M.hidden);
  const numLayers = posInt(
    raw,
    ["num_hidden_layers", "n_layer", "num_layers"],
    file,
    undefined,
    M.layers,
  );
  const numHeads = posInt(raw, ["num_attention_heads", "n_head"], file, undefined, M.heads);
  const numKvHeads = posInt(raw, ["num_key_value_heads"], file, numHeads, M.heads);
  if (numHeads % numKvHeads !== 0) {
    throw new GptqError(
      "CONFIG",
      `num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`,
      { file, hint: HINT },
    );
  }
  // GPT-2, OPT and GPT-NeoX have no head_dim setting: transformers uses hidden / heads.
  const freeHeadDim = spec ? spec.config.freeHeadDim === true : true;
  const explicitHeadDim = freeHeadDim ? first(raw, ["head_dim"]) : undefined;
  if (!explicitHeadDim && hiddenSize % numHeads !== 0) {
    throw new GptqError(
      "CONFIG",
      `hidden size ${hiddenSize} is not divisible by ${numHeads} heads`,
      {
        file,
        hint: "set 'head_dim' or fix 'num_attention_heads'",
      },
    );
  }
  const headDim = explicitHeadDim
    ? posInt(raw, ["head_dim"], file, undefined, M.headDim)
    : hiddenSize / numHeads;
  if (!freeHeadDim && raw["head_dim"] !== undefined && raw["head_dim"] !== null) {
    if (raw["head_dim"] !== headDim) {
      throw bad(
        file,
        "head_dim",
        raw["head_dim"],
        `hidden size / heads = ${headDim} (${spec!.family} derives the head size from them)`,
      );
    }
  }
  if (headDim > M.headDim) throw bad(file, "head_dim", headDim, `at most ${M.headDim}`);
  const defInter = keys?.defaultIntermediate ? keys.defaultIntermediate(hiddenSize) : undefined;
  const intermediateSize = posInt(
    raw,
    ["intermediate_size", "ffn_dim", "n_inner"],
    file,
    defInter,
    M.intermediate,
  );
  const vocabSize = posInt(raw, ["vocab_size"], file, undefined, M.vocab);
  const maxPositions = posInt(
    raw,
    ["max_position_embeddings", "n_positions", "max_sequence_length"],
    file,
    keys?.defaultMaxPositions ?? 2048,
    M.positions,
  );
  const normEps = num(
    raw,
    [...(keys?.normEps ?? []), "rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon"],
    file,
    keys?.defaultNormEps ?? 1e-5,
  );

  // RoPE: transformers 5 nests it in `rope_parameters`; older configs use top-level keys.
  const ropeParams = obj(raw["rope_parameters"]);
  const ropeKey = ropeParams ? "rope_parameters" : "rope_scaling";
  const ropeScaling = parseRopeScaling(ropeParams ?? obj(raw["rope_scaling"]), file, ropeKey);
  const usesRope = spec ? spec.positions.kind === "rope" : true;
  let ropeTheta: number | null = null;
  if (usesRope) {
    const nested = ropeParams ? first(ropeParams, ["rope_theta"]) : undefined;
    const t = nested ? nested[1] : first(raw, ["rope_theta", "rotary_emb_base"])?.[1];
    if (t === undefined) ropeTheta = 10000;
    else if (typeof t === "number" && Number.isFinite(t) && t > 0) ropeTheta = t;
    else throw bad(file, "rope_theta", t, "a positive number");
  }
  let partialRotaryFactor = 1;
  if (usesRope) {
    const prf = (ropeParams ? first(ropeParams, ["partial_rotary_factor"]) : undefined) ??
      first(raw, ["partial_rotary_factor", "rotary_pct"]);
    if (prf) {
      const [k, v] = prf;
      if (typeof v !== "number" || !(v > 0 && v <= 1)) throw bad(file, k, v, "a number in (0, 1]");
      partialRotaryFactor = v;
    }
  }
  const rotaryDim = usesRope ? Math.floor(headDim * partialRotaryFactor) : 0;

  const tieWordEmbeddings = bool(
    raw,
    ["tie_word_embeddings"],
    file,
    keys?.tieWordEmbeddings ?? true,
  );
  const hiddenAct =
    str(raw, [...(keys?.activation ?? []), "hidden_act", "activation_function"], file) ??
      keys?.defaultActivation ?? "silu";
  const attentionBias = bool(
    raw,
    ["attention_bias", "enable_bias"],
    file,
    keys?.defaultAttentionBias ?? false,
  );
  const mlpBias = bool(raw, ["mlp_bias", "enable_bias"], file, keys?.defaultMlpBias ?? false);
  const doLayerNormBefore = bool(raw, ["do_layer_norm_before"], file, true);
  const wordEmbedProjDim = posInt(raw, ["word_embed_proj_dim"], file, hiddenSize, M.hidden);
  const useParallelResidual = spec?.family === "gpt_neox"
    ? bool(raw, ["use_parallel_residual"], file, true)
    : false;
  const sw = raw["sliding_window"];
  const slidingWindow = typeof sw === "number" && sw > 0 && raw["use_sliding_window"] !== false
    ? sw
    : null;
  const quant = raw["quantization_config"];
  if (quant !== undefined && quant !== null && !obj(quant)) {
    throw bad(file, "quantization_config", quant, "an object");
  }

  return {
    file,
    modelType,
    family: spec?.family ?? null,
    arch: architectures[0] ?? null,
    architectures,
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize,
    vocabSize,
    maxPositions,
    normEps,
    ropeTheta,
    ropeScaling,
    partialRotaryFactor,
    rotaryDim,
    tieWordEmbeddings,
    bosTokenId: tokenId(raw, "bos_token_id", file),
    eosTokenIds: tokenIds(raw, "eos_token_id", file),
    padTokenId: tokenId(raw, "pad_token_id", file),
    dtype: str(raw, ["dtype", "torch_dtype"], file),
    hiddenAct,
    attentionBias,
    mlpBias,
    doLayerNormBefore,
    wordEmbedProjDim,
    useParallelResidual,
    slidingWindow,
    quantizationConfig: obj(quant),
    raw,
  };
}

/**
 * Reads and normalizes `config.json` from a model folder (or a path to the
 * file itself).
 *
 * @example
 * ```ts ignore
 * import { readModelConfig } from "./hf_config.ts";
 * const c = await readModelConfig("./Llama-2-7B-GPTQ");
 * console.log(c.modelType, c.numLayers);
 * ```
 *
 * @param dir A model folder, or a `config.json` path.
 * @returns The normalized config.
 */
export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const file = dir.endsWith(".json") ? dir : `${dir.replace(/\/+$/, "")}/config.json`;
  let text: string;
  try {
    text = await readBoundedText(file, { code: "CONFIG", maxBytes: MAX_CONFIG_BYTES, hint: HINT });
  } catch (e) {
    if (isNotFound(e)) {
      throw new GptqError("CONFIG", "config.json not found", {
        file,
        hint: "a model folder needs the config.json that transformers' save_pretrained writes",
        cause: e,
      });
    }
    throw e;
  }
  const json = parseJsonText(text, file, "CONFIG", HINT);
  return parseModelConfig(json, file);
}
