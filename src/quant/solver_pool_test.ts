// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../errors.ts";
import { SafetensorsFile } from "../io/safetensors.ts";
import {
  createWasmSolver,
  type GptqLayerResult,
  type GptqSolveOptions,
  hessianError,
  hessianErrorSums,
  sampledRows,
} from "./solver.ts";
import { createParallelGptq } from "./_solver_pool.ts";

const DIR = fileURLToPath(new URL("../../../shared/data/golden/autogptq/", import.meta.url));

function assertSameLayer(a: GptqLayerResult, b: GptqLayerResult, what: string): void {
  const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);
  assert.equal(a.G, b.G, `${what}: G`);
  assert.deepEqual(bits(a.q), bits(b.q), `${what}: q bit for bit`);
  assert.deepEqual(a.codes, b.codes, `${what}: codes`);
  assert.deepEqual(bits(a.scale), bits(b.scale), `${what}: scale bit for bit`);
  assert.deepEqual(bits(a.zero), bits(b.zero), `${what}: zero bit for bit`);
  assert.deepEqual(a.gIdx, b.gIdx, `${what}: g_idx`);
  assert.equal(a.dampUsed, b.dampUsed, `${what}: damp used`);
  assert.equal(a.deadColumns, b.deadColumns, `${what}: dead columns`);
  assert.ok(
    Math.abs(a.loss - b.loss) <= 1e-9 * Math.abs(b.loss) + 1e-12,
    `${what}: loss ${a.loss} vs ${b.loss}`,
  );
}

