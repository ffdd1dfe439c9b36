// Copyright 2026 the GPTQ toolkit authors. MIT license.
// Inference threads: the WASM kernels give bit-identical logits and greedy tokens for any
// thread count (1, 2, 3, 4, 8), on the golden llama, the trained stories260K and a GPTQ
// checkpoint (with f32 and with int8 activations); the count is chosen and explained by wasmThreads / selectBackend / loadModel / CLI.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../../errors.ts";
import { convertLlama2c } from "../../io/llama2c.ts";
import { SafetensorsFile } from "../../io/safetensors.ts";
import { loadModel } from "../../load_model.ts";
import { generateTokens } from "../../runtime/generate.ts";
import { CausalLM } from "../../runtime/model.ts";
import { parseCommandArgs } from "../../cli/_command.ts";
import { generateCommand } from "../../cli/generate.ts";
import { hostBackend } from "../host.ts";
import { selectBackend } from "../select.ts";
import { loadWasm } from "../../wasm/mod.ts";
import { type ActQuant, createWasmKernels, MAX_WASM_THREADS, wasmThreads } from "./wasm_kernels.ts";
import { SYNC_POOL_STATS } from "./_sync_pool.ts";
import { threadsOption } from "../../cli/_command.ts";

const DATA = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
/** The backend name of the module this process loads (GPTQ_WASM_SIMD picks it). */
const WASM = (await loadWasm()).simd === "relaxed" ? "wasm-relaxed-simd" : "wasm-simd128";
const GOLDEN = `${DATA}golden/models/`;
const THREADS = [1, 2, 3, 4, 8];

/** Asserts equal bytes; names the first differing float. */
function assertSameBytes(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const ua = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const ub = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) {
      const j = i >> 2;
      assert.fail(`${what}: float ${j} differs: ${a[j]} vs ${b[j]}`);
    }
  }
}

interface Run {
  /** Prefill logits (GEMM path), then a 3-token chunk (GEMV, M=3), then 1-token steps. */
  logits: Float32Array;
  tokens: number[];
  name: string;
  helpers: number;
  splitCalls: number;
}

/** Runs `dir` with every linear split over `threads` threads (minSplit 0). */
async function run(
  dir: string,
  prompt: number[],
  threads: number,
  actQuant: ActQuant,
): Promise<Run> {
  const started0 = SYNC_POOL_STATS.started, calls0 = SYNC_POOL_STATS.linearCalls;
  const kernels = await createWasmKernels({ threads, minSplit: 0, actQuant });
  const lm = await CausalLM.load(dir, { backend: hostBackend(kernels) });
  try {
    const P = prompt.length - 6;
    const cache = lm.newCache(prompt.length);
    const parts = [await lm.forward(prompt.slice(0, P), cache)];
    parts.push(await lm.forward(prompt.slice(P, P + 3), cache));
    for (let t = P + 3; t < prompt.length; t++) parts.push(await lm.forward([prompt[t]!], cache));
    const logits = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      logits.set(p, o);
      o += p.length;
    }
    const tokens = await Array.fromAsync(
      generateTokens(lm, prompt.slice(0, 4), {
        temperature: 0,
        max_new_tokens: 40,
        eos_token_id: [],
      }),
    );
    return {
      logits,
      tokens,
      name: kernels.name,
      helpers: SYNC_POOL_STATS.started - started0,
      splitCalls: SYNC_POOL_STATS.linearCalls - calls0,
    };
  } finally {
    lm.close();
  }
}

async function checkModel(
  label: string,
  dir: string,
  prompt: number[],
  actQuant: ActQuant = "f32",
): Promise<void> {
  const runs: Run[] = [];
  for (const t of THREADS) runs.push(await run(dir, prompt, t, actQuant));
  const one = runs[0]!;
  assert.equal(one.name, WASM);
  assert.equal(one.helpers, 0);
  assert.equal(one.splitCalls, 0);
  assert.equal(one.tokens.length, 40);
  for (let i = 1; i < runs.length; i++) {
    const r = runs[i]!, t = THREADS[i]!;
    assert.equal(r.name, `${WASM} ×${t} threads`);
    assert.equal(r.helpers, t - 1, `${label}: ${t} threads started ${r.helpers} helper Workers`);
    assert.ok(r.splitCalls > 0, `${label}: no linear was split over ${t} threads`);
    assertSameBytes(r.logits, one.logits, `${label}, ${t} threads vs 1: logits`);
    assert.deepEqual(r.tokens, one.tokens, `${label}, ${t} threads vs 1: greedy tokens`);
  }
  assert.equal(SYNC_POOL_STATS.started, SYNC_POOL_STATS.closed, "a helper Worker leaked");
  console.log(
    `${label}: ${one.logits.length} logits and ${one.tokens.length} greedy tokens identical for ` +
      `threads ${THREADS.join(", ")} (helper calls: ${runs.map((r) => r.splitCalls).join(", ")})`,
  );
}

