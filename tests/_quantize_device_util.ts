// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Private helpers shared by the device `quantize` tests (`quantize_cuda_test.ts`,
 * `quantize_webgpu_test.ts`): byte and code comparisons of checkpoints, the
 * CLI, and the end-to-end comparison of a device engine's checkpoints with the
 * WASM engine's (golden tiny llama act-order and stories260K, by perplexity).
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { convertLlama2c } from "../src/io/llama2c.ts";
import { SafetensorsFile } from "../src/io/safetensors.ts";
import { type GPTQConfig, quantizeModel, type QuantizeReport } from "../src/quant/quantize.ts";
import type { Backend } from "../src/backends/backend.ts";
import { CausalLM } from "../src/runtime/model.ts";
import { perplexity } from "../src/runtime/perplexity.ts";
import { unpackQWeight } from "../src/gptq/pack.ts";

/** The CLI entry point. */
export const CLI: string = fileURLToPath(new URL("../cli.ts", import.meta.url));
/** The shared data folder. */
export const DATA: string = fileURLToPath(new URL("../../shared/data/", import.meta.url));
/** stories260K's folder. */
export const STORIES = `${DATA}stories260K/`;
/** TinyStories validation text. */
export const TINYSTORIES = `${DATA}text/tinystories_valid_sample.txt`;
/** The golden models' folder. */
export const GOLD = `${DATA}golden/models/`;

/** Whether two files hold the same bytes. */
export async function sameBytes(a: string, b: string): Promise<boolean> {
  const x = await Deno.readFile(a), y = await Deno.readFile(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Share of equal codes between two checkpoints' quantized modules. */
export async function codeAgreement(
  a: string,
  b: string,
  report: QuantizeReport,
): Promise<number> {
  using fa = await SafetensorsFile.open(`${a}/model.safetensors`);
  using fb = await SafetensorsFile.open(`${b}/model.safetensors`);
  const bits = report.config.bits as 2 | 3 | 4 | 8;
  let same = 0, total = 0;
  for (const m of report.modules.filter((m) => m.quantized)) {
    const words = async (f: SafetensorsFile) => {
      const t = await f.read(`${m.name}.qweight`);
      return new Int32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
    };
    const ca = unpackQWeight(await words(fa), m.K, m.N, bits);
    const cb = unpackQWeight(await words(fb), m.K, m.N, bits);
    for (let i = 0; i < ca.length; i++) if (ca[i] === cb[i]) same++;
    total += ca.length;
  }
  return same / total;
}

/** Runs `cli.ts quantize …args` with `env`; its exit code and output. */
export async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "quantize", ...args],
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: "/tmp", ...env },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

/** One model's figures from {@linkcode compareWithWasm}. */
export interface E2eRow {
  /** The model and settings. */
  what: string;
  /** Perplexity of the WASM engine's checkpoint. */
  pc: number;
  /** Perplexity of the device engine's checkpoint. */
  pg: number;
  /** `pg / pc − 1`. */
  rel: number;
  /** Share of equal codes. */
  agree: number;
  /** Quantized modules. */
  quantized: number;
  /** Seconds the WASM engine took to quantize. */
  wasmSeconds: number;
  /** Seconds the device engine took to quantize. */
  gpuSeconds: number;
}

/** How {@linkcode compareWithWasm} runs. */
export interface E2eOptions {
  /** The device engine. */
  gpu: Backend;
  /** The WASM engine. */
  cpu: Backend;
  /** The name the device backend reports for the forward and the solver. */
  kind: string;
  /** A scratch folder. */
  tmp: string;
  /** Calibration samples. */
  nsamples: number;
  /** Calibration tokens per sample (`model_seqlen`). */
  seqlen: number;
  /** Perplexity windows evaluated (of 512 tokens). */
  maxSamples: number;
  /** The printed line of one model. */
  line(row: E2eRow): string;
}

/**
 * Quantizes stories260K (4-bit g32) and the golden llama (4-bit g32 act-order) on the WASM
 * engine and on the device: the reports name the device backend, quantize_config.json is the
 * same, GPTQ beats RTN on every quantized module, and the device checkpoint's perplexity is
 * within 0.5% of WASM's. Prints one line per model.
 */
