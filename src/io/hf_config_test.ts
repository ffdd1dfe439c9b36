// Copyright 2026 the GPTQ toolkit authors. MIT license.
import {
  deepStrictEqual as assertEquals,
  rejects as assertRejects,
  throws as assertThrows,
} from "node:assert/strict";
import { DATA, GOLDEN_MODELS } from "../arch/_test_util.ts";
import { GptqError } from "../errors.ts";
import { parseModelConfig, readModelConfig } from "./hf_config.ts";

const isConfigError = (needle: string) => (e: unknown): boolean =>
  e instanceof GptqError && e.code === "CONFIG" && e.message.includes(needle) &&
  e.file === "c.json" &&
  e.hint !== undefined;

Deno.test("readModelConfig() normalizes the golden llama (transformers 5 rope_parameters)", async () => {
  const c = await readModelConfig(GOLDEN_MODELS + "llama");
  assertEquals(
    [c.modelType, c.family, c.arch, c.hiddenSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim],
    ["llama", "llama", "LlamaForCausalLM", 128, 2, 4, 2, 32],
  );
  assertEquals([c.intermediateSize, c.vocabSize, c.maxPositions, c.normEps], [
    352,
    1024,
    512,
    1e-5,
  ]);
  assertEquals([c.ropeTheta, c.ropeScaling, c.partialRotaryFactor, c.rotaryDim], [
    10000,
    null,
    1,
    32,
  ]);
  assertEquals([c.tieWordEmbeddings, c.dtype, c.hiddenAct, c.attentionBias, c.mlpBias], [
    false,
    "float16",
    "silu",
    false,
    false,
  ]);
  assertEquals([c.bosTokenId, c.eosTokenIds, c.padTokenId, c.quantizationConfig], [
    0,
    [0],
    0,
    null,
  ]);
});

Deno.test("readModelConfig() normalizes the golden opt, gpt2 and gpt_neox", async () => {
  const opt = await readModelConfig(GOLDEN_MODELS + "opt");
  assertEquals([opt.family, opt.intermediateSize, opt.hiddenAct, opt.tieWordEmbeddings], [
    "opt",
    512,
    "relu",
    true,
  ]);
  assertEquals([opt.doLayerNormBefore, opt.wordEmbedProjDim, opt.attentionBias, opt.ropeTheta], [
    true,
    128,
    true,
    null,
  ]);
  const gpt2 = await readModelConfig(GOLDEN_MODELS + "gpt2");
  // n_inner is null, so the MLP is 4 * n_embd.
  assertEquals([gpt2.hiddenSize, gpt2.numLayers, gpt2.numHeads, gpt2.intermediateSize], [
    128,
    2,
    4,
    512,
  ]);
  assertEquals([gpt2.maxPositions, gpt2.normEps, gpt2.hiddenAct, gpt2.dtype], [
    512,
    1e-5,
    "gelu_new",
    "float32",
  ]);
  const neox = await readModelConfig(GOLDEN_MODELS + "gpt_neox");
  assertEquals([neox.partialRotaryFactor, neox.rotaryDim, neox.ropeTheta], [0.25, 8, 10000]);
  assertEquals([neox.useParallelResidual, neox.attentionBias, neox.dtype, neox.hiddenAct], [
    true,
    true,
    "bfloat16",
    "gelu",
  ]);
});

Deno.test("readModelConfig() reads the GPTQ golden's quantization_config", async () => {
  const c = await readModelConfig(GOLDEN_MODELS + "llama-gptq-4bit-g32");
  assertEquals(c.quantizationConfig?.["bits"], 4);
  assertEquals(c.quantizationConfig?.["group_size"], 32);
  assertEquals(c.quantizationConfig?.["checkpoint_format"], "gptq");
});

