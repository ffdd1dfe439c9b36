// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * WebGPU inference benchmark on the adapter Deno finds, with Llama-7B layer
 * shapes (hidden 4096, intermediate 11008, 32 heads; vocabulary 4096, fp16
 * LM head), random weights:
 *
 * 1. **Copy bandwidth** of the device: a vec4 copy kernel over a buffer of
 *    up to 256 MiB, many dispatches in one submit (read + write traffic
 *    counted), the ceiling of batch-1 decode.
 * 2. **Decode GEMV** alone: every linear of the model (7 per layer) at M = 1,
 *    encoded back to back in one submit, weight bytes / time, as a fraction
 *    of the copy's read traffic. This is the kernel the goal (≥ 60 % of copy
 *    bandwidth at 4-bit g128 on a real GPU) is about.
 * 3. **The whole model** through `CausalLM`: prefill tok/s (one forward of P
 *    tokens), decode tok/s as a user sees it (one submit and one awaited
 *    token per step; Deno's await costs ~11 ms, see the note printed), and
 *    decode steps encoded back to back with a fixed token (the device's own
 *    pace), plus pipeline-compile time (first forward minus a warm one).
 *
 * Variants: fp16 weights, GPTQ 4-bit g128, GPTQ 4-bit g128 act-order
 * (reordered at load). On a software adapter (llvmpipe/lavapipe) the figures
 * are a smoke test only; the default depth there is 1 layer (2 with
 * `--layers 2`), on a real GPU 8.
 *
 * ```sh
 * deno run -A bench/webgpu_bench.ts [--layers N] [--quick] [--json FILE]
 * ```
 *
 * @module
 */

import { CausalLM } from "../src/runtime/model.ts";
import type { Backend } from "../src/backends/backend.ts";
import { createWebGpuBackend } from "../src/backends/webgpu/webgpu_backend.ts";
import { LLAMA7B } from "./_llama7b.ts";
import { type Variant, writeLlama7bModel } from "./_llama7b_model.ts";

const QUICK = Deno.args.includes("--quick");
const VOCAB = 4096;
const { hidden: H, intermediate: I } = LLAMA7B;

function argValue(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

const backend = await createWebGpuBackend();
const ctx = backend.context;
const software = ctx.facts.isFallback;
const LAYERS = Number(argValue("--layers") ?? (software ? 1 : 8));
const PROMPT = QUICK || software ? 16 : 128;
const DECODE = QUICK || software ? 4 : 32;
console.log(`adapter: ${backend.device}; f16 ${ctx.facts.f16}, subgroups ${ctx.facts.subgroups}`);
console.log(
  `Llama-7B shapes: ${LAYERS} layer(s), vocab ${VOCAB}; prompt ${PROMPT}, ${DECODE} decode steps` +
    (software ? " (software adapter: smoke test only)" : ""),
);

/** Seconds per repetition of `encode`, from one submit of `reps` repetitions minus an empty await. */
async function timeEncoded(encode: () => void, reps: number): Promise<number> {
  const probe = ctx.buffer(16);
  await ctx.read(probe, 0, 4); // drain
  let t = performance.now();
  await ctx.read(probe, 0, 4);
  const empty = performance.now() - t;
  t = performance.now();
  for (let r = 0; r < reps; r++) encode();
  await ctx.read(probe, 0, 4);
  const total = performance.now() - t;
  ctx.release(probe);
  return Math.max(total - empty, 1e-3) / 1000 / reps;
}

// ------------------------------------------------------------ copy bandwidth
async function copyBandwidth(): Promise<number> {
  const bytes = Math.min(256 * 2 ** 20, ctx.limits.maxStorageBufferBindingSize) & ~15;
  const src = ctx.buffer(bytes), dst = ctx.buffer(bytes);
  const n4 = bytes / 16;
  const groups = Math.ceil(n4 / 256);
  const gx = Math.min(groups, 65535), gy = Math.ceil(groups / gx);
  const p = ctx.pipeline("bench_copy", "copy_vec4");
  const params = new Uint32Array([n4, gx * 256]);
  const run = () => ctx.dispatch(p, [src, dst], params, [gx, gy]);
  await timeEncoded(run, 2); // warm-up (JIT)
  const s = await timeEncoded(run, software ? 4 : 50);
  ctx.release(src);
  ctx.release(dst);
  return bytes / s; // bytes copied per second (traffic is twice that)
}

// ------------------------------------------------------------ models
interface Row {
  variant: string;
  heldGB: number;
  gemvGBs: number;
  prefillTps: number;
  decodeTps: number;
  encodedDecodeTps: number;
  compileS: number;
  createS: number;
}

const LABEL: Record<Variant, string> = {
  fp16: "fp16 weights",
  gptq: "GPTQ 4-bit g128",
  "gptq-act": "GPTQ 4-bit g128 act-order",
};

async function measure(variant: Variant, dir: string): Promise<Row> {
  await writeLlama7bModel(dir, variant, LAYERS, VOCAB);
  let held = 0;
  const counting: Backend = new Proxy(backend, {
    get(target, prop) {
      if (prop === "dispose") return () => {};
      const v = Reflect.get(target, prop);
      if (prop === "linearFromDense" || prop === "linearFromGptq") {
        return (...a: unknown[]) => {
          const h = (v as (...x: unknown[]) => { bytes: number }).apply(target, a);
          held += h.bytes;
          return h;
        };
      }
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  const lm = await CausalLM.load(dir, { backend: counting, onWarning: () => {} });
  try {
    const prompt = Array.from({ length: PROMPT }, (_, i) => 3 + (i * 7) % (VOCAB - 3));
    // First forward compiles the pipelines (and JITs them on a software adapter).
    const c0 = ctx.stats.pipelineMs;
    let t = performance.now();
    let cache = lm.newCache(PROMPT + DECODE + 1);
    await lm.greedy(prompt, cache);
    const first = performance.now() - t;
    lm.freeCache(cache);
    let prefill = Infinity;
    for (let r = 0; r < (software ? 1 : 3); r++) {
      cache = lm.newCache(PROMPT + DECODE + 1);
      t = performance.now();
      await lm.greedy(prompt, cache);
      prefill = Math.min(prefill, performance.now() - t);
      if (r < (software ? 0 : 2)) lm.freeCache(cache);
    }
    // Decode as a user sees it: one awaited token per step.
    let id = 5;
    t = performance.now();
    for (let i = 0; i < DECODE; i++) id = await lm.greedy([id], cache);
    const decode = performance.now() - t;
    lm.freeCache(cache);
    // The device's pace: decode steps encoded back to back (fixed token), one await.
    cache = lm.newCache(DECODE + 1);
    const sPerStep = await timeEncoded(() => {
      backend.free(lm.logits([5], cache));
    }, DECODE);
    lm.freeCache(cache);
    return {
      variant: LABEL[variant],
      heldGB: held / 1e9,
      gemvGBs: NaN,
      prefillTps: PROMPT / (prefill / 1000),
      decodeTps: DECODE / (decode / 1000),
      encodedDecodeTps: 1 / sPerStep,
      compileS: Math.max(0, first - prefill) / 1000,
      createS: (ctx.stats.pipelineMs - c0) / 1000,
    };
  } finally {
    lm.close();
  }
}

/** Decode GEMV bandwidth: every linear of one layer at M = 1, many times in one submit. */
async function gemvBandwidth(dir: string): Promise<number> {
  const { ModelFolder } = await import("../src/io/model_folder.ts");
  const { blockContext, loadBlock, releaseBlock } = await import("../src/runtime/model.ts");
  const folder = await ModelFolder.open(dir);
  const bctx = blockContext(folder, backend);
  const block = await loadBlock(folder, bctx, 0);
  try {
    let bytes = 0;
    const lins = [...block.linears.values()];
    for (const l of lins) bytes += l.bytes;
    const xH = backend.upload(new Float32Array(H).fill(0.01), 1, H);
    const xI = backend.upload(new Float32Array(I).fill(0.01), 1, I);
    const run = () => {
      for (const l of lins) backend.free(backend.linear(l.K === H ? xH : xI, l));
    };
    await timeEncoded(run, 1); // warm-up
    const s = await timeEncoded(run, software ? 2 : 40);
    backend.free(xH);
    backend.free(xI);
    return bytes / s;
  } finally {
    releaseBlock(bctx, block);
    folder.close();
  }
}

const tmp = await Deno.makeTempDir({ prefix: "webgpu_bench_" });
const rows: Row[] = [];
let copy = NaN;
try {
  copy = await copyBandwidth();
  console.log(
    `copy kernel: ${(copy / 1e9).toFixed(1)} GB/s copied (${(2 * copy / 1e9).toFixed(1)} GB/s ` +
      `read + write)`,
  );
  for (const v of ["fp16", "gptq", "gptq-act"] as Variant[]) {
    const dir = `${tmp}/${v}`;
    await Deno.mkdir(dir);
    const row = await measure(v, dir);
    row.gemvGBs = await gemvBandwidth(dir) / 1e9;
    rows.push(row);
    await Deno.remove(dir, { recursive: true });
    console.log(`  measured ${row.variant}`);
  }
} finally {
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  backend.dispose?.();
}

const f = (v: number, d = 1) => Number.isFinite(v) ? v.toFixed(d) : "n/a";
console.log(
  "\n| model | held GB | decode GEMV GB/s | % of copy read BW | prefill tok/s | decode tok/s " +
    "(awaited) | decode tok/s (encoded) | pipelines: create s / first-use s |",
);
console.log("|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.variant} | ${f(r.heldGB, 3)} | ${f(r.gemvGBs)} | ${f(100 * r.gemvGBs * 1e9 / copy)} | ` +
      `${f(r.prefillTps)} | ${f(r.decodeTps, 2)} | ${f(r.encodedDecodeTps, 2)} | ` +
      `${f(r.createS, 2)} / ${f(r.compileS, 2)} |`,
  );
}
console.log(
  `\ncopy: ${f(copy / 1e9)} GB/s copied on ${backend.device}. GEMV GB/s = weight bytes of one ` +
    "layer's 7 linears at M = 1 / time, compared with the copy's read rate (bytes copied/s). " +
    "Awaited decode includes Deno's ~11 ms per await; encoded decode is the device's pace.",
);
const jsonOut = argValue("--json");
if (jsonOut) {
  await Deno.writeTextFile(
    jsonOut,
    JSON.stringify({ device: backend.device, copyGBs: copy / 1e9, layers: LAYERS, rows }, null, 2),
  );
}
