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
import { type GPTQConfig, quantizeModel, type QuantizeReport } from "../src/quant/quantize.ts";
import { selectBackend } from "../src/backends/select.ts";
import { libraryPath } from "../src/backends/cuda/ffi.ts";
import { disposeBackends, targets, targetTest } from "../src/backends/cuda/_test_targets.ts";
import { cli, compareWithWasm, GOLD, sameBytes, TINYSTORIES } from "./_quantize_device_util.ts";

const LLAMA = `${GOLD}llama`;
const NSAMPLES = 4, SEQLEN = 64;

const ts = await targets("quantize_cuda_test.ts");

targetTest(
  ts,
  "quantize on the device engine: golden llama and stories260K within 0.5% perplexity of WASM's",
  async (gpu, _t, kind) => {
    const tmp = await Deno.makeTempDir({ prefix: "gptq-cuda-e2e-" });
    const { backend: cpu } = await selectBackend("wasm");
    try {
      await compareWithWasm({
        gpu,
        cpu,
        kind,
        tmp,
        nsamples: NSAMPLES,
        seqlen: SEQLEN,
        maxSamples: 8,
        line: (r) =>
          `${kind}: ${r.what}: ppl WASM ${r.pc.toFixed(4)}, ${kind} ${r.pg.toFixed(4)} (${
            (100 * r.rel).toFixed(3)
          }%); codes equal ${(100 * r.agree).toFixed(3)}% of ${r.quantized} modules; quantize ${
            r.wasmSeconds.toFixed(1)
          } s (WASM) vs ${r.gpuSeconds.toFixed(1)} s (${kind})`,
      });
    } finally {
      cpu.dispose?.();
      await Deno.remove(tmp, { recursive: true });
    }
  },
);

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
