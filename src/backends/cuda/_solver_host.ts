// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The host side of the CUDA/HIP GPTQ solver: option checks, the error
 * messages of the WASM solver (same code, wording and hint), dead columns,
 * the act-order permutation, damping, `g_idx` and the MSE shrink table, all as
 * the Rust solver (`crates/gptq-core/src/gptq/solver.rs`) computes them.
 *
 * @module
 */

import { GptqError } from "../../errors.ts";
import type { GptqSolveOptions } from "../../quant/solver.ts";
import { SOLVE_MAX_BLOCK } from "./ffi.ts";

/** Rust's `{}` of a non-finite f32. */
function rustFloat(v: number): string {
  return Number.isNaN(v) ? "NaN" : v > 0 ? "inf" : "-inf";
}

/**
 * Rust's `{:?}` of an f32: the shortest decimal that reads back as the same f32.
 *
 * @example
 * ```ts
 * import { rustF32Debug } from "./_solver_host.ts";
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
 * import { nonFinite } from "./_solver_host.ts";
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
 * import { solverError } from "./_solver_host.ts";
 * console.log(solverError("the damped Hessian is not positive definite", "q_proj").code); // HESSIAN
 * ```
 *
 * @param msg The message.
 * @param name The tensor name.
 * @returns The error.
 */
export function solverError(msg: string, name: string | undefined): GptqError {
  return new GptqError("HESSIAN", msg, {
    ...(name ? { tensor: name } : {}),
    hint: /cholesky|positive/i.test(msg)
      ? "raise --damp-percent or use more calibration samples"
      : "check the calibration data and the model weights for NaN/Inf",
  });
}

/**
 * Checks solver settings as the WASM solver does (and the blocksize the kernels take).
 *
 * @example
 * ```ts
 * import { checkSolveOptions } from "./_solver_host.ts";
 * checkSolveOptions({ bits: 4, group_size: 128, sym: true, desc_act: false, static_groups: false, damp_percent: 0.01 }, "q_proj");
 * ```
 *
 * @param o The settings.
 * @param name The tensor name.
 * @throws {GptqError} `INVALID_ARGUMENT`.
 */
export function checkSolveOptions(o: GptqSolveOptions, name: string | undefined): void {
  const ctx = name ? { tensor: name } : {};
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
  if (!Number.isInteger(bs) || bs < 1 || bs > SOLVE_MAX_BLOCK) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `the CUDA solver takes blocksize 1..${SOLVE_MAX_BLOCK}, got ${bs}`,
      { ...ctx, hint: "use the default 128 (AutoGPTQ's)" },
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
 * import { planFromDiagonal } from "./_solver_host.ts";
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
 * AutoGPTQ's `g_idx` for a processing order (as the Rust `from_parts`).
 *
 * @example
 * ```ts
 * import { gIdxOf } from "./_solver_host.ts";
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
 * import { mseTable } from "./_solver_host.ts";
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
 * The Cholesky failure message of the WASM solver.
 *
 * @example
 * ```ts
 * import { notPositiveDefinite } from "./_solver_host.ts";
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
