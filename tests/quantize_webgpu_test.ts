// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * `quantize` on the WebGPU engine, end to end (lavapipe in CI): checkpoints
 * of the golden tiny llama and of stories260K evaluate within 0.5% of the
 * WASM engine's perplexity; a CLI run killed with SIGKILL and continued with
 * `--resume` writes the same bytes as an uninterrupted WebGPU run; without
 * an adapter `--backend webgpu` is a one-line error.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { convertLlama2c } from "../src/io/llama2c.ts";
import { SafetensorsFile } from "../src/io/safetensors.ts";
import { quantizeModel, type QuantizeReport } from "../src/quant/quantize.ts";
import { selectBackend } from "../src/backends/select.ts";
import { CausalLM } from "../src/runtime/model.ts";
import { perplexity } from "../src/runtime/perplexity.ts";
import { unpackQWeight } from "../src/gptq/pack.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const DATA = fileURLToPath(new URL("../../shared/data/", import.meta.url));
const STORIES = `${DATA}stories260K/`;
const TINYSTORIES = `${DATA}text/tinystories_valid_sample.txt`;
const GOLD = `${DATA}golden/models/`;

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
if (!adapter) console.log("WebGPU quantize tests skipped: no WebGPU adapter");

function gpuTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: `${name}${adapter ? "" : " (skipped: no WebGPU adapter)"}`,
    ignore: !adapter,
    fn,
  });
}

