// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The host side shared by the device GPTQ solvers (WebGPU,
 * `./webgpu/solver.ts`, and CUDA/HIP, `./cuda/solver.ts`): option and shape
 * checks, the WASM solver's error messages (same code, wording and hint), the
 * decisions taken from `diag(H)` (dead columns, the act-order permutation,
 * the mean diagonal for damping), the damping retries on Cholesky failure,
 * AutoGPTQ's `g_idx`, the MSE shrink table, and the layer result assembled
 * from the codes, scales and zeros a device returns — all as the Rust solver
 * (`crates/gptq-core/src/gptq/solver.rs`) computes them.
 *
 * A device solver only encodes its kernels: each function here is called
 * with what that device read back.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import {
  createWasmSolver,
  type GptqLayerResult,
  type GptqSolveOptions,
  type QuantBackend,
} from "../quant/solver.ts";

/** The status word of a Cholesky that did not fail (and of a clean non-finite scan). */
export const NO_FAIL = 0xffffffff;

/** A Hessian prepared for quantization on a device (its factor `U` lives there). */
export interface DevicePreparedHessian {
  /** Input features. */
  readonly K: number;
  /** Groups. */
  readonly G: number;
  /** AutoGPTQ `g_idx` (`[K]`). */
  readonly gIdx: Int32Array;
  /** The damping fraction used (after automatic increases). */
  readonly dampUsed: number;
  /** Columns with a zero Hessian diagonal. */
  readonly deadColumns: number;
  /** `perm[i]` = the original column processed at position `i`. */
  readonly perm: Uint32Array;
  /** The settings it was prepared with. */
  readonly opts: Readonly<GptqSolveOptions>;
  /** Frees the device memory. */
  free(): void;
}

/** Options of a device solver's `quantize`. */
export interface DeviceQuantizeOptions {
  /** The tensor name, for error messages. */
  name?: string;
  /**
   * Only these rows of `Q` (ascending, distinct, `< N`) are formed: the
   * result's `q` is `[qRows.length, K]` (codes, scales and zeros stay complete).
   */
  qRows?: readonly number[];
}

/** Rust's `{}` of a non-finite f32. */
function rustFloat(v: number): string {
  return Number.isNaN(v) ? "NaN" : v > 0 ? "inf" : "-inf";
}

/** `{ tensor: name }` when there is a name. */
function at(name: string | undefined): { tensor?: string } {
  return name ? { tensor: name } : {};
}

/**
 * Rust's `{:?}` of an f32: the shortest decimal that reads back as the same f32.
 *
 * @example
 * ```ts
 * import { rustF32Debug } from "./_gptq_solve_host.ts";
 * console.log(rustF32Debug(Math.fround(0.01)), rustF32Debug(1)); // 0.01 1.0
 * ```
 *
 * @param v An f32 value.
 * @returns Its Rust debug form.
 */
export function rustF32Debug(v: number): string {
  let s = String(v);
  for (let p = 1; p <= 9; p++) {
    const t = Number(v.toPrecision(p));
    if (Math.fround(t) === v) {
      s = String(t);
      break;
    }
  }
  return /[.eE]/.test(s) || !Number.isFinite(v) ? s : `${s}.0`;
}

/**
 * The WASM solver's message for a non-finite entry of H or W.
 *
 * @example
 * ```ts
 * import { nonFinite } from "./_gptq_solve_host.ts";
 * console.log(nonFinite("H", 5 * 48 + 7, 48, NaN).slice(0, 30)); // H[5, 7] = NaN is not finite;
 * ```
 *
 * @param tensor `H` or `W`.
 * @param i The flat index.
 * @param cols Columns of the matrix.
 * @param v The value.
 * @returns The message.
 */
export function nonFinite(tensor: "H" | "W", i: number, cols: number, v: number): string {
  const why = tensor === "H"
    ? "the calibration activations overflowed or contain NaN: check the calibration data and run the layer in fp32"
    : "the layer weight contains NaN/Inf: the checkpoint is corrupt or was saved after a diverged training step";
  return `${tensor}[${Math.floor(i / cols)}, ${i % cols}] = ${rustFloat(v)} is not finite; ${why}`;
}

