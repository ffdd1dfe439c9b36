// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The typed API as a library user meets it (issue 16): `GPTQConfig` with
 * transformers' names (a list of strings as `dataset`,
 * `modules_in_block_to_quantize`, `format`, the accepted-and-explained
 * knobs), the API's default backend, `GenerateStats` reuse, `Model.backend`,
 * permission errors, the progress bar, `inspect`'s group size, and the CLI's
 * `--help`.
 *
 * Model: the golden tiny Llama of `../shared/data/golden/models/llama`
 * (2 blocks, hidden 64, vocab 1024, saved by transformers).
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  type GenerateStats,
  type GPTQConfig,
  GptqError,
  inspectPath,
  loadModel,
  quantizeModel,
  type QuantizeReport,
} from "../mod.ts";
import { fsError } from "../src/errors.ts";
import { startProgress } from "../src/cli/_progress.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const MODEL = fileURLToPath(new URL("../../shared/data/golden/models/llama", import.meta.url));
const TEXTS = [
  "auto-gptq is an easy-to-use model quantization library with user-friendly apis, based on GPTQ algorithm.",
  "The tower is 324 metres tall, about the same height as an 81-storey building, and the tallest structure in Paris.",
  "",
];

async function quantize(cfg: Partial<GPTQConfig>, name: string): Promise<QuantizeReport> {
  const dir = await Deno.makeTempDir({ prefix: `gptq-api-${name}-` });
  try {
    return await quantizeModel(MODEL, `${dir}/out`, {
      bits: 4,
      group_size: 32,
      dataset: TEXTS,
      model_seqlen: 32,
      ...cfg,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("GPTQConfig: a list of strings is a calibration set; the default backend is WASM", async () => {
  const report = await quantize({}, "texts");
  // Two non-empty texts, each tokenized on its own and truncated to 32 tokens.
  assert.equal(report.calibration.samples, 2);
  assert.equal(report.calibration.tokens, 64);
  assert.match(report.calibration.method, /2 texts, each tokenized and truncated to 32 tokens/);
  assert.equal(report.modules.filter((m) => m.quantized).length, 14);
  // The API quantizes on the fastest CPU backend, as the CLI does (not the TypeScript reference).
  assert.match(report.backends.forward, /^wasm/);
  assert.match(report.backends.solver, /wasm/);
});

Deno.test("GPTQConfig: modules_in_block_to_quantize sets the groups; the rest stay full precision", async () => {
  const groups = [["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"], [
    "self_attn.o_proj",
  ]];
  const report = await quantize({ modules_in_block_to_quantize: groups }, "groups");
  const quantized = report.modules.filter((m) => m.quantized).map((m) => m.name);
  assert.deepEqual(quantized.filter((n) => n.startsWith("model.layers.0.")), [
    "model.layers.0.self_attn.k_proj",
    "model.layers.0.self_attn.v_proj",
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.self_attn.o_proj",
  ]);
  const kept = report.modules.filter((m) => !m.quantized);
  assert.equal(kept.length, 6); // 3 MLP linears × 2 blocks
  for (const m of kept) assert.equal(m.reason, "not listed in modules_in_block_to_quantize");
  assert.deepEqual(
    [...(report.config.modules_to_not_convert as string[])].sort(),
    ["mlp.down_proj", "mlp.gate_proj", "mlp.up_proj"],
  );
});

Deno.test("GPTQConfig: format, block_name_to_quantize and the compatibility knobs", async () => {
  const ok = await quantize({
    format: "gptq_v2",
    block_name_to_quantize: "model.layers",
    batch_size: 4,
    pad_token_id: 0,
    cache_block_outputs: true,
    use_exllama: false,
    exllama_config: { version: 2 },
    modules_in_block_to_quantize: [["mlp.down_proj"]],
  }, "knobs");
  assert.equal(ok.config.checkpoint_format, "gptq_v2");
  const bad: [Partial<GPTQConfig>, RegExp][] = [
    [{ block_name_to_quantize: "transformer.h" }, /not this model's block prefix/],
    [{ format: "gptq", checkpoint_format: "gptq_v2" }, /disagree/],
    [{ modules_in_block_to_quantize: [["self_attn.c_attn"]] }, /do not have/],
    [{ modules_in_block_to_quantize: [["mlp.up_proj"], ["mlp.up_proj"]] }, /twice/],
    [{ batch_size: 0 }, /batch_size/],
    [{ cache_block_outputs: false }, /cache_block_outputs/],
    [{ dataset: ["", ""] }, /every text of the calibration list is empty/],
  ];
  for (const [cfg, re] of bad) {
    await assert.rejects(quantize(cfg, "bad"), (e: unknown) => {
      assert.ok(e instanceof GptqError, String(e));
      assert.match(e.message, re);
      return true;
    });
  }
});

Deno.test("Model: backend label once; GenerateStats reset on reuse and filled from {}", async () => {
  const model = await loadModel(MODEL, { backend: "wasm", threads: 1 });
  try {
    assert.doesNotMatch(model.backend, /^backend:/);
    const name = model.backend.split(" ")[0]!;
    assert.equal(model.backend.split(name).length - 1, 1, model.backend);
    const stats = {} as GenerateStats;
    const noEos = { temperature: 0, eos_token_id: [] };
    for await (const _ of model.generate("The tower", { max_new_tokens: 5, ...noEos }, stats)) {
      // streamed
    }
    assert.equal(stats.newTokens, 5);
    assert.equal(stats.stop, "length");
    for await (const _ of model.generate("The", { max_new_tokens: 3, ...noEos }, stats)) {
      // streamed
    }
    assert.equal(stats.newTokens, 3); // not 5 + 3
    assert.equal(stats.promptTokens > 0, true);
  } finally {
    model.close();
  }
});

Deno.test("a missing read permission is PERMISSION_DENIED, not FILE_NOT_FOUND", async () => {
  const e = fsError(new Deno.errors.NotCapable("no read"), "x.json");
  assert.ok(e instanceof GptqError);
  assert.equal(e.code, "PERMISSION_DENIED");
  assert.equal(
    (fsError(new Deno.errors.NotFound("gone"), "x.json") as GptqError).code,
    "FILE_NOT_FOUND",
  );
  // For real: the CLI may read its own sources but not the model.
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-read=${ROOT}`,
      "--allow-env",
      "--allow-sys",
      `${ROOT}cli.ts`,
      "inspect",
      MODEL,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const err = new TextDecoder().decode(r.stderr);
  assert.notEqual(r.code, 0);
  assert.match(err, /permission denied/i);
  assert.doesNotMatch(err, /no such file/i);
});

Deno.test("progress bar: no absurd first rate; the final line once when not a terminal", () => {
  const lines: string[] = [];
  const bar = startProgress("quantize", 3, "blocks", (t) => lines.push(t), false);
  bar.update(1);
  bar.update(2);
  bar.update(3);
  bar.done();
  const finals = lines.filter((l) => l.includes(" 3/3 "));
  assert.equal(finals.length, 1, lines.join(""));
  // Within the first second there is no rate to speak of.
  for (const l of lines) assert.match(l, / -- blocks\/s /);
});

Deno.test("inspect: the group size comes from g_idx (33, not ceil(K/G) = 32)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gptq-api-g33-" });
  try {
    await quantizeModel(MODEL, `${dir}/q`, {
      bits: 4,
      group_size: 33,
      dataset: TEXTS,
      model_seqlen: 32,
    });
    // The weights file alone (no config): inspect must detect the group size.
    const rep = await inspectPath(`${dir}/q/model.safetensors`);
    assert.equal(rep.quantization?.detected.groupSize, 33);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli --help: quantize names its datasets and every option; cli.ts lists every command", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cli.ts`, "quantize", "--help"],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const help = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  for (
    const s of ["wikitext2", "c4-new", "--threads", "--max-shard-size", "--backend", "--method"]
  ) {
    assert.ok(help.includes(s), `quantize --help lacks ${s}`);
  }
  const bad = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}cli.ts`,
      "quantize",
      MODEL,
      "--out",
      "/nonexistent/x",
      "--dataset",
      "x.txt",
      "--method",
      "awq",
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assert.match(new TextDecoder().decode(bad.stderr), /--method must be gptq or rtn/);
  const doc = await Deno.readTextFile(`${ROOT}cli.ts`);
  for (const c of ["quantize", "generate", "eval", "serve", "inspect", "convert"]) {
    assert.match(doc, new RegExp("`" + c), `cli.ts's module doc lacks ${c}`);
  }
});
