// Copyright 2026 the GPTQ toolkit authors. MIT license.
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import { DATA, GOLDEN_MODELS } from "./arch/_test_util.ts";
import { GptqError } from "./errors.ts";
import { formatInspectReport, inspectPath } from "./inspect.ts";
import { SafetensorsFile } from "./io/safetensors.ts";

async function fileFacts(
  path: string,
): Promise<{ params: number; tensors: number; bytes: number }> {
  using f = await SafetensorsFile.open(path);
  const infos = f.infos();
  return {
    params: infos.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0),
    tensors: infos.length,
    bytes: f.size,
  };
}

Deno.test("inspectPath() on llama-gptq-4bit-g32 reports the AutoGPTQ checkpoint exactly", async () => {
  const dir = GOLDEN_MODELS + "llama-gptq-4bit-g32";
  const r = await inspectPath(dir);
  assertEquals([r.kind, r.modelType, r.family, r.architecture], [
    "folder",
    "llama",
    "llama",
    "LlamaForCausalLM",
  ]);
  assertEquals([r.layers, r.hiddenSize, r.intermediateSize, r.heads, r.kvHeads], [
    2,
    128,
    352,
    4,
    2,
  ]);
  const q = r.quantization!;
  assertEquals(q.declared?.bits, 4);
  assertEquals(q.declared?.groupSize, 32);
  assertEquals(q.declared?.sym, true);
  assertEquals(q.declared?.descAct, false);
  assertEquals(q.declared?.staticGroups, false);
  assertEquals(q.declared?.checkpointFormat, "gptq");
  assertEquals([q.detected.bits, q.detected.groupSize, q.detected.trivialGIdx], [4, 32, true]);
  assertEquals(q.detected.zeroFormat, "gptq");
  const modules = ["k_proj", "v_proj", "q_proj", "o_proj", "up_proj", "gate_proj", "down_proj"];
  assertEquals(q.quantizedModules.length, 14);
  for (const layer of [0, 1]) {
    for (const m of modules) {
      const sub = ["up_proj", "gate_proj", "down_proj"].includes(m) ? "mlp" : "self_attn";
      assert(q.quantizedModules.includes(`model.layers.${layer}.${sub}.${m}`), `${layer} ${m}`);
    }
  }
  assertEquals(q.notQuantized, ["lm_head", "model.embed_tokens"]);
  // dtypes per group, as stored.
  const dt = Object.fromEntries(r.dtypes.map((g) => [g.group, g.dtypes]));
  assertEquals(dt, {
    embeddings: { F16: 1 },
    norms: { F16: 5 },
    lm_head: { F16: 1 },
    qweight: { I32: 14 },
    qzeros: { I32: 14 },
    scales: { F16: 14 },
    g_idx: { I32: 14 },
  });
  // Logical parameter count equals the unquantized golden llama's (same model before GPTQ).
  const plain = await fileFacts(GOLDEN_MODELS + "llama/model.safetensors");
  assertEquals(r.parameters.total, plain.params);
  const own = await fileFacts(dir + "/model.safetensors");
  assertEquals([r.tensorCount, r.totalBytes, r.files.length], [own.tensors, own.bytes, 1]);
  assertEquals(r.warnings, []);
  // JSON round trip (what --json prints).
  assertEquals(JSON.parse(JSON.stringify(r)), r);
  const text = formatInspectReport(r);
  for (
    const s of [
      "llama",
      "4-bit",
      "group 32",
      "sym",
      "act-order no",
      "declared gptq (v1), detected gptq (v1)",
    ]
  ) {
    assert(text.includes(s), `text mentions ${s}:\n${text}`);
  }
});

for (
  const [model, dtype, tied] of [
    ["llama", "F16", false],
    ["opt", "F16", true],
    ["gpt2", "F32", true],
    ["gpt_neox", "BF16", false],
  ] as const
) {
  Deno.test(`inspectPath() on the plain golden ${model}`, async () => {
    const r = await inspectPath(GOLDEN_MODELS + model);
    const facts = await fileFacts(`${GOLDEN_MODELS}${model}/model.safetensors`);
    assertEquals([r.family, r.layers, r.hiddenSize, r.vocabSize, r.tiedEmbeddings], [
      model,
      2,
      128,
      1024,
      tied,
    ]);
    assertEquals(r.quantization, null);
    assertEquals([r.parameters.total, r.parameters.quantized, r.tensorCount], [
      facts.params,
      0,
      facts.tensors,
    ]);
    assertEquals(r.totalBytes, facts.bytes);
    for (const g of r.dtypes) assertEquals(Object.keys(g.dtypes), [dtype], g.group);
    assertEquals(r.dtypes.some((g) => g.group === "other"), false);
    assert(formatInspectReport(r).includes("quantization           none"));
  });
}

Deno.test("inspectPath() on a single .safetensors file guesses the architecture from names", async () => {
  const r = await inspectPath(GOLDEN_MODELS + "llama-gptq-4bit-g32/model.safetensors");
  assertEquals([r.kind, r.family, r.modelType, r.layers, r.hiddenSize, r.vocabSize], [
    "file",
    "llama",
    null,
    2,
    128,
    1024,
  ]);
  const q = r.quantization!;
  assertEquals(q.declared, null);
  assertEquals([q.detected.bits, q.detected.groupSize, q.detected.zeroFormat], [4, 32, "gptq"]);
  assertEquals(q.quantizedModules.length, 14);
  const plain = await inspectPath(GOLDEN_MODELS + "gpt_neox/model.safetensors");
  assertEquals([plain.family, plain.layers, plain.quantization], ["gpt_neox", 2, null]);
  // A safetensors file with no known names: still sizes and dtypes.
  const g = await inspectPath(GOLDEN_MODELS + "llama/golden.safetensors");
  assertEquals([g.family, g.tensorCount, g.parameters.total], [null, 2, 96 * 1024 + 96]);
  assertEquals(g.dtypes, [{ group: "other", dtypes: { F32: 1, I32: 1 } }]);
});

Deno.test("inspectPath() reports an unsupported model_type but still describes its files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gptq_inspect_test_" });
  try {
    const c = JSON.parse(await Deno.readTextFile(GOLDEN_MODELS + "opt/config.json"));
    c.model_type = "bloom";
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(c));
    await Deno.copyFile(GOLDEN_MODELS + "opt/model.safetensors", `${dir}/model.safetensors`);
    const r = await inspectPath(dir);
    assertEquals([r.modelType, r.family, r.layers, r.tensorCount], ["bloom", null, 2, 36]);
    assert(r.warnings[0]!.includes("model_type 'bloom' is not supported"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("inspectPath() errors name the path", async () => {
  await assertRejects(
    inspectPath(DATA + "text/wikitext2_test.txt"),
    (e: unknown) =>
      e instanceof GptqError && e.code === "INVALID_ARGUMENT" &&
      e.file!.endsWith("wikitext2_test.txt"),
  );
  await assertRejects(
    inspectPath(DATA + "no/such/dir"),
    (e: unknown) => e instanceof GptqError && e.code === "FILE_NOT_FOUND",
  );
});
