// Copyright 2026 the GPTQ toolkit authors. MIT license.
// The CUDA/HIP GPTQ dequant GEMV (M <= 8) and GEMM (M > 8) against dequantize + matmul in f64:
// every bit width × group size (incl. a short last group and groups not a multiple of 32) ×
// act-order × zero format × row count, ragged N against the GEMM tiles, uneven group tables.
// Registered per target (cuda, hip, hip-cpu), skipped with the reason where one cannot run.
import assert from "node:assert/strict";
import type { Bits, ZeroFormat } from "../../gptq/pack.ts";
import { dequantizeLinear, type QuantLinearTensors } from "../../gptq/quant_linear.ts";
import { mulberry32 } from "../../runtime/sample.ts";
import { randomLayer } from "../_test_layers.ts";
import type { CudaBackend } from "./cuda_backend.ts";
import type { CudaGptqLinear } from "./_gptq.ts";
import { sortByGroup, uniformGroupSize } from "../_gptq_layout.ts";
import { disposeBackends, targets, targetTest } from "./_test_targets.ts";

const TS = await targets("gptq_cuda_test");

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

interface Layer {
  t: QuantLinearTensors;
  format: ZeroFormat;
  what: string;
}

/** Runs every layer at every M; returns the worst max |Δ| / max |ref|. */
async function runAll(
  be: CudaBackend,
  layers: Layer[],
  Ms: number[],
  r: () => number,
  check?: (w: CudaGptqLinear, t: QuantLinearTensors) => void,
): Promise<{ worst: number; cases: number }> {
  let worst = 0, cases = 0;
  for (const l of layers) {
    const w = be.linearFromGptq({ tensors: l.t, format: l.format }) as CudaGptqLinear;
    assert.equal(w.N, l.t.N);
    assert.equal(w.K, l.t.K);
    check?.(w, l.t);
    for (const M of Ms) {
      const x = new Float32Array(M * l.t.K).map(() => r() * 2 - 1);
      const xt = be.upload(x, M, l.t.K);
      const y = be.linear(xt, w);
      const got = await be.read(y);
      be.free(xt);
      be.free(y);
      const want = reference(l.t, l.format, x, M);
      let d = 0, mag = 0;
      for (let j = 0; j < want.length; j++) {
        d = Math.max(d, Math.abs(got[j]! - want[j]!));
        mag = Math.max(mag, Math.abs(want[j]!));
      }
      const e = d / mag;
      assert.ok(e <= 1e-5, `${l.what} M ${M}: max |Δ| ${d} / max |ref| ${mag} = ${e}`);
      worst = Math.max(worst, e);
      cases++;
    }
    be.release(w);
  }
  return { worst, cases };
}

const BITS: Bits[] = [2, 3, 4, 8];
const FORMATS: ZeroFormat[] = ["gptq", "gptq_v2"];

targetTest(
  TS,
  "GPTQ GEMV and GEMM match dequantize + matmul: bits × group × act-order × format × M",
  async (be) => {
    const r = mulberry32(20260601);
    const layers: Layer[] = [];
    for (const bits of BITS) {
      for (const group of [32, 128, -1, 48]) {
        for (const act of [false, true]) {
          for (const format of FORMATS) {
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
    const { worst, cases } = await runAll(be, layers, [1, 2, 3, 8, 9, 64], r, (w, t) => {
      const limit = (t.K * t.N * t.bits) / 8 + t.G * t.N * 4 + (t.N + 2 * t.K) * 4 + 256;
      assert.ok(w.bytes <= limit, `${w.bytes} bytes > ${limit}`);
      const sorted = t.gIdx !== null && t.gIdx.some((g, k) => k > 0 && g < t.gIdx![k - 1]!);
      assert.equal(w.perm !== 0n, sorted);
    });
    console.log(
      `${cases} cases, max |Δ|/max |ref| ${worst.toExponential(2)}, ` +
        `${(performance.now() - t0).toFixed(0)} ms`,
    );
  },
);

targetTest(TS, "GPTQ GEMM with 128-row tiles (M >= 128, N >= 128)", async (be) => {
  const r = mulberry32(7);
  const layers: Layer[] = BITS.map((bits) => ({
    t: randomLayer(r, 256, 160, bits, 64, bits === 3, "gptq"),
    format: "gptq" as ZeroFormat,
    what: `big-tile bits ${bits}`,
  }));
  await runAll(be, layers, [130], r);
});

targetTest(TS, "GPTQ linear with uneven groups (group table), act-order", async (be) => {
  const r = mulberry32(5);
  const layers: Layer[] = [];
  for (const bits of BITS) {
    for (const act of [false, true]) {
      const K = 288, N = 64, G = 5;
      const base = randomLayer(r, K, N, bits, 64, false, "gptq_v2");
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
      layers.push({
        t: { ...base, gIdx, G },
        format: "gptq_v2",
        what: `uneven bits ${bits} act ${act}`,
      });
    }
  }
  await runAll(be, layers, [2, 9], r, (w) => assert.equal(w.gs, 0));
});

targetTest(TS, "GPTQ layer validation: bad shapes are typed errors", (be) => {
  const r = mulberry32(11);
  const t = randomLayer(r, 64, 32, 4, 32, false, "gptq");
  assert.throws(
    () => be.linearFromGptq({ tensors: { ...t, N: 48 }, format: "gptq" }),
    /multiples of 32/,
  );
  assert.throws(
    () => be.linearFromGptq({ tensors: { ...t, qweight: t.qweight.subarray(1) }, format: "gptq" }),
    /qweight has/,
  );
  const g = new Int32Array(64).fill(7);
  assert.throws(() => be.linearFromGptq({ tensors: { ...t, gIdx: g }, format: "gptq" }), /outside/);
});

Deno.test("GPTQ load-time layout helpers (host side, no device)", () => {
  assert.deepEqual(Array.from(sortByGroup(new Int32Array([1, 0, 1, 0]), 2)!), [1, 3, 0, 2]);
  assert.equal(sortByGroup(new Int32Array([0, 0, 1]), 2), null);
  assert.equal(uniformGroupSize([0, 0, 1, 1, 2]), 2);
  assert.equal(uniformGroupSize([0, 1, 1, 1]), 0);
});

Deno.test({
  name: "gptq cuda tests: release the shared devices",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => disposeBackends(),
});