Deno.test("readModelConfig() parses every published GPTQ config in gptq-configs/", async () => {
  const want: Record<string, [string, number, number, number, number, number, string]> = {
    // modelType, hidden, layers, heads, kvHeads, intermediate, dtype
    "Barksdale27+1": ["llama", 5120, 40, 40, 40, 13824, "float16"],
    "CesarChaMal+Wizard-Vicuna-30B-Uncensored-GPTQ": ["llama", 6656, 60, 52, 52, 17920, "float16"],
    "Decentralised-AI+wizard-mega-13B-GPTQ": ["llama", 5120, 40, 40, 40, 13824, "bfloat16"],
    "KeshavArvindh+Quantization-of-LLM-s": ["phi", 2560, 32, 32, 32, 10240, "float16"],
    "itdevwu+Genz-70b-GPTQ": ["llama", 8192, 80, 64, 8, 28672, "bfloat16"],
    "rohit1253+llama_2_13_B_chat_GPTQ": ["llama", 5120, 40, 40, 40, 13824, "float16"],
  };
  const seen: string[] = [];
  for await (const e of Deno.readDir(DATA + "gptq-configs")) {
    if (!e.isDirectory) continue;
    seen.push(e.name);
    const c = await readModelConfig(`${DATA}gptq-configs/${e.name}`);
    assertEquals(
      [
        c.modelType,
        c.hiddenSize,
        c.numLayers,
        c.numHeads,
        c.numKvHeads,
        c.intermediateSize,
        c.dtype,
      ],
      want[e.name],
      e.name,
    );
    assertEquals(c.vocabSize > 0 && c.headDim * c.numHeads === c.hiddenSize, true);
  }
  assertEquals(seen.sort(), Object.keys(want).sort());
  const phi = await readModelConfig(`${DATA}gptq-configs/KeshavArvindh+Quantization-of-LLM-s`);
  assertEquals([phi.family, phi.partialRotaryFactor, phi.rotaryDim, phi.ropeTheta], [
    null,
    0.4,
    32,
    10000,
  ]);
  assertEquals(phi.quantizationConfig?.["block_name_to_quantize"], "model.layers");
  const genz = await readModelConfig(`${DATA}gptq-configs/itdevwu+Genz-70b-GPTQ`);
  assertEquals([genz.ropeScaling, genz.ropeTheta, genz.bosTokenId, genz.eosTokenIds], [
    null,
    10000,
    1,
    [2],
  ]);
  assertEquals(genz.quantizationConfig?.["bits"], 3);
  const mega = await readModelConfig(`${DATA}gptq-configs/Decentralised-AI+wizard-mega-13B-GPTQ`);
  assertEquals([mega.quantizationConfig, mega.normEps, mega.maxPositions], [null, 1e-6, 2048]);
});

