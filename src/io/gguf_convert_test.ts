// Copyright 2026 the GPTQ toolkit authors. MIT license.
// GGUF import end to end: SmolLM2-135M (a real Q4_1/Q8_0 GGUF) against transformers' reference
// logits, greedy text, token count and chat template; two tiny fixture models (Llama with a
// sentencepiece vocabulary, Qwen2 with a byte-level one) against a numpy forward and transformers'
// tokenizer; bad inputs through the API and the CLI.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../errors.ts";
import { createWasmKernels } from "../backends/wasm/wasm_kernels.ts";
import { hostBackend } from "../backends/host.ts";
import type { Kernels } from "../backends/host_kernels.ts";
import { CausalLM } from "../runtime/model.ts";
import { generateTokens } from "../runtime/generate.ts";
import { loadChatTemplate } from "../serve/chat_template.ts";
import { main } from "../cli/_main.ts";
import { convertGguf } from "./gguf_convert.ts";
import { GgufReader, GgufType } from "./gguf.ts";
import { rewriteGguf, zeroTensorBytes } from "./_gguf_test_util.ts";
import { SafetensorsFile } from "./safetensors.ts";
import { readModelConfig } from "./hf_config.ts";

const DATA = fileURLToPath(new URL("../../../shared/data/", import.meta.url));
const FIXTURES = fileURLToPath(new URL("../../tests/fixtures/gguf/", import.meta.url));
const SMOL = `${DATA}smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`;

let kernels: Kernels | null = null;
async function load(dir: string): Promise<CausalLM> {
  kernels ??= await createWasmKernels();
  return await CausalLM.load(dir, { backend: hostBackend(kernels) });
}

function relL2(got: Float32Array, want: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    const d = got[i]! - want[i]!;
    num += d * d;
    den += want[i]! * want[i]!;
  }
  return Math.sqrt(num / den);
}

/** Asserts nothing named `out` or `out.partial-*` exists. */
async function assertNoOutput(out: string): Promise<void> {
  const dir = out.slice(0, out.lastIndexOf("/"));
  const base = out.slice(out.lastIndexOf("/") + 1);
  for await (const e of Deno.readDir(dir)) {
    assert.ok(!e.name.startsWith(base), `left behind: ${e.name}`);
  }
}

