// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Checkpoints written by `quantizeModel` load back: the demo llama of
 * `tools/make_demo_model.ts` quantized five ways (4-bit sym → v1, 4-bit asym
 * → v2, 3-bit act-order, 8-bit, one module left unquantized) is loaded with
 * the wasm backend (2 threads) and the TypeScript reference; both must agree
 * on logits and greedy tokens, and the quantized logits must be closer to the
 * unquantized model's than the same checkpoint decoded with the other zero
 * convention. A sharded copy loads identically, and a copy whose config
 * names the wrong zero format loads correctly with one warning.
 *
 * @module
 */

import { hostBackend } from "../backends/host.ts";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../io/safetensors.ts";
import { ShardedWriter } from "../io/safetensors_writer.ts";
import { ModelFolder } from "../io/model_folder.ts";
import type { ZeroFormat } from "../gptq/pack.ts";
import { type GPTQConfig, quantizeModel } from "../quant/quantize.ts";
import { writeDemoModel } from "../../tools/make_demo_model.ts";
import { generateTokens } from "./generate.ts";
import type { Kernels } from "../backends/host_kernels.ts";
import { CausalLM } from "./model.ts";
import { createTsKernels } from "../backends/typescript/ts_kernels.ts";
import { createWasmKernels } from "../backends/wasm/wasm_kernels.ts";

const DATA = fileURLToPath(new URL("../../../shared/data/", import.meta.url));
const CALIB = `${DATA}text/tinystories_valid_sample.txt`;

