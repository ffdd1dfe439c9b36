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
import { convertLlama2c } from "../src/io/llama2c.ts";
import type { QuantizeReport } from "../src/quant/quantize.ts";
import { selectBackend } from "../src/backends/select.ts";
import {
  CLI,
  cli,
  compareWithWasm,
  GOLD,
  sameBytes,
  STORIES,
  TINYSTORIES,
} from "./_quantize_device_util.ts";

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
if (!adapter) console.log("WebGPU quantize tests skipped: no WebGPU adapter");

function gpuTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: `${name}${adapter ? "" : " (skipped: no WebGPU adapter)"}`,
    ignore: !adapter,
    fn,
  });
}

gpuTest(
  "quantize on WebGPU: golden llama and stories260K checkpoints within 0.5% perplexity of WASM's",
  async () => {
    const tmp = await Deno.makeTempDir({ prefix: "gptq-webgpu-e2e-" });
    const { backend: gpu } = await selectBackend("webgpu");
    const { backend: cpu } = await selectBackend("wasm");
    try {
      await compareWithWasm({
        gpu,
        cpu,
        kind: "webgpu",
        tmp,
        nsamples: 8,
        seqlen: 128,
        maxSamples: 24,
        line: (r) =>
          `${r.what}: ppl WASM ${r.pc.toFixed(4)}, WebGPU ${r.pg.toFixed(4)} (${
            (100 * r.rel).toFixed(3)
          }%); codes equal ${(100 * r.agree).toFixed(3)}%; quantize ${
            r.wasmSeconds.toFixed(1)
          } s (WASM) vs ${r.gpuSeconds.toFixed(1)} s (WebGPU, lavapipe)`,
      });
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
