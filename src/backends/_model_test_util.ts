// Copyright 2026 the GPTQ toolkit authors. MIT license.
// Private test helpers shared by the device model tests (`cuda/model_cuda_test.ts`,
// `webgpu/model_webgpu_test.ts`): one backend's outputs on a model (logits, KV-cache decode,
// greedy tokens, perplexity) compared with the WASM backend's. Never exported from mod.ts.
import assert from "node:assert/strict";
import { SafetensorsFile } from "../io/safetensors.ts";
import { convertLlama2c } from "../io/llama2c.ts";
import { CausalLM } from "../runtime/model.ts";
import { generateTokens } from "../runtime/generate.ts";
import { perplexity } from "../runtime/perplexity.ts";
import { quantizeModel } from "../quant/quantize.ts";
import type { Backend } from "./backend.ts";
import { hostBackend } from "./host.ts";
import { createWasmKernels } from "./wasm/wasm_kernels.ts";

/** Max |a−b| over max |b|, and the relative L2 distance. */
export function rel(a: Float32Array, b: Float32Array): { max: number; l2: number } {
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

/** A fresh WASM backend, the reference. */
export async function wasm(): Promise<Backend> {
  return hostBackend(await createWasmKernels(), "CPU");
}

/** A view of a shared backend whose dispose does nothing (CausalLM.close disposes). */
export function noDispose<B extends Backend>(be: B): B {
  return new Proxy(be, {
    get(target, prop) {
      if (prop === "dispose") return () => {};
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** Everything compared, from one backend. */
export interface Outputs {
  logits: Float32Array;
  decoded: Float32Array;
  greedy: number[];
  ppl: number;
}

/** Runs the model in `dir` on `backend`: full logits, decode logits, greedy tokens, perplexity. */
export async function outputs(
  dir: string,
  backend: Backend,
  ids: number[],
  greedyN: number,
): Promise<Outputs> {
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

/** Prints the device's distance to the WASM outputs and asserts it is within 1e-3, greedy equal. */
export function compare(name: string, gpu: Outputs, cpu: Outputs): void {
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

/** The golden model `dir` (a folder with `golden.safetensors`) on `device()` vs WASM. */
export async function goldenVsWasm(
  name: string,
  dir: string,
  device: () => Promise<Backend>,
): Promise<void> {
  using g = await SafetensorsFile.open(`${dir}/golden.safetensors`);
  const ids = Array.from(await g.readFloat32("input_ids"));
  const cpu = await outputs(dir, await wasm(), ids, 16);
  const out = await outputs(dir, await device(), ids, 16);
  compare(name, out, cpu);
}

/**
 * stories260K (from `data`, the shared data folder) plain and as GPTQ 4-bit act-order and
 * 3-bit asym checkpoints quantized here, one step each, on `device()` vs WASM.
 */
export async function stories260KVsWasm(
  data: string,
  t: Deno.TestContext,
  device: () => Promise<Backend>,
): Promise<void> {
  const tmp = await Deno.makeTempDir();
  try {
    const dir = `${tmp}/stories260K`;
    await convertLlama2c(
      `${data}stories260K/stories260K.bin`,
      `${data}stories260K/tok512.bin`,
      dir,
    );
    const text = await Deno.readTextFile(`${data}text/tinystories_valid_sample.txt`);
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
        const out = await outputs(d, await device(), ids, 64);
        compare(`stories260K ${label}`, out, cpu);
      });
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}
