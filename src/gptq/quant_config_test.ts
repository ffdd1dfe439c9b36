// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { GptqError } from "../errors.ts";
import {
  parseQuantizeConfig,
  type QuantizeConfig,
  QUANTIZER_ID,
  readQuantizeConfigFromFolder,
  toQuantizationConfigBlock,
  toQuantizeConfigJson,
} from "./quant_config.ts";

const DATA = new URL("../../../shared/data/", import.meta.url);
const CONFIGS = new URL("gptq-configs/", DATA);

function dir(name: string): string {
  return new URL(`${encodeURIComponent(name)}/`, CONFIGS).pathname.replace(/\/$/, "");
}

async function folders(): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(CONFIGS)) if (e.isDirectory) out.push(e.name);
  return out.sort();
}

Deno.test("every real config folder parses, from both files", async () => {
  const names = await folders();
  assert.equal(names.length, 6);
  for (const name of names) {
    const r = await readQuantizeConfigFromFolder(decodeURIComponent(dir(name)));
    assert.ok(r, name);
    assert.ok(r.source.endsWith("/quantize_config.json"), r.source);
    assert.equal(r.config.quant_method, "gptq");
    assert.equal(r.config.checkpoint_format, "gptq");
    assert.ok([3, 4].includes(r.config.bits));
    const raw = JSON.parse(await Deno.readTextFile(`${decodeURIComponent(dir(name))}/config.json`));
    if (raw.quantization_config) {
      const b = parseQuantizeConfig(raw.quantization_config, "config.json");
      assert.equal(b.bits, r.config.bits, name);
      assert.equal(b.group_size, r.config.group_size, name);
    }
  }
});

Deno.test("real field values", async () => {
  const get = async (n: string) =>
    (await readQuantizeConfigFromFolder(decodeURIComponent(dir(n))))!;
  const bark = await get("Barksdale27+1");
  assert.equal(bark.config.group_size, 128);
  assert.equal(bark.config.damp_percent, 0.1);
  assert.equal(bark.config.desc_act, false);
  assert.equal(bark.config.static_groups, false); // AutoGPTQ default
  assert.equal(bark.config.model_file_base_name, "model");
  assert.deepEqual(bark.warnings, []);

  const cesar = await get("CesarChaMal+Wizard-Vicuna-30B-Uncensored-GPTQ");
  assert.equal(cesar.config.group_size, -1);
  assert.equal(cesar.config.desc_act, true);

  const genz = await get("itdevwu+Genz-70b-GPTQ");
  assert.equal(genz.config.bits, 3);
  assert.equal(genz.config.group_size, -1);

  const kesh = await get("KeshavArvindh+Quantization-of-LLM-s");
  assert.equal(kesh.config.dataset, "wikitext2");
  assert.equal(kesh.config.model_seqlen, 4096);
  assert.equal(kesh.config.block_name_to_quantize, "model.layers");
  assert.deepEqual(kesh.config.module_name_preceding_first_block, [
    "model.embed_tokens",
    "model.embed_dropout",
  ]);
  assert.equal(kesh.config.use_cuda_fp16, true);
  assert.equal(kesh.config.use_exllama, true); // disable_exllama: false
  // config.json says disable_exllama: true.
  assert.equal(kesh.warnings.length, 1, kesh.warnings.join("\n"));
  assert.match(kesh.warnings[0]!, /disagree on use_exllama/);

  // config.json without quantization_config: quantize_config.json still read.
  const dec = await get("Decentralised-AI+wizard-mega-13B-GPTQ");
  assert.equal(dec.config.group_size, 128);
});

Deno.test("golden llama-gptq-4bit-g32 config", async () => {
  const folder = new URL("golden/models/llama-gptq-4bit-g32", DATA).pathname;
  const r = (await readQuantizeConfigFromFolder(folder))!;
  assert.equal(r.config.bits, 4);
  assert.equal(r.config.group_size, 32);
  assert.equal(r.config.sym, true);
  assert.equal(r.config.desc_act, false);
  assert.equal(r.config.damp_percent, 0.01);
  assert.equal(r.config.model_name_or_path, null);
  assert.equal(r.config.model_file_base_name, "model");
  assert.deepEqual(r.warnings, []);
});

