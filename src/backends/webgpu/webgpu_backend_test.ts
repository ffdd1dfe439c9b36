// Copyright 2026 the GPTQ toolkit authors. MIT license.
// Every op of the WebGPU backend (except the GPTQ matmul, see _gptq_test) against the
// TypeScript reference backend on seeded random data: odd sizes, decode and prefill row
// counts, f32/f16/bf16/transposed weights, forced binding splits, GQA, partial rotary, long
// attention, argmax ties, rowNll. One device for the whole file.
import assert from "node:assert/strict";
import { fromFloat32 } from "../../io/dtype.ts";
import type { RawTensor } from "../../io/safetensors.ts";
import { mulberry32 } from "../../runtime/sample.ts";
import type { Backend, Tensor } from "../backend.ts";
import { hostBackend } from "../host.ts";
import { createTsKernels } from "../typescript/ts_kernels.ts";
import { attention as gpuAttention } from "./_ops.ts";
import type { GpuTensor } from "./_common.ts";
import { createWebGpuBackend, probeWebGpu, type WebGpuBackend } from "./webgpu_backend.ts";

const probe = await probeWebGpu();
const SKIP = " (skipped: no WebGPU adapter)";
if (!probe.ok) console.warn(`webgpu_backend_test: skipped: no WebGPU adapter: ${probe.reason}`);

const ref: Backend = hostBackend(createTsKernels());
let shared: WebGpuBackend | null = null;
let splitBe: WebGpuBackend | null = null;
/** The shared backend (one device, pipelines compiled once for the file). */
async function gpu(): Promise<WebGpuBackend> {
  return shared ??= await createWebGpuBackend();
}
/** A backend on the same device whose bindings are at most 4 KiB (forces every split). */
async function small(): Promise<WebGpuBackend> {
  return splitBe ??= await createWebGpuBackend({
    context: (await gpu()).context,
    maxBindingBytes: 4096,
  });
}

const worst = new Map<string, number>();
function record(what: string, err: number): void {
  const key = what.replace(/ .*/, "");
  worst.set(key, Math.max(worst.get(key) ?? 0, err));
}

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

async function close(what: string, got: Tensor | Float32Array, want: Tensor, tol = 1e-4) {
  const g = got instanceof Float32Array ? got : await (await gpu()).read(got);
  const w = await ref.read(want);
  const e = relErr(g, w);
  record(what, e);
  assert.ok(e <= tol, `${what}: relative error ${e.toExponential(2)} > ${tol}`);
}

function rand(n: number, seed: number, scale = 1): Float32Array {
  const r = mulberry32(seed), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

/** The same data on both backends. */
function both(be: Backend, data: Float32Array, rows: number, cols: number): [Tensor, Tensor] {
  return [be.upload(data.slice(), rows, cols), ref.upload(data.slice(), rows, cols)];
}

function raw(values: Float32Array, shape: number[], dtype: "F32" | "F16" | "BF16"): RawTensor {
  return { dtype, shape, data: fromFloat32(values, dtype) };
}

function gtest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  Deno.test({
    name: `webgpu: ${name}${probe.ok ? "" : SKIP}`,
    ignore: !probe.ok,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}

gtest("backend name and device", async () => {
  const be = await gpu();
  assert.equal(be.name, "webgpu");
  assert.ok(be.device.length > 0);
  console.log(`device: ${be.device}`);
});

async function checkLinear(
  be: Backend,
  label: string,
  N: number,
  K: number,
  Ms: number[],
  seed: number,
): Promise<void> {
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
        const what = `linear ${label} ${dtype}${transposed ? " transposed+bias" : ""} M=${M}`;
        await close(what, be.linear(xg, hg), ref.linear(xr, hr));
      }
      be.release(hg);
    }
  }
}

gtest("linear: f32/f16/bf16, transposed with bias, M in {1, 3, 17, 64}, odd sizes", async () => {
  const be = await gpu();
  await checkLinear(be, "37x45", 37, 45, [1, 3, 17, 64], 1);
  await checkLinear(be, "96x128", 96, 128, [1, 3, 17, 64], 100);
  await checkLinear(be, "130x7", 130, 7, [2, 5], 200);
});

gtest("linear: weights split over bindings (4 KiB limit), row blocks of x and y", async () => {
  const be = await small();
  // 70 rows of 48 padded f32 → 21 rows per binding: 4 chunks; M = 130 → 3 row blocks.
  await checkLinear(be, "split 70x45", 70, 45, [1, 3, 130], 300);
  assert.ok(
    (be.linearFromDense(raw(rand(70 * 45, 1), [70, 45], "F32"), null, false) as unknown as {
      chunks: unknown[];
    }).chunks.length >= 4,
  );
});

