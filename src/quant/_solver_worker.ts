// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Worker side of the parallel GPTQ solver ({@linkcode ./_solver_pool.ts}).
 *
 * Protocol (one request at a time per Worker, each answered with
 * `{ id, ok: true, result }` or `{ id, ok: false, error: { name, message } }`):
 *
 * - `init { module }`: instantiate the wasm kernels from a compiled module.
 * - `prepare { h, K, opts, parts }`: `prepare_hessian` (Cholesky + inverse);
 *   with `parts`, also returns `u`/`perm`/`dead` (transferred) for other Workers.
 * - `fromParts { u, perm, dead, dampUsed, K, opts }`: rebuild the prepared
 *   Hessian from another Worker's factor.
 * - `quantize { w, rows }`: `quantize_rows` on `rows` rows of `W`; returns
 *   `q`, `codes`, `scale`, `zero` (transferred) and the loss.
 * - `free`: drop the prepared Hessian.
 *
 * Timings (seconds, `performance.now`) come back with every answer.
 *
 * @module
 */

import { loadWasm } from "../wasm/mod.ts";
import * as glue from "../wasm/_generated/gptq_wasm.internal.js";

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

/** A request to the Worker. */
export type WorkerRequest =
  | { id: number; type: "init"; module: WebAssembly.Module }
  | {
    id: number;
    type: "prepare";
    h: Float32Array;
    K: number;
    opts: WorkerSolveOptions;
    parts: boolean;
  }
  | {
    id: number;
    type: "fromParts";
    u: Float32Array;
    perm: Uint32Array;
    dead: Uint8Array;
    dampUsed: number;
    K: number;
    opts: WorkerSolveOptions;
  }
  | { id: number; type: "quantize"; w: Float32Array; rows: number }
  | { id: number; type: "free" };

/** What `prepare` answers. */
export interface PrepareReply {
  /** Groups. */
  G: number;
  /** AutoGPTQ `g_idx`. */
  gIdx: Int32Array;
  /** Damping used. */
  dampUsed: number;
  /** Dead columns. */
  deadColumns: number;
  /** The factor, when `parts` was asked for. */
  u?: Float32Array;
  /** The column order, when `parts` was asked for. */
  perm?: Uint32Array;
  /** Dead flags, when `parts` was asked for. */
  dead?: Uint8Array;
  /** Seconds in `prepare_hessian`. */
  prepareSeconds: number;
  /** Seconds exporting `u`/`perm`/`dead`. */
  exportSeconds: number;
}

/** What `quantize` answers. */
export interface QuantizeReply {
  /** Fake-quantized rows. */
  q: Float32Array;
  /** Codes. */
  codes: Uint8Array;
  /** Scales. */
  scale: Float32Array;
  /** Zero points. */
  zero: Float32Array;
  /** Loss of these rows. */
  loss: number;
  /** Seconds in `quantize_rows`. */
  seconds: number;
}

interface WorkerScope {
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
}

const scope = self as unknown as WorkerScope;
let prep: glue.Prepared | undefined;

function drop(): void {
  prep?.free();
  prep = undefined;
}

function handle(req: WorkerRequest): [unknown, Transferable[]] {
  switch (req.type) {
    case "init":
      return [null, []];
    case "prepare": {
      drop();
      const o = req.opts;
      const t0 = performance.now();
      prep = glue.prepare_hessian(
        req.h,
        req.K,
        o.bits,
        o.group_size,
        o.sym,
        o.desc_act,
        o.static_groups,
        o.damp_percent,
        o.damp_auto_increment,
        o.blocksize,
        o.mse,
      );
      const t1 = performance.now();
      const reply: PrepareReply = {
        G: prep.num_groups,
        gIdx: prep.g_idx(),
        dampUsed: prep.damp_used,
        deadColumns: prep.dead_columns,
        prepareSeconds: (t1 - t0) / 1000,
        exportSeconds: 0,
      };
      const transfer: Transferable[] = [reply.gIdx.buffer as ArrayBuffer];
      if (req.parts) {
        reply.u = prep.u();
        reply.perm = prep.perm();
        reply.dead = prep.dead();
        transfer.push(
          reply.u.buffer as ArrayBuffer,
          reply.perm.buffer as ArrayBuffer,
          reply.dead.buffer as ArrayBuffer,
        );
        reply.exportSeconds = (performance.now() - t1) / 1000;
      }
      return [reply, transfer];
    }
    case "fromParts": {
      drop();
      const o = req.opts;
      const t0 = performance.now();
      prep = glue.Prepared.from_parts(
        req.u,
        req.perm,
        req.dead,
        req.dampUsed,
        req.K,
        o.bits,
        o.group_size,
        o.sym,
        o.desc_act,
        o.static_groups,
        o.blocksize,
        o.mse,
      );
      return [{ seconds: (performance.now() - t0) / 1000 }, []];
    }
    case "quantize": {
      if (!prep) throw new Error("quantize before prepare/fromParts");
      const K = prep.k, G = prep.num_groups, rows = req.rows;
      const q = new Float32Array(rows * K), codes = new Uint8Array(rows * K);
      const scale = new Float32Array(rows * G), zero = new Float32Array(rows * G);
      const t0 = performance.now();
      // At most ~32 MiB of W per call: the wasm memory never shrinks, so it
      // only ever holds one chunk of W, Q and codes (rows are independent).
      const step = Math.max(1, Math.floor((1 << 23) / K));
      let loss = 0;
      for (let r0 = 0; r0 < rows; r0 += step) {
        const r1 = Math.min(rows, r0 + step);
        loss += prep.quantize_rows(
          req.w.subarray(r0 * K, r1 * K),
          r1 - r0,
          q.subarray(r0 * K, r1 * K),
          codes.subarray(r0 * K, r1 * K),
          scale.subarray(r0 * G, r1 * G),
          zero.subarray(r0 * G, r1 * G),
        );
      }
      const reply: QuantizeReply = {
        q,
        codes,
        scale,
        zero,
        loss,
        seconds: (performance.now() - t0) / 1000,
      };
      return [reply, [q.buffer, codes.buffer, scale.buffer, zero.buffer]];
    }
    case "free":
      drop();
      return [null, []];
  }
}

scope.onmessage = async (e: MessageEvent<WorkerRequest>): Promise<void> => {
  const req = e.data;
  try {
    if (req.type === "init") await loadWasm({ module: req.module });
    const [result, transfer] = handle(req);
    scope.postMessage({ id: req.id, ok: true, result }, transfer);
  } catch (err) {
    const error = err instanceof Error
      ? { name: err.name, message: err.message }
      : { name: "Error", message: String(err) };
    scope.postMessage({ id: req.id, ok: false, error });
  }
};
