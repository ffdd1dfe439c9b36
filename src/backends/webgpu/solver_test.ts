// Copyright 2026 the GPTQ toolkit authors. MIT license.
// The WebGPU GPTQ solver against AutoGPTQ's own outputs (`shared/data/golden/autogptq`) and
// against the WASM solver: packed qweight/qzeros (tie flips counted), g_idx, Q, the damping
// path, errors, the device Hessian. Runs on any adapter (lavapipe in CI).
import assert from "node:assert/strict";
import { SafetensorsFile } from "../../io/safetensors.ts";
import { mulberry32 } from "../../runtime/sample.ts";
import { hessianErrorSums } from "../../quant/solver.ts";
import * as check from "../_solver_test_util.ts";
import { GpuContext } from "./context.ts";
import { params } from "./_common.ts";
import { createWebGpuSolver, type WebGpuSolver } from "./solver.ts";

const ctx = await GpuContext.create().catch((e: Error) => {
  console.log(`WebGPU solver tests skipped: ${e.message}`);
  return null;
});

function gpuTest(name: string, fn: (s: WebGpuSolver) => Promise<void>): void {
  if (!ctx) {
    Deno.test({ name: `${name} (skipped: no WebGPU adapter)`, ignore: true, fn() {} });
    return;
  }
  Deno.test(name, async () => {
    const { createWebGpuBackend } = await import("./webgpu_backend.ts");
    const backend = await createWebGpuBackend({ context: ctx });
    const s = await createWebGpuSolver({ backend });
    try {
      await fn(s);
    } finally {
      s.dispose();
    }
  });
}

gpuTest(
  "webgpu solver reproduces AutoGPTQ's packed qweight/qzeros, g_idx and Q on every golden case",
  (s) => check.autoGptqGolden(s),
);

gpuTest(
  "webgpu solver equals the WASM solver on odd shapes, every group mode, MSE, dead columns, blocksizes and row bands",
  (s) =>
    check.oddShapes({
      // [N, K, tokens]: K not a multiple of 64/4, tiny, and one whose W needs row bands below.
      shapes: [[37, 200, 400], [33, 66, 200], [5, 7, 30], [300, 96, 400]],
      configs: check.ODD_CONFIGS,
      solve: async (W, N, K, H, o) => {
        const banded = N === 300
          ? await createWebGpuSolver({ context: s.context, maxBindingBytes: K * K * 4 })
          : s;
        try {
          return await banded.gptq(W, N, K, H, o);
        } finally {
          if (banded !== s) banded.dispose();
        }
      },
    }),
);

gpuTest(
  "webgpu Hessian: from host rows and from a device tensor, per sequence and in one batch, equals AutoGPTQ's H",
  async (s) => {
    using f = await SafetensorsFile.open(check.GOLDEN_DIR + "b4_g-1_sym.safetensors");
    const X = await f.readFloat32("X"), Href = await f.readFloat32("H");
    const [ns, T, K] = f.info("X").shape as [number, number, number];
    const hmax = Href.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const maxErr = (h: Float32Array) => {
      let m = 0;
      for (let i = 0; i < h.length; i++) m = Math.max(m, Math.abs(h[i]! - Href[i]!));
      return m / hmax;
    };
    const perSeq = s.hessian(K);
    for (let i = 0; i < ns; i++) perSeq.add(X.subarray(i * T * K, (i + 1) * T * K), 1, T);
    assert.equal(perSeq.nsamples, ns);
    const h1 = await perSeq.read();
    perSeq.free();
    for (let i = 0; i < K; i++) {
      for (let j = 0; j < i; j++) assert.equal(h1[i * K + j], h1[j * K + i]);
    }
    // The forward's path: the activations are already a device tensor.
    const dev = s.hessian(K);
    const xt = { rows: ns * T, cols: K, buf: s.context.upload(X) };
    dev.addTensor(xt, ns, T);
    const h8 = await dev.read();
    s.context.discard(xt.buf);
    dev.free();
    // Token bands (a binding smaller than X): the same sums.
    const small = await createWebGpuSolver({ context: s.context, maxBindingBytes: K * K });
    let h3: Float32Array;
    try {
      const b = small.hessian(K / 2);
      const half = new Float32Array(ns * T * (K / 2));
      for (let t = 0; t < ns * T; t++) half.set(X.subarray(t * K, t * K + K / 2), t * (K / 2));
      b.add(half, ns, T);
      h3 = await b.read();
      b.free();
    } finally {
      small.dispose();
    }
    let m3 = 0;
    for (let i = 0; i < K / 2; i++) {
      for (let j = 0; j < K / 2; j++) {
        m3 = Math.max(m3, Math.abs(h3[i * (K / 2) + j]! - Href[i * K + j]!));
      }
    }
    const e1 = maxErr(h1), e8 = maxErr(h8);
    console.log(
      `H vs AutoGPTQ: per sequence ${e1.toExponential(2)}, one batch ${e8.toExponential(2)}, ` +
        `token bands ${(m3 / hmax).toExponential(2)} (max |ΔH| / max |H|)`,
    );
    assert.ok(e1 <= 1e-5 && e8 <= 1e-5 && m3 / hmax <= 1e-5);
  },
);