gtest("gather: f32/f16/bf16 tables, odd widths, offset, split tables", async () => {
  for (const [be, label] of [[await gpu(), "whole"], [await small(), "split"]] as const) {
    let seed = 400;
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      for (const cols of [13, 64]) {
        const rows = 301;
        const r = raw(rand(rows * cols, seed++), [rows, cols], dtype);
        const tg = be.tableFrom(r), tr = ref.tableFrom(r);
        assert.equal(tg.rows, rows);
        const rnd = mulberry32(seed++);
        const ids = Int32Array.from({ length: 23 }, () => Math.floor(rnd() * (rows - 2)));
        ids[0] = rows - 3;
        ids[1] = 0;
        await close(
          `gather ${label} ${dtype} cols=${cols}`,
          be.gather(tg, ids, 2),
          ref.gather(tr, ids, 2),
          0,
        );
        be.release(tg);
      }
    }
  }
});

gtest("rmsNorm and layerNorm (with and without bias), odd widths, row blocks", async () => {
  let seed = 500;
  for (const [be, label] of [[await gpu(), ""], [await small(), " split"]] as const) {
    for (const [M, H] of [[1, 77], [17, 300], [3, 1024], [130, 33]]) {
      const [xg, xr] = both(be, rand(M * H, seed++, 3), M, H);
      const w = rand(H, seed++), b = rand(H, seed++);
      const wg = be.constant(w), wr = ref.constant(w), bg = be.constant(b), br = ref.constant(b);
      const what = `M=${M} H=${H}${label}`;
      await close(`rmsNorm ${what}`, be.rmsNorm(xg, wg, 1e-6), ref.rmsNorm(xr, wr, 1e-6));
      await close(
        `layerNorm ${what}`,
        be.layerNorm(xg, wg, bg, 1e-5),
        ref.layerNorm(xr, wr, br, 1e-5),
      );
      await close(
        `layerNorm-nobias ${what}`,
        be.layerNorm(xg, wg, null, 1e-5),
        ref.layerNorm(xr, wr, null, 1e-5),
      );
    }
  }
});

gtest("rope: full and partial rotary, positions up to 4100, row blocks", async () => {
  let seed = 600;
  const cases = [
    [5, 3, 16, 16, 0],
    [4, 2, 32, 8, 1000],
    [3, 4, 64, 64, 4097],
    [130, 2, 12, 8, 7],
  ];
  for (const [be, label] of [[await gpu(), ""], [await small(), " split"]] as const) {
    for (const [T, heads, D, rot, past] of cases) {
      const inv = Float32Array.from(
        { length: rot / 2 },
        (_, i) => 1 / Math.pow(10000, (2 * i) / rot),
      );
      const [xg, xr] = both(be, rand(T * heads * D, seed++), T, heads * D);
      be.rope(xg, heads, D, rot, past, be.constant(inv));
      ref.rope(xr, heads, D, rot, past, ref.constant(inv));
      await close(`rope T=${T} D=${D} rot=${rot} past=${past}${label}`, xg, xr);
    }
  }
});

gtest("splitQkv: concat and per_head, row blocks", async () => {
  for (const [be, label] of [[await gpu(), ""], [await small(), " split"]] as const) {
    for (const [T, H, D] of [[5, 3, 7], [130, 2, 4]]) {
      const [xg, xr] = both(be, rand(T * 3 * H * D, 700 + T), T, 3 * H * D);
      for (const layout of ["concat", "per_head"] as const) {
        const g = be.splitQkv(xg, H, D, layout), r = ref.splitQkv(xr, H, D, layout);
        for (let i = 0; i < 3; i++) {
          await close(`splitQkv ${layout} T=${T} ${"qkv"[i]}${label}`, g[i]!, r[i]!, 0);
        }
      }
    }
  }
});

gtest(
  "attention: GQA, long caches (past ≥ 600), split and unsplit keys, odd head size",
  async () => {
    const be = await gpu();
    let seed = 800;
    const cases = [
      // [T, past, Hq, Hkv, D, maxLen]
      [1, 700, 4, 2, 64, 800],
      [9, 600, 4, 1, 32, 620],
      [17, 0, 6, 3, 18, 20],
      [64, 5, 8, 8, 20, 69],
      [1, 2100, 2, 1, 128, 2101],
    ];
    for (const [T, past, Hq, Hkv, D, maxLen] of cases) {
      const [qg, qr] = both(be, rand(T * Hq * D, seed++, 2), T, Hq * D);
      const [kg, kr] = both(be, rand(maxLen * Hkv * D, seed++, 2), maxLen, Hkv * D);
      const [vg, vr] = both(be, rand(maxLen * Hkv * D, seed++), maxLen, Hkv * D);
      const want = ref.attention(qr, Hq, Hkv, D, kr, vr, past);
      const what = `attention T=${T} past=${past} Hq=${Hq} Hkv=${Hkv} D=${D}`;
      await close(what, be.attention(qg, Hq, Hkv, D, kg, vg, past), want);
      for (const splits of [1, 3]) {
        const out = gpuAttention(
          be.context,
          qg as GpuTensor,
          Hq,
          Hkv,
          D,
          kg as GpuTensor,
          vg as GpuTensor,
          past,
          { splits },
        );
        await close(`${what} splits=${splits}`, out, want);
      }
    }
  },
);

