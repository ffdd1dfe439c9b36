// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The GPTQ solve settings as the WASM solver takes them, with their
 * defaults filled in once: shared by the in-process solver, the solver pool
 * and its Workers.
 *
 * @module
 */

import type { GptqSolveOptions } from "./solver.ts";

/** Solver settings the Worker needs (a subset of `GptqSolveOptions`). */
export interface WorkerSolveOptions {
  /** 2, 3, 4 or 8. */
  bits: number;
  /** Columns per group; -1 for one group per row. */
  group_size: number;
  /** Symmetric quantization. */
  sym: boolean;
  /** Act-order. */
  desc_act: boolean;
  /** Static groups. */
  static_groups: boolean;
  /** Damping fraction. */
  damp_percent: number;
  /** Damping increment after a Cholesky failure. */
  damp_auto_increment: number;
  /** Lazy-update block size. */
  blocksize: number;
  /** MSE clipping search. */
  mse: boolean;
}

/**
 * The settings in the order every wasm `prepare` entry point takes them.
 *
 * @example
 * ```ts ignore
 * glue.prepare_hessian(h, K, ...prepareArgs(solveSettings(opts)));
 * ```
 *
 * @param o The settings.
 * @returns Them as the wasm argument list.
 */
export function prepareArgs(o: WorkerSolveOptions) {
  return [
    o.bits,
    o.group_size,
    o.sym,
    o.desc_act,
    o.static_groups,
    o.damp_percent,
    o.damp_auto_increment,
    o.blocksize,
    o.mse,
  ] as const;
}

/**
 * `o` with the optional settings given their defaults (GPTQModel's damping
 * increment 0.0025, AutoGPTQ's block size 128, no MSE search).
 *
 * @example
 * ```ts ignore
 * const s = solveSettings({ bits: 4, group_size: 128, sym: true, desc_act: false, static_groups: false, damp_percent: 0.01 });
 * ```
 *
 * @param o The caller's settings.
 * @returns Every setting the WASM solver needs.
 */
export function solveSettings(o: GptqSolveOptions): WorkerSolveOptions {
  return {
    bits: o.bits,
    group_size: o.group_size,
    sym: o.sym,
    desc_act: o.desc_act,
    static_groups: o.static_groups,
    damp_percent: o.damp_percent,
    damp_auto_increment: o.damp_auto_increment ?? 0.0025,
    blocksize: o.blocksize ?? 128,
    mse: o.mse ?? false,
  };
}
