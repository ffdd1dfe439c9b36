// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * `quantize` on the CUDA/HIP device engine, end to end, once per build of the
 * kernels (`cuda` and `hip` on a real GPU; `hip-cpu`, the same kernels on the
 * CPU, built by `deno task build:hip --cpu`, in CI): the calibration forward,
 * the Hessians and the GPTQ solves run on the device.
 *
 * - Checkpoints of the golden tiny llama (act-order) and of stories260K
 *   evaluate within 0.5% of the WASM engine's perplexity; the share of equal
 *   codes is printed.
 * - The CLI (`--backend cuda|hip`; the `hip-cpu` build through
 *   `GPTQ_HIP_LIB`) says on stderr and in the report which backend solved; a
 *   run stopped after block 1 may not be resumed by the WASM engine, and
 *   resumed on the device it writes the CLI run's bytes.
 *
 * HIP-CPU runs a kernel launch in milliseconds, so the calibration here is
 * small (4 samples × 64 tokens).
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { convertLlama2c } from "../src/io/llama2c.ts";
import { SafetensorsFile } from "../src/io/safetensors.ts";
import { type GPTQConfig, quantizeModel, type QuantizeReport } from "../src/quant/quantize.ts";
import { selectBackend } from "../src/backends/select.ts";
import { libraryPath } from "../src/backends/cuda/ffi.ts";
import { CausalLM } from "../src/runtime/model.ts";
import { perplexity } from "../src/runtime/perplexity.ts";
import { unpackQWeight } from "../src/gptq/pack.ts";
import { disposeBackends, targets, targetTest } from "../src/backends/cuda/_test_targets.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const DATA = fileURLToPath(new URL("../../shared/data/", import.meta.url));
const STORIES = `${DATA}stories260K/`;
const TINYSTORIES = `${DATA}text/tinystories_valid_sample.txt`;
const LLAMA = `${DATA}golden/models/llama`;
const NSAMPLES = 4, SEQLEN = 64;

const ts = await targets("quantize_cuda_test.ts");

async function sameBytes(a: string, b: string): Promise<boolean> {
  const x = await Deno.readFile(a), y = await Deno.readFile(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Share of equal codes between two checkpoints' quantized modules. */
async function codeAgreement(a: string, b: string, report: QuantizeReport): Promise<number> {
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

targetTest(
  ts,
  "quantize on the device engine: golden llama and stories260K within 0.5% perplexity of WASM's",
  async (gpu, _t, kind) => {
    const tmp = await Deno.makeTempDir({ prefix: "gptq-cuda-e2e-" });
    const { backend: cpu } = await selectBackend("wasm");
    try {
      await convertLlama2c(`${STORIES}stories260K.bin`, `${STORIES}tok512.bin`, `${tmp}/stories`);
      const stories = (await Deno.readTextFile(TINYSTORIES)).split(/\r?\n/).filter((s) => s.trim());
      const half = Math.floor(stories.length / 2);
      await Deno.writeTextFile(`${tmp}/calib.txt`, stories.slice(half).join("\n"));
      using g = await SafetensorsFile.open(
        `${DATA}golden/models/llama-gptq-4bit-g32/golden.safetensors`,
      );
      const [R, C] = g.info("calibration_ids").shape as [number, number];
      assert.ok(R >= NSAMPLES && C >= SEQLEN);
      const ids = await g.readFloat32("calibration_ids");
      const llamaCal = Array.from(
        { length: NSAMPLES },
        (_, r) => Array.from(ids.subarray(r * C, r * C + SEQLEN)),
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
            nsamples: NSAMPLES,
            model_seqlen: SEQLEN,
          },
          text: stories.slice(0, half).join("\n"),
        },
        {
          what: "golden llama 4-bit g32 act-order",
          model: LLAMA,
          cfg: { bits: 4, group_size: 32, desc_act: true, dataset: llamaCal, model_seqlen: SEQLEN },
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
            return (await perplexity(lm, all, { seqlen: 512, maxSamples: 8 })).ppl;
          } finally {
            lm.close();
          }
        };
        const pc = await ppl(outCpu), pg = await ppl(outGpu);
        const rel = pg / pc - 1;
        rels.push([c.what, rel]);
        lines.push(
          `${kind}: ${c.what}: ppl WASM ${pc.toFixed(4)}, ${kind} ${pg.toFixed(4)} (${
            (100 * rel).toFixed(3)
          }%); codes equal ${(100 * agree).toFixed(3)}% of ${quantized} modules; quantize ${
            ((t1 - t0) / 1000).toFixed(1)
          } s (WASM) vs ${((t2 - t1) / 1000).toFixed(1)} s (${kind})`,
        );
      }
      console.log(lines.join("\n"));
      for (const [what, rel] of rels) {
        assert.ok(Math.abs(rel) <= 0.005, `${what}: ppl off by ${rel}`);
      }
    } finally {
      cpu.dispose?.();
      await Deno.remove(tmp, { recursive: true });
    }
  },
);