Deno.test("gguf convert: SmolLM2-135M Q4_1 matches transformers' logits, greedy text, tokens, chat template", async (t) => {
  const tmp = await Deno.makeTempDir();
  const dir = `${tmp}/smollm2`;
  try {
    let t0 = performance.now();
    const report = await convertGguf(SMOL, dir);
    console.log(`convert ${(performance.now() - t0).toFixed(0)} ms`);
    t0 = performance.now();
    assert.deepEqual(report.sourceTypes, { Q8_0: 1, F32: 61, Q4_1: 210 });
    assert.equal(report.parameters, 134_515_008);
    assert.equal(report.tensors, 272);
    const cfg = await readModelConfig(dir);
    assert.equal(cfg.modelType, "llama");
    assert.equal(cfg.numLayers, 30);
    assert.equal(cfg.numKvHeads, 3);
    assert.equal(cfg.headDim, 64);
    assert.equal(cfg.ropeTheta, 100000);
    assert.equal(cfg.tieWordEmbeddings, true);
    assert.equal(cfg.maxPositions, 8192);
    assert.deepEqual([cfg.bosTokenId, cfg.eosTokenIds], [1, [2]]);
    const lm = await load(dir);
    console.log(`load ${(performance.now() - t0).toFixed(0)} ms`);
    try {
      const tok = await lm.folder.tokenizer();
      using golden = await SafetensorsFile.open(`${DATA}smollm2/golden.safetensors`);
      const ids = Array.from(await golden.readFloat32("input_ids"));

      await t.step("logits on the golden input_ids: relative L2 <= 1e-4", async () => {
        const want = await golden.readFloat32("logits");
        const got = await lm.forward(ids, lm.newCache(ids.length));
        const err = relL2(got, want);
        console.log(`SmolLM2 logits relative L2 vs transformers fp32: ${err.toExponential(3)}`);
        assert.ok(err <= 1e-4, `relative L2 ${err}`);
      });

      await t.step("greedy continuation equals the data README's", async () => {
        const prompt = tok.encode("Once upon a time, there was a", { addSpecialTokens: false });
        const got = await Array.fromAsync(
          generateTokens(lm, prompt, { temperature: 0, max_new_tokens: 40 }),
        );
        assert.equal(got.length, 40);
        assert.equal(
          tok.decode(got),
          " small town nestled in the heart of a bustling city. The town was known for its " +
            "vibrant arts and crafts, with a talented craftswoman named Elara who was famous " +
            "for her intricate and beautiful jewelry.",
        );
      });

      await t.step(
        "WikiText-2 test encodes to 304,986 tokens; the first 32 are the golden ids",
        async () => {
          const text = await Deno.readTextFile(`${DATA}text/wikitext2_test.txt`);
          const enc = tok.encode(text);
          assert.equal(enc.length, 304_986);
          assert.deepEqual(enc.slice(0, 32), ids);
        },
      );

      await t.step("chat template renders as transformers' apply_chat_template", async () => {
        const tpl = await loadChatTemplate(dir);
        assert.ok(tpl);
        const fixture = JSON.parse(
          await Deno.readTextFile(`${FIXTURES}chat_template_expected.json`),
        );
        for (const c of fixture.cases) {
          const got = tpl.render(c.messages, { addGenerationPrompt: c.add_generation_prompt });
          assert.equal(got, c.expected);
        }
        assert.equal(tok.encode("<|im_start|>user", { addSpecialTokens: false })[0], 1);
      });
    } finally {
      lm.close();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

interface TinyModel {
  file: string;
  vocab_size: number;
  input_ids: number[];
  logits_file: string;
  tokenizer: {
    config: Record<string, unknown>;
    encodings: { text: string; ids: number[]; ids_with_special: number[] }[];
  };
}

const tiny: Record<string, TinyModel> = JSON.parse(
  await Deno.readTextFile(`${FIXTURES}tiny_models.json`),
).models;

for (const kind of ["llama", "qwen2"] as const) {
  Deno.test(`gguf convert: tiny ${kind} matches a numpy forward and transformers' tokenizer`, async () => {
    const m = tiny[kind]!;
    const tmp = await Deno.makeTempDir();
    try {
      const dir = `${tmp}/out`;
      const r = await convertGguf(`${FIXTURES}${m.file}`, dir, { dtype: "F32" });
      assert.equal(r.architecture, kind);
      assert.equal(r.tokenizer.model, kind === "llama" ? "llama" : "gpt2");
      const cfg = await readModelConfig(dir);
      assert.equal(cfg.tieWordEmbeddings, kind === "qwen2");
      assert.equal(cfg.ropeTheta, kind === "llama" ? 10000 : 1000000);
      const lm = await load(dir);
      try {
        const got = await lm.forward(m.input_ids, lm.newCache(m.input_ids.length));
        const bytes = await Deno.readFile(`${FIXTURES}${m.logits_file}`);
        const want = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
        assert.equal(want.length, m.input_ids.length * m.vocab_size);
        const err = relL2(got, want);
        assert.ok(err < 1e-5, `relative L2 ${err}`);
        const tok = await lm.folder.tokenizer();
        for (const e of m.tokenizer.encodings) {
          assert.deepEqual(tok.encode(e.text, { addSpecialTokens: false }), e.ids, e.text);
          const bos = m.tokenizer.config.add_bos_token ? [1] : [];
          assert.deepEqual(tok.encode(e.text), [...bos, ...e.ids_with_special], e.text);
        }
      } finally {
        lm.close();
      }
      const tc = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`));
      for (const [k, v] of Object.entries(m.tokenizer.config)) assert.deepEqual(tc[k], v, k);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  });
}

/** Writes an edited copy of the tiny llama fixture and returns its path. */
async function edited(tmp: string, edits: Parameters<typeof rewriteGguf>[2]): Promise<string> {
  using r = await GgufReader.open(`${FIXTURES}tiny_llama.gguf`);
  const path = `${tmp}/edited-${crypto.randomUUID()}.gguf`;
  await Deno.writeFile(path, await rewriteGguf(r.header, (n) => r.readRaw(n), edits));
  return path;
}

Deno.test("gguf convert: bad inputs are one-line typed errors and leave no output", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const out = `${tmp}/out`;
    const expectFail = async (file: string, code: string, ...parts: string[]) => {
      const e = await convertGguf(file, out).then(() => null, (e) => e);
      assert.ok(e instanceof GptqError, `not a GptqError: ${e?.stack ?? e}`);
      assert.equal(e.code, code, e.message);
      assert.ok(!e.message.includes("\n"));
      for (const p of parts) assert.ok(e.message.includes(p), `'${p}' not in ${e.message}`);
      await assertNoOutput(out);
    };
    const whole = await Deno.readFile(`${FIXTURES}tiny_llama.gguf`);
    const cut = `${tmp}/cut.gguf`;
    await Deno.writeFile(cut, whole.subarray(0, whole.length - 5000));
    await expectFail(cut, "GGUF", cut, "runs past the end");
    const arch = { "general.architecture": { type: GgufType.STRING, value: "gpt2" } };
    await expectFail(await edited(tmp, { set: arch }), "UNSUPPORTED_ARCHITECTURE", "'gpt2'");
    const iq = { "blk.1.ffn_up.weight": { type: 20, data: zeroTensorBytes(20, 128 * 64) } };
    await expectFail(
      await edited(tmp, { retype: iq }),
      "UNSUPPORTED_FORMAT",
      "blk.1.ffn_up.weight",
      "IQ4_NL",
    );
    await expectFail(await edited(tmp, { drop: ["blk.1.ffn_down.weight"] }), "GGUF", "missing");
    const moe = [{
      name: "blk.0.ffn_gate_exps.weight",
      ne: [64, 8],
      type: 0,
      data: new Uint8Array(2048),
    }];
    await expectFail(await edited(tmp, { add: moe }), "UNSUPPORTED_FORMAT", "ffn_gate_exps");
    const ffn = { "llama.feed_forward_length": { type: GgufType.UINT32, value: 96 } };
    await expectFail(await edited(tmp, { set: ffn }), "SHAPE", "blk.0.ffn_gate.weight", "[128,64]");
    const noTok = { "tokenizer.ggml.model": { type: GgufType.STRING, value: "rwkv" } };
    await expectFail(await edited(tmp, { set: noTok }), "TOKENIZER", "rwkv");
    await expectFail(`${tmp}/nope.gguf`, "FILE_NOT_FOUND", "nope.gguf");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gguf convert: Llama-3 rope_freqs become rope_scaling; other factors are refused", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // head_dim 16 and theta 1e8 give wavelengths below 2048, between 2048 and 8192 and above.
    const theta = { "llama.rope.freq_base": { type: GgufType.FLOAT32, value: 1e8 } };
    const freqs = (data: Uint8Array) => [{ name: "rope_freqs.weight", ne: [8], type: 0, data }];
    const file = await edited(tmp, { set: theta, add: freqs(llama3Factors(1e8, 16, 8)) });
    const r = await convertGguf(file, `${tmp}/ok`);
    assert.deepEqual(r.params.ropeScaling, {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    });
    const cfg = await readModelConfig(`${tmp}/ok`);
    assert.equal(cfg.ropeScaling?.type, "llama3");
    const wrong = llama3Factors(1e8, 16, 8);
    new Float32Array(wrong.buffer)[0] = 7;
    const bad = await edited(tmp, { set: theta, add: freqs(wrong) });
    const e = await convertGguf(bad, `${tmp}/bad`).then(() => null, (e) => e);
    assert.ok(e instanceof GptqError && e.code === "UNSUPPORTED_FORMAT", String(e));
    assert.ok(e.message.includes("rope_freqs.weight"));
    await assertNoOutput(`${tmp}/bad`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/** llama.cpp's rope_freqs for Llama-3 scaling (factor, low 1, high 4, original 8192). */
function llama3Factors(theta: number, headDim: number, factor: number): Uint8Array {
  const f = new Float32Array(headDim / 2);
  for (let i = 0; i < f.length; i++) {
    const inv = 1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim)));
    const wavelen = (2 * Math.PI) / inv;
    if (wavelen < 8192 / 4) f[i] = 1;
    else if (wavelen > 8192) f[i] = factor;
    else {
      const smooth = (8192 / wavelen - 1) / 3;
      f[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return new Uint8Array(f.buffer);
}

Deno.test("gguf convert: the CLI writes a loadable folder, prints --json, and fails in one line", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const run = async (...argv: string[]) => {
      let stdout = "", stderr = "";
      const code = await main(argv, { stdout: (s) => stdout += s, stderr: (s) => stderr += s });
      return { code, stdout, stderr };
    };
    const out = `${tmp}/tiny`;
    const file = `${FIXTURES}tiny_qwen2.gguf`;
    let r = await run("convert", "gguf", file, "--out", out, "--dtype", "bf16", "--json");
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.dtype, "BF16");
    assert.equal(report.architecture, "qwen2");
    using st = await SafetensorsFile.open(`${out}/model.safetensors`);
    assert.equal(st.info("model.layers.0.self_attn.q_proj.bias").dtype, "BF16");
    r = await run("convert", "gguf", file, "--out", out);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: .*already exists.*--force.*\n$/);
    r = await run("convert", "gguf", file, "--out", out, "--force", "--dtype", "F16");
    assert.equal(r.code, 0, r.stderr);
    r = await run("generate", out, "--prompt", "hi", "--max-new-tokens", "3", "--backend", "wasm");
    assert.equal(r.code, 0, r.stderr);
    const whole = await Deno.readFile(file);
    await Deno.writeFile(`${tmp}/cut.gguf`, whole.subarray(0, whole.length >> 1));
    const arch = { "general.architecture": { type: GgufType.STRING, value: "mamba" } };
    const iq = { "blk.0.ffn_up.weight": { type: 20, data: zeroTensorBytes(20, 128 * 64) } };
    for (
      const [bad, code] of [
        [`${FIXTURES}dequant.gguf`, "GGUF"],
        [`${tmp}/cut.gguf`, "GGUF"],
        [await edited(tmp, { set: arch }), "UNSUPPORTED_ARCHITECTURE"],
        [await edited(tmp, { retype: iq }), "UNSUPPORTED_FORMAT"],
      ]
    ) {
      r = await run("convert", "gguf", bad!, "--out", `${tmp}/x`, "--json");
      assert.equal(r.code, 1, bad);
      assert.match(r.stderr, /^error: [^\n]+\n$/);
      assert.equal(JSON.parse(r.stdout).error.code, code);
      await assertNoOutput(`${tmp}/x`);
    }
    r = await run("convert", "gguf", "--out", `${tmp}/y`);
    assert.equal(r.code, 2);
    r = await run("convert", "gguf", file, "--out", `${tmp}/y`, "--dtype", "q4");
    assert.equal(r.code, 2);
    r = await run("convert", "--help");
    assert.equal(r.code, 0);
    assert.match(r.stdout, /convert gguf .*\.gguf --out/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