function relL2(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

interface Run {
  logits: Float32Array;
  tokens: number[];
  warnings: string[];
  format: ZeroFormat | undefined;
}

/** A fresh backend (closing a model disposes of its backend's helper threads). */
function backend(name: "typescript" | "wasm"): Kernels | Promise<Kernels> {
  return name === "wasm" ? createWasmKernels({ threads: 2 }) : createTsKernels();
}

/** Logits of a fixed prompt and 12 greedy tokens after it. */
async function run(
  dir: string,
  name: "typescript" | "wasm",
  zeroFormat?: ZeroFormat,
): Promise<Run> {
  const warnings: string[] = [];
  const lm = await CausalLM.load(dir, {
    backend: hostBackend(await backend(name)),
    onWarning: (m) => warnings.push(m),
    ...(zeroFormat ? { zeroFormat } : {}),
  });
  try {
    const tok = await lm.folder.tokenizer();
    const ids = tok.encode("Once upon a time, a little fox found a shiny stone.");
    const logits = await lm.forward(ids, lm.newCache(ids.length));
    const tokens = await Array.fromAsync(
      generateTokens(lm, ids, { temperature: 0, max_new_tokens: 12, eos_token_id: [] }),
    );
    return { logits, tokens, warnings, format: lm.ctx.zeroFormat?.format };
  } finally {
    lm.close();
  }
}

interface Case {
  name: string;
  cfg: Omit<GPTQConfig, "dataset">;
  format: ZeroFormat;
}

const CASES: Case[] = [
  { name: "4bit-g32-sym", cfg: { bits: 4, group_size: 32, sym: true }, format: "gptq" },
  { name: "4bit-g32-asym", cfg: { bits: 4, group_size: 32, sym: false }, format: "gptq_v2" },
  { name: "3bit-g32-actorder", cfg: { bits: 3, group_size: 32, desc_act: true }, format: "gptq" },
  { name: "8bit-g32", cfg: { bits: 8, group_size: 32 }, format: "gptq" },
  {
    name: "4bit-g32-keep-down_proj",
    cfg: { bits: 4, group_size: 32, modules_to_not_convert: ["mlp.down_proj"] },
    format: "gptq",
  },
];

/** Copies a checkpoint folder, re-writing its weights in shards of at most `maxShard` bytes. */
async function shardedCopy(src: string, dst: string, maxShard: number): Promise<number> {
  await Deno.mkdir(dst);
  for await (const e of Deno.readDir(src)) {
    if (e.isFile && !e.name.endsWith(".safetensors")) {
      await Deno.copyFile(`${src}/${e.name}`, `${dst}/${e.name}`);
    }
  }
  using f = await SafetensorsFile.open(`${src}/model.safetensors`);
  const w = new ShardedWriter(dst, { maxShardSize: maxShard, metadata: { format: "pt" } });
  for (const name of f.names()) {
    const r = await f.read(name);
    await w.add({ name, dtype: r.dtype, shape: [...r.shape], data: r.data });
  }
  return (await w.finish()).files.length;
}

async function editJson(path: string, edit: (o: Record<string, unknown>) => void): Promise<void> {
  const o = JSON.parse(await Deno.readTextFile(path));
  edit(o);
  await Deno.writeTextFile(path, JSON.stringify(o, null, 2));
}

Deno.test("quantize → load round trip: v1/v2/3-bit act-order/8-bit/unconverted modules, wasm and TypeScript agree", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "gptq-roundtrip-" });
  try {
    const demo = `${tmp}/demo`;
    await writeDemoModel(demo);
    const fp = await run(demo, "typescript");
    const errors = new Map<string, number>();
    for (const c of CASES) {
      const out = `${tmp}/${c.name}`;
      await quantizeModel(demo, out, {
        ...c.cfg,
        dataset: CALIB,
        nsamples: 8,
        model_seqlen: 64,
      }, { threads: 1 });
      // What was written.
      {
        using folder = await ModelFolder.open(out);
        assert.equal(folder.quant!.config.checkpoint_format, c.format, c.name);
        const mods = folder.linears().map((l) => l.name);
        const keep = c.cfg.modules_to_not_convert ?? [];
        for (const m of mods) {
          const kept = keep.some((k) => m.endsWith(`.${k}`));
          assert.equal(folder.isQuantized(m), !kept, `${c.name}: ${m}`);
        }
        if (keep.length > 0) {
          assert.deepEqual(folder.quant!.config.modules_to_not_convert, keep);
        }
        if (c.cfg.desc_act) {
          // Act-order: g_idx is a real permutation of the groups, not k / g.
          let nonMonotone = 0;
          for (const m of folder.quantizedModules()) {
            const g = new Int32Array((await folder.read(`${m}.g_idx`)).data.slice().buffer);
            if (g.some((v, k) => k > 0 && v < g[k - 1]!)) nonMonotone++;
          }
          assert.equal(nonMonotone, folder.quantizedModules().length, "act-order g_idx monotone");
        }
      }
      const ts = await run(out, "typescript");
      const wa = await run(out, "wasm");
      assert.deepEqual(ts.warnings, [], `${c.name}: ${ts.warnings}`);
      assert.deepEqual(wa.warnings, []);
      assert.equal(ts.format, c.format);
      const dBackends = relL2(wa.logits, ts.logits);
      assert.ok(dBackends <= 1e-4, `${c.name}: wasm vs typescript rel L2 ${dBackends}`);
      assert.deepEqual(wa.tokens, ts.tokens, `${c.name}: greedy tokens differ`);
      // Closer to the unquantized model than the other zero convention would be.
      const err = relL2(ts.logits, fp.logits);
      const other: ZeroFormat = c.format === "gptq" ? "gptq_v2" : "gptq";
      const wrong = relL2((await run(out, "typescript", other)).logits, fp.logits);
      console.log(
        `${c.name}: logits vs fp16 rel L2 ${err.toFixed(4)} (as ${other}: ${wrong.toFixed(4)}); ` +
          `wasm vs TS ${dBackends.toExponential(2)}; tokens ${
            ts.tokens.filter((t, i) => t === fp.tokens[i]).length
          }/12 as fp16`,
      );
      assert.ok(err < wrong / 2, `${c.name}: ${err} is not clearly better than ${wrong}`);
      errors.set(c.name, err);

      if (c.name === "4bit-g32-sym") {
        // Sharded: the same logits bit for bit.
        const shards = await shardedCopy(out, `${tmp}/sharded`, 48 * 1024);
        assert.ok(shards >= 3, `only ${shards} shards`);
        const sh = await run(`${tmp}/sharded`, "wasm");
        assert.deepEqual(sh.logits, wa.logits);
        assert.deepEqual(sh.tokens, wa.tokens);
        // A config that names the wrong format: one warning, the right logits.
        await shardedCopy(out, `${tmp}/claims-v2`, 1e9);
        for (const f of ["quantize_config.json", "config.json"]) {
          await editJson(`${tmp}/claims-v2/${f}`, (o) => {
            const q = (f === "config.json" ? o.quantization_config : o) as Record<string, unknown>;
            q.checkpoint_format = "gptq_v2";
          });
        }
        const lie = await run(`${tmp}/claims-v2`, "wasm");
        assert.equal(lie.warnings.length, 1);
        assert.match(lie.warnings[0]!, /says checkpoint_format "gptq_v2".*using "gptq"/);
        assert.deepEqual(lie.logits, wa.logits);
      }
      if (c.name === "4bit-g32-asym") {
        // Asymmetric v2 zeros under a config saying "gptq": only statistics can tell, so the
        // stated format is kept, with a warning naming v2; the override gives the right logits.
        await shardedCopy(out, `${tmp}/asym-claims-v1`, 1e9);
        for (const f of ["quantize_config.json", "config.json"]) {
          await editJson(`${tmp}/asym-claims-v1/${f}`, (o) => {
            const q = (f === "config.json" ? o.quantization_config : o) as Record<string, unknown>;
            q.checkpoint_format = "gptq";
          });
        }
        const lie = await run(`${tmp}/asym-claims-v1`, "wasm");
        assert.equal(lie.warnings.length, 1);
        assert.match(lie.warnings[0]!, /look like "gptq_v2"/);
        assert.equal(lie.format, "gptq");
        const fixed = await run(`${tmp}/asym-claims-v1`, "wasm", "gptq_v2");
        assert.deepEqual(fixed.logits, wa.logits);
      }
    }
    // More bits, less error.
    assert.ok(errors.get("8bit-g32")! < errors.get("4bit-g32-sym")!);
    assert.ok(errors.get("4bit-g32-sym")! < errors.get("3bit-g32-actorder")!);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