async function goldenIds(dir: string): Promise<number[]> {
  using g = await SafetensorsFile.open(`${dir}/golden.safetensors`);
  return Array.from(await g.readFloat32("input_ids"));
}

for (const model of ["llama", "llama-gptq-4bit-g32"]) {
  Deno.test(`threads 1/2/3/4/8 give bit-identical logits and greedy tokens: ${model}`, async () => {
    const dir = GOLDEN + model;
    await checkModel(model, dir, (await goldenIds(dir)).slice(0, 48));
  });
}

Deno.test("threads 1/2/3/4/8 give bit-identical logits and greedy tokens: GPTQ, int8 activations", async () => {
  const dir = GOLDEN + "llama-gptq-4bit-g32";
  await checkModel(
    "llama-gptq-4bit-g32 (actQuant int8)",
    dir,
    (await goldenIds(dir)).slice(0, 48),
    "int8",
  );
});

Deno.test("threads 1/2/3/4/8 give bit-identical logits and greedy tokens: stories260K", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const dir = `${tmp}/stories260K`;
    await convertLlama2c(
      `${DATA}stories260K/stories260K.bin`,
      `${DATA}stories260K/tok512.bin`,
      dir,
    );
    const lm = await CausalLM.load(dir, {
      backend: hostBackend(await createWasmKernels({ threads: 1 })),
    });
    const tok = await lm.folder.tokenizer();
    lm.close();
    const text = await Deno.readTextFile(`${DATA}text/tinystories_valid_sample.txt`);
    const ids = tok.encode(text).slice(0, 64);
    assert.equal(ids.length, 64);
    await checkModel("stories260K", dir, ids);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("wasmThreads: default all cores (capped), bad counts are one-line GptqErrors", () => {
  const cores = navigator.hardwareConcurrency;
  const d = wasmThreads();
  assert.equal(d.threads, Math.min(cores, MAX_WASM_THREADS));
  assert.match(d.why, cores > MAX_WASM_THREADS ? /capped/ : /all cores \(default\)/);
  assert.deepEqual(wasmThreads(3), {
    threads: 3,
    why: `3 threads (asked for${3 > cores ? `, more than the ${cores} cores` : ""})`,
  });
  for (const bad of [0, -1, 1.5, NaN, MAX_WASM_THREADS + 1]) {
    assert.throws(
      () => wasmThreads(bad),
      (e: unknown) =>
        e instanceof GptqError && e.code === "INVALID_ARGUMENT" && !e.message.includes("\n") &&
        e.message.includes(`[1, ${MAX_WASM_THREADS}]`),
    );
  }
});

Deno.test("selectBackend and loadModel run and explain the requested thread count", async () => {
  const c = await selectBackend("wasm", { threads: 3 });
  try {
    assert.equal(c.backend.name, `${WASM} ×3 threads`);
    assert.match(
      c.description,
      new RegExp(`^backend: ${WASM} ×3 threads \\(CPU\\) — 3 threads \\(asked for`),
    );
  } finally {
    c.backend.dispose?.();
  }
  const d = await selectBackend("wasm");
  try {
    const n = Math.min(navigator.hardwareConcurrency, MAX_WASM_THREADS);
    assert.ok(d.description.includes(n === 1 ? "1 thread" : `${n} threads`), d.description);
    assert.match(d.description, /default/);
  } finally {
    d.backend.dispose?.();
  }
  await assert.rejects(
    selectBackend("wasm", { threads: 0 }),
    (e: unknown) => e instanceof GptqError && e.code === "INVALID_ARGUMENT",
  );
  const m = await loadModel(GOLDEN + "llama", { backend: "wasm", threads: 2 });
  try {
    assert.equal(m.backend, `${WASM} ×2 threads (CPU)`);
    assert.match(m.backendChoice, /2 threads \(asked for/);
  } finally {
    m.close();
  }
  assert.equal(SYNC_POOL_STATS.started, SYNC_POOL_STATS.closed, "a helper Worker leaked");
});

Deno.test("--threads: parsed for generate, bad values are one-line errors", () => {
  const parse = (...a: string[]) => parseCommandArgs(generateCommand, ["m", ...a]);
  assert.equal(threadsOption(parse()), undefined);
  assert.equal(threadsOption(parse("--threads", "4")), 4);
  for (const bad of ["0", "65", "2.5", "x", ""]) {
    assert.throws(
      () => threadsOption(parse("--threads", bad)),
      (e: unknown) =>
        e instanceof GptqError && e.code === "INVALID_ARGUMENT" &&
        e.message === `--threads must be an integer in [1, 64], got '${bad}'`,
    );
  }
});