/**
 * The error the WASM solver raises for the same failure (code `HESSIAN`).
 *
 * @example
 * ```ts
 * import { solverError } from "./_gptq_solve_host.ts";
 * console.log(solverError("the damped Hessian is not positive definite", "q_proj").code); // HESSIAN
 * ```
 *
 * @param msg The message.
 * @param name The tensor name.
 * @returns The error.
 */
export function solverError(msg: string, name: string | undefined): GptqError {
  return new GptqError("HESSIAN", msg, {
    ...at(name),
    hint: /cholesky|positive/i.test(msg)
      ? "raise --damp-percent or use more calibration samples"
      : "check the calibration data and the model weights for NaN/Inf",
  });
}

/**
 * The Cholesky failure message of the WASM solver.
 *
 * @example
 * ```ts
 * import { notPositiveDefinite } from "./_gptq_solve_host.ts";
 * console.log(notPositiveDefinite(10, [Math.fround(0.01)]).includes("[0.01]")); // true
 * ```
 *
 * @param pivot The failing column (AutoGPTQ's order).
 * @param tried The damping fractions tried.
 * @returns The message.
 */
export function notPositiveDefinite(pivot: number, tried: number[]): string {
  return `the damped Hessian is not positive definite (Cholesky failed at pivot ${pivot}) ` +
    `with damp_percent [${tried.map(rustF32Debug).join(", ")}]; ` +
    "raise damp_percent (e.g. 0.1), enable damp_auto_increment, or use more/longer " +
    "calibration samples";
}

/**
 * Checks solver settings as the WASM solver does, and the blocksize the
 * device's column kernel takes.
 *
 * @example
 * ```ts
 * import { checkSolveOptions } from "./_gptq_solve_host.ts";
 * const o = { bits: 4, group_size: 128, sym: true, desc_act: false, static_groups: false, damp_percent: 0.01 };
 * checkSolveOptions(o, "q_proj", { solver: "WebGPU", maxBlock: 128 });
 * ```
 *
 * @param o The settings.
 * @param name The tensor name.
 * @param device The solver's name in messages and its largest blocksize.
 * @throws {GptqError} `INVALID_ARGUMENT`.
 */
export function checkSolveOptions(
  o: GptqSolveOptions,
  name: string | undefined,
  device: { solver: string; maxBlock: number },
): void {
  const ctx = at(name);
  if (![2, 3, 4, 8].includes(o.bits)) {
    throw new GptqError("INVALID_ARGUMENT", `bits must be 2, 3, 4 or 8, got ${o.bits}`, ctx);
  }
  if (!(o.group_size === -1 || (Number.isInteger(o.group_size) && o.group_size > 0))) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `group_size must be -1 or a positive integer, got ${o.group_size}`,
      ctx,
    );
  }
  if (!(o.damp_percent > 0 && o.damp_percent < 1)) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `damp_percent must be in (0, 1), got ${o.damp_percent}`,
      ctx,
    );
  }
  const bs = o.blocksize ?? 128;
  if (!Number.isInteger(bs) || bs < 1 || bs > device.maxBlock) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `the ${device.solver} solver takes blocksize 1..${device.maxBlock}, got ${bs}`,
      { ...ctx, hint: "use the default 128 (AutoGPTQ's)" },
    );
  }
}

/**
 * Checks the arguments of a solver's `gptq` (a Hessian given on the host).
 *
 * @example
 * ```ts
 * import { checkHostShapes } from "./_gptq_solve_host.ts";
 * checkHostShapes(new Float32Array(6), 2, 3, new Float32Array(9), "fc1");
 * ```
 *
 * @param w The weight, `N·K` values.
 * @param N Rows.
 * @param K Columns.
 * @param h The Hessian, `K²` values.
 * @param name The tensor name.
 * @throws {GptqError} `SHAPE`.
 */
export function checkHostShapes(
  w: Float32Array,
  N: number,
  K: number,
  h: Float32Array,
  name: string | undefined,
): void {
  if (w.length !== N * K || h.length !== K * K) {
    throw new GptqError(
      "SHAPE",
      `gptq: W has ${w.length} values (N·K = ${N * K}), H has ${h.length} (K² = ${K * K})`,
      at(name),
    );
  }
}