gtest("addInPlace, activate (silu, relu, gelu, gelu_new), gatedActivate, blocks", async () => {
  const n = 3000;
  const data = rand(n, 900, 6);
  data.set([0, -0, 20, -20, 90, -90, 1e-3, 0.49, -0.51, 3.5]);
  const up = rand(n, 901);
  for (const [be, label] of [[await gpu(), ""], [await small(), " split"]] as const) {
    for (const act of ["silu", "relu", "gelu", "gelu_new"]) {
      const [xg, xr] = both(be, data, 30, 100);
      be.activate(xg, act);
      ref.activate(xr, act);
      await close(`activate ${act}${label}`, xg, xr, 1e-5);
      const [gg, gr] = both(be, data, 30, 100);
      const [ug, ur] = both(be, up, 30, 100);
      be.gatedActivate(gg, ug, act);
      ref.gatedActivate(gr, ur, act);
      await close(`gatedActivate ${act}${label}`, gg, gr, 1e-5);
    }
    const [ag, ar] = both(be, data, 30, 100);
    const [bg, br] = both(be, up, 30, 100);
    const before = be.context.stats.dispatches;
    be.addInPlace(ag, bg);
    // 12 000 bytes in 4 KiB bindings: three blocks of 1024 values.
    assert.equal(be.context.stats.dispatches - before, label ? 3 : 1);
    ref.addInPlace(ar, br);
    await close(`addInPlace${label}`, ag, ar, 0);
    assert.throws(() => be.activate(ag, "swish2"), /not supported/);
  }
});

gtest("upload, zeros, writeRows, sliceRows, read, free", async () => {
  const be = await gpu();
  const cache = be.zeros(10, 6), cr = ref.zeros(10, 6);
  const [sg, sr] = both(be, rand(18, 950), 3, 6);
  be.writeRows(cache, sg, 4);
  ref.writeRows(cr, sr, 4);
  await close("writeRows", cache, cr, 0);
  await close("sliceRows", be.sliceRows(cache, 3, 5), ref.sliceRows(cr, 3, 5), 0);
  assert.throws(() => be.writeRows(cache, sg, 8), /writeRows/);
  be.free(sg);
  be.free(sg); // idempotent
  // Reused pooled buffers must come back zeroed by zeros().
  const junk = be.upload(new Float32Array(60).fill(7), 10, 6);
  be.free(junk);
  assert.deepEqual(await be.read(be.zeros(10, 6)), new Float32Array(60));
});

gtest("argmax: first index on ties, wide rows, row blocks", async () => {
  for (const [be, label] of [[await gpu(), "whole"], [await small(), "split"]] as const) {
    const rows = 130, cols = 1000;
    const data = rand(rows * cols, 1000);
    const set = (r: number, cs: number[], v: number) => cs.forEach((c) => data[r * cols + c] = v);
    set(0, [7, 500, 999], 5);
    set(1, [999, 3], 5);
    set(2, [256, 0, 512], 5); // ties across thread strides
    set(3, [0], 5);
    set(4, [999], 5);
    for (let c = 0; c < cols; c++) data[5 * cols + c] = 1; // all equal
    const [xg, xr] = both(be, data, rows, cols);
    const got = await be.argmax(xg), want = await ref.argmax(xr);
    assert.deepEqual(Array.from(got), Array.from(want), `argmax ${label}`);
    assert.deepEqual(Array.from(got.subarray(0, 6)), [7, 3, 0, 0, 999, 0]);
  }
});

gtest("rowNll: per-row logsumexp − target on the device", async () => {
  for (const [be, label] of [[await gpu(), "whole"], [await small(), "split"]] as const) {
    const rows = 130, cols = 777;
    const [xg, xr] = both(be, rand(rows * cols, 1100, 8), rows, cols);
    const rnd = mulberry32(1101);
    const targets = Int32Array.from({ length: 129 }, () => Math.floor(rnd() * cols));
    targets[0] = 0;
    targets[1] = cols - 1;
    const got = await be.rowNll(xg, targets), want = await ref.rowNll(xr, targets);
    assert.equal(got.length, targets.length);
    const e = relErr(got, want);
    record(`rowNll ${label}`, e);
    assert.ok(e <= 1e-5, `rowNll ${label}: ${e}`);
  }
});

gtest("summary and dispose", async () => {
  const be = await gpu();
  const s = be.context.stats;
  console.log(
    `max relative errors: ${
      [...worst].map(([k, v]) => `${k} ${v.toExponential(1)}`).join(", ")
    }; ${s.pipelines} pipelines (${s.pipelineMs.toFixed(0)} ms), ${s.dispatches} dispatches, ` +
      `${s.submits} submits`,
  );
  be.dispose();
  shared = null;
  splitBe = null;
});