export async function compareWithWasm(o: E2eOptions): Promise<void> {
  const { gpu, cpu, tmp, kind } = o;
  await convertLlama2c(`${STORIES}stories260K.bin`, `${STORIES}tok512.bin`, `${tmp}/stories`);
  const stories = (await Deno.readTextFile(TINYSTORIES)).split(/\r?\n/).filter((s) => s.trim());
  const half = Math.floor(stories.length / 2);
  await Deno.writeTextFile(`${tmp}/calib.txt`, stories.slice(half).join("\n"));
  using g = await SafetensorsFile.open(`${GOLD}llama-gptq-4bit-g32/golden.safetensors`);
  const [R, C] = g.info("calibration_ids").shape as [number, number];
  assert.ok(R >= o.nsamples && C >= o.seqlen);
  const ids = await g.readFloat32("calibration_ids");
  const llamaCal = Array.from(
    { length: o.nsamples },
    (_, r) => Array.from(ids.subarray(r * C, r * C + o.seqlen)),
  );
  const wiki = await Deno.readTextFile(`${DATA}text/wikitext2_test.txt`);
  const cases: { what: string; model: string; cfg: GPTQConfig; text: string }[] = [
    {
      what: "stories260K 4-bit g32",
      model: `${tmp}/stories`,
      cfg: {
        bits: 4,
        group_size: 32,
        dataset: `${tmp}/calib.txt`,
        nsamples: o.nsamples,
        model_seqlen: o.seqlen,
      },
      text: stories.slice(0, half).join("\n"),
    },
    {
      what: "golden llama 4-bit g32 act-order",
      model: `${GOLD}llama`,
      cfg: { bits: 4, group_size: 32, desc_act: true, dataset: llamaCal, model_seqlen: o.seqlen },
      text: wiki.slice(0, 120_000),
    },
  ];
  const lines: string[] = [];
  const rels: [string, number][] = [];
  for (const [i, c] of cases.entries()) {
    const outCpu = `${tmp}/cpu${i}`, outGpu = `${tmp}/gpu${i}`;
    const t0 = performance.now();
    const rc = await quantizeModel(c.model, outCpu, c.cfg, { backend: cpu });
    const t1 = performance.now();
    const rg = await quantizeModel(c.model, outGpu, c.cfg, { backend: gpu });
    const t2 = performance.now();
    // The report says which backend ran the forward and solved.
    assert.equal(rg.backends.forward, kind);
    assert.ok(rg.backends.solver.startsWith(`${kind} (`), rg.backends.solver);
    assert.match(rc.backends.solver, /^wasm/);
    assert.ok(
      await sameBytes(`${outCpu}/quantize_config.json`, `${outGpu}/quantize_config.json`),
    );
    let quantized = 0;
    for (const [j, m] of rg.modules.entries()) {
      assert.equal(m.quantized, rc.modules[j]!.quantized, m.name);
      if (!m.quantized) continue;
      quantized++;
      assert.ok(m.gptqError! < m.rtnError!, `${m.name}: GPTQ not below RTN`);
    }
    assert.ok(quantized > 0, `${c.what}: nothing was quantized`);
    const agree = await codeAgreement(outCpu, outGpu, rg);
    const ppl = async (dir: string) => {
      const lm = await CausalLM.load(dir, { backend: cpu });
      try {
        const tok = await lm.folder.tokenizer();
        const all = tok.encode(c.text, { addSpecialTokens: false });
        return (await perplexity(lm, all, { seqlen: 512, maxSamples: o.maxSamples })).ppl;
      } finally {
        lm.close();
      }
    };
    const pc = await ppl(outCpu), pg = await ppl(outGpu);
    const rel = pg / pc - 1;
    rels.push([c.what, rel]);
    lines.push(o.line({
      what: c.what,
      pc,
      pg,
      rel,
      agree,
      quantized,
      wasmSeconds: (t1 - t0) / 1000,
      gpuSeconds: (t2 - t1) / 1000,
    }));
  }
  console.log(lines.join("\n"));
  for (const [what, rel] of rels) {
    assert.ok(Math.abs(rel) <= 0.005, `${what}: ppl off by ${rel}`);
  }
}