/**
 * Refuses a prepared Hessian that was freed.
 *
 * @example
 * ```ts
 * import { checkLive } from "./_gptq_solve_host.ts";
 * checkLive(false, "fc1");
 * ```
 *
 * @param freed Whether it was freed.
 * @param name The tensor name.
 * @throws {GptqError} `INVALID_ARGUMENT`.
 */
export function checkLive(freed: boolean, name: string | undefined): void {
  if (freed) throw new GptqError("INVALID_ARGUMENT", "this prepared Hessian was freed", at(name));
}

/**
 * Checks a weight for a prepared Hessian: `[N, K]` and finite (the WASM
 * solver's errors).
 *
 * @example
 * ```ts
 * import { checkWeight } from "./_gptq_solve_host.ts";
 * checkWeight(new Float32Array(8), 2, 4, "fc1");
 * ```
 *
 * @param w The weight.
 * @param N Rows.
 * @param K The Hessian's size.
 * @param name The tensor name.
 * @throws {GptqError} `SHAPE`, or `HESSIAN` for a NaN/Inf weight.
 */
export function checkWeight(w: Float32Array, N: number, K: number, name: string | undefined): void {
  if (!Number.isSafeInteger(N) || N < 1 || w.length !== N * K) {
    throw new GptqError(
      "SHAPE",
      `gptq: W has ${w.length} values, expected N·K = ${N}·${K}; W must be [N, K] with K = ` +
        "the Hessian size",
      at(name),
    );
  }
  for (let i = 0; i < w.length; i++) {
    if (!Number.isFinite(w[i]!)) throw solverError(nonFinite("W", i, K, w[i]!), name);
  }
}

/**
 * Checks the arguments of a solver's `errorSums`.
 *
 * @example
 * ```ts
 * import { checkErrorSums } from "./_gptq_solve_host.ts";
 * checkErrorSums(new Float32Array(12), 4, 3, 2);
 * ```
 *
 * @param d Rows `W − Q`.
 * @param M Rows of `d`.
 * @param K The Hessian's size.
 * @param parts Equal row blocks.
 * @throws {GptqError} `SHAPE`.
 */
export function checkErrorSums(d: Float32Array, M: number, K: number, parts: number): void {
  if (
    !Number.isSafeInteger(M) || !Number.isSafeInteger(parts) || parts < 1 || M < 1 ||
    M % parts !== 0 || d.length !== M * K
  ) {
    throw new GptqError(
      "SHAPE",
      `errorSums: D has ${d.length} values for ${M} rows of K = ${K} in ${parts} parts`,
    );
  }
}

/** What the host decides from H's diagonal. */
export interface HostPlan {
  /** `perm[i]` = the original column processed at position `i`. */
  perm: Uint32Array;
  /** 1 for a dead column (`H[i, i] = 0`), original order. */
  dead: Uint8Array;
  /** The diagonal with dead columns set to 1. */
  diag: Float32Array;
  /** Dead columns. */
  nDead: number;
  /** `mean(diag)` as an f32 (summed in f64, as in Rust). */
  mean: number;
}

/**
 * Dead columns, act-order (descending diagonal, ties by index) and the mean
 * diagonal, from `diag(H)`.
 *
 * @example
 * ```ts
 * import { planFromDiagonal } from "./_gptq_solve_host.ts";
 * const p = planFromDiagonal(new Float32Array([1, 0, 3]), true);
 * console.log(Array.from(p.perm), p.nDead); // [ 2, 0, 1 ] 1
 * ```
 *
 * @param hdiag `H[i, i]`.
 * @param descAct Act-order.
 * @returns The plan.
 */
export function planFromDiagonal(hdiag: Float32Array, descAct: boolean): HostPlan {
  const K = hdiag.length;
  const dead = new Uint8Array(K), diag = new Float32Array(K);
  let nDead = 0, sum = 0;
  for (let i = 0; i < K; i++) {
    dead[i] = hdiag[i] === 0 ? 1 : 0;
    nDead += dead[i]!;
    diag[i] = dead[i] ? 1 : hdiag[i]!;
    sum += diag[i]!;
  }
  const order = Array.from({ length: K }, (_, i) => i);
  if (descAct) order.sort((a, b) => diag[b]! - diag[a]!); // stable: ties keep the lower index
  return { perm: Uint32Array.from(order), dead, diag, nDead, mean: Math.fround(sum / K) };
}

