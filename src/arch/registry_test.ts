// Copyright 2026 the GPTQ toolkit authors. MIT license.
import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { GptqError } from "../errors.ts";
import { parseModelConfig } from "../io/hf_config.ts";
import { ARCHS, findArch, getArch, SUPPORTED_MODEL_TYPES } from "./registry.ts";
import { expectedTensors } from "./tensors.ts";

Deno.test("getArch() resolves every supported model_type", () => {
  assertEquals([...SUPPORTED_MODEL_TYPES], [
    "llama",
    "mistral",
    "qwen2",
    "opt",
    "gpt2",
    "gpt_neox",
  ]);
  assertEquals(getArch("mistral").blockPrefix, "model.layers");
  assertEquals(getArch("gpt_neox").lmHead, "embed_out.weight");
  assertEquals(findArch("phi"), undefined);
});

Deno.test("getArch() rejects unsupported types with a typed, actionable error", () => {
  assertThrows(
    () => getArch("phi", "/m/config.json"),
    (e: unknown) =>
      e instanceof GptqError && e.code === "UNSUPPORTED_ARCHITECTURE" &&
      e.file === "/m/config.json" &&
      e.message.includes("model_type 'phi' is not supported") &&
      e.message.includes("supported: llama, mistral, qwen2, opt, gpt2, gpt_neox"),
  );
});

Deno.test("every spec is self-consistent", () => {
  for (const a of ARCHS) {
    const names = new Set(a.linears.map((l) => l.name));
    const grouped = a.sequentialGroups.flat();
    assertEquals(grouped.length, names.size, a.family);
    assertEquals(new Set(grouped), names, a.family);
    for (const f of Object.keys(a.fused)) assertEquals(names.has(f), true, `${a.family} ${f}`);
    for (const n of a.architectures) {
      assertEquals(n.endsWith("ForCausalLM") || n.endsWith("LMHeadModel"), true);
    }
  }
});

Deno.test("Qwen2 is Llama with q/k/v biases", () => {
  const c = parseModelConfig({
    model_type: "qwen2",
    architectures: ["Qwen2ForCausalLM"],
    hidden_size: 64,
    intermediate_size: 160,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 1,
    vocab_size: 100,
    tie_word_embeddings: true,
  }, "config.json");
  const names = expectedTensors(getArch("qwen2"), c).map((t) => `${t.name}:${t.shape.join("x")}`);
  assertEquals(names, [
    "model.embed_tokens.weight:100x64",
    "model.norm.weight:64",
    "model.layers.0.input_layernorm.weight:64",
    "model.layers.0.post_attention_layernorm.weight:64",
    "model.layers.0.self_attn.k_proj.weight:32x64",
    "model.layers.0.self_attn.k_proj.bias:32",
    "model.layers.0.self_attn.v_proj.weight:32x64",
    "model.layers.0.self_attn.v_proj.bias:32",
    "model.layers.0.self_attn.q_proj.weight:64x64",
    "model.layers.0.self_attn.q_proj.bias:64",
    "model.layers.0.self_attn.o_proj.weight:64x64",
    "model.layers.0.mlp.up_proj.weight:160x64",
    "model.layers.0.mlp.gate_proj.weight:160x64",
    "model.layers.0.mlp.down_proj.weight:64x160",
  ]);
});

Deno.test("OPT-350m style word_embed_proj_dim adds project_in/out; post-norm drops the final norm", () => {
  const c = parseModelConfig({
    model_type: "opt",
    hidden_size: 64,
    ffn_dim: 256,
    num_attention_heads: 4,
    num_hidden_layers: 1,
    vocab_size: 100,
    max_position_embeddings: 32,
    word_embed_proj_dim: 32,
    do_layer_norm_before: false,
  }, "config.json");
  const t = new Map(expectedTensors(getArch("opt"), c).map((x) => [x.name, x.shape]));
  assertEquals(t.get("model.decoder.embed_tokens.weight"), [100, 32]);
  assertEquals(t.get("model.decoder.embed_positions.weight"), [34, 64]);
  assertEquals(t.get("model.decoder.project_in.weight"), [64, 32]);
  assertEquals(t.get("model.decoder.project_out.weight"), [32, 64]);
  assertEquals(t.has("model.decoder.final_layer_norm.weight"), false);
  assertEquals(t.has("lm_head.weight"), false);
});