Deno.test("config.json fallback and missing config", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    assert.equal(await readQuantizeConfigFromFolder(tmp), null);
    await Deno.writeTextFile(`${tmp}/config.json`, JSON.stringify({ model_type: "llama" }));
    assert.equal(await readQuantizeConfigFromFolder(tmp), null);
    await Deno.writeTextFile(
      `${tmp}/config.json`,
      JSON.stringify({
        quantization_config: { bits: 8, group_size: 64, sym: false, format: "gptq_v2" },
      }),
    );
    const r = (await readQuantizeConfigFromFolder(tmp))!;
    assert.equal(r.source, `${tmp}/config.json`);
    assert.equal(r.config.bits, 8);
    assert.equal(r.config.checkpoint_format, "gptq_v2");
    // quant_config.json (AutoAWQ-style names) beats config.json; disagreement warned.
    await Deno.writeTextFile(
      `${tmp}/quant_config.json`,
      JSON.stringify({ w_bit: 4, q_group_size: 64, sym: false, quant_method: "gptq" }),
    );
    const q = (await readQuantizeConfigFromFolder(tmp))!;
    assert.equal(q.source, `${tmp}/quant_config.json`);
    assert.equal(q.config.bits, 4);
    assert.equal(q.config.group_size, 64);
    assert.ok(q.warnings.some((w) => /disagree on bits/.test(w)), q.warnings.join("\n"));
    await Deno.writeTextFile(`${tmp}/quantize_config.json`, "{ not json");
    await assert.rejects(readQuantizeConfigFromFolder(tmp), (e) => {
      assert.ok(e instanceof GptqError);
      assert.equal(e.code, "QUANT_CONFIG");
      assert.match(e.message, /quantize_config\.json/);
      return true;
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("synonyms", () => {
  const a = parseQuantizeConfig({ w_bit: 3, q_group_size: 64, sym: true }, "f");
  assert.equal(a.bits, 3);
  assert.equal(a.group_size, 64);
  assert.deepEqual(a.warnings, []);
  assert.equal(
    parseQuantizeConfig({ bits: 4, sym: true, is_marlin_format: true }, "f").checkpoint_format,
    "marlin",
  );
  const m = parseQuantizeConfig({ bits: 4, sym: true, quant_method: "marlin" }, "f");
  assert.equal(m.quant_method, "gptq");
  assert.equal(m.checkpoint_format, "marlin");
  assert.equal(
    parseQuantizeConfig({ bits: 4, sym: true, format: "GPTQ_V2" }, "f").checkpoint_format,
    "gptq_v2",
  );
  assert.equal(
    parseQuantizeConfig({ bits: 4, sym: true, disable_exllama: true }, "f").use_exllama,
    false,
  );
  // GPTQModel v2.2 layout.
  const g = parseQuantizeConfig({
    bits: 4,
    dynamic: null,
    group_size: 128,
    desc_act: false,
    sym: false,
    lm_head: false,
    quant_method: "gptq",
    checkpoint_format: "gptq_v2",
    pack_dtype: "int32",
    meta: {
      quantizer: ["gptqmodel:2.2.0"],
      uri: "https://github.com/modelcloud/gptqmodel",
      damp_percent: 0.05,
      damp_auto_increment: 0.0025,
      static_groups: true,
      true_sequential: false,
      mse: 0.0,
    },
  }, "f");
  assert.equal(g.damp_percent, 0.05);
  assert.equal(g.damp_auto_increment, 0.0025);
  assert.equal(g.static_groups, true);
  assert.equal(g.true_sequential, false);
  assert.equal(g.sym, false);
  assert.equal(g.checkpoint_format, "gptq_v2");
  assert.deepEqual(g.meta, {
    quantizer: ["gptqmodel:2.2.0"],
    uri: "https://github.com/modelcloud/gptqmodel",
  });
  assert.deepEqual(g.warnings, []);
  // Unknown keys kept; missing sym warned.
  const u = parseQuantizeConfig({ bits: 2, group_size: 32, foo: [1, 2] }, "f");
  assert.deepEqual(u.extra, { foo: [1, 2] });
  assert.equal(u.sym, true);
  assert.match(u.warnings.join(), /'sym' is missing/);
  assert.equal(u.desc_act, true); // AutoGPTQ default
  assert.equal(u.damp_percent, 0.01);
});

Deno.test("validation errors name the file", () => {
  const bad: [unknown, RegExp][] = [
    [{ bits: 5 }, /bits is 5/],
    [{ bits: 4, group_size: 0 }, /group_size is 0/],
    [{ bits: 4, group_size: -2 }, /group_size is -2/],
    [{ bits: 4, quant_method: "awq" }, /quant_method is "awq"/],
    [{ bits: 4, damp_percent: 1.5 }, /damp_percent/],
    [{ bits: "4" }, /bits must be a number/],
    [{ bits: 4, sym: "yes" }, /sym must be a boolean/],
    [{ bits: 4, checkpoint_format: "exl2" }, /checkpoint_format "exl2" is unknown/],
    [{ w_bit: 4, q_group_size: 128, zero_point: true, version: "GEMM" }, /AWQ/],
    [[1, 2], /not a JSON object/],
  ];
  for (const [obj, re] of bad) {
    assert.throws(() => parseQuantizeConfig(obj, "q.json"), (e) => {
      assert.ok(e instanceof GptqError, String(e));
      assert.equal(e.code, "QUANT_CONFIG");
      assert.equal(e.file, "q.json");
      assert.match(e.message, re);
      return true;
    });
  }
});

function stripWarnings(c: QuantizeConfig): QuantizeConfig {
  return { ...c, warnings: [] };
}

Deno.test("write → parse round trips losslessly (both writers)", async () => {
  const sources: unknown[] = [
    { bits: 4, group_size: 128, sym: true, desc_act: false },
    {
      bits: 3,
      group_size: -1,
      damp_percent: 0.1,
      desc_act: true,
      static_groups: true,
      sym: false,
      true_sequential: false,
      checkpoint_format: "gptq_v2",
      model_name_or_path: "meta-llama/Llama-2-7b-hf",
      model_file_base_name: "model",
      dataset: ["some text", "more text"],
      model_seqlen: 2048,
      block_name_to_quantize: "model.layers",
      modules_in_block_to_quantize: [["self_attn.q_proj"], ["mlp.down_proj"]],
      use_exllama: false,
      exllama_config: { version: 2 },
      act_group_aware: true,
      dynamic: { "-:.*lm_head": {} },
      lm_head: false,
      mse: 2.4,
      damp_auto_increment: 0.0025,
      meta: { quantizer: ["gptqmodel:2.2.0"] },
      custom_key: { a: 1 },
    },
    { bits: 8, group_size: 32, sym: true, dataset: "tinystories" },
  ];
  for (const name of await folders()) {
    sources.push(
      JSON.parse(await Deno.readTextFile(`${decodeURIComponent(dir(name))}/quantize_config.json`)),
    );
  }
  for (const s of sources) {
    const c0 = parseQuantizeConfig(s, "src");
    for (const write of [toQuantizeConfigJson, toQuantizationConfigBlock]) {
      const j1 = JSON.parse(JSON.stringify(write(c0)));
      const c1 = parseQuantizeConfig(j1, "out");
      assert.deepEqual(c1.warnings, [], JSON.stringify(j1));
      // Every field survives; meta gains our quantizer id.
      const { meta: m0, extra: e0, ...rest0 } = stripWarnings(c0);
      const { meta: m1, extra: e1, ...rest1 } = c1;
      const expectRest = { ...rest0 } as Record<string, unknown>;
      if (expectRest.model_name_or_path === undefined) expectRest.model_name_or_path = null;
      if (expectRest.model_file_base_name === undefined) expectRest.model_file_base_name = null;
      assert.deepEqual({ ...rest1, warnings: [] }, expectRest);
      if (write === toQuantizeConfigJson) assert.deepEqual(e1, e0);
      assert.deepEqual((m1!.quantizer as string[]).at(-1), QUANTIZER_ID);
      assert.deepEqual({ ...m1, quantizer: undefined }, { ...(m0 ?? {}), quantizer: undefined });
      // And a second trip is the identity.
      assert.deepEqual(parseQuantizeConfig(JSON.parse(JSON.stringify(write(c1))), "out"), c1);
    }
  }
});

Deno.test("config.json block: keys transformers, AutoGPTQ and GPTQModel read", () => {
  const cfg = parseQuantizeConfig({
    bits: 4,
    group_size: 32,
    sym: false,
    checkpoint_format: "gptq_v2",
    dataset: "c4",
  }, "x");
  const b = toQuantizationConfigBlock(cfg);
  assert.equal(b.quant_method, "gptq");
  assert.equal(b.checkpoint_format, "gptq_v2");
  assert.equal(b.format, "gptq_v2");
  assert.equal(b.dataset, "c4");
  for (const k of ["bits", "group_size", "damp_percent", "desc_act", "sym", "true_sequential"]) {
    assert.ok(Object.hasOwn(b, k), k);
  }
  const q = toQuantizeConfigJson(cfg);
  assert.equal(q.checkpoint_format, "gptq_v2");
  assert.equal(q.quant_method, "gptq");
  assert.ok(!Object.hasOwn(q, "format"));
  // A dataset transformers would reject goes to meta in the block.
  const t = toQuantizationConfigBlock(
    parseQuantizeConfig({ bits: 4, sym: true, dataset: "my.txt" }, "x"),
  );
  assert.ok(!Object.hasOwn(t, "dataset"));
  assert.equal((t.meta as Record<string, unknown>).dataset, "my.txt");
});