/**
 * Runs the device's Cholesky with `damp_percent · mean(diag)` on the
 * diagonal, raising the fraction by `damp_auto_increment` while it fails and
 * stays below 1 (the WASM solver's loop).
 *
 * @example
 * ```ts
 * import { NO_FAIL, withDamping } from "./_gptq_solve_host.ts";
 * const o = { bits: 4, group_size: 8, sym: true, desc_act: false, static_groups: false, damp_percent: 0.01 };
 * const used = await withDamping(o, 1, 8, "fc1", (abs) => Promise.resolve(abs > 0.011 ? NO_FAIL : 3));
 * console.log(used); // 0.012500000186264515
 * ```
 *
 * @param o The settings (`damp_percent`, `damp_auto_increment`).
 * @param mean `mean(diag)` from {@linkcode planFromDiagonal}.
 * @param K The Hessian's size.
 * @param name The tensor name.
 * @param factor Factors with an absolute damping; resolves to {@linkcode NO_FAIL} or the
 *   failing pivot counted from the last column (the devices factor the reversed matrix).
 * @returns The damping fraction used.
 * @throws {GptqError} `HESSIAN` when the Hessian stays singular.
 */
export async function withDamping(
  o: GptqSolveOptions,
  mean: number,
  K: number,
  name: string | undefined,
  factor: (absDamp: number) => Promise<number>,
): Promise<number> {
  const inc = Math.fround(o.damp_auto_increment ?? 0.0025);
  let damp = Math.fround(o.damp_percent);
  const tried: number[] = [];
  for (;;) {
    tried.push(damp);
    const pivot = await factor(Math.fround(damp * mean));
    if (pivot === NO_FAIL) return damp;
    const next = Math.fround(damp + inc);
    if (inc <= 0 || next >= 1) throw solverError(notPositiveDefinite(K - 1 - pivot, tried), name);
    damp = next;
  }
}

/**
 * Groups of a `K`-column weight.
 *
 * @example
 * ```ts
 * import { groupsOf } from "./_gptq_solve_host.ts";
 * console.log(groupsOf(100, { group_size: 32 }), groupsOf(100, { group_size: -1 })); // 4 1
 * ```
 *
 * @param K Columns.
 * @param o The settings.
 * @returns `ceil(K / group_size)`, or 1 without groups.
 */
export function groupsOf(K: number, o: Pick<GptqSolveOptions, "group_size">): number {
  return o.group_size === -1 ? 1 : Math.ceil(K / o.group_size);
}

/**
 * AutoGPTQ's `g_idx` for a processing order (as the Rust `from_parts`).
 *
 * @example
 * ```ts
 * import { gIdxOf } from "./_gptq_solve_host.ts";
 * const o = { bits: 4, group_size: 2, sym: true, desc_act: true, static_groups: false, damp_percent: 0.01 };
 * console.log(Array.from(gIdxOf(Uint32Array.from([2, 0, 1, 3]), o))); // [ 0, 1, 0, 1 ]
 * ```
 *
 * @param perm The processing order.
 * @param o The settings.
 * @returns `g_idx` `[K]`.
 */
export function gIdxOf(perm: Uint32Array, o: GptqSolveOptions): Int32Array {
  const K = perm.length, gw = o.group_size > 0 ? o.group_size : K;
  const g = new Int32Array(K);
  perm.forEach((c, i) => {
    g[c] = o.static_groups && o.desc_act ? Math.floor(c / gw) : Math.floor(i / gw);
  });
  return g;
}

/**
 * The MSE search's shrink factors `p = 1 − i/grid` for `i < maxshrink·grid`
 * (AutoGPTQ's defaults: grid 100, maxshrink 0.8), as f32; empty without MSE.
 *
 * @example
 * ```ts
 * import { mseTable } from "./_gptq_solve_host.ts";
 * console.log(mseTable(true).length, mseTable(false).length); // 80 0
 * ```
 *
 * @param mse Whether the search is on.
 * @returns The factors.
 */