async function cli(
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

gpuTest(
  "quantize on WebGPU: golden llama and stories260K checkpoints within 0.5% perplexity of WASM's",
  async () => {
    const tmp = await Deno.makeTempDir({ prefix: "gptq-webgpu-e2e-" });
    const { backend: gpu } = await selectBackend("webgpu");
    const { backend: cpu } = await selectBackend("wasm");
    try {
      await convertLlama2c(`${STORIES}stories260K.bin`, `${STORIES}tok512.bin`, `${tmp}/stories`);
      const stories = (await Deno.readTextFile(TINYSTORIES)).split(/\r?\n/).filter((s) => s.trim());
      const half = Math.floor(stories.length / 2);
      await Deno.writeTextFile(`${tmp}/calib.txt`, stories.slice(half).join("\n"));
      using g = await SafetensorsFile.open(`${GOLD}llama-gptq-4bit-g32/golden.safetensors`);
      const [R, C] = g.info("calibration_ids").shape as [number, number];
      const ids = await g.readFloat32("calibration_ids");
      const llamaCal = Array.from(
        { length: 8 },
        (_, r) => Array.from(ids.subarray(r * C, r * C + C)),
      );
      assert.ok(R >= 8);
      const wiki = await Deno.readTextFile(`${DATA}text/wikitext2_test.txt`);
      const cases = [
        {
          what: "stories260K 4-bit g32",
          model: `${tmp}/stories`,
          cfg: {
            bits: 4,
            group_size: 32,
            dataset: `${tmp}/calib.txt`,
            nsamples: 8,
            model_seqlen: 128,
          },
          text: stories.slice(0, half).join("\n"),
          seqlen: 512,
        },
        {
          what: "golden llama 4-bit g32 act-order",
          model: `${GOLD}llama`,
          cfg: { bits: 4, group_size: 32, desc_act: true, dataset: llamaCal, model_seqlen: 128 },
          text: wiki.slice(0, 120_000),
          seqlen: 512,
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
        assert.match(rg.backends.solver, /^webgpu \(/);
        assert.equal(rg.backends.forward, "webgpu");
        assert.match(rc.backends.solver, /^wasm/);
        assert.ok(
          await sameBytes(`${outCpu}/quantize_config.json`, `${outGpu}/quantize_config.json`),
        );
        for (const [j, m] of rg.modules.entries()) {
          assert.equal(m.quantized, rc.modules[j]!.quantized, m.name);
          if (m.quantized) assert.ok(m.gptqError! < m.rtnError!, `${m.name}: GPTQ not below RTN`);
        }
        const agree = await codeAgreement(outCpu, outGpu, rg);
        const ppl = async (dir: string) => {
          const lm = await CausalLM.load(dir, { backend: cpu });
          try {
            const tok = await lm.folder.tokenizer();
            const all = tok.encode(c.text, { addSpecialTokens: false });
            return (await perplexity(lm, all, { seqlen: c.seqlen, maxSamples: 24 })).ppl;
          } finally {
            lm.close();
          }
        };
        const pc = await ppl(outCpu), pg = await ppl(outGpu);
        const rel = pg / pc - 1;
        rels.push([c.what, rel]);
        lines.push(
          `${c.what}: ppl WASM ${pc.toFixed(4)}, WebGPU ${pg.toFixed(4)} (${
            (100 * rel).toFixed(3)
          }%); codes equal ${(100 * agree).toFixed(3)}%; quantize ${
            ((t1 - t0) / 1000).toFixed(1)
          } s (WASM) vs ${((t2 - t1) / 1000).toFixed(1)} s (WebGPU, lavapipe)`,
        );
      }
      console.log(lines.join("\n"));
      for (const [what, rel] of rels) {
        assert.ok(Math.abs(rel) <= 0.005, `${what}: ppl off by ${rel}`);
      }
    } finally {
      cpu.dispose?.();
      gpu.dispose?.();
      await Deno.remove(tmp, { recursive: true });
    }
  },
);

// 5 blocks × 8 samples × 64 tokens on lavapipe: a few tenths of a second per block.
const RESUME_ARGS = [
  "--dataset",
  TINYSTORIES,
  "--nsamples",
  "8",
  "--seqlen",
  "64",
  "--bits",
  "4",
  "--group-size",
  "32",
  "--desc-act",
  "--backend",
  "webgpu",
];

gpuTest(
  "quantize CLI --backend webgpu: SIGKILL after block 2, then --resume, gives the uninterrupted run's bytes",
  async () => {
    const tmp = await Deno.makeTempDir({ prefix: "gptq-webgpu-resume-" });
    try {
      const hf = `${tmp}/stories260K-hf`;
      await convertLlama2c(`${STORIES}stories260K.bin`, `${STORIES}tok512.bin`, hf);
      const ref = `${tmp}/ref`;
      const r0 = await cli([hf, "--out", ref, ...RESUME_ARGS]);
      assert.equal(r0.code, 0, r0.stderr);
      assert.match(r0.stderr, /^backend: webgpu /m);
      const refReport: QuantizeReport = JSON.parse(
        await Deno.readTextFile(`${ref}/quantize_report.json`),
      );
      assert.match(refReport.backends.solver, /^webgpu/);

      const out = `${tmp}/killed/q`, work = `${out}.gptq-work`;
      await Deno.mkdir(`${tmp}/killed`);
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, "quantize", hf, "--out", out, ...RESUME_ARGS],
        env: { XDG_RUNTIME_DIR: "/tmp" },
        stdout: "null",
        stderr: "null",
        stdin: "null",
      }).spawn();
      let exited = false;
      const status = child.status.then((s) => {
        exited = true;
        return s;
      });
      const finished = async () => {
        try {
          return JSON.parse(await Deno.readTextFile(`${work}/journal.json`)).finished as number;
        } catch {
          return 0;
        }
      };
      const deadline = Date.now() + 60_000;
      while (!exited && Date.now() < deadline && (await finished()) < 2) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(!exited, "the run ended before it could be killed after block 2");
      child.kill("SIGKILL");
      assert.equal((await status).signal, "SIGKILL");
      const done = await finished();
      assert.ok(done >= 2 && done < 5, `killed at ${done} finished blocks`);

      // A CPU run may not continue a WebGPU run's journal.
      const other = await cli([hf, "--out", out, ...RESUME_ARGS.slice(0, -1), "wasm", "--resume"]);
      assert.equal(other.code, 2, other.stderr);
      assert.match(other.stderr, /other settings or data/);

      const r = await cli([hf, "--out", out, ...RESUME_ARGS, "--resume"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`resuming after block ${done - 1} of 5`));
      for (const f of ["model.safetensors", "quantize_config.json", "config.json"]) {
        assert.ok(await sameBytes(`${out}/${f}`, `${ref}/${f}`), `${f} differs after --resume`);
      }
      const report: QuantizeReport = JSON.parse(
        await Deno.readTextFile(`${out}/quantize_report.json`),
      );
      assert.equal(report.resumedBlocks, done);
      const noTime = ({ seconds: _, ...m }: QuantizeReport["modules"][number]) => m;
      assert.deepEqual(report.modules.map(noTime), refReport.modules.map(noTime));
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
);

Deno.test("quantize CLI --backend webgpu without an adapter is a one-line error", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "gptq-webgpu-none-" });
  try {
    const r = await cli([
      `${GOLD}llama`,
      "--out",
      `${tmp}/q`,
      "--dataset",
      TINYSTORIES,
      "--backend",
      "webgpu",
    ], { DENO_WEBGPU_BACKEND: "dx12" });
    assert.notEqual(r.code, 0);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^error: no WebGPU adapter found/);
    assert.deepEqual([...Deno.readDirSync(tmp)], []);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
