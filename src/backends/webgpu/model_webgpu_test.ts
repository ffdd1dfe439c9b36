// Copyright 2026 the GPTQ toolkit authors. MIT license.
// Whole models on the WebGPU backend against the WASM backend: the golden
// models (plain and GPTQ), and the real stories260K model (plain, and GPTQ
// checkpoints with act-order and 3 bits quantized here): logits, KV-cache
// decode, greedy tokens, perplexity.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../../io/safetensors.ts";
import { convertLlama2c } from "../../io/llama2c.ts";
import { convertGguf } from "../../io/gguf_convert.ts";
import { CausalLM } from "../../runtime/model.ts";
import { generateTokens } from "../../runtime/generate.ts";
import type { Backend } from "../backend.ts";
import {
  compare,
  goldenVsWasm,
  noDispose,
  outputs,
  rel,
  stories260KVsWasm,
  wasm,
} from "../_model_test_util.ts";
import { createWebGpuBackend, probeWebGpu, type WebGpuBackend } from "./webgpu_backend.ts";

const DATA = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
const GOLDEN = `${DATA}golden/models/`;

const probe = await probeWebGpu();
const skip = probe.ok ? "" : ` (skipped: no WebGPU adapter: ${probe.reason})`;
if (!probe.ok) console.warn(`model_webgpu_test: skipped: no WebGPU adapter: ${probe.reason}`);

// One device for every test (lavapipe compiles each pipeline once).
let shared: Backend | null = null;
async function gpu(): Promise<Backend> {
  shared ??= await createWebGpuBackend();
  // CausalLM.close() disposes its backend: hand out a view whose dispose does nothing.
  return noDispose(shared);
}

for (const name of ["llama", "opt", "gpt2", "gpt_neox", "llama-gptq-4bit-g32"]) {
  Deno.test({
    name: `webgpu vs wasm on the golden ${name}${skip}`,
    ignore: !probe.ok,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () => goldenVsWasm(name, GOLDEN + name, gpu),
  });
}

Deno.test({
  name: `webgpu vs wasm on stories260K: plain, GPTQ 4-bit act-order, GPTQ 3-bit asym${skip}`,
  ignore: !probe.ok,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: (t) => stories260KVsWasm(DATA, t, gpu),
});

Deno.test({
  name: `webgpu: stories260K greedy from BOS equals the author's story${skip}`,
  ignore: !probe.ok,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      const dir = `${tmp}/stories260K`;
      await convertLlama2c(
        `${DATA}stories260K/stories260K.bin`,
        `${DATA}stories260K/tok512.bin`,
        dir,
      );
      const lm = await CausalLM.load(dir, { backend: await gpu() });
      try {
        const tok = await lm.folder.tokenizer();
        const notes = await Deno.readTextFile(`${DATA}stories260K/KARPATHY_NOTES.md`);
        const story = notes.split("```")[3]!.split("\n").slice(2).join("\n").trimEnd();
        const expected = tok.encode(story).slice(1);
        const got = await Array.fromAsync(
          generateTokens(lm, [1], { temperature: 0, max_new_tokens: expected.length }),
        );
        const n = Math.min(got.length, expected.length);
        assert.ok(n >= 200, `only ${n} tokens compared`);
        assert.deepEqual(got.slice(0, n), expected.slice(0, n));
        console.log(`webgpu greedy: ${n} tokens identical to KARPATHY_NOTES.md`);
      } finally {
        lm.close();
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name: `webgpu: a decode step is one submit and one 4-byte readback${skip}`,
  ignore: !probe.ok,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const be = await gpu() as WebGpuBackend;
    const lm = await CausalLM.load(GOLDEN + "llama-gptq-4bit-g32", {
      backend: be,
      onWarning: () => {},
    });
    try {
      const cache = lm.newCache(16);
      let id = await lm.greedy([1, 2, 3, 4], cache);
      id = await lm.greedy([id], cache); // the first decode step compiles the M = 1 kernels
      const before = { ...be.context.stats };
      for (let i = 0; i < 4; i++) id = await lm.greedy([id], cache);
      const s = be.context.stats;
      assert.equal(s.submits - before.submits, 4, "one submit per decode step");
      assert.equal(s.reads - before.reads, 4, "one readback per decode step");
      assert.equal(
        s.pipelines,
        before.pipelines,
        "no pipeline compiled after the first decode step",
      );
      console.log(
        `decode step: ${(s.dispatches - before.dispatches) / 4} dispatches in one submit`,
      );
      lm.freeCache(cache);
    } finally {
      lm.close();
    }
  },
});

Deno.test({
  name: `webgpu: release the shared device${skip}`,
  ignore: !probe.ok,
  sanitizeResources: false,
  sanitizeOps: false,
  fn() {
    shared?.dispose?.();
    shared = null;
  },
});

Deno.test({
  name: `webgpu vs wasm on SmolLM2-135M-Instruct (GGUF Q4_1 → f32), and vs transformers${skip}`,
  ignore: !probe.ok,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      const dir = `${tmp}/smollm2`;
      await convertGguf(`${DATA}smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`, dir);
      using g = await SafetensorsFile.open(`${DATA}smollm2/golden.safetensors`);
      const ids = Array.from(await g.readFloat32("input_ids"));
      const want = await g.readFloat32("logits");
      const cpu = await outputs(dir, await wasm(), ids, 24);
      const out = await outputs(dir, await gpu(), ids, 24);
      compare("SmolLM2-135M", out, cpu);
      const vsHf = rel(out.logits, want);
      console.log(
        `SmolLM2-135M webgpu logits vs transformers fp32: relative L2 ${vsHf.l2.toExponential(2)}`,
      );
      assert.ok(vsHf.l2 <= 1e-4, `webgpu logits vs transformers: ${JSON.stringify(vsHf)}`);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