export function mseTable(mse: boolean | undefined): Float32Array {
  if (!mse) return new Float32Array(0);
  const grid = 100, steps = Math.floor(Math.fround(0.8) * grid);
  return Float32Array.from({ length: steps }, (_, i) => 1 - i / grid);
}

/**
 * The layer result from what the device returned: `Q = scale·(code − zero)`
 * for every row or the rows asked for.
 *
 * @example
 * ```ts
 * import { layerResult } from "./_gptq_solve_host.ts";
 * const prep = { K: 2, G: 1, gIdx: new Int32Array(2), dampUsed: 0.01, deadColumns: 0 };
 * const r = layerResult(prep, {
 *   codes: Uint8Array.from([0, 3]), scale: Float32Array.of(0.5), zero: Float32Array.of(1), loss: 0,
 * });
 * console.log(Array.from(r.q)); // [ -0.5, 1 ]
 * ```
 *
 * @param prep The prepared Hessian.
 * @param out Codes `[N, K]`, scales and zeros `[N, G]`, the summed loss.
 * @param qRows Rows of Q to form (default all).
 * @returns The quantized layer.
 */
export function layerResult(
  prep: Pick<DevicePreparedHessian, "K" | "G" | "gIdx" | "dampUsed" | "deadColumns">,
  out: { codes: Uint8Array; scale: Float32Array; zero: Float32Array; loss: number },
  qRows?: readonly number[],
): GptqLayerResult {
  const { K, G, gIdx } = prep;
  const { codes, scale, zero } = out;
  const N = codes.length / K;
  const nq = qRows ? qRows.length : N;
  const q = new Float32Array(nq * K);
  for (let i = 0; i < nq; i++) {
    const r = qRows ? qRows[i]! : i;
    for (let k = 0; k < K; k++) {
      const gi = r * G + gIdx[k]!;
      q[i * K + k] = Math.fround(scale[gi]! * (codes[r * K + k]! - zero[gi]!));
    }
  }
  return {
    q,
    codes,
    scale,
    zero,
    gIdx: gIdx.slice(),
    G,
    loss: out.loss,
    dampUsed: prep.dampUsed,
    deadColumns: prep.deadColumns,
  };
}

/**
 * A solver's `gptq`: uploads a host Hessian, prepares it, quantizes `w`,
 * and frees both.
 *
 * @example
 * ```ts ignore
 * return await solveHostHessian(solver.hessian(K), h, (x) => solver.prepare(x, o, name),
 *   (p) => solver.quantize(p, w, N, { name }));
 * ```
 *
 * @param hess A zero device Hessian of the right size (freed here).
 * @param h `[K, K]` on the host.
 * @param prepare The solver's `prepare`.
 * @param quantize The solver's `quantize`.
 * @returns The quantized layer.
 */
export async function solveHostHessian<
  H extends { setMatrix(h: Float32Array): void; free(): void },
  P extends { free(): void },
>(
  hess: H,
  h: Float32Array,
  prepare: (hess: H) => Promise<P>,
  quantize: (prep: P) => Promise<GptqLayerResult>,
): Promise<GptqLayerResult> {
  let prep: P | null = null;
  try {
    hess.setMatrix(h);
    prep = await prepare(hess);
    return await quantize(prep);
  } finally {
    prep?.free();
    hess.free();
  }
}

/**
 * Round-to-nearest for a device solver: the WASM solver's, bit for bit
 * (the report's baseline is then the CPU's on every engine).
 *
 * @example
 * ```ts ignore
 * const rtn = await hostRtn("WebGPU");
 * const r = rtn.rtn(w, N, K, opts);
 * rtn.close();
 * ```
 *
 * @param solver The device solver's name, for the error after `close`.
 * @returns `rtn` and `close`.
 */
export async function hostRtn(solver: string): Promise<{
  rtn(w: Float32Array, N: number, K: number, o: GptqSolveOptions): GptqLayerResult;
  close(): void;
}> {
  let wasm: QuantBackend | null = await createWasmSolver();
  return {
    rtn(w, N, K, o) {
      if (!wasm) throw new GptqError("INVALID_ARGUMENT", `the ${solver} solver was disposed`);
      return wasm.rtn(w, N, K, o);
    },
    close() {
      wasm = null;
    },
  };
}