gpuTest(
  "webgpu solver: damping rises on Cholesky failure as in WASM; NaN and singular Hessians are the WASM solver's errors",
  async (s) => {
    await check.dampingAndErrors(s);
  },
);

gpuTest("webgpu errorSums equals the WASM hessianErrorSums", async (s) => {
  const K = 96, M = 10;
  const rnd = mulberry32(5);
  const x = new Float32Array(200 * K).map(() => rnd() * 2 - 1);
  const h = s.hessian(K);
  h.add(x, 2, 100);
  const H = await h.read();
  const d = new Float32Array(M * K).map(() => rnd() - 0.5);
  const ours = await s.errorSums(h, d, M, 2);
  const ref = await hessianErrorSums(d, M, H, K, 2);
  h.free();
  for (let i = 0; i < 2; i++) {
    assert.ok(Math.abs(ours[i]! / ref[i]! - 1) < 1e-5, `${ours} vs ${ref}`);
  }
});

gpuTest(
  "webgpu div_rn: correctly rounded f32 division (the quantizer's x/scale), ties included",
  async (s) => {
    const c = s.context;
    const rnd = mulberry32(9);
    const a: number[] = [], b: number[] = [];
    const f = Math.fround;
    // Random magnitudes, and the quantizer's cases: x/scale near and at n + 0.5, xmax/scale at maxq/2.
    for (let i = 0; i < 4000; i++) {
      a.push(f((rnd() - 0.5) * 2 ** (rnd() * 40 - 20)));
      b.push(f((rnd() + 0.01) * 2 ** (rnd() * 40 - 20)));
    }
    const buf = new Float32Array(1);
    const ulps = (v: number, k: number) => {
      buf[0] = v;
      new Int32Array(buf.buffer)[0]! += k;
      return buf[0]!;
    };
    for (let i = 0; i < 4000; i++) {
      const scale = f((rnd() + 0.001) * 0.01), n = Math.floor(rnd() * 16) - 8;
      for (const k of [-2, -1, 0, 1, 2]) {
        a.push(ulps(f((n + 0.5) * scale), k));
        b.push(scale);
      }
      const xmax = f(rnd() * 0.1 + 1e-4);
      for (const maxq of [3, 7, 15, 255]) {
        const sc = f((xmax + xmax) / maxq);
        a.push(xmax, -xmax);
        b.push(sc, sc);
      }
    }
    a.push(0, -0, 1, 3, 1e-30);
    b.push(3, 7, 3, 1, 3e-8);
    const K = a.length;
    const A = c.upload(Float32Array.from(a));
    const B = c.upload(new Uint32Array(Float32Array.from(b).buffer));
    const out = c.buffer(K * 4);
    c.dispatch(c.pipeline("gptq_solve_columns", "div_check"), [A, B, out], params(K), [
      Math.ceil(K / 64),
    ]);
    const got = new Float32Array(await c.read(out, 0, K * 4));
    c.discard(A);
    c.discard(B);
    c.release(out);
    let bad = 0;
    for (let i = 0; i < K; i++) {
      const want = f(a[i]! / b[i]!); // f64 division rounded once to f32: correctly rounded
      if (!Object.is(got[i], want)) {
        if (bad++ < 5) console.log(`${a[i]} / ${b[i]}: ${got[i]} vs ${want}`);
      }
    }
    assert.equal(bad, 0, `${bad} of ${K} quotients are not correctly rounded`);
  },
);
