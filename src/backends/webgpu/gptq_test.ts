// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import type { Bits, ZeroFormat } from "../../gptq/pack.ts";
import { dequantizeLinear, type QuantLinearTensors } from "../../gptq/quant_linear.ts";
import { mulberry32 } from "../../runtime/sample.ts";
import { randomLayer } from "../_test_layers.ts";
import { GpuContext } from "./context.ts";
import {
  encodeGptqLinear,
  type GpuGptqLinear,
  releaseGptqLinear,
  uploadGptqLinear,
} from "./_gptq.ts";

const ctx = await GpuContext.create().catch(() => null);

function gpuTest(name: string, fn: (ctx: GpuContext) => Promise<void>): void {
  if (ctx) Deno.test(name, () => fn(ctx));
  else Deno.test({ name: `${name} (skipped: no WebGPU adapter)`, ignore: true, fn() {} });
}

/** The reference: dequantizeLinear, then x · Wᵀ + bias in f64. */
function reference(t: QuantLinearTensors, format: ZeroFormat, x: Float32Array, M: number) {
  const { K, N } = t;
  const W = dequantizeLinear(t, format);
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * W[n * K + k]!;
      y[m * N + n] = s + (t.bias ? t.bias[n]! : 0);
    }
  }
  return y;
}

interface Case {
  what: string;
  t: QuantLinearTensors;
  format: ZeroFormat;
  M: number;
  x: Float32Array;
  offset: number;
}

/**
 * Runs many cases with one readback: each output is copied into one results
 * buffer. Returns the worst max |Δ| / max |ref|.
 */
async function runBatch(
  ctx: GpuContext,
  layers: { t: QuantLinearTensors; format: ZeroFormat; what: string; maxBindingBytes?: number }[],
  Ms: number[],
  r: () => number,
  check?: (w: GpuGptqLinear, t: QuantLinearTensors) => void,
): Promise<{ worst: number; cases: number }> {
  const cases: Case[] = [];
  let total = 0;
  for (const l of layers) {
    for (const M of Ms) {
      const x = new Float32Array(M * l.t.K).map(() => r() * 2 - 1);
      cases.push({ what: `${l.what} M ${M}`, t: l.t, format: l.format, M, x, offset: total });
      total += M * l.t.N;
    }
  }
  const out = ctx.buffer(total * 4);
  const temp: GPUBuffer[] = [];
  let i = 0;
  for (const l of layers) {
    const w = uploadGptqLinear(ctx, { tensors: l.t, format: l.format }, {
      maxBindingBytes: l.maxBindingBytes,
    });
    assert.equal(w.N, l.t.N);
    assert.equal(w.K, l.t.K);
    check?.(w, l.t);
    for (const _ of Ms) {
      const c = cases[i++]!;
      const x = ctx.upload(c.x);
      temp.push(x);
      const y = ctx.buffer(c.M * c.t.N * 4);
      encodeGptqLinear(ctx, x, c.M, w, y);
      ctx.copy(y, 0, out, c.offset * 4, c.M * c.t.N * 4);
      ctx.release(y);
    }
    releaseGptqLinear(w);
  }
  const got = new Float32Array(await ctx.read(out, 0, total * 4));
  ctx.release(out);
  for (const b of temp) b.destroy();
  let worst = 0;
  for (const c of cases) {
    const want = reference(c.t, c.format, c.x, c.M);
    let d = 0, mag = 0;
    for (let j = 0; j < want.length; j++) {
      d = Math.max(d, Math.abs(got[c.offset + j]! - want[j]!));
      mag = Math.max(mag, Math.abs(want[j]!));
    }
    const e = d / mag;
    assert.ok(e <= 1e-5, `${c.what}: max |Δ| ${d} / max |ref| ${mag} = ${e}`);
    worst = Math.max(worst, e);
  }
  return { worst, cases: cases.length };
}

const BITS: Bits[] = [2, 3, 4, 8];
const FORMATS: ZeroFormat[] = ["gptq", "gptq_v2"];