async function cli(
  args: string[],
  env: Record<string, string>,
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

targetTest(
  ts,
  "quantize CLI --backend cuda|hip names the device solver; a stopped run resumes only on it, to the same bytes",
  async (gpu, _t, kind) => {
    const tmp = await Deno.makeTempDir({ prefix: "gptq-cuda-resume-" });
    const { backend: cpu } = await selectBackend("wasm");
    try {
      // hip-cpu is reached through --backend hip with GPTQ_HIP_LIB naming its library.
      const lib = libraryPath("hip-cpu");
      const env: Record<string, string> = kind === "hip-cpu" && "path" in lib
        ? { GPTQ_HIP_LIB: lib.path }
        : {};
      const flag = kind === "cuda" ? "cuda" : "hip";
      const cfg: GPTQConfig = {
        bits: 4,
        group_size: 32,
        desc_act: true,
        dataset: TINYSTORIES,
        nsamples: NSAMPLES,
        model_seqlen: SEQLEN,
      };
      const ref = `${tmp}/ref`;
      const r0 = await cli([
        LLAMA,
        "--out",
        ref,
        "--dataset",
        TINYSTORIES,
        "--nsamples",
        `${NSAMPLES}`,
        "--seqlen",
        `${SEQLEN}`,
        "--bits",
        "4",
        "--group-size",
        "32",
        "--desc-act",
        "--backend",
        flag,
      ], env);
      assert.equal(r0.code, 0, r0.stderr);
      assert.match(
        r0.stderr,
        new RegExp(`^backend: ${kind} \\(.*asked for with --backend ${flag}`, "m"),
      );
      assert.match(r0.stderr, new RegExp(`^backends: forward ${kind}, solver ${kind} \\(`, "m"));
      const refReport: QuantizeReport = JSON.parse(
        await Deno.readTextFile(`${ref}/quantize_report.json`),
      );
      assert.equal(refReport.backends.forward, kind);
      assert.ok(refReport.backends.solver.startsWith(`${kind} (`), refReport.backends.solver);

      // Stopped after block 1 of 2: the journal holds one block.
      const out = `${tmp}/q`;
      await assert.rejects(
        quantizeModel(LLAMA, out, cfg, {
          backend: gpu,
          onBlock: (d) => {
            if (d === 1) throw new Error("stop after block 1");
          },
        }),
        /stop after block 1/,
      );
      const journal = JSON.parse(await Deno.readTextFile(`${out}.gptq-work/journal.json`));
      assert.equal(journal.finished, 1);
      // The WASM engine may not continue a device run's journal (different bytes).
      await assert.rejects(
        quantizeModel(LLAMA, out, cfg, { backend: cpu, resume: true }),
        /other settings or data/,
      );
      const report = await quantizeModel(LLAMA, out, cfg, { backend: gpu, resume: true });
      assert.equal(report.resumedBlocks, 1);
      for (const f of ["model.safetensors", "quantize_config.json", "config.json"]) {
        assert.ok(await sameBytes(`${out}/${f}`, `${ref}/${f}`), `${f} differs after resume`);
      }
      const noTime = ({ seconds: _, ...m }: QuantizeReport["modules"][number]) => m;
      assert.deepEqual(report.modules.map(noTime), refReport.modules.map(noTime));
    } finally {
      cpu.dispose?.();
      await Deno.remove(tmp, { recursive: true });
    }
  },
);

Deno.test({
  name: "quantize cuda tests: dispose the shared backends",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: disposeBackends,
});