/** xorshift32 in [-1, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 31 - 1;
  };
}

Deno.test("parallel solver (2 Workers, prepare on Worker 0 or split) is bit-identical to the single-thread solver and matches AutoGPTQ on every golden case", async () => {
  const s = await createWasmSolver();
  using pool0 = await createParallelGptq(2);
  using poolSplit = await createParallelGptq(2, { splitPrepareMinK: 0 });
  const cases = JSON.parse(await Deno.readTextFile(DIR + "cases.json")).cases as Record<
    string,
    string
  >[];
  assert.ok(cases.length >= 8, "golden cases present");
  for (const c of cases) {
    using f = await SafetensorsFile.open(DIR + c.file);
    const [N, K] = f.info("W").shape as [number, number];
    const W = await f.readFloat32("W"), H = await f.readFloat32("H"), Q = await f.readFloat32("Q");
    const opts: GptqSolveOptions = {
      bits: Number(c.bits),
      group_size: Number(c.group_size),
      sym: c.sym === "true",
      desc_act: c.desc_act === "true",
      static_groups: c.static_groups === "true",
      damp_percent: Number(c.damp_percent),
    };
    const single = s.gptq(W, N, K, H, opts);
    const split = await poolSplit.gptq(W, N, K, H, opts, c.file);
    assertSameLayer(split, single, `${c.file} (split prepare)`);
    assert.equal(split.timings.ship, 0, `${c.file}: nothing shipped after a split prepare`);
    const par = await pool0.gptq(W, N, K, H, opts, c.file);
    assertSameLayer(par, single, c.file);
    assert.equal(par.timings.quantize.length, 2, `${c.file}: both Workers got rows`);
    // Against AutoGPTQ itself (same tolerance as solver_test.ts: fp32 rounding of the scale).
    let maxRel = 0;
    for (let i = 0; i < Q.length; i++) {
      if (par.q[i] !== Q[i]) {
        maxRel = Math.max(maxRel, Math.abs(par.q[i]! - Q[i]!) / Math.max(Math.abs(Q[i]!), 1e-12));
      }
    }
    assert.ok(maxRel <= 1e-6, `${c.file}: Q differs from AutoGPTQ by ${maxRel} relative`);
    const gIdx = await f.read("g_idx");
    assert.deepEqual(
      Array.from(par.gIdx),
      Array.from(new Int32Array(gIdx.data.buffer, gIdx.data.byteOffset, K)),
      `${c.file}: g_idx`,
    );
  }
});

Deno.test("parallel solver: random act-order layers (dead columns, static groups, 1/2/3 Workers, prepare split or not, rows split inside and across row tiles) equal the single-thread solver", async () => {
  const s = await createWasmSolver();
  const r = rng(20260601);
  const configs: [number, number, Partial<GptqSolveOptions>][] = [
    [600, 384, { desc_act: true }], // 600 rows: blocks at multiples of 256
    [101, 256, { desc_act: true, sym: false, bits: 3 }], // odd split inside one tile
    [64, 320, { desc_act: true, static_groups: true, group_size: 64 }],
    [130, 200, { desc_act: true, group_size: -1, bits: 2 }], // K not a multiple of the group
  ];
  for (const [workers, splitPrepareMinK] of [[1, 512], [2, 512], [2, 0], [3, 0]] as const) {
    using pool = await createParallelGptq(workers, { splitPrepareMinK });
    for (const [N, K, extra] of configs) {
      const T = 256;
      const x = new Float32Array(T * K);
      for (let i = 0; i < x.length; i++) x[i] = r() * (1 + (i % K) / K);
      for (let t = 0; t < T; t++) x[t * K + 7] = 0; // a dead column
      const acc = s.hessian(K);
      acc.add(x, 4, T / 4);
      const h = acc.h();
      acc.free();
      const w = new Float32Array(N * K);
      for (let i = 0; i < w.length; i++) w[i] = 0.02 * r();
      const opts: GptqSolveOptions = {
        bits: 4,
        group_size: 128,
        sym: true,
        desc_act: true,
        static_groups: false,
        damp_percent: 0.01,
        ...extra,
      };
      const hBefore = h.slice(), wBefore = w.slice();
      const what = `${workers} Workers (split ≥ ${splitPrepareMinK}), ${N}×${K} ${
        JSON.stringify(extra)
      }`;
      const par = await pool.gptq(w, N, K, h, opts);
      assertSameLayer(par, s.gptq(w, N, K, h, opts), what);
      assert.equal(par.deadColumns, 1, `${what}: the zeroed column is dead`);
      assert.equal(par.timings.quantize.length, Math.min(workers, N), what);
      assert.deepEqual(h, hBefore, `${what}: H untouched`);
      assert.deepEqual(w, wBefore, `${what}: W untouched`);
    }
  }
});

Deno.test("parallel solver: errors name the tensor and say how to fix it; a closed pool refuses work", async () => {
  const pool = await createParallelGptq(2);
  const K = 32, N = 8;
  const h = new Float32Array(K * K);
  for (let i = 0; i < K; i++) h[i * K + i] = 1;
  h[5] = NaN;
  const opts: GptqSolveOptions = {
    bits: 4,
    group_size: 32,
    sym: true,
    desc_act: false,
    static_groups: false,
    damp_percent: 0.01,
  };
  await assert.rejects(
    pool.gptq(new Float32Array(N * K).fill(0.5), N, K, h, opts, "model.layers.0.mlp.up_proj"),
    (e: Error) =>
      e instanceof GptqError && e.code === "HESSIAN" && /up_proj/.test(e.message) &&
      /nan/i.test(e.message),
  );
  await assert.rejects(
    pool.gptq(new Float32Array(N * K + 1), N, K, h, opts, "model.layers.0.mlp.down_proj"),
    (e: Error) => e instanceof GptqError && e.code === "SHAPE" && /down_proj/.test(e.message),
  );
  await assert.rejects(
    pool.gptq(new Float32Array(N * K), N, K, h, { ...opts, bits: 5 }, "x"),
    (e: Error) => e instanceof GptqError && e.code === "INVALID_ARGUMENT",
  );
  // The pool still works after a failed layer.
  h[5] = 0;
  const ok = await pool.gptq(new Float32Array(N * K).fill(0.5), N, K, h, opts);
  assert.equal(ok.codes.length, N * K);
  pool.close();
  await assert.rejects(
    pool.gptq(new Float32Array(N * K), N, K, h, opts),
    (e: Error) => e instanceof GptqError && /closed/.test(e.message),
  );
  await assert.rejects(
    createParallelGptq(0),
    (e: Error) => e instanceof GptqError && e.code === "INVALID_ARGUMENT",
  );
});

Deno.test("parallel solver: one prepare, quantize with 1 and 2 Workers and two weights; stale handles are refused", async () => {
  const s = await createWasmSolver();
  using pool = await createParallelGptq(2);
  const r = rng(7);
  const K = 256, N = 520, T = 128;
  const x = new Float32Array(T * K).map(() => r());
  const acc = s.hessian(K);
  acc.add(x, 1, T);
  const h = acc.h();
  acc.free();
  const opts: GptqSolveOptions = {
    bits: 4,
    group_size: 128,
    sym: false,
    desc_act: true,
    static_groups: false,
    damp_percent: 0.01,
  };
  const prepared = await pool.prepare(h, K, opts, "q_proj");
  assert.ok(prepared.prepareSeconds > 0 && prepared.shipSeconds > 0);
  for (const seed of [1, 2]) {
    const r2 = rng(seed);
    const w = new Float32Array(N * K).map(() => 0.05 * r2());
    const ref = s.gptq(w, N, K, h, opts);
    for (const workers of [1, 2]) {
      const got = await pool.quantize(prepared, w, N, { workers, name: "q_proj" });
      assertSameLayer(got, ref, `seed ${seed}, ${workers} Workers`);
      assert.equal(got.timings.quantize.length, workers);
    }
  }
  await assert.rejects(
    pool.quantize(prepared, new Float32Array(N * K), N, { workers: 3 }),
    (e: Error) => e instanceof GptqError && e.code === "INVALID_ARGUMENT",
  );
  await pool.prepare(h, K, opts);
  await assert.rejects(
    pool.quantize(prepared, new Float32Array(N * K), N, { name: "k_proj" }),
    (e: Error) => e instanceof GptqError && /replaced/.test(e.message) && /k_proj/.test(e.message),
  );
});

Deno.test("pooled Hessian: AutoGPTQ's activations accumulated on Worker 0 give its H, and the same layer, Q rows and error sums as the single-thread path", async () => {
  const s = await createWasmSolver();
  using pool = await createParallelGptq(2);
  const c = JSON.parse(await Deno.readTextFile(DIR + "cases.json")).cases[0] as Record<
    string,
    string
  >;
  using f = await SafetensorsFile.open(DIR + c.file);
  const [N, K] = f.info("W").shape as [number, number];
  const [S, T] = f.info("X").shape as [number, number, number];
  const W = await f.readFloat32("W"), X = await f.readFloat32("X");
  const Hgold = await f.readFloat32("H"), Qgold = await f.readFloat32("Q");
  const opts: GptqSolveOptions = {
    bits: Number(c.bits),
    group_size: Number(c.group_size),
    sym: c.sym === "true",
    desc_act: c.desc_act === "true",
    static_groups: false,
    damp_percent: Number(c.damp_percent),
  };
  // One sequence per add, as AutoGPTQ's add_batch saw them.
  const local = s.hessian(K);
  const pooled = pool.hessian(K);
  const adds: Promise<void>[] = [];
  for (let q = 0; q < S; q++) {
    const x = X.subarray(q * T * K, (q + 1) * T * K);
    local.add(x, 1, T);
    adds.push(pooled.add(x, 1, T));
  }
  await Promise.all(adds);
  const h = local.h();
  local.free();
  // f32 sums in another order than torch's: equal up to rounding, relative to H's scale.
  let maxDiff = 0, scale = 0;
  for (let i = 0; i < h.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(h[i]! - Hgold[i]!));
    scale = Math.max(scale, Math.abs(Hgold[i]!));
  }
  assert.ok(maxDiff <= 1e-5 * scale, `H differs from AutoGPTQ's by ${maxDiff} (max |H| ${scale})`);

  const ref = s.gptq(W, N, K, h, opts);
  const prepared = await pooled.prepare(opts, "q_proj");
  assertSameLayer(await pool.quantize(prepared, W, N), ref, "prepared from Worker 0's H");
  const pick = sampledRows(N, 40);
  const some = await pool.quantize(prepared, W, N, { qRows: pick });
  assert.equal(some.q.length, pick.length * K);
  pick.forEach((n, i) => {
    assert.deepEqual(some.q.subarray(i * K, (i + 1) * K), ref.q.subarray(n * K, (n + 1) * K));
  });
  assert.deepEqual(some.codes, ref.codes);
  await assert.rejects(
    pool.quantize(prepared, W, N, { qRows: [3, 2] }),
    (e: Error) => e instanceof GptqError && e.code === "INVALID_ARGUMENT",
  );

  // Error sums on Worker 0 = the main thread's on the same H, bit for bit, and
  // the plain f64 definition within float rounding; GPTQ's error < RTN's.
  const rtn = s.rtn(W, N, K, opts);
  const d = new Float32Array(2 * pick.length * K);
  pick.forEach((n, i) => {
    for (let k = 0; k < K; k++) {
      d[i * K + k] = W[n * K + k]! - ref.q[n * K + k]!;
      d[(pick.length + i) * K + k] = W[n * K + k]! - rtn.q[n * K + k]!;
    }
  });
  const want = await hessianErrorSums(d, 2 * pick.length, h, K, 2);
  const got = Array.from(await pooled.errorSums(d.slice(), 2 * pick.length, 2));
  assert.deepEqual(got, want);
  const gather = (a: Float32Array) => {
    const out = new Float32Array(pick.length * K);
    pick.forEach((n, i) => out.set(a.subarray(n * K, (n + 1) * K), i * K));
    return out;
  };
  const plain = [ref.q, rtn.q].map((q) => hessianError(gather(W), gather(q), h, pick.length, K));
  for (const j of [0, 1]) {
    assert.ok(
      Math.abs(got[j]! - plain[j]!) <= 1e-4 * plain[j]!,
      `sum ${j}: ${got[j]} vs ${plain[j]}`,
    );
  }
  assert.ok(got[0]! < got[1]!, "GPTQ's Hessian error is below RTN's");
  // Our Q is AutoGPTQ's (up to rare rounding ties), so its error is too.
  const dg = d.slice(0, pick.length * K);
  pick.forEach((n, i) => {
    for (let k = 0; k < K; k++) dg[i * K + k] = W[n * K + k]! - Qgold[n * K + k]!;
  });
  const [gold] = await hessianErrorSums(dg, pick.length, h, K, 1);
  assert.ok(Math.abs(gold! - got[0]!) <= 1e-3 * got[0]!, `AutoGPTQ's Q: ${gold} vs ${got[0]}`);
  await pooled.free();
  await assert.rejects(
    pooled.add(X.subarray(0, T * K), 1, T),
    (e: Error) => e instanceof GptqError && /after free/.test(e.message),
  );
});

Deno.test("pooled Hessian: NaN input, wrong shapes and late adds are clear errors; the pool keeps working", async () => {
  const s = await createWasmSolver();
  using pool = await createParallelGptq(2);
  const K = 64, T = 16, r = rng(3);
  const x = new Float32Array(T * K).map(() => r());
  const bad = x.slice();
  bad[5 * K + 9] = NaN;
  const acc = pool.hessian(K);
  await acc.add(x, 1, T);
  await assert.rejects(
    acc.add(bad, 1, T),
    (e: Error) =>
      e instanceof GptqError && e.code === "HESSIAN" && /X\[5, 9\] = NaN/.test(e.message),
  );
  await assert.rejects(
    acc.add(x.subarray(1), 1, T),
    (e: Error) =>
      e instanceof GptqError && e.code === "SHAPE" && /expected 1×16×64/.test(e.message),
  );
  // The NaN batch was refused before touching H: H is that of the good batch alone.
  const local = s.hessian(K);
  local.add(x, 1, T);
  const opts: GptqSolveOptions = {
    bits: 4,
    group_size: 32,
    sym: true,
    desc_act: false,
    static_groups: false,
    damp_percent: 0.01,
  };
  const w = new Float32Array(8 * K).map(() => r());
  const ref = s.gptq(w, 8, K, local.h(), opts);
  local.free();
  const prepared = await acc.prepare(opts);
  assertSameLayer(await pool.quantize(prepared, w, 8), ref, "after a refused batch");
  await assert.rejects(
    acc.add(x, 1, T),
    (e: Error) => e instanceof GptqError && /after prepare/.test(e.message),
  );
  await acc.free();
  await pool.release();
  await assert.rejects(
    pool.quantize(prepared, w, 8),
    (e: Error) => e instanceof GptqError && /replaced/.test(e.message),
  );
});

Deno.test("split prepare: a pooled Hessian, automatic damping increases and a hopeless Hessian give what the single-thread solver gives", async () => {
  const s = await createWasmSolver();
  using pool = await createParallelGptq(3, { splitPrepareMinK: 0 });
  const r = rng(11);
  const K = 333, N = 70, T = 64;
  const x = new Float32Array(T * K).map(() => r());
  const pooled = pool.hessian(K);
  await pooled.add(x, 2, T / 2);
  const acc = s.hessian(K);
  acc.add(x, 2, T / 2);
  const h = acc.h();
  acc.free();
  const w = new Float32Array(N * K).map(() => 0.03 * r());
  const opts: GptqSolveOptions = {
    bits: 4,
    group_size: 128,
    sym: true,
    desc_act: true,
    static_groups: false,
    damp_percent: 0.01,
  };
  const prepared = await pooled.prepare(opts, "o_proj");
  assertSameLayer(await pool.quantize(prepared, w, N), s.gptq(w, N, K, h, opts), "pooled H");
  await pooled.free();
  // T < K: H is singular; a negative diagonal entry needs several damping increases.
  const hNeg = h.slice();
  hNeg[100 * K + 100] = -0.02 * hNeg[100 * K + 100]!;
  const ref = s.gptq(w, N, K, hNeg, opts);
  assert.ok(ref.dampUsed > 0.01, `damping was raised (${ref.dampUsed})`);
  assertSameLayer(await pool.gptq(w, N, K, hNeg, opts), ref, "after damping increases");
  hNeg[100 * K + 100] = -1e6;
  let want = "";
  try {
    s.gptq(w, N, K, hNeg, opts);
  } catch (e) {
    want = (e as Error).message;
  }
  assert.match(want, /positive/i);
  await assert.rejects(
    pool.gptq(w, N, K, hNeg, opts, "down_proj"),
    (e: Error) => e instanceof GptqError && e.message.includes(want) && /down_proj/.test(e.message),
  );
});
