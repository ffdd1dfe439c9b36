// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Issue 15, loader cases 1–7: each hostile model folder found by fuzzing
 * (huge layer counts, huge token ids, bad shard names, a huge head_dim,
 * unbounded metadata reads, multi-line JSON errors, silently accepted bad
 * values) ends in a one-line typed {@linkcode GptqError} within a time
 * bound. Folders are copies of the real golden models with one edit.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError, type GptqErrorCode } from "../src/errors.ts";
import { readQuantizeConfigFromFolder } from "../src/gptq/quant_config.ts";
import { inspectPath } from "../src/inspect.ts";
import { loadModel } from "../src/load_model.ts";
import { readModelConfig } from "../src/io/hf_config.ts";
import { ModelFolder } from "../src/io/model_folder.ts";
import { TextTokenizer } from "../src/io/tokenizer.ts";

const MODELS = fileURLToPath(new URL("../../shared/data/golden/models/", import.meta.url));

type Json = Record<string, unknown>;

/** A writable copy of a golden model folder, edited by `edit`. */
async function copyModel(model: string, edit: (dir: string) => Promise<void>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "gptq_hardening_" });
  for await (const e of Deno.readDir(MODELS + model)) {
    if (e.isFile) await Deno.copyFile(`${MODELS}${model}/${e.name}`, `${dir}/${e.name}`);
  }
  for await (const e of Deno.readDir(dir)) await Deno.chmod(`${dir}/${e.name}`, 0o644);
  await edit(dir);
  return dir;
}

async function editJson(path: string, f: (j: Json) => void): Promise<void> {
  const j = JSON.parse(await Deno.readTextFile(path)) as Json;
  f(j);
  await Deno.writeTextFile(path, JSON.stringify(j, null, 2));
}

/** Rewrites a safetensors file's header (same data section). */
async function editHeader(path: string, f: (h: Record<string, Json>) => void): Promise<void> {
  const b = await Deno.readFile(path);
  const n = Number(new DataView(b.buffer).getBigUint64(0, true));
  const h = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n)));
  f(h);
  const json = new TextEncoder().encode(JSON.stringify(h));
  const out = new Uint8Array(8 + json.length + b.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(b.subarray(8 + n), 8 + json.length);
  await Deno.writeFile(path, out);
}

/** Runs `f`, which must fail with a one-line GptqError of `code` within `ms`. */
async function failsTyped(
  f: () => Promise<unknown>,
  code: GptqErrorCode,
  match: RegExp,
  ms = 3000,
): Promise<GptqError> {
  const t0 = performance.now();
  let err: unknown = null;
  try {
    await f();
  } catch (e) {
    err = e;
  }
  const took = performance.now() - t0;
  assert.ok(err instanceof GptqError, `expected a GptqError, got ${err}`);
  assert.equal(err.code, code, err.message);
  assert.match(err.message, match);
  assert.ok(!/[\r\n]/.test(err.message), `message is not one line: ${JSON.stringify(err.message)}`);
  assert.ok(took < ms, `took ${took.toFixed(0)} ms (limit ${ms})`);
  return err;
}