gpuTest(
  "GPTQ GEMV and GEMM match dequantize + matmul: bits × group × act-order × format × M",
  async (ctx) => {
    const r = mulberry32(20260601);
    const layers = [];
    for (const bits of BITS) {
      for (const group of [32, 128, -1, 48]) {
        for (const act of [false, true]) {
          for (const format of FORMATS) {
            // K = 320 (not a multiple of 128: a short last group at g128 and g48), N = 96 and 160
            // (ragged against the 64-column GEMM tile); K = 256 with N = 160 as well.
            for (const [K, N] of [[320, 96], [256, 160]]) {
              const t = randomLayer(r, K, N, bits, group === -1 ? K : group, act, format);
              layers.push({
                t,
                format,
                what: `bits ${bits} group ${group} act ${act} ${format} ${N}x${K}`,
              });
            }
          }
        }
      }
    }
    const t0 = performance.now();
    const { worst, cases } = await runBatch(ctx, layers, [1, 3, 17, 64], r, (w, t) => {
      // Packed on the device: bits/8 bytes per weight, a u32 per group and column, bias and tables.
      const limit = (t.K * t.N * t.bits) / 8 + t.G * t.N * 4 + (t.N + 2 * t.K) * 4 + 256;
      assert.ok(w.bytes <= limit, `${w.bytes} bytes > ${limit}`);
      assert.equal(w.slices.length, 1);
      assert.equal(
        w.perm !== null,
        t.gIdx !== null && t.gIdx.some((g, k) => k > 0 && g < t.gIdx![k - 1]!),
      );
    });
    console.log(
      `${cases} cases, max |Δ|/max |ref| ${worst.toExponential(2)}, ${
        (performance.now() - t0).toFixed(0)
      } ms, ${ctx.stats.pipelines} pipelines (${ctx.stats.pipelineMs.toFixed(0)} ms)`,
    );
  },
);

gpuTest("GPTQ linear split over several bindings: column slices and row blocks", async (ctx) => {
  const r = mulberry32(99);
  const layers = [];
  for (const bits of BITS) {
    for (const act of [false, true]) {
      // 16 KiB bindings: 2 to 7 column slices of N = 224, row blocks of 12 (GEMM) and ≤ 8 (GEMV).
      const t = randomLayer(r, 320, 224, bits, 48, act, "gptq");
      layers.push({
        t,
        format: "gptq" as ZeroFormat,
        what: `split bits ${bits} act ${act}`,
        maxBindingBytes: 16384,
      });
    }
  }
  const { worst, cases } = await runBatch(ctx, layers, [1, 5, 17, 64], r, (w, t) => {
    assert.ok(w.slices.length >= 2, `${w.slices.length} slices`);
    assert.equal(w.slices.reduce((s, x) => s + x.cols, 0), t.N);
    for (const s of w.slices) assert.ok(s.qw.size <= 16384);
  });
  console.log(`${cases} split cases, max |Δ|/max |ref| ${worst.toExponential(2)}`);
});

gpuTest("GPTQ linear with uneven groups (group table) and duplicate release", async (ctx) => {
  const r = mulberry32(5);
  const layers = [];
  for (const bits of BITS) {
    for (const act of [false, true]) {
      const K = 288, N = 64, G = 5;
      const base = randomLayer(r, K, N, bits, 64, false, "gptq_v2");
      // Groups of 10, 90, 64, 100 and 24 rows (sizes that are not all equal), shuffled for act-order.
      const sizes = [10, 90, 64, 100, 24];
      const gIdx = new Int32Array(K);
      let k = 0;
      sizes.forEach((s, g) => gIdx.fill(g, k, k += s));
      if (act) {
        for (let i = K - 1; i > 0; i--) {
          const j = Math.floor(r() * (i + 1));
          [gIdx[i], gIdx[j]] = [gIdx[j]!, gIdx[i]!];
        }
      }
      const t = { ...base, gIdx, G };
      layers.push({ t, format: "gptq_v2" as ZeroFormat, what: `uneven bits ${bits} act ${act}` });
    }
  }
  const { worst, cases } = await runBatch(ctx, layers, [2, 9], r, (w) => {
    assert.equal(w.gs, 0);
  });
  console.log(`${cases} uneven-group cases, max |Δ|/max |ref| ${worst.toExponential(2)}`);
  const w = uploadGptqLinear(ctx, { tensors: layers[0]!.t, format: "gptq_v2" });
  releaseGptqLinear(w);
  releaseGptqLinear(w);
  assert.throws(() => encodeGptqLinear(ctx, w.aux, 1, w, w.aux), /released/);
});
