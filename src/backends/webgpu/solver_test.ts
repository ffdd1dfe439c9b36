// Copyright 2026 the GPTQ toolkit authors. MIT license.
// The WebGPU GPTQ solver against AutoGPTQ's own outputs (`shared/data/golden/autogptq`) and
// against the WASM solver: packed qweight/qzeros (tie flips counted), g_idx, Q, the damping
// path, errors, the device Hessian. Runs on any adapter (lavapipe in CI).
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
import { GpuContext } from "./context.ts";
import { params } from "./_common.ts";
import { createWebGpuSolver, type WebGpuSolver } from "./solver.ts";

const DIR = fileURLToPath(new URL("../../../../shared/data/golden/autogptq/", import.meta.url));

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

gpuTest(
  "webgpu solver reproduces AutoGPTQ's packed qweight/qzeros, g_idx and Q on every golden case",
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
      // Tie flips: codes (and zero points) that differ from AutoGPTQ's, unpacked from the words.
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
      // g_idx equal; Q within 1e-5 relative wherever the codes agree.
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
      // The same codes as the WASM solver.
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

gpuTest(
  "webgpu solver equals the WASM solver on odd shapes, every group mode, MSE, dead columns, blocksizes and row bands",
  async (s) => {
    const wasm = await createWasmSolver();
    const rnd = mulberry32(11);
    const base = { damp_percent: 0.01 };
    const configs: (Partial<GptqSolveOptions> & { bits: number; group_size: number })[] = [
      { bits: 4, group_size: 32, sym: true, desc_act: true },
      { bits: 3, group_size: -1, sym: false },
      { bits: 4, group_size: 32, sym: false, desc_act: true, static_groups: true, mse: true },
      { bits: 2, group_size: 16, sym: true, mse: true, blocksize: 32 },
      { bits: 8, group_size: 50, sym: false, blocksize: 64 },
    ];
    const lines: string[] = [];
    // [N, K, tokens]: K not a multiple of 64/4, tiny, and one whose W needs row bands below.
    for (const [N, K, T] of [[37, 200, 400], [33, 66, 200], [5, 7, 30], [300, 96, 400]] as const) {
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
          ...base,
          ...c,
        };
        const banded = N === 300
          ? await createWebGpuSolver({ context: s.context, maxBindingBytes: K * K * 4 })
          : s;
        try {
          const g = await banded.gptq(W, N, K, H, o);
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
          lines.push(`${N}×${K} ${JSON.stringify(c)}: codes ≠ WASM ${diff}, max Δscale ${maxRel}`);
        } finally {
          if (banded !== s) banded.dispose();
        }
      }
    }
    console.log(lines.join("\n"));
  },
);

gpuTest(
  "webgpu Hessian: from host rows and from a device tensor, per sequence and in one batch, equals AutoGPTQ's H",
  async (s) => {
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
    const message = async (h: Float32Array, oo: GptqSolveOptions) => {
      const [a, b] = await Promise.all([
        s.gptq(W, N, K, h, oo, "model.layers.0.mlp.up_proj").then(() => "", (e: Error) => e),
        Promise.resolve().then(() => wasm.gptq(W, N, K, h, oo, "model.layers.0.mlp.up_proj")).then(
          () => "",
          (e: Error) => e,
        ),
      ]);
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
