// Copyright 2026 the GPTQ toolkit authors. MIT license.
// The CUDA/HIP GPTQ solver against AutoGPTQ's own outputs (`shared/data/golden/autogptq`) and
// against the WASM solver: packed qweight/qzeros (tie flips counted), g_idx, Q, the damping
// path, errors, the device Hessian. Runs once per build of the kernels: `cuda` and `hip` on
// a real GPU, `hip-cpu` (the same kernels on the CPU, `deno task build:hip --cpu`) here;
// a build that cannot run is registered as "skipped: no CUDA device: …".
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../../io/safetensors.ts";
import {
  type Bits,
  packQWeight,
  packQZeros,
  unpackQWeight,
  unpackQZerosRaw,
} from "../../gptq/pack.ts";
import { mulberry32 } from "../../runtime/sample.ts";
import {
  createWasmSolver,
  type GptqLayerResult,
  type GptqSolveOptions,
  hessianErrorSums,
} from "../../quant/solver.ts";
import type { CudaBackend } from "./cuda_backend.ts";
import { createCudaSolver, type CudaSolver } from "./solver.ts";
import { disposeBackends, type Target, targets, targetTest } from "./_test_targets.ts";

const DIR = fileURLToPath(new URL("../../../../shared/data/golden/autogptq/", import.meta.url));
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

function words(x: { data: Uint8Array }): Int32Array {
  return new Int32Array(x.data.buffer, x.data.byteOffset, x.data.byteLength / 4);
}

/** Codes `[N, K]` → `[K, N]` and zeros `[N, G]` → `[G, N]`, packed as a checkpoint stores them. */
function pack(r: GptqLayerResult, N: number, K: number, bits: Bits) {
  const codesKN = new Uint8Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) codesKN[k * N + n] = r.codes[n * K + k]!;
  const zeros = new Uint32Array(r.G * N);
  for (let n = 0; n < N; n++) for (let g = 0; g < r.G; g++) zeros[g * N + n] = r.zero[n * r.G + g]!;
  return {
    qweight: packQWeight(codesKN, K, N, bits),
    qzeros: packQZeros(zeros, r.G, N, bits, "gptq", { allowOverflow: true }),
  };
}

function optsOf(c: Record<string, string>): GptqSolveOptions {
  return {
    bits: Number(c.bits),
    group_size: Number(c.group_size),
    sym: c.sym === "true",
    desc_act: c.desc_act === "true",
    static_groups: c.static_groups === "true",
    damp_percent: Number(c.damp_percent),
    damp_auto_increment: 0,
  };
}