async function withModel(
  model: string,
  edit: (dir: string) => Promise<void>,
  check: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await copyModel(model, edit);
  try {
    await check(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("case 1: a huge layer count fails fast, before any per-layer work", async () => {
  // Under the config bound: checked against the blocks the weights hold (was quadratic).
  for (const layers of [16384, 4000]) {
    await withModel("llama", (d) =>
      editJson(`${d}/config.json`, (j) => {
        j.num_hidden_layers = layers;
      }), async (d) => {
      await failsTyped(
        () => ModelFolder.open(d),
        "SAFETENSORS_MISSING_TENSOR",
        new RegExp(`declares ${layers} layers but the weights hold blocks up to 1; block 2`),
        1000,
      );
      await failsTyped(() => inspectPath(d), "SAFETENSORS_MISSING_TENSOR", /block 2 is missing/);
    });
  }
  // Over the bound: refused by the config reader.
  for (const layers of [65536, 2 ** 31]) {
    await withModel("gpt2", (d) =>
      editJson(`${d}/config.json`, (j) => {
        j.n_layer = layers;
      }), async (d) => {
      await failsTyped(
        () => ModelFolder.open(d),
        "CONFIG",
        /'n_layer' is \d+, expected .* at most/,
      );
    });
  }
});

Deno.test("case 2: huge token ids in tokenizer.json are refused before the library walks them", async () => {
  const edits: [string, (j: Json) => void][] = [
    ["added_tokens 1e9", (j) => {
      (j.added_tokens as Json[]).push({
        id: 1e9,
        content: "<big>",
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      });
    }],
    ["vocab 2^31", (j) => {
      ((j.model as Json).vocab as Json)["Ġthe"] = 2 ** 31;
    }],
  ];
  for (const [what, edit] of edits) {
    await withModel("llama", (d) => editJson(`${d}/tokenizer.json`, edit), async (d) => {
      const e = await failsTyped(
        () => TextTokenizer.fromFolder(d),
        "TOKENIZER",
        /token id \d+ is far beyond the vocabulary's/,
        2000,
      );
      assert.match(e.message, /tokenizer\.json/, what);
    });
  }
});

Deno.test("case 3: shard names in model.safetensors.index.json must be plain file names", async () => {
  const bad = [
    ["a".repeat(300) + ".safetensors", /longer than 255 bytes/],
    ["x\u0000y.safetensors", /control character/],
    ["model.safetensors/", /is a path/],
    ["../model.safetensors", /outside the folder/],
    ["/etc/passwd", /outside the folder/],
    ["sub/model.safetensors", /is a path/],
    ["..", /not a file name/],
    ["model.bin", /not a \.safetensors file/],
  ] as const;
  for (const [name, re] of bad) {
    await withModel("llama", async (d) => {
      await Deno.rename(`${d}/model.safetensors`, `${d}/model-00001-of-00001.safetensors`);
      const b = await Deno.readFile(`${d}/model-00001-of-00001.safetensors`);
      const n = Number(new DataView(b.buffer).getBigUint64(0, true));
      const names = Object.keys(JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n))));
      const wm: Json = {};
      for (const t of names) if (t !== "__metadata__") wm[t] = "model-00001-of-00001.safetensors";
      wm[names.find((t) => t !== "__metadata__")!] = name;
      await Deno.writeTextFile(
        `${d}/model.safetensors.index.json`,
        JSON.stringify({ metadata: {}, weight_map: wm }),
      );
    }, async (d) => {
      await failsTyped(() => ModelFolder.open(d), "SAFETENSORS_INDEX", re);
      await failsTyped(() => inspectPath(d), "SAFETENSORS_INDEX", re);
    });
  }
});

Deno.test("case 4: head_dim must match hidden / heads where the family derives it", async () => {
  for (const model of ["gpt2", "opt", "gpt_neox"]) {
    await withModel(model, (d) =>
      editJson(`${d}/config.json`, (j) => {
        j.head_dim = 2 ** 28;
      }), async (d) => {
      await failsTyped(() => readModelConfig(d), "CONFIG", /'head_dim' is 268435456, expected/);
    });
  }
  // Llama-family head_dim is free but bounded.
  await withModel("llama", (d) =>
    editJson(`${d}/config.json`, (j) => {
      j.head_dim = 2 ** 28;
    }), async (d) => {
    await failsTyped(() => readModelConfig(d), "CONFIG", /'head_dim' is 268435456, expected/);
  });
});

Deno.test("case 5: metadata reads are bounded (links to /dev/zero, oversized files)", async () => {
  const files: [string, string, GptqErrorCode, (d: string) => Promise<unknown>][] = [
    ["llama", "config.json", "CONFIG", (d) => ModelFolder.open(d)],
    ["llama-gptq-4bit-g32", "quantize_config.json", "QUANT_CONFIG", (d) => ModelFolder.open(d)],
    ["llama", "tokenizer.json", "TOKENIZER", (d) => TextTokenizer.fromFolder(d)],
    ["llama", "tokenizer_config.json", "TOKENIZER", (d) => TextTokenizer.fromFolder(d)],
  ];
  for (const [model, file, code, f] of files) {
    await withModel(model, async (d) => {
      await Deno.remove(`${d}/${file}`);
      await Deno.symlink("/dev/zero", `${d}/${file}`);
    }, async (d) => {
      await failsTyped(() => f(d), code, /is not a regular file/);
    });
    await withModel(model, async (d) => {
      // Valid JSON, padded past the cap.
      const text = await Deno.readTextFile(`${d}/${file}`);
      await Deno.writeTextFile(`${d}/${file}`, text + " ".repeat(65 * 1024 * 1024));
    }, async (d) => {
      await failsTyped(() => f(d), code, /bytes, more than the \d+ MiB limit/);
    });
  }
});

