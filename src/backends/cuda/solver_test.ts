// Copyright 2026 the GPTQ toolkit authors. MIT license.
// The CUDA/HIP GPTQ solver against AutoGPTQ's own outputs (`shared/data/golden/autogptq`) and
// against the WASM solver: packed qweight/qzeros (tie flips counted), g_idx, Q, the damping
// path, errors, the device Hessian. Runs once per build of the kernels: `cuda` and `hip` on
// a real GPU, `hip-cpu` (the same kernels on the CPU, `deno task build:hip --cpu`) here;
// a build that cannot run is registered as "skipped: no CUDA device: …".
import assert from "node:assert/strict";
import { SafetensorsFile } from "../../io/safetensors.ts";
import { mulberry32 } from "../../runtime/sample.ts";
import { hessianErrorSums } from "../../quant/solver.ts";
import * as check from "../_solver_test_util.ts";
import type { CudaBackend } from "./cuda_backend.ts";
import { createCudaSolver, type CudaSolver } from "./solver.ts";
import { disposeBackends, type Target, targets, targetTest } from "./_test_targets.ts";

const ts: Target[] = await targets("solver_test.ts");

function solverTest(name: string, fn: (s: CudaSolver, be: CudaBackend) => Promise<void>): void {
  targetTest(ts, name, async (be) => {
    const s = await createCudaSolver({ backend: be });
    try {
      await fn(s, be);
    } finally {
      s.dispose();
    }
  });
}

solverTest(
  "cuda solver reproduces AutoGPTQ's packed qweight/qzeros, g_idx and Q on every golden case",
  (s) => check.autoGptqGolden(s),
);

solverTest(
  "cuda solver equals the WASM solver on odd shapes, every group mode, MSE, dead columns, blocksizes and row bands",
  async (s, be) => {
    // [N, K, tokens]: K not a multiple of 64 (the factor's blocks) or of 128 (the column
    // blocks), K above 128 with a partial last block, tiny, and one solved in row bands.
    const banded = await createCudaSolver({ backend: be, maxBandRows: 64 });
    try {
      await check.oddShapes({
        shapes: [[37, 200, 400], [33, 66, 200], [5, 7, 30], [150, 96, 300]],
        configs: [
          ...check.ODD_CONFIGS,
          { bits: 4, group_size: 24, sym: false, desc_act: true, static_groups: false, mse: true },
        ],
        solve: (W, N, K, H, o) => (N === 150 ? banded : s).gptq(W, N, K, H, o),
        lossRelTol: 1e-3,
      });
    } finally {
      banded.dispose();
    }
  },
);

solverTest(
  "cuda Hessian: from host rows and from a device tensor equals AutoGPTQ's H; errorSums equals WASM",
  async (s, be) => {
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
    for (let i = 0; i < K; i++) {
      for (let j = 0; j < i; j++) assert.equal(h1[i * K + j], h1[j * K + i]);
    }
    const dev = s.hessian(K);
    const xt = be.upload(X, ns * T, K);
    dev.addTensor(xt, ns, T);
    const h8 = await dev.read();
    be.free(xt);
    dev.free();
    const e1 = maxErr(h1), e8 = maxErr(h8);
    console.log(
      `H vs AutoGPTQ: per sequence ${e1.toExponential(2)}, one batch ${e8.toExponential(2)} ` +
        "(max |ΔH| / max |H|)",
    );
    assert.ok(e1 <= 1e-5 && e8 <= 1e-5);
    // errorSums against the WASM hessianErrorSums on the same H.
    const M = 10, rnd = mulberry32(5);
    const d = new Float32Array(M * K).map(() => rnd() - 0.5);
    const ours = await s.errorSums(perSeq, d, M, 2);
    const ref = await hessianErrorSums(d, M, h1, K, 2);
    perSeq.free();
    for (let i = 0; i < 2; i++) {
      assert.ok(Math.abs(ours[i]! / ref[i]! - 1) < 1e-5, `${ours} vs ${ref}`);
    }
  },
);

solverTest(
  "cuda solver: damping rises on Cholesky failure as in WASM; NaN and singular Hessians are the WASM solver's errors",
  async (s) => {
    const { W, H, o, N, K, message } = await check.dampingAndErrors(s);
    const badW = W.slice();
    badW[3 * K + 1] = Infinity;
    assert.match(await message(H, o, badW), /W\[3, 1\] = inf is not finite/);
    await assert.rejects(s.gptq(W, N, K, H, { ...o, blocksize: 256 }), /blocksize 1\.\.128/);
  },
);

Deno.test({
  name: "cuda solver tests: dispose the shared backends",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: disposeBackends,
});
