// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../io/safetensors.ts";
import { CausalLM } from "../runtime/model.ts";
import { selectBackend } from "../backends/select.ts";
import { quantizeModel } from "./quantize.ts";
import { ENGINE_STATS } from "./_engine.ts";

const DATA = fileURLToPath(new URL("../../../shared/data/", import.meta.url));
const GOLD = `${DATA}golden/models/`;

async function ids(file: string, name: string): Promise<number[][]> {
  using f = await SafetensorsFile.open(file);
  const [R, C] = f.info(name).shape.length === 2 ? f.info(name).shape : [1, f.info(name).shape[0]!];
  const v = await f.readFloat32(name);
  return Array.from({ length: R! }, (_, r) => Array.from(v.subarray(r * C!, (r + 1) * C!)));
}

function relL2(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

Deno.test("quantize: tiny llama with AutoGPTQ's settings and calibration ids is as good as AutoGPTQ's checkpoint", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const cal = await ids(`${GOLD}llama-gptq-4bit-g32/golden.safetensors`, "calibration_ids");
    const { backend: kernels } = await selectBackend("auto", { allowGpu: false });
    const report = await quantizeModel(`${GOLD}llama`, `${tmp}/q`, {
      bits: 4,
      group_size: 32,
      sym: true,
      desc_act: false,
      damp_percent: 0.01,
      dataset: cal,
      model_seqlen: 128,
    }, { backend: kernels });
    assert.equal(report.modules.filter((m) => m.quantized).length, 14);
    for (const m of report.modules) {
      assert.ok(m.gptqError! < m.rtnError!, `${m.name}: GPTQ not better than RTN`);
    }
    const input = (await ids(`${GOLD}llama-gptq-4bit-g32/golden.safetensors`, "input_ids"))[0]!;
    using g = await SafetensorsFile.open(`${GOLD}llama-gptq-4bit-g32/golden.safetensors`);
    const golden = await g.readFloat32("logits");
    const ours = await CausalLM.load(`${tmp}/q`, { backend: kernels });
    const theirs = await CausalLM.load(`${GOLD}llama-gptq-4bit-g32`, { backend: kernels });
    try {
      const logits = await ours.forward(input, ours.newCache(input.length));
      // Both checkpoints against the unquantized model's fp32 logits: ours must be at least as close.
      using gf = await SafetensorsFile.open(`${GOLD}llama/golden.safetensors`);
      const fp = await gf.readFloat32("logits");
      const d = relL2(logits, golden), ourErr = relL2(logits, fp), theirErr = relL2(golden, fp);
      console.log(
        `logits: ours vs AutoGPTQ's ${(d * 100).toFixed(2)}%; vs fp32: ours ${
          (ourErr * 100).toFixed(2)
        }%, ` +
          `AutoGPTQ's ${(theirErr * 100).toFixed(2)}%`,
      );
      assert.ok(ourErr <= theirErr * 1.02, "our quantization is worse than AutoGPTQ's");
      // Perplexity on WikiText-2 (first 24 windows of 512 tokens) within 1% of the AutoGPTQ checkpoint's.
      const tok = await ours.folder.tokenizer();
      const text = await Deno.readTextFile(`${DATA}text/wikitext2_test.txt`);
      const all = tok.encode(text.slice(0, 120_000), { addSpecialTokens: false });
      const { perplexity } = await import("../runtime/perplexity.ts");
      const a = (await perplexity(ours, all, { seqlen: 512, maxSamples: 24 })).ppl;
      const b = (await perplexity(theirs, all, { seqlen: 512, maxSamples: 24 })).ppl;
      console.log(
        `WikiText-2 ppl: ours ${a.toFixed(3)}, AutoGPTQ's ${b.toFixed(3)} (${
          (100 * (a / b - 1)).toFixed(3)
        }%)`,
      );
      assert.ok(Math.abs(a / b - 1) <= 0.01);
    } finally {
      ours.close();
      theirs.close();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

// Why the golden comparison above is on quality and not on logits within 2%:
// on this model GPTQ's discrete rounding decisions cascade, so a perturbation
// of the Hessians at the level of float summation order (1e-5 relative, a few
// ulps of f32 accumulation over 2048 tokens) already moves the logits by more
// than 2%. Any re-implementation that does not reproduce torch's exact
// summation order lands at this distance from AutoGPTQ's checkpoint.
Deno.test("quantize: GPTQ on the tiny llama is chaotic at float-rounding level (noise floor of the golden comparison)", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const { createWasmSolver } = await import("./solver.ts");
    const { mulberry32 } = await import("../runtime/sample.ts");
    const cal = await ids(`${GOLD}llama-gptq-4bit-g32/golden.safetensors`, "calibration_ids");
    const input = (await ids(`${GOLD}llama-gptq-4bit-g32/golden.safetensors`, "input_ids"))[0]!;
    const { backend: kernels } = await selectBackend("auto", { allowGpu: false });
    const base = await createWasmSolver();
    const run = async (dir: string, eps: number): Promise<Float32Array> => {
      const rnd = mulberry32(7);
      const solver: typeof base = {
        ...base,
        gptq(W, N, K, h, o, name) {
          const H = h.slice();
          for (let i = 0; i < K; i++) {
            for (let j = 0; j <= i; j++) {
              H[i * K + j]! *= 1 + eps * (2 * rnd() - 1);
              H[j * K + i] = H[i * K + j]!;
            }
          }
          return base.gptq(W, N, K, H, o, name);
        },
      };
      await quantizeModel(`${GOLD}llama`, dir, {
        bits: 4,
        group_size: 32,
        dataset: cal,
        model_seqlen: 128,
      }, { backend: kernels, solver });
      const lm = await CausalLM.load(dir, { backend: kernels });
      try {
        return await lm.forward(input, lm.newCache(input.length));
      } finally {
        lm.close();
      }
    };
    const clean = await run(`${tmp}/a`, 0);
    const noisy = await run(`${tmp}/b`, 1e-5);
    const d = relL2(noisy, clean);
    console.log(`1e-5 relative Hessian noise moves the logits by ${(d * 100).toFixed(2)}%`);
    assert.ok(d > 0.02, `expected > 2%, got ${(d * 100).toFixed(2)}%`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("quantize: the 2-Worker path (Hessians on Worker 0) writes the same bytes and report as the 1-thread path", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const cal = await ids(`${GOLD}llama-gptq-4bit-g32/golden.safetensors`, "calibration_ids");
    const { backend: kernels } = await selectBackend("auto", { allowGpu: false });
    for (const extra of [{}, { desc_act: true, bits: 3, true_sequential: false }]) {
      const cfg = { bits: 4, group_size: 32, dataset: cal, model_seqlen: 128, ...extra };
      const one = await quantizeModel(`${GOLD}llama`, `${tmp}/one`, cfg, {
        backend: kernels,
        threads: 1,
        force: true,
      });
      const two = await quantizeModel(`${GOLD}llama`, `${tmp}/two`, cfg, {
        backend: kernels,
        threads: 2,
        force: true,
      });
      const what = JSON.stringify(extra);
      const a = await Deno.readFile(`${tmp}/one/model.safetensors`);
      const b = await Deno.readFile(`${tmp}/two/model.safetensors`);
      assert.equal(a.length, b.length, `${what}: sizes`);
      assert.ok(a.every((v, i) => v === b[i]), `${what}: model.safetensors bytes differ`);
      // Same per-module results, the report's Hessian errors included (Worker 0
      // computes them against the H it accumulated; loss is a sum over rows).
      const strip = ({ seconds: _, loss: __, ...m }: (typeof one.modules)[number]) => m;
      assert.deepEqual(two.modules.map(strip), one.modules.map(strip), what);
      assert.ok(one.modules.some((m) => m.quantized), what);
      for (const [i, m] of two.modules.entries()) {
        const l = one.modules[i]!.loss!;
        assert.ok(Math.abs(m.loss! - l) <= 1e-9 * Math.abs(l), `${m.name}: loss ${m.loss} vs ${l}`);
        assert.ok(m.gptqError! > 0 && m.gptqError! < m.rtnError!, `${m.name}: GPTQ beats RTN`);
      }
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("quantize: keeping attention outputs and MLP intermediates between true-sequential groups writes the same bytes as recomputing them", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const cal = await ids(`${GOLD}llama-gptq-4bit-g32/golden.safetensors`, "calibration_ids");
    const { backend: kernels } = await selectBackend("auto", { allowGpu: false });
    for (const extra of [{}, { desc_act: true, bits: 3 }]) {
      const cfg = { bits: 4, group_size: 32, dataset: cal, model_seqlen: 128, ...extra };
      const what = JSON.stringify(extra);
      const run = async (dir: string, intermediateCacheBytes?: number) => {
        const a0 = ENGINE_STATS.attentionReused, m0 = ENGINE_STATS.mlpMidReused;
        const rep = await quantizeModel(`${GOLD}llama`, `${tmp}/${dir}`, cfg, {
          backend: kernels,
          force: true,
          ...(intermediateCacheBytes === undefined ? {} : { intermediateCacheBytes }),
        });
        return {
          rep,
          reused: ENGINE_STATS.attentionReused - a0,
          reusedMid: ENGINE_STATS.mlpMidReused - m0,
        };
      };
      const off = await run("off", 0);
      const on = await run("on");
      // Room for exactly 2 samples' attention outputs (every sample is 128 rows).
      const hidden = 4 * 128 * on.rep.modules.find((m) => m.name.endsWith("o_proj"))!.K;
      const part = await run("part", 2 * hidden);
      // o_proj's group, the MLP groups and the next block's inputs reuse the
      // attention output: 3 runs per sample and block (groups [q,k,v] [o]
      // [up,gate] [down]); the next block's inputs reuse the MLP intermediate
      // kept in the down group's run. With room for 2 attention outputs, the
      // first 2 samples' are kept and nothing else fits.
      const samples = cal.length, blocks = on.rep.modules.at(-1)!.layer + 1;
      assert.ok(samples > 2, "the partial budget must leave samples out");
      assert.equal(off.reused, 0, `${what}: nothing reused with 0 bytes`);
      assert.equal(on.reused, 3 * samples * blocks, `${what}: reused runs`);
      assert.equal(on.reusedMid, samples * blocks, `${what}: MLP intermediates reused`);
      assert.equal(part.reused, 3 * 2 * blocks, `${what}: reused runs within 2 samples' budget`);
      assert.equal(off.reusedMid + part.reusedMid, 0, `${what}: no MLP intermediate without room`);
      const a = await Deno.readFile(`${tmp}/off/model.safetensors`);
      const strip = ({ seconds: _, ...m }: (typeof on.rep.modules)[number]) => m;
      for (const [dir, r] of [["on", on], ["part", part]] as const) {
        const b = await Deno.readFile(`${tmp}/${dir}/model.safetensors`);
        assert.equal(a.length, b.length, `${what} ${dir}: sizes`);
        assert.ok(a.every((v, i) => v === b[i]), `${what} ${dir}: model.safetensors bytes differ`);
        assert.deepEqual(r.rep.modules.map(strip), off.rep.modules.map(strip), `${what} ${dir}`);
      }
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