Deno.test("case 6: JSON syntax errors are one-line messages naming the file", async () => {
  const broken = '{\n  "a": 1,\n  oops\n}\n';
  const brokenToken = '{\n"a":\n1,\n"b": x\n}\n'; // V8 quotes the source in this message
  const files: [string, string, GptqErrorCode, (d: string) => Promise<unknown>][] = [
    ["llama", "config.json", "CONFIG", (d) => ModelFolder.open(d)],
    ["llama-gptq-4bit-g32", "quantize_config.json", "QUANT_CONFIG", (d) => ModelFolder.open(d)],
    ["llama", "tokenizer.json", "TOKENIZER", (d) => TextTokenizer.fromFolder(d)],
    ["llama", "tokenizer_config.json", "TOKENIZER", (d) => TextTokenizer.fromFolder(d)],
  ];
  for (const [model, file, code, f] of files) {
    for (const text of [broken, brokenToken]) {
      await withModel(model, (d) => Deno.writeTextFile(`${d}/${file}`, text), async (d) => {
        const e = await failsTyped(() => f(d), code, /is not valid JSON/);
        assert.ok(e.message.includes(file), e.message);
      });
    }
  }
  // The shard index too.
  await withModel("llama", async (d) => {
    await Deno.writeTextFile(`${d}/model.safetensors.index.json`, brokenToken);
  }, async (d) => {
    await failsTyped(() => ModelFolder.open(d), "SAFETENSORS_INDEX", /not valid JSON/);
  });
});

Deno.test("case 7a: float weights relabelled as integers are refused", async () => {
  for (const dtype of ["I16", "U16"]) {
    await withModel("llama", (d) =>
      editHeader(`${d}/model.safetensors`, (h) => {
        h["model.layers.0.self_attn.q_proj.weight"]!.dtype = dtype;
      }), async (d) => {
      await failsTyped(
        () => ModelFolder.open(d),
        "SAFETENSORS_TENSOR",
        new RegExp(`q_proj.weight': dtype ${dtype} is not valid for a linear weight tensor`),
      );
    });
  }
  // F32 data relabelled I32/U32 (same byte length): gpt2 is stored in fp32.
  for (const dtype of ["I32", "U32"]) {
    await withModel("gpt2", (d) =>
      editHeader(`${d}/model.safetensors`, (h) => {
        h["transformer.h.0.ln_1.weight"]!.dtype = dtype;
      }), async (d) => {
      await failsTyped(() => ModelFolder.open(d), "SAFETENSORS_TENSOR", /not valid for a norm/);
    });
  }
});

Deno.test("case 7b: config.json's quantization_config is checked even when quantize_config.json exists", async () => {
  await withModel("llama-gptq-4bit-g32", (d) =>
    editJson(`${d}/config.json`, (j) => {
      (j.quantization_config as Json).bits = 5;
    }), async (d) => {
    await failsTyped(
      () => ModelFolder.open(d),
      "QUANT_CONFIG",
      /config\.json \(quantization_config\): bits is 5/,
    );
  });
  await withModel("llama-gptq-4bit-g32", (d) =>
    editJson(`${d}/config.json`, (j) => {
      (j.quantization_config as Json).group_size = 64;
    }), async (d) => {
    const r = await readQuantizeConfigFromFolder(d);
    assert.equal(r?.config.group_size, 32);
    assert.ok(
      r?.warnings.some((w) => /disagree on group_size \(32 vs 64\)/.test(w)),
      r?.warnings.join("; "),
    );
  });
});

Deno.test("case 7c: an unknown tokenizer model.type is an error", async () => {
  for (const type of ["WordLevelX", null]) {
    await withModel("llama", (d) =>
      editJson(`${d}/tokenizer.json`, (j) => {
        (j.model as Json).type = type;
      }), async (d) => {
      await failsTyped(
        () => TextTokenizer.fromFolder(d),
        "TOKENIZER",
        /model\.type .* is not supported/,
      );
    });
  }
});

Deno.test("case 7d: bad token ids name the tokenizer file", async () => {
  // A vocabulary id that is not a number (the library would yield `undefined` ids).
  await withModel("llama", (d) =>
    editJson(`${d}/tokenizer.json`, (j) => {
      ((j.model as Json).vocab as Json)["e"] = "5";
    }), async (d) => {
    await failsTyped(
      () => TextTokenizer.fromFolder(d),
      "TOKENIZER",
      /tokenizer\.json: model\.vocab\["e"\] is "5", not a token id/,
    );
  });
  // An id the tokenizer knows but the embedding does not: the error names the weights.
  await withModel("llama", (d) =>
    editJson(`${d}/tokenizer.json`, (j) => {
      (j.added_tokens as Json[]).push({
        id: 1030,
        content: "<zz>",
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: false,
      });
    }), async (d) => {
    const model = await loadModel(d, { backend: "typescript", onWarning: () => {} });
    try {
      await failsTyped(
        async () => {
          for await (const _ of model.generate("<zz>", { max_new_tokens: 1, temperature: 0 })) {
            // drain
          }
        },
        "INVALID_ARGUMENT",
        /model\.safetensors: tensor 'model\.embed_tokens\.weight': token id 1030 is outside the vocabulary \(0\.\.1023\)/,
      );
    } finally {
      model.close();
    }
  });
});
