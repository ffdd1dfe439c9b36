// Copyright 2026 the GPTQ toolkit authors. MIT license.
// Every op of the CUDA/HIP backend against the TypeScript reference backend on seeded random
// data: odd sizes, decode and prefill row counts (both sides of the GEMV/GEMM thresholds),
// f32/f16/bf16/transposed weights, GQA, partial rotary, long attention with forced key splits,
// argmax ties, rowNll, the Hessian accumulation. Registered per target (cuda, hip, hip-cpu: the
// same kernels on the CPU), skipped with the reason where a target cannot run.
import assert from "node:assert/strict";
import { fromFloat32 } from "../../io/dtype.ts";
import type { RawTensor } from "../../io/safetensors.ts";
import { mulberry32 } from "../../runtime/sample.ts";
import type { Backend, Tensor } from "../backend.ts";
import { hostBackend } from "../host.ts";
import { createTsKernels } from "../typescript/ts_kernels.ts";
import type { CudaBackend } from "./cuda_backend.ts";
import { disposeBackends, targets, targetTest } from "./_test_targets.ts";

const TS = await targets("cuda_backend_test");
const ref: Backend = hostBackend(createTsKernels());

/** max |a − b| / max |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "lengths differ");
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (Number.isNaN(x) !== Number.isNaN(y)) return Infinity;
    d = Math.max(d, Math.abs(x - y));
    m = Math.max(m, Math.abs(y));
  }
  return m === 0 ? d : d / m;
}

async function close(be: Backend, what: string, got: Tensor, want: Tensor, tol = 1e-4) {
  const e = relErr(await be.read(got), await ref.read(want));
  assert.ok(e <= tol, `${what}: relative error ${e.toExponential(2)} > ${tol}`);
}

function rand(n: number, seed: number, scale = 1): Float32Array {
  const r = mulberry32(seed), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

function both(be: Backend, data: Float32Array, rows: number, cols: number): [Tensor, Tensor] {
  return [be.upload(data.slice(), rows, cols), ref.upload(data.slice(), rows, cols)];
}

function raw(values: Float32Array, shape: number[], dtype: "F32" | "F16" | "BF16"): RawTensor {
  return { dtype, shape, data: fromFloat32(values, dtype) };
}

targetTest(TS, "backend name and device", (be) => {
  assert.ok(["cuda", "hip", "hip-cpu"].includes(be.name));
  assert.ok(be.device.length > 0);
  console.log(`device: ${be.device}`);
});

targetTest(TS, "linear: f32/f16/bf16, transposed with bias, M in {1..5, 17, 130}", async (be) => {
  let seed = 1;
  for (
    const [N, K, Ms] of [[37, 45, [1, 2, 3, 4, 5, 17]], [96, 128, [1, 4, 130]], [130, 7, [
      2,
      9,
    ]]] as const
  ) {
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      for (const transposed of [false, true]) {
        const w = rand(N * K, seed++);
        const bias = transposed ? rand(N, seed++) : null;
        const r = raw(w, transposed ? [K, N] : [N, K], dtype);
        const hg = be.linearFromDense(r, bias, transposed);
        const hr = ref.linearFromDense(r, bias, transposed);
        assert.equal(hg.N, N);
        assert.equal(hg.K, K);
        for (const M of Ms) {
          const [xg, xr] = both(be, rand(M * K, seed++), M, K);
          const what = `linear ${N}x${K} ${dtype}${transposed ? " transposed+bias" : ""} M=${M}`;
          await close(be, what, be.linear(xg, hg), ref.linear(xr, hr));
        }
        be.release(hg);
        be.release(hg); // harmless
      }
    }
  }
});

targetTest(TS, "gather: f32/f16/bf16 tables, odd widths, offset", async (be) => {
  let seed = 400;
  for (const dtype of ["F32", "F16", "BF16"] as const) {
    for (const cols of [13, 64]) {
      const rows = 301;
      const r = raw(rand(rows * cols, seed++), [rows, cols], dtype);
      const tg = be.tableFrom(r), tr = ref.tableFrom(r);
      const rnd = mulberry32(seed++);
      const ids = Int32Array.from({ length: 23 }, () => Math.floor(rnd() * (rows - 2)));
      ids[0] = rows - 3;
      ids[1] = 0;
      await close(be, `gather ${dtype} ${cols}`, be.gather(tg, ids, 2), ref.gather(tr, ids, 2), 0);
      be.release(tg);
    }
  }
});

targetTest(TS, "rmsNorm and layerNorm (with and without bias), odd widths", async (be) => {
  let seed = 500;
  for (const [M, H] of [[1, 77], [17, 300], [3, 1024], [130, 33]]) {
    const [xg, xr] = both(be, rand(M * H, seed++, 3), M, H);
    const w = rand(H, seed++), b = rand(H, seed++);
    const wg = be.constant(w), wr = ref.constant(w), bg = be.constant(b), br = ref.constant(b);
    const what = `M=${M} H=${H}`;
    await close(be, `rmsNorm ${what}`, be.rmsNorm(xg, wg, 1e-6), ref.rmsNorm(xr, wr, 1e-6));
    await close(
      be,
      `layerNorm ${what}`,
      be.layerNorm(xg, wg, bg, 1e-5),
      ref.layerNorm(xr, wr, br, 1e-5),
    );
    await close(
      be,
      `layerNorm-nobias ${what}`,
      be.layerNorm(xg, wg, null, 1e-5),
      ref.layerNorm(xr, wr, null, 1e-5),
    );
  }
});

targetTest(TS, "rope: full and partial rotary, positions up to 4100", async (be) => {
  let seed = 600;
  for (
    const [T, heads, D, rot, past] of [
      [5, 3, 16, 16, 0],
      [4, 2, 32, 8, 1000],
      [3, 4, 64, 64, 4097],
      [130, 2, 12, 8, 7],
    ]
  ) {
    const inv = Float32Array.from(
      { length: rot / 2 },
      (_, i) => 1 / Math.pow(10000, (2 * i) / rot),
    );
    const [xg, xr] = both(be, rand(T * heads * D, seed++), T, heads * D);
    be.rope(xg, heads, D, rot, past, be.constant(inv));
    ref.rope(xr, heads, D, rot, past, ref.constant(inv));
    await close(be, `rope T=${T} D=${D} rot=${rot} past=${past}`, xg, xr);
  }
});

targetTest(TS, "splitQkv: concat and per_head", async (be) => {
  for (const [T, H, D] of [[5, 3, 7], [130, 2, 4]]) {
    const [xg, xr] = both(be, rand(T * 3 * H * D, 700 + T), T, 3 * H * D);
    for (const layout of ["concat", "per_head"] as const) {
      const g = be.splitQkv(xg, H, D, layout), r = ref.splitQkv(xr, H, D, layout);
      for (let i = 0; i < 3; i++) await close(be, `splitQkv ${layout} ${i}`, g[i]!, r[i]!, 0);
    }
  }
});

targetTest(TS, "attention: GQA, long caches, split and unsplit keys, odd head sizes", async (b) => {
  const be = b as CudaBackend;
  let seed = 800;
  for (
    const [T, past, Hq, Hkv, D, maxLen] of [
      [1, 700, 4, 2, 64, 800],
      [9, 600, 4, 1, 32, 620],
      [17, 0, 6, 3, 18, 20],
      [64, 5, 8, 8, 20, 69],
      [1, 2100, 2, 1, 128, 2101],
      [2, 70, 2, 2, 256, 72],
    ]
  ) {
    const [qg, qr] = both(be, rand(T * Hq * D, seed++, 2), T, Hq * D);
    const [kg, kr] = both(be, rand(maxLen * Hkv * D, seed++, 2), maxLen, Hkv * D);
    const [vg, vr] = both(be, rand(maxLen * Hkv * D, seed++), maxLen, Hkv * D);
    const want = ref.attention(qr, Hq, Hkv, D, kr, vr, past);
    const what = `attention T=${T} past=${past} Hq=${Hq} Hkv=${Hkv} D=${D}`;
    await close(be, what, be.attention(qg, Hq, Hkv, D, kg, vg, past), want);
    for (const splits of [1, 3]) {
      const out = be.attentionWithSplits(qg, Hq, Hkv, D, kg, vg, past, splits);
      await close(be, `${what} splits=${splits}`, out, want);
    }
  }
  assert.throws(
    () => be.attention(be.zeros(1, 300), 1, 1, 300, be.zeros(1, 300), be.zeros(1, 300), 0),
    /head size/,
  );
});

targetTest(TS, "addInPlace, activate (silu, relu, gelu, gelu_new), gatedActivate", async (be) => {
  const n = 3000;
  const data = rand(n, 900, 6);
  data.set([0, -0, 20, -20, 90, -90, 1e-3, 0.49, -0.51, 3.5]);
  const up = rand(n, 901);
  for (const act of ["silu", "relu", "gelu", "gelu_new"]) {
    const [xg, xr] = both(be, data, 30, 100);
    be.activate(xg, act);
    ref.activate(xr, act);
    await close(be, `activate ${act}`, xg, xr, 1e-5);
    const [gg, gr] = both(be, data, 30, 100);
    const [ug, ur] = both(be, up, 30, 100);
    be.gatedActivate(gg, ug, act);
    ref.gatedActivate(gr, ur, act);
    await close(be, `gatedActivate ${act}`, gg, gr, 1e-5);
  }
  const [ag, ar] = both(be, data, 30, 100);
  const [bg, br] = both(be, up, 30, 100);
  be.addInPlace(ag, bg);
  ref.addInPlace(ar, br);
  await close(be, "addInPlace", ag, ar, 0);
  assert.throws(() => be.activate(ag, "swish2"), /not supported/);
  assert.throws(() => be.addInPlace(ag, be.zeros(1, 1)), /differ in size/);
});

targetTest(TS, "upload, zeros, writeRows, sliceRows, read, free (pooled buffers)", async (be) => {
  const cache = be.zeros(10, 6), cr = ref.zeros(10, 6);
  const [sg, sr] = both(be, rand(18, 950), 3, 6);
  be.writeRows(cache, sg, 4);
  ref.writeRows(cr, sr, 4);
  await close(be, "writeRows", cache, cr, 0);
  await close(be, "sliceRows", be.sliceRows(cache, 3, 5), ref.sliceRows(cr, 3, 5), 0);
  assert.throws(() => be.writeRows(cache, sg, 8), /writeRows/);
  be.free(sg);
  be.free(sg); // idempotent
  // A reused pooled buffer must come back zeroed by zeros().
  const junk = be.upload(new Float32Array(60).fill(7), 10, 6);
  be.free(junk);
  assert.deepEqual(await be.read(be.zeros(10, 6)), new Float32Array(60));
  assert.deepEqual(await be.read(be.zeros(0, 6)), new Float32Array(0));
});

targetTest(TS, "argmax: first index on ties, wide rows", async (be) => {
  const rows = 130, cols = 1000;
  const data = rand(rows * cols, 1000);
  const set = (r: number, cs: number[], v: number) => cs.forEach((c) => data[r * cols + c] = v);
  set(0, [7, 500, 999], 5);
  set(1, [999, 3], 5);
  set(2, [256, 0, 512], 5);
  set(3, [0], 5);
  set(4, [999], 5);
  for (let c = 0; c < cols; c++) data[5 * cols + c] = 1;
  const [xg, xr] = both(be, data, rows, cols);
  const got = await be.argmax(xg), want = await ref.argmax(xr);
  assert.deepEqual(Array.from(got), Array.from(want));
  assert.deepEqual(Array.from(got.subarray(0, 6)), [7, 3, 0, 0, 999, 0]);
});

targetTest(TS, "rowNll: per-row logsumexp − target on the device", async (be) => {
  const rows = 130, cols = 777;
  const [xg, xr] = both(be, rand(rows * cols, 1100, 8), rows, cols);
  const rnd = mulberry32(1101);
  const targets = Int32Array.from({ length: 129 }, () => Math.floor(rnd() * cols));
  targets[0] = 0;
  targets[1] = cols - 1;
  const got = await be.rowNll(xg, targets), want = await ref.rowNll(xr, targets);
  assert.equal(got.length, targets.length);
  const e = relErr(got, want);
  assert.ok(e <= 1e-5, `rowNll: ${e}`);
});

targetTest(
  TS,
  "hessianAccumulate: H = beta·H + alpha·XᵀX (AutoGPTQ running average)",
  async (b) => {
    const be = b as CudaBackend;
    for (const [K, rows1, rows2] of [[70, 33, 5], [128, 64, 130]]) {
      const x1 = rand(rows1 * K, K), x2 = rand(rows2 * K, K + 1, 2);
      const h = be.zeros(K, K);
      // Two batches of 1 and 3 sequences: n = 1 then 4.
      be.hessianAccumulate(h, be.upload(x1, rows1, K), 2 / 1, 0);
      be.hessianAccumulate(h, be.upload(x2, rows2, K), 2 / 4, 1 / 4);
      const got = await be.read(h);
      const want = new Float64Array(K * K);
      for (const [x, rows, alpha, beta] of [[x1, rows1, 2, 0], [x2, rows2, 0.5, 0.25]] as const) {
        for (let i = 0; i < K * K; i++) want[i]! *= beta;
        for (let r = 0; r < rows; r++) {
          for (let i = 0; i < K; i++) {
            for (let j = 0; j < K; j++) want[i * K + j]! += alpha * x[r * K + i]! * x[r * K + j]!;
          }
        }
      }
      const e = relErr(got, want);
      assert.ok(e <= 1e-5, `hessian K=${K}: ${e}`);
      for (let i = 0; i < K; i++) {
        for (let j = 0; j < i; j++) assert.equal(got[i * K + j], got[j * K + i], "symmetric bits");
      }
    }
  },
);

targetTest(TS, "errors are typed and name the failing call", (b) => {
  const be = b as CudaBackend;
  assert.throws(
    () => be.library.check(be.library.symbols.gptq_rms_norm(0n, 0n, 0n, 1, 1, 0), "rms"),
    (e: Error) =>
      e.name === "GptqError" && /rms failed: gptq_rms_norm: bad argument/.test(e.message),
  );
  assert.throws(() => be.linear(be.zeros(1, 3), { N: 1, K: 3, bytes: 0 }), /released|not a CUDA/);
});

targetTest(TS, "memory: weights are freed on release, the pool is reused", (b) => {
  const be = b as CudaBackend;
  const before = be.memoryBytes();
  const w = be.linearFromDense(raw(rand(64 * 64, 3), [64, 64], "F16"), null, false);
  assert.ok(be.memoryBytes().weights >= before.weights + 64 * 64 * 2);
  be.release(w);
  assert.equal(be.memoryBytes().weights, before.weights);
  const x = be.zeros(16, 16);
  be.free(x);
  const pool = be.memoryBytes().pool;
  be.free(be.zeros(16, 16));
  assert.equal(be.memoryBytes().pool, pool, "a freed buffer of the same class is reused");
});

Deno.test({
  name: "cuda backend tests: release the shared devices",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => disposeBackends(),
});
