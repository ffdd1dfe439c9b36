// Copyright 2026 the GPTQ toolkit authors. MIT license.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { readModelConfig } from "../io/hf_config.ts";
import { SafetensorsFile } from "../io/safetensors.ts";
import { getArch } from "./registry.ts";
import { blockLinears, classifyTensor, expectedTensors, gptqTensorShapes } from "./tensors.ts";
import { GOLDEN_MODELS } from "./_test_util.ts";

async function stored(dir: string): Promise<Map<string, number[]>> {
  using f = await SafetensorsFile.open(`${dir}/model.safetensors`);
  return new Map(f.infos().map((t) => [t.name, t.shape]));
}

for (const model of ["llama", "opt", "gpt2", "gpt_neox"]) {
  Deno.test(`expectedTensors() matches the golden ${model} checkpoint exactly`, async () => {
    const dir = GOLDEN_MODELS + model;
    const config = await readModelConfig(dir);
    const spec = getArch(config.modelType);
    const expected = new Map(expectedTensors(spec, config).map((t) => [t.name, t.shape]));
    const actual = await stored(dir);
    assertEquals([...expected.keys()].sort(), [...actual.keys()].sort());
    for (const [name, shape] of actual) assertEquals(expected.get(name), shape, name);
    // Every stored tensor is classified, none unknown.
    for (const name of actual.keys()) assert(classifyTensor(spec, name).role !== "unknown", name);
  });
}

Deno.test("expectedTensors() with a GPTQ layout matches llama-gptq-4bit-g32 exactly", async () => {
  const dir = GOLDEN_MODELS + "llama-gptq-4bit-g32";
  const config = await readModelConfig(dir);
  const spec = getArch(config.modelType);
  const expected = new Map(
    expectedTensors(spec, config, { quant: { bits: 4, groupSize: 32 } }).map((
      t,
    ) => [t.name, t.shape]),
  );
  const actual = await stored(dir);
  assertEquals([...expected.keys()].sort(), [...actual.keys()].sort());
  for (const [name, shape] of actual) assertEquals(expected.get(name), shape, name);
  assertEquals(classifyTensor(spec, "model.layers.1.mlp.down_proj.qzeros"), {
    role: "qzeros",
    layer: 1,
    module: "model.layers.1.mlp.down_proj",
  });
});

Deno.test("gptqTensorShapes() follows AutoGPTQ's formulas (reference §1.2)", () => {
  assertEquals(gptqTensorShapes(4096, 4096, 4, 128), {
    qweight: [512, 4096],
    qzeros: [32, 512],
    scales: [32, 4096],
    g_idx: [4096],
  });
  // GPT-2 c_attn (Conv1D, in 768, out 2304) at 4 bits: qweight [96, 2304].
  assertEquals(gptqTensorShapes(768, 2304, 4, -1).qweight, [96, 2304]);
  assertEquals(gptqTensorShapes(768, 2304, 4, -1).scales, [1, 2304]);
  // 3-bit: K/32*3 rows.
  assertEquals(gptqTensorShapes(4096, 4096, 3, 128).qweight, [384, 4096]);
});

Deno.test("blockLinears() lists modules in AutoGPTQ's true-sequential order", async () => {
  const expectOrder: Record<string, string[]> = {
    llama: [
      "self_attn.k_proj",
      "self_attn.v_proj",
      "self_attn.q_proj",
      "self_attn.o_proj",
      "mlp.up_proj",
      "mlp.gate_proj",
      "mlp.down_proj",
    ],
    opt: [
      "self_attn.k_proj",
      "self_attn.v_proj",
      "self_attn.q_proj",
      "self_attn.out_proj",
      "fc1",
      "fc2",
    ],
    gpt2: ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
    gpt_neox: [
      "attention.query_key_value",
      "attention.dense",
      "mlp.dense_h_to_4h",
      "mlp.dense_4h_to_h",
    ],
  };
  for (const [model, order] of Object.entries(expectOrder)) {
    const config = await readModelConfig(GOLDEN_MODELS + model);
    const ls = blockLinears(getArch(config.modelType), config);
    assertEquals(ls.length, order.length * config.numLayers);
    assertEquals(ls.filter((l) => l.layer === 1).map((l) => l.module), order);
    assertEquals(ls[0]!.name.startsWith(getArch(config.modelType).blockPrefix + ".0."), true);
  }
  const llama = await readModelConfig(GOLDEN_MODELS + "llama");
  const ls = blockLinears(getArch("llama"), llama).filter((l) => l.layer === 0);
  // q/k/v share one input, up/gate another: one Hessian each.
  assertEquals(new Set(ls.slice(0, 3).map((l) => l.input)).size, 1);
  assertEquals(ls[4]!.input, ls[5]!.input);
  assertEquals(ls.map((l) => l.group), [0, 0, 0, 1, 2, 2, 3]);
  const gpt2 = await readModelConfig(GOLDEN_MODELS + "gpt2");
  const c = blockLinears(getArch("gpt2"), gpt2)[0]!;
  assertEquals([c.layout, c.inFeatures, c.outFeatures], ["conv1d", 128, 384]);
});

Deno.test("classifyTensor() accepts GPT-2 hub names without 'transformer.' and skips buffers", () => {
  const spec = getArch("gpt2");
  assertEquals(classifyTensor(spec, "h.3.attn.c_attn.weight").role, "linear_weight");
  assertEquals(
    classifyTensor(spec, "h.3.attn.c_attn.weight").module,
    "transformer.h.3.attn.c_attn",
  );
  assertEquals(classifyTensor(spec, "wte.weight").role, "embedding");
  assertEquals(classifyTensor(spec, "h.0.attn.bias").role, "ignored");
  assertEquals(classifyTensor(spec, "lm_head.weight").role, "lm_head");
  assertEquals(classifyTensor(spec, "h.0.mystery.weight").role, "unknown");
});