solverTest(
  "cuda solver reproduces AutoGPTQ's packed qweight/qzeros, g_idx and Q on every golden case",
  async (s) => {
    const wasm = await createWasmSolver();
    const cases = JSON.parse(await Deno.readTextFile(DIR + "cases.json")).cases as Record<
      string,
      string
    >[];
    assert.equal(cases.length, 8);
    const lines: string[] = [];
    for (const c of cases) {
      using f = await SafetensorsFile.open(DIR + c.file);
      const [N, K] = f.info("W").shape as [number, number];
      const W = await f.readFloat32("W"),
        H = await f.readFloat32("H"),
        Q = await f.readFloat32("Q");
      const o = optsOf(c), bits = o.bits as Bits;
      const r = await s.gptq(W, N, K, H, o);
      const { qweight, qzeros } = pack(r, N, K, bits);
      const goldW = words(await f.read("qweight")), goldZ = words(await f.read("qzeros"));
      const ours = unpackQWeight(qweight, K, N, bits), theirs = unpackQWeight(goldW, K, N, bits);
      let flips = 0;
      for (let i = 0; i < ours.length; i++) if (ours[i] !== theirs[i]) flips++;
      const oz = unpackQZerosRaw(qzeros, r.G, N, bits), tz = unpackQZerosRaw(goldZ, r.G, N, bits);
      let zflips = 0;
      for (let i = 0; i < oz.length; i++) if (oz[i] !== tz[i]) zflips++;
      let wordsDiffer = 0;
      for (let i = 0; i < qweight.length; i++) if (qweight[i] !== goldW[i]) wordsDiffer++;
      assert.equal(wordsDiffer === 0, flips === 0, `${c.file}: words differ without a code flip`);
      assert.ok(flips * 1000 <= N * K, `${c.file}: ${flips} of ${N * K} codes differ`);
      assert.ok(zflips * 1000 <= r.G * N, `${c.file}: ${zflips} zero points differ`);
      const gIdx = words(await f.read("g_idx"));
      assert.deepEqual(Array.from(r.gIdx), Array.from(gIdx), `${c.file}: g_idx`);
      let maxRel = 0, same = 0;
      for (let n = 0; n < N; n++) {
        for (let k = 0; k < K; k++) {
          const i = n * K + k;
          if (r.q[i] === Q[i]) same++;
          if (ours[k * N + n] !== theirs[k * N + n]) continue;
          maxRel = Math.max(maxRel, Math.abs(r.q[i]! - Q[i]!) / Math.max(Math.abs(Q[i]!), 1e-30));
        }
      }
      assert.ok(maxRel <= 1e-5, `${c.file}: Q differs by ${maxRel} relative`);
      const w = wasm.gptq(W, N, K, H, o);
      let vsWasm = 0;
      for (let i = 0; i < N * K; i++) if (r.codes[i] !== w.codes[i]) vsWasm++;
      assert.ok(vsWasm * 1000 <= N * K, `${c.file}: ${vsWasm} codes differ from the WASM solver`);
      assert.equal(r.dampUsed, w.dampUsed);
      assert.equal(r.deadColumns, JSON.parse(JSON.stringify(c)).dead_columns.length);
      assert.ok(Math.abs(r.loss / w.loss - 1) < 1e-4, `${c.file}: loss ${r.loss} vs ${w.loss}`);
      lines.push(
        `${c.file.padEnd(34)} tie flips ${flips}/${N * K} codes, ${zflips}/${r.G * N} zeros; ` +
          `qweight words differing ${wordsDiffer}/${qweight.length}; Q bit-equal ${
            (100 * same / (N * K)).toFixed(1)
          }%, max |ΔQ|/|Q| ${maxRel.toExponential(1)}; codes ≠ WASM ${vsWasm}`,
      );
    }
    console.log(lines.join("\n"));
  },
);

solverTest(
  "cuda solver equals the WASM solver on odd shapes, every group mode, MSE, dead columns, blocksizes and row bands",
  async (s, be) => {
    const wasm = await createWasmSolver();
    const rnd = mulberry32(11);
    const configs: (Partial<GptqSolveOptions> & { bits: number; group_size: number })[] = [
      { bits: 4, group_size: 32, sym: true, desc_act: true },
      { bits: 3, group_size: -1, sym: false },
      { bits: 4, group_size: 32, sym: false, desc_act: true, static_groups: true, mse: true },
      { bits: 2, group_size: 16, sym: true, mse: true, blocksize: 32 },
      { bits: 8, group_size: 50, sym: false, blocksize: 64 },
      { bits: 4, group_size: 24, sym: false, desc_act: true, static_groups: false, mse: true },
    ];
    const lines: string[] = [];
    // [N, K, tokens]: K not a multiple of 64 (the factor's blocks) or of 128 (the column
    // blocks), K above 128 with a partial last block, tiny, and one solved in row bands.
    const banded = await createCudaSolver({ backend: be, maxBandRows: 64 });
    try {
      for (const [N, K, T] of [[37, 200, 400], [33, 66, 200], [5, 7, 30], [150, 96, 300]]) {
        const x = new Float32Array(T * K).map(() => rnd() * 2 - 1);
        for (let t = 0; t < T; t++) x[t * K + 3] = 0; // a dead column
        const acc = wasm.hessian(K);
        acc.add(x, 1, T);
        const H = acc.h();
        acc.free();
        const W = new Float32Array(N * K).map(() => (rnd() * 2 - 1) * 0.1);
        for (const c of configs) {
          const o: GptqSolveOptions = {
            sym: true,
            desc_act: false,
            static_groups: false,
            damp_percent: 0.01,
            ...c,
          };
          const g = await (N === 150 ? banded : s).gptq(W, N, K, H, o);
          const w = wasm.gptq(W, N, K, H, o);
          let diff = 0;
          for (let i = 0; i < N * K; i++) if (g.codes[i] !== w.codes[i]) diff++;
          assert.ok(diff * 1000 <= N * K, `${N}×${K} ${JSON.stringify(c)}: ${diff} codes differ`);
          assert.deepEqual(Array.from(g.gIdx), Array.from(w.gIdx));
          assert.equal(g.deadColumns, 1);
          assert.equal(g.dampUsed, w.dampUsed);
          let zdiff = 0, maxRel = 0;
          for (let i = 0; i < w.zero.length; i++) {
            if (g.zero[i] !== w.zero[i]) zdiff++;
            maxRel = Math.max(maxRel, Math.abs(g.scale[i]! / w.scale[i]! - 1));
          }
          assert.ok(zdiff * 1000 <= w.zero.length, `${zdiff} zero points differ`);
          if (diff === 0) assert.ok(maxRel < 1e-5, `scale off by ${maxRel}`);
          assert.ok(Math.abs(g.loss / w.loss - 1) < 1e-3, `loss ${g.loss} vs ${w.loss}`);
          lines.push(`${N}×${K} ${JSON.stringify(c)}: codes ≠ WASM ${diff}, max Δscale ${maxRel}`);
        }
      }
    } finally {
      banded.dispose();
    }
    console.log(lines.join("\n"));
  },
);