Deno.test("parseModelConfig() reads a Llama-3.1 config (rope_scaling llama3, eos list)", () => {
  // Meta-Llama-3.1-8B's config.json as published.
  const c = parseModelConfig({
    architectures: ["LlamaForCausalLM"],
    attention_bias: false,
    bos_token_id: 128000,
    eos_token_id: [128001, 128008, 128009],
    hidden_act: "silu",
    hidden_size: 4096,
    intermediate_size: 14336,
    max_position_embeddings: 131072,
    mlp_bias: false,
    model_type: "llama",
    num_attention_heads: 32,
    num_hidden_layers: 32,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-05,
    rope_scaling: {
      factor: 8.0,
      low_freq_factor: 1.0,
      high_freq_factor: 4.0,
      original_max_position_embeddings: 8192,
      rope_type: "llama3",
    },
    rope_theta: 500000.0,
    tie_word_embeddings: false,
    torch_dtype: "bfloat16",
    vocab_size: 128256,
  }, "c.json");
  assertEquals(c.ropeTheta, 500000);
  assertEquals(c.ropeScaling, {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
  assertEquals([c.eosTokenIds, c.numKvHeads, c.headDim, c.dtype], [
    [128001, 128008, 128009],
    8,
    128,
    "bfloat16",
  ]);
  // The same in transformers-5 form.
  const v5 = parseModelConfig({
    model_type: "llama",
    hidden_size: 4096,
    intermediate_size: 14336,
    num_attention_heads: 32,
    num_hidden_layers: 32,
    vocab_size: 128256,
    rope_parameters: {
      rope_type: "llama3",
      rope_theta: 500000.0,
      factor: 8.0,
      low_freq_factor: 1.0,
      high_freq_factor: 4.0,
      original_max_position_embeddings: 8192,
    },
  }, "c.json");
  assertEquals([v5.ropeTheta, v5.ropeScaling], [c.ropeTheta, c.ropeScaling]);
});

Deno.test("parseModelConfig() reads Mistral and Qwen2 configs", () => {
  // Mistral-7B-v0.1 as published.
  const m = parseModelConfig({
    architectures: ["MistralForCausalLM"],
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: "silu",
    hidden_size: 4096,
    intermediate_size: 14336,
    max_position_embeddings: 32768,
    model_type: "mistral",
    num_attention_heads: 32,
    num_hidden_layers: 32,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-05,
    rope_theta: 10000.0,
    sliding_window: 4096,
    tie_word_embeddings: false,
    torch_dtype: "bfloat16",
    vocab_size: 32000,
  }, "c.json");
  assertEquals([m.family, m.numKvHeads, m.slidingWindow, m.ropeTheta], ["mistral", 8, 4096, 10000]);
  // Qwen2-0.5B as published.
  const q = parseModelConfig({
    architectures: ["Qwen2ForCausalLM"],
    bos_token_id: 151643,
    eos_token_id: 151643,
    hidden_act: "silu",
    hidden_size: 896,
    intermediate_size: 4864,
    max_position_embeddings: 131072,
    max_window_layers: 24,
    model_type: "qwen2",
    num_attention_heads: 14,
    num_hidden_layers: 24,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-06,
    rope_theta: 1000000.0,
    sliding_window: 131072,
    tie_word_embeddings: true,
    torch_dtype: "bfloat16",
    use_sliding_window: false,
    vocab_size: 151936,
  }, "c.json");
  assertEquals([q.family, q.headDim, q.numKvHeads, q.slidingWindow, q.ropeTheta], [
    "qwen2",
    64,
    2,
    null,
    1e6,
  ]);
  assertEquals([q.tieWordEmbeddings, q.normEps], [true, 1e-6]);
});

Deno.test("parseModelConfig() rejects missing and invalid fields with the file and a hint", () => {
  const base = {
    model_type: "llama",
    hidden_size: 64,
    intermediate_size: 128,
    num_attention_heads: 4,
    num_hidden_layers: 2,
    vocab_size: 100,
  };
  const without = (k: string) => Object.fromEntries(Object.entries(base).filter(([x]) => x !== k));
  assertThrows(
    () => parseModelConfig(without("hidden_size"), "c.json"),
    isConfigError("missing 'hidden_size'"),
  );
  assertThrows(
    () => parseModelConfig(without("model_type"), "c.json"),
    isConfigError("missing 'model_type'"),
  );
  assertThrows(
    () => parseModelConfig(without("vocab_size"), "c.json"),
    isConfigError("missing 'vocab_size'"),
  );
  assertThrows(
    () => parseModelConfig(without("intermediate_size"), "c.json"),
    isConfigError("missing 'intermediate_size'"),
  );
  assertThrows(
    () => parseModelConfig({ ...base, hidden_size: "64" }, "c.json"),
    isConfigError("'hidden_size'"),
  );
  assertThrows(
    () => parseModelConfig({ ...base, num_key_value_heads: 3 }, "c.json"),
    isConfigError("not a multiple of num_key_value_heads"),
  );
  assertThrows(
    () => parseModelConfig({ ...base, hidden_size: 66 }, "c.json"),
    isConfigError("not divisible"),
  );
  assertThrows(
    () => parseModelConfig({ ...base, rope_scaling: { rope_type: "llama3", factor: 8 } }, "c.json"),
    isConfigError("low_freq_factor"),
  );
  assertThrows(() => parseModelConfig([1], "c.json"), isConfigError("not a JSON object"));
});

Deno.test("readModelConfig() reports a folder without config.json", async () => {
  await assertRejects(
    readModelConfig(DATA + "text"),
    (e: unknown) =>
      e instanceof GptqError && e.code === "CONFIG" && e.message.includes("config.json not found"),
  );
});
