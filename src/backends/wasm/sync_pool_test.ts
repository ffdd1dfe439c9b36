// Copyright 2026 the GPTQ toolkit authors. MIT license.
import { hostBackend } from "../host.ts";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../../errors.ts";
import { SafetensorsFile } from "../../io/safetensors.ts";
import { CausalLM } from "../../runtime/model.ts";
import { loadWasm } from "../../wasm/mod.ts";
import { createWasmKernels } from "./wasm_kernels.ts";
import { sliceHalf, SYNC_POOL_STATS } from "./_sync_pool.ts";
import { attentionBounds } from "./_attention_split.ts";

const GOLDEN = fileURLToPath(new URL("../../../../shared/data/golden/models/", import.meta.url));
/** The backend name of the module this process loads (GPTQ_WASM_SIMD picks it). */
const WASM = (await loadWasm()).simd === "relaxed" ? "wasm-relaxed-simd" : "wasm-simd128";

async function golden(dir: string): Promise<{ ids: number[]; logits: Float32Array }> {
  using g = await SafetensorsFile.open(`${dir}/golden.safetensors`);
  return {
    ids: Array.from(await g.readFloat32("input_ids")),
    logits: await g.readFloat32("logits"),
  };
}

function assertBitEqual(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i} differs: ${a[i]} vs ${b[i]}`);
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** Full-prompt logits, then the last logits of a prefill-90 + 1-token decode run. */
async function run(
  dir: string,
  ids: number[],
  threads: number,
  minSplit?: number,
): Promise<{ full: Float32Array; decoded: Float32Array; name: string }> {
  const kernels = await createWasmKernels({ threads, minSplit });
  const lm = await CausalLM.load(dir, { backend: hostBackend(kernels) });
  try {
    const full = await lm.forward(ids, lm.newCache(ids.length));
    const cache = lm.newCache(ids.length);
    await lm.forward(ids.slice(0, 90), cache);
    let decoded: Float32Array = new Float32Array();
    for (let t = 90; t < ids.length; t++) decoded = await lm.forward([ids[t]!], cache);
    return { full, decoded, name: kernels.name };
  } finally {
    lm.close();
  }
}

for (const model of ["llama", "gpt2", "gpt_neox", "opt", "llama-gptq-4bit-g32"]) {
  for (const minSplit of [0, undefined]) {
    const how = minSplit === 0 ? "every linear split" : "default threshold";
    Deno.test(`2-thread wasm kernels equal 1 thread bit for bit (${how}): ${model}`, async () => {
      const dir = GOLDEN + model;
      const { ids, logits } = await golden(dir);
      const one = await run(dir, ids, 1);
      assert.equal(one.name, WASM);
      const calls0 = SYNC_POOL_STATS.linearCalls;
      const started0 = SYNC_POOL_STATS.started;
      const two = await run(dir, ids, 2, minSplit);
      assert.equal(two.name, `${WASM} ×2 threads`);
      const calls = SYNC_POOL_STATS.linearCalls - calls0;
      // Every model's LM head (vocab 1024 × hidden) is over the default
      // threshold; with minSplit 0 every linear of every forward is split.
      assert.ok(calls > 0, "the helper Worker computed nothing");
      assert.ok(SYNC_POOL_STATS.started > started0, "no helper Worker started");
      assert.equal(SYNC_POOL_STATS.started, SYNC_POOL_STATS.closed, "a helper Worker leaked");
      assertBitEqual(two.full, one.full, `${model} prompt logits`);
      assertBitEqual(two.decoded, one.decoded, `${model} decoded logits`);
      // And both match the reference implementation's logits.
      const d = maxAbsDiff(two.full, logits);
      console.log(
        `${model} (${how}): ${calls} split calls, max |Δ| vs reference ${d.toExponential(3)}`,
      );
      assert.ok(d <= 1e-3, `logits differ from the reference by ${d}`);
    });
  }
}

Deno.test("sliceHalf cuts rows of [N, K] and columns of a transposed [K, N] weight", () => {
  // [K=2, N=3] stored transposed: element (k, n) = 10k + n.
  const t = new Uint16Array([0, 1, 2, 10, 11, 12]);
  const h = sliceHalf(
    { dtype: "F16", shape: [2, 3], data: new Uint8Array(t.buffer) },
    new Float32Array([7, 8, 9]),
    true,
    1,
    3,
  );
  assert.equal(h.dtype, "F16");
  assert.deepEqual(Array.from(new Uint16Array(h.data)), [1, 2, 11, 12]);
  assert.deepEqual(Array.from(h.bias!), [8, 9]);
  const f = new Float64Array([1, 2, 3, 4, 5, 6]); // [3, 2], widened to f32
  const r = sliceHalf(
    { dtype: "F64", shape: [3, 2], data: new Uint8Array(f.buffer) },
    null,
    false,
    2,
    3,
  );
  assert.equal(r.dtype, "F32");
  assert.deepEqual(Array.from(new Float32Array(r.data)), [5, 6]);
  assert.equal(r.bias, null);
});

Deno.test("2-thread kernels: misuse is a GptqError, dispose stops the Worker", async () => {
  await assert.rejects(
    createWasmKernels({ threads: 0 }),
    (e: unknown) => e instanceof GptqError && e.code === "INVALID_ARGUMENT",
  );
  const k = await createWasmKernels({ threads: 2 });
  const N = 256, K = 256;
  const w = new Float32Array(N * K).map((_, i) => ((i * 37) % 101) / 101 - 0.5);
  const data = new Uint8Array(w.buffer);
  const h = k.linearFromDense({ dtype: "F32", shape: [N, K], data }, null, false);
  const x = new Float32Array(3 * K).map((_, i) => Math.sin(i));
  const y2 = k.linear(x, 3, h);
  const k1 = await createWasmKernels({ threads: 1 });
  const h1 = k1.linearFromDense({ dtype: "F32", shape: [N, K], data }, null, false);
  assertBitEqual(y2, k1.linear(x, 3, h1), "256x256 f32, M=3");
  k1.release(h1);
  k.dispose?.();
  assert.equal(SYNC_POOL_STATS.started, SYNC_POOL_STATS.closed);
  assert.throws(
    () => k.linear(x, 3, h),
    (e: unknown) => e instanceof GptqError && /closed/.test(e.message),
  );
  k.release(h); // still frees this thread's half
});

Deno.test("attentionBounds balances causal work and never leaves a part under 2 rows", () => {
  assert.deepEqual(attentionBounds(64, 0, 1), [0, 64]);
  assert.deepEqual(attentionBounds(3, 0, 2), [0, 3]);
  // A balanced cut of 4 rows would leave the last part 1 row (the decode path): refused.
  assert.deepEqual(attentionBounds(4, 0, 2), [0, 4]);
  for (const [T, past, parts] of [[64, 0, 2], [77, 9, 2], [100, 0, 3], [40, 500, 4]]) {
    const b = attentionBounds(T!, past!, parts!);
    assert.equal(b.length, parts! + 1, `${T}/${past}/${parts}: parts`);
    assert.equal(b[0], 0);
    assert.equal(b.at(-1), T);
    const work = (r0: number, r1: number) => {
      let w = 0;
      for (let r = r0; r < r1; r++) w += past! + r + 1;
      return w;
    };
    const ws = b.slice(1).map((e, i) => work(b[i]!, e));
    for (let i = 1; i < b.length; i++) {
      assert.ok(b[i]! - b[i - 1]! >= 2, `${T}/${past}/${parts}: ${b}`);
    }
    // Each part within one row's work of the fair share (T ≥ 16 per part).
    if (T! >= 16 * parts!) {
      const fair = work(0, T!) / parts!, row = past! + T!;
      for (const w of ws) {
        assert.ok(Math.abs(w - fair) <= row, `${T}/${past}/${parts}: ${ws} vs ${fair}`);
      }
    }
  }
});

Deno.test("attention split over the helper Workers equals one thread bit for bit", async () => {
  const k1 = await createWasmKernels({ threads: 1 });
  for (const threads of [2, 3]) {
    const k = await createWasmKernels({ threads, minSplit: 0 });
    // A split linear starts the helpers; attention uses the running ones.
    const N = 256, K = 64;
    const w = new Float32Array(N * K).map((_, i) => ((i * 37) % 101) / 101 - 0.5);
    const h = k.linearFromDense(
      { dtype: "F32", shape: [N, K], data: new Uint8Array(w.buffer) },
      null,
      false,
    );
    try {
      for (
        const [T, past, Hq, Hkv, D] of [[40, 0, 9, 3, 64], [77, 9, 4, 4, 16], [33, 5, 2, 1, 7], [
          31,
          0,
          9,
          3,
          64,
        ]]
      ) {
        const q = new Float32Array(T! * Hq! * D!).map((_, i) => Math.sin(i * 0.37));
        const n = (past! + T! + 3) * Hkv! * D!;
        const kc = new Float32Array(n).map((_, i) => Math.cos(i * 0.11));
        const vc = new Float32Array(n).map((_, i) => Math.sin(i * 0.05));
        const before = SYNC_POOL_STATS.attentionCalls;
        const y = k.attention(q, T!, Hq!, Hkv!, D!, kc, vc, past!);
        const split = SYNC_POOL_STATS.attentionCalls - before;
        assert.equal(split, T! >= 32 ? threads - 1 : 0, `threads ${threads}, T ${T}: helper calls`);
        assertBitEqual(
          y,
          k1.attention(q, T!, Hq!, Hkv!, D!, kc, vc, past!),
          `threads ${threads}, T ${T}, past ${past}`,
        );
      }
    } finally {
      k.release(h);
      k.dispose?.();
    }
  }
  k1.dispose?.();
});