solverTest(
  "cuda Hessian: from host rows and from a device tensor equals AutoGPTQ's H; errorSums equals WASM",
  async (s, be) => {
    using f = await SafetensorsFile.open(DIR + "b4_g-1_sym.safetensors");
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
    const wasm = await createWasmSolver();
    const K = 48, N = 8;
    const rnd = mulberry32(3);
    const W = new Float32Array(N * K).map(() => rnd() - 0.5);
    // Indefinite 2×2 block (eigenvalue −0.03): fails until the damping passes 0.03.
    const H = new Float32Array(K * K);
    for (let i = 0; i < K; i++) H[i * K + i] = 1;
    H[10 * K + 11] = H[11 * K + 10] = 1.03;
    const o: GptqSolveOptions = {
      bits: 4,
      group_size: 16,
      sym: true,
      desc_act: true,
      static_groups: false,
      damp_percent: 0.01,
    };
    const g = await s.gptq(W, N, K, H, o), w = wasm.gptq(W, N, K, H, o);
    assert.ok(g.dampUsed > 0.025, `damp ${g.dampUsed}`);
    assert.equal(g.dampUsed, w.dampUsed);
    assert.deepEqual(Array.from(g.codes), Array.from(w.codes));
    const tensor = "model.layers.0.mlp.up_proj";
    const message = async (h: Float32Array, oo: GptqSolveOptions, wt = W) => {
      const a = await s.gptq(wt, N, K, h, oo, tensor).then(() => "", (e: Error) => e);
      let b: Error | string = "";
      try {
        wasm.gptq(wt, N, K, h, oo, tensor);
      } catch (e) {
        b = e as Error;
      }
      assert.ok(a instanceof Error && b instanceof Error);
      assert.equal(a.message, b.message);
      assert.equal((a as { code?: string }).code, "HESSIAN");
      return a.message;
    };
    const m1 = await message(H, { ...o, damp_auto_increment: 0 });
    assert.match(m1, /not positive definite .*pivot \d+.*\[0\.01\]/);
    const nan = H.slice();
    nan[5 * K + 7] = NaN;
    const m2 = await message(nan, o);
    assert.match(m2, /^tensor 'model\.layers\.0\.mlp\.up_proj': H\[5, 7\] = NaN is not finite/);
    const inf = H.slice();
    inf[2 * K + 2] = -Infinity;
    assert.match(await message(inf, o), /H\[2, 2\] = -inf is not finite/);
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
