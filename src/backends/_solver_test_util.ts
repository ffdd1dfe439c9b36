// Copyright 2026 the GPTQ toolkit authors. MIT license.
// Private test helpers shared by the device GPTQ solver tests (`cuda/solver_test.ts`,
// `webgpu/solver_test.ts`): AutoGPTQ's own outputs (`shared/data/golden/autogptq`) and the
// WASM solver on odd shapes, checked against any device solver. Never exported from mod.ts.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../io/safetensors.ts";
import {
  type Bits,
  packQWeight,
  packQZeros,
  unpackQWeight,
  unpackQZerosRaw,
} from "../gptq/pack.ts";
import { mulberry32 } from "../runtime/sample.ts";
import {
  createWasmSolver,
  type GptqLayerResult,
  type GptqSolveOptions,
  type QuantBackend,
} from "../quant/solver.ts";

/** AutoGPTQ's golden layers: `cases.json` and one safetensors file per case. */
export const GOLDEN_DIR: string = fileURLToPath(
  new URL("../../../shared/data/golden/autogptq/", import.meta.url),
);

/** What the checks need of a device solver: the WASM solver's `gptq`, asynchronous. */
export interface AsyncGptqSolver {
  /** GPTQ-quantizes one layer on the device. */
  gptq(...args: Parameters<QuantBackend["gptq"]>): Promise<GptqLayerResult>;
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

/**
 * Every AutoGPTQ golden case on `s`: packed qweight/qzeros (tie flips ≤ 0.1%, words differ only
 * with a flip), g_idx equal, Q within 1e-5 relative where the codes agree, codes/damping/dead
 * columns/loss as the WASM solver's. Prints one line per case.
 */
export async function autoGptqGolden(s: AsyncGptqSolver): Promise<void> {
  const DIR = GOLDEN_DIR;
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
}

/** A solver option set of the odd-shape check. */
export type OddConfig = Partial<GptqSolveOptions> & { bits: number; group_size: number };

/** The group modes, MSE and blocksizes every device solver is checked on. */
export const ODD_CONFIGS: readonly OddConfig[] = [
  { bits: 4, group_size: 32, sym: true, desc_act: true },
  { bits: 3, group_size: -1, sym: false },
  { bits: 4, group_size: 32, sym: false, desc_act: true, static_groups: true, mse: true },
  { bits: 2, group_size: 16, sym: true, mse: true, blocksize: 32 },
  { bits: 8, group_size: 50, sym: false, blocksize: 64 },
];

/** How {@linkcode oddShapes} runs. */
export interface OddShapesOptions {
  /** `[N, K, tokens]` of each layer (a random W and a Hessian with one dead column). */
  shapes: readonly (readonly [number, number, number])[];
  /** The option sets, each solved on every shape. */
  configs: readonly OddConfig[];
  /** Solves one layer on the device (the caller picks a banded solver by shape). */
  solve(
    W: Float32Array,
    N: number,
    K: number,
    H: Float32Array,
    o: GptqSolveOptions,
  ): Promise<GptqLayerResult>;
  /** Also assert the loss within this relative distance of the WASM solver's. */
  lossRelTol?: number;
}

/**
 * The device solver against the WASM solver on random layers: codes and zero points ≤ 0.1%
 * apart, g_idx, dead columns and damping equal, scales within 1e-5 where the codes agree.
 * Prints one line per shape and option set.
 */
export async function oddShapes(opts: OddShapesOptions): Promise<void> {
  const wasm = await createWasmSolver();
  const rnd = mulberry32(11);
  const lines: string[] = [];
  for (const [N, K, T] of opts.shapes) {
    const x = new Float32Array(T * K).map(() => rnd() * 2 - 1);
    for (let t = 0; t < T; t++) x[t * K + 3] = 0; // a dead column
    const acc = wasm.hessian(K);
    acc.add(x, 1, T);
    const H = acc.h();
    acc.free();
    const W = new Float32Array(N * K).map(() => (rnd() * 2 - 1) * 0.1);
    for (const c of opts.configs) {
      const o: GptqSolveOptions = {
        sym: true,
        desc_act: false,
        static_groups: false,
        damp_percent: 0.01,
        ...c,
      };
      const g = await opts.solve(W, N, K, H, o);
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
      if (opts.lossRelTol !== undefined) {
        assert.ok(
          Math.abs(g.loss / w.loss - 1) < opts.lossRelTol,
          `loss ${g.loss} vs ${w.loss}`,
        );
      }
      lines.push(`${N}×${K} ${JSON.stringify(c)}: codes ≠ WASM ${diff}, max Δscale ${maxRel}`);
    }
  }
  console.log(lines.join("\n"));
}

/** What {@linkcode dampingAndErrors} leaves for further checks. */
export interface DampingCase {
  /** The layer: `W` (`[N, K]`), the indefinite `H`, the options. */
  W: Float32Array;
  H: Float32Array;
  o: GptqSolveOptions;
  N: number;
  K: number;
  /** Solves on the device and in WASM; both must throw the same `HESSIAN` error; its message. */
  message(h: Float32Array, oo: GptqSolveOptions, wt?: Float32Array): Promise<string>;
}

/**
 * An indefinite Hessian: the damping rises on Cholesky failure to the WASM solver's value
 * with its codes; without auto-increment, and with a NaN or −∞ in H, the device throws the
 * WASM solver's `HESSIAN` error naming the tensor.
 */
export async function dampingAndErrors(s: AsyncGptqSolver): Promise<DampingCase> {
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
  return { W, H, o, N, K, message };
}
