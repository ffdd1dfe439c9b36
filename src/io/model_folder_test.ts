// Copyright 2026 the GPTQ toolkit authors. MIT license.
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import { GOLDEN_MODELS } from "../arch/_test_util.ts";
import { GptqError } from "../errors.ts";
import { ModelFolder } from "./model_folder.ts";
import { SafetensorsFile } from "./safetensors.ts";

for (
  const [model, family, head] of [
    ["llama", "llama", "lm_head.weight"],
    ["opt", "opt", "model.decoder.embed_tokens.weight"],
    ["gpt2", "gpt2", "transformer.wte.weight"],
    ["gpt_neox", "gpt_neox", "embed_out.weight"],
  ] as const
) {
  Deno.test(`ModelFolder.open() validates the golden ${model} folder`, async () => {
    using m = await ModelFolder.open(GOLDEN_MODELS + model);
    assertEquals([m.arch.family, m.config.numLayers, m.quant, m.warnings], [family, 2, null, []]);
    assertEquals(m.lmHeadName(), head);
    assertEquals(m.quantizedModules(), []);
    // Weights read through the folder equal the file's own bytes.
    using f = await SafetensorsFile.open(`${GOLDEN_MODELS}${model}/model.safetensors`);
    assertEquals(await m.readFloat32(m.arch.embedding), await f.readFloat32(m.arch.embedding));
    const tok = await m.tokenizer();
    assertEquals([tok.vocabSize, tok.bosTokenId, tok.eosTokenIds], [1024, 0, [0]]);
    assert((await m.tokenizer()) === tok, "tokenizer is cached");
  });
}

Deno.test("ModelFolder.open() reads the GPTQ golden: quant config and quantized modules", async () => {
  using m = await ModelFolder.open(GOLDEN_MODELS + "llama-gptq-4bit-g32");
  assertEquals(m.quant?.config.bits, 4);
  assertEquals(m.quant?.config.group_size, 32);
  assertEquals(m.quant?.config.sym, true);
  assertEquals(m.quant?.config.desc_act, false);
  const q = m.quantizedModules();
  assertEquals(q.length, 14);
  assertEquals(q.slice(0, 7), [
    "model.layers.0.self_attn.k_proj",
    "model.layers.0.self_attn.v_proj",
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.self_attn.o_proj",
    "model.layers.0.mlp.up_proj",
    "model.layers.0.mlp.gate_proj",
    "model.layers.0.mlp.down_proj",
  ]);
  assert(m.isQuantized("model.layers.1.mlp.down_proj"));
  assertEquals(m.info("model.layers.1.mlp.down_proj.qweight").shape, [44, 128]);
  assertEquals(m.lmHeadName(), "lm_head.weight");
});

async function copyFolder(src: string, edit: (dir: string) => Promise<void>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "gptq_model_folder_test_" });
  for await (const e of Deno.readDir(src)) {
    if (e.isFile) await Deno.copyFile(`${src}/${e.name}`, `${dir}/${e.name}`);
  }
  await Deno.chmod(dir, 0o755);
  for await (const e of Deno.readDir(dir)) await Deno.chmod(`${dir}/${e.name}`, 0o644);
  await edit(dir);
  return dir;
}

Deno.test("ModelFolder.open() rejects a config that does not match the weights", async () => {
  const dir = await copyFolder(GOLDEN_MODELS + "llama", async (d) => {
    const c = JSON.parse(await Deno.readTextFile(`${d}/config.json`));
    c.intermediate_size = 256;
    await Deno.writeTextFile(`${d}/config.json`, JSON.stringify(c));
  });
  try {
    await assertRejects(
      ModelFolder.open(dir),
      (e: unknown) =>
        e instanceof GptqError && e.code === "SHAPE" &&
        e.tensor === "model.layers.0.mlp.up_proj.weight" &&
        e.message.includes("[352,128]") && e.message.includes("[256,128]"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ModelFolder.open() names the unsupported model_type and a missing layer", async () => {
  const phi = await copyFolder(GOLDEN_MODELS + "llama", async (d) => {
    const c = JSON.parse(await Deno.readTextFile(`${d}/config.json`));
    c.model_type = "phi";
    await Deno.writeTextFile(`${d}/config.json`, JSON.stringify(c));
  });
  const deep = await copyFolder(GOLDEN_MODELS + "llama", async (d) => {
    const c = JSON.parse(await Deno.readTextFile(`${d}/config.json`));
    c.num_hidden_layers = 3;
    await Deno.writeTextFile(`${d}/config.json`, JSON.stringify(c));
  });
  try {
    await assertRejects(
      ModelFolder.open(phi),
      (e: unknown) =>
        e instanceof GptqError && e.code === "UNSUPPORTED_ARCHITECTURE" &&
        e.file === `${phi}/config.json`,
    );
    await assertRejects(
      ModelFolder.open(deep),
      (e: unknown) =>
        e instanceof GptqError && e.code === "SAFETENSORS_MISSING_TENSOR" &&
        e.message.includes("declares 3 layers") && e.message.includes("block 2 is missing"),
    );
  } finally {
    await Deno.remove(phi, { recursive: true });
    await Deno.remove(deep, { recursive: true });
  }
});

Deno.test("ModelFolder.open() requires a quant config when the weights are GPTQ", async () => {
  const dir = await copyFolder(GOLDEN_MODELS + "llama-gptq-4bit-g32", async (d) => {
    await Deno.remove(`${d}/quantize_config.json`);
    const c = JSON.parse(await Deno.readTextFile(`${d}/config.json`));
    delete c.quantization_config;
    await Deno.writeTextFile(`${d}/config.json`, JSON.stringify(c));
  });
  try {
    await assertRejects(
      ModelFolder.open(dir),
      (e: unknown) => e instanceof GptqError && e.code === "QUANT_CONFIG" && e.file === dir,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
