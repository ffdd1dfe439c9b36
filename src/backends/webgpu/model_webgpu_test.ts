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
import { perplexity } from "../../runtime/perplexity.ts";
import { quantizeModel } from "../../quant/quantize.ts";
import type { Backend } from "../backend.ts";
import { hostBackend } from "../host.ts";
import { createWasmKernels } from "../wasm/wasm_kernels.ts";
import { createWebGpuBackend, probeWebGpu, type WebGpuBackend } from "./webgpu_backend.ts";

const DATA = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
const GOLDEN = `${DATA}golden/models/`;

const probe = await probeWebGpu();
const skip = probe.ok ? "" : ` (skipped: no WebGPU adapter: ${probe.reason})`;
if (!probe.ok) console.warn(`model_webgpu_test: skipped: no WebGPU adapter: ${probe.reason}`);

/** Max |a−b| over max |b|, and the relative L2 distance. */
function rel(a: Float32Array, b: Float32Array): { max: number; l2: number } {
  assert.equal(a.length, b.length);
  let m = 0, mb = 0, d2 = 0, b2 = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    m = Math.max(m, Math.abs(d));
    mb = Math.max(mb, Math.abs(b[i]!));
    d2 += d * d;
    b2 += b[i]! * b[i]!;
  }
  return { max: m / mb, l2: Math.sqrt(d2 / b2) };
}

async function wasm(): Promise<Backend> {
  return hostBackend(await createWasmKernels(), "CPU");
}

interface Outputs {
  logits: Float32Array;
  decoded: Float32Array;
  greedy: number[];
  ppl: number;
}

/** Everything compared, from one backend. */
async function outputs(dir: string, backend: Backend, ids: number[], greedyN: number) {
  const lm = await CausalLM.load(dir, { backend, onWarning: () => {} });
  try {
    const logits = await lm.forward(ids, lm.newCache(ids.length));
    const cache = lm.newCache(ids.length);
    const split = Math.max(1, ids.length - 4);
    await lm.forward(ids.slice(0, split), cache);
    let decoded: Float32Array = new Float32Array();
    for (let t = split; t < ids.length; t++) decoded = await lm.forward([ids[t]!], cache);
    const greedy = await Array.fromAsync(
      generateTokens(lm, ids.slice(0, 8), {
        temperature: 0,
        max_new_tokens: greedyN,
        eos_token_id: [],
      }),
    );
    const seqlen = Math.min(64, Math.floor(ids.length / 2));
    const { ppl } = await perplexity(lm, ids, { seqlen, maxSamples: 2 });
    return { logits, decoded, greedy, ppl } satisfies Outputs;
  } finally {
    lm.close();
  }
}

function compare(name: string, gpu: Outputs, cpu: Outputs): void {
  const full = rel(gpu.logits, cpu.logits), dec = rel(gpu.decoded, cpu.decoded);
  const dppl = Math.abs(gpu.ppl / cpu.ppl - 1);
  console.log(
    `${name}: logits max ${full.max.toExponential(2)} l2 ${full.l2.toExponential(2)}; ` +
      `decode max ${dec.max.toExponential(2)}; ppl ${gpu.ppl.toFixed(5)} vs ` +
      `${cpu.ppl.toFixed(5)} (Δ ${(dppl * 100).toFixed(4)}%); greedy ${gpu.greedy.length} tokens`,
  );
  assert.ok(full.max <= 1e-3 && full.l2 <= 1e-3, `logits differ: ${JSON.stringify(full)}`);
  assert.ok(dec.max <= 1e-3, `decode logits differ: ${JSON.stringify(dec)}`);
  assert.ok(dppl <= 1e-3, `perplexity differs by ${(dppl * 100).toFixed(4)}%`);
  assert.deepEqual(gpu.greedy, cpu.greedy);
}

// One device for every test (lavapipe compiles each pipeline once).
let shared: Backend | null = null;
async function gpu(): Promise<Backend> {
  shared ??= await createWebGpuBackend();
  // CausalLM.close() disposes its backend: hand out a view whose dispose does nothing.
  const be = shared;
  return new Proxy(be, {
    get(target, prop) {
      if (prop === "dispose") return () => {};
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

for (const name of ["llama", "opt", "gpt2", "gpt_neox", "llama-gptq-4bit-g32"]) {
  Deno.test({
    name: `webgpu vs wasm on the golden ${name}${skip}`,
    ignore: !probe.ok,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const dir = GOLDEN + name;
      using g = await SafetensorsFile.open(`${dir}/golden.safetensors`);
      const ids = Array.from(await g.readFloat32("input_ids"));
      const cpu = await outputs(dir, await wasm(), ids, 16);
      const out = await outputs(dir, await gpu(), ids, 16);
      compare(name, out, cpu);
    },
  });
}

Deno.test({
  name: `webgpu vs wasm on stories260K: plain, GPTQ 4-bit act-order, GPTQ 3-bit asym${skip}`,
  ignore: !probe.ok,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const tmp = await Deno.makeTempDir();
    try {
      const dir = `${tmp}/stories260K`;
      await convertLlama2c(
        `${DATA}stories260K/stories260K.bin`,
        `${DATA}stories260K/tok512.bin`,
        dir,
      );
      const text = await Deno.readTextFile(`${DATA}text/tinystories_valid_sample.txt`);
      const lm = await CausalLM.load(dir, { backend: await wasm() });
      const ids = (await lm.folder.tokenizer()).encode(text).slice(0, 256);
      lm.close();
      await Deno.writeTextFile(`${tmp}/calib.txt`, text.slice(0, 20000));
      const variants: [string, string][] = [["plain", dir]];
      for (
        const [label, cfg] of [
          ["gptq 4-bit g32 act-order", { bits: 4, group_size: 32, desc_act: true }],
          ["gptq 3-bit g32 asym", { bits: 3, group_size: 32, sym: false }],
        ] as const
      ) {
        const out = `${tmp}/${label.replace(/\W+/g, "-")}`;
        await quantizeModel(dir, out, {
          ...cfg,
          dataset: `${tmp}/calib.txt`,
          nsamples: 8,
          model_seqlen: 128,
        }, { threads: 1, onLog: () => {} });
        variants.push([label, out]);
      }
      for (const [label, d] of variants) {
        await t.step(label, async () => {
          const cpu = await outputs(d, await wasm(), ids, 64);
          const out = await outputs(d, await gpu(), ids, 64);
          compare(`stories260K ${label}`, out, cpu);
        });
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
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
