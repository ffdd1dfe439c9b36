// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Worker side of the parallel GPTQ solver ({@linkcode ./_solver_pool.ts}).
 *
 * Protocol (one request at a time per Worker, each answered with
 * `{ id, ok: true, result }` or `{ id, ok: false, error: { name, message } }`):
 *
 * - `init { module }`: instantiate the wasm kernels from a compiled module.
 * - `accNew { acc, K }`, `accAdd { acc, x, nSeq, tokens }`, `accFree { acc }`:
 *   a Hessian accumulated here, in this Worker's wasm memory (`x` transferred).
 * - `accPrepare { acc, opts, parts }`: `HessianAcc.prepare` (Cholesky +
 *   inverse) on the accumulated `H` without copying it; keeps `H`.
 * - `accErrors { acc, d, m, parts }`: the report's error sums `Σ (D·H)∘D`
 *   against the accumulated `H` (`HessianAcc.error_sums`).
 * - `prepare { h, K, opts, parts }`: `prepare_hessian` from a given `h`.
 *   With `parts` (both prepares), also returns `perm`/`dead` for other Workers.
 * - `uRange { offset, len }`: a slice of the prepared factor `U` (transferred).
 * - `uBegin { len }`, `uWrite { offset, u }`, `fromUBuffer { perm, dead,
 *   dampUsed, K, opts }`: receive another Worker's `U` slice by slice into
 *   wasm memory and rebuild the prepared Hessian from it (no `K×K` copy in JS).
 * - `quantize { w, rows, qRows? }`: `quantize_rows` on `rows` rows of `W`;
 *   returns `q` (only rows `qRows` when given), `codes`, `scale`, `zero`
 *   (transferred) and the loss.
 * - `free`: drop the prepared Hessian (and any partly received `U`).
 * - `d*`: this Worker's share of a `prepare` split across the Workers
 *   (`DistFactor`, driven by {@linkcode ./_solver_dist.ts}): `dNew`, `dPlan`
 *   (rank 0: order + fill from `h` or an accumulator), `dRetry` (rank 0: more
 *   damping), `dRows`/`dSetRows` (row blocks between ranks), `dDiag`,
 *   `dPanel`, `dUpdate` (Cholesky steps), `dInvColumn`, `dInvStep` (inverse
 *   steps), `dMeta` (rank 0: perm, dead, damping), `dFinish` (the prepared
 *   Hessian from the finished factor).
 *
 * Timings (seconds, `performance.now`) come back with every answer.
 *
 * @module
 */

import { loadWasm } from "../wasm/mod.ts";
import * as glue from "../wasm/_generated/gptq_wasm.internal.js";
import { prepareArgs, type WorkerSolveOptions } from "./_solve_settings.ts";

export type { WorkerSolveOptions } from "./_solve_settings.ts";

/** A request to the Worker. */
export type WorkerRequest =
  | { id: number; type: "init"; module: WebAssembly.Module }
  | { id: number; type: "accNew"; acc: number; K: number }
  | { id: number; type: "accAdd"; acc: number; x: Float32Array; nSeq: number; tokens: number }
  | { id: number; type: "accPrepare"; acc: number; opts: WorkerSolveOptions; parts: boolean }
  | { id: number; type: "accErrors"; acc: number; d: Float32Array; m: number; parts: number }
  | { id: number; type: "accFree"; acc: number }
  | {
    id: number;
    type: "prepare";
    h: Float32Array;
    K: number;
    opts: WorkerSolveOptions;
    parts: boolean;
  }
  | { id: number; type: "uRange"; offset: number; len: number }
  | { id: number; type: "uBegin"; len: number }
  | { id: number; type: "uWrite"; offset: number; u: Float32Array }
  | {
    id: number;
    type: "fromUBuffer";
    perm: Uint32Array;
    dead: Uint8Array;
    dampUsed: number;
    K: number;
    opts: WorkerSolveOptions;
  }
  | { id: number; type: "quantize"; w: Float32Array; rows: number; qRows?: number[] }
  | { id: number; type: "free" }
  | DistRequest;

/** Requests of a `prepare` split across Workers (see the module doc). */
export type DistRequest =
  | { id: number; type: "dNew"; K: number; parts: number; rank: number }
  | { id: number; type: "dPlan"; acc?: number; h?: Float32Array; opts: WorkerSolveOptions }
  | { id: number; type: "dRetry" }
  | { id: number; type: "dRows"; owner: number; b0: number; b1: number }
  | { id: number; type: "dSetRows"; from: number; b0: number; b1: number; rows: Float32Array }
  | { id: number; type: "dDiag"; s: number }
  | { id: number; type: "dPanel"; s: number; l11: Float32Array }
  | { id: number; type: "dUpdate"; s: number; pieces: Float32Array; diagNext: boolean }
  | { id: number; type: "dInvColumn"; s: number }
  | { id: number; type: "dInvStep"; s: number; pieces: Float32Array; next: boolean }
  | { id: number; type: "dMeta" }
  | {
    id: number;
    type: "dFinish";
    perm: Uint32Array;
    dead: Uint8Array;
    dampUsed: number;
    opts: WorkerSolveOptions;
  };

/** A diagonal factor, or the failed pivot. */
export type DiagReply = Float32Array | { pivot: number } | null;

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
  /** The column order, when `parts` was asked for. */
  perm?: Uint32Array;
  /** Dead flags, when `parts` was asked for. */
  dead?: Uint8Array;
  /** Seconds in `prepare_hessian`. */
  prepareSeconds: number;
}

/** What `quantize` answers. */
export interface QuantizeReply {
  /** Fake-quantized rows (only rows `qRows`, in that order, when given). */
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
let uBuf: glue.UBuffer | undefined;
const accs = new Map<number, glue.HessianAcc>();
let dist: glue.DistFactor | undefined;
/** Rank 0 of a split prepare: where `H` comes from (for retries). */
let distH: Float32Array | number | undefined;

function drop(): void {
  dist?.free();
  dist = undefined;
  distH = undefined;
  prep?.free();
  prep = undefined;
  uBuf?.free();
  uBuf = undefined;
}

/** Frees a transferred-in array now (detaches it) instead of at some later GC. */
function discard(a: Float32Array): void {
  const b = a.buffer;
  if (b instanceof ArrayBuffer && !b.detached) b.transfer(0);
}

function accOf(id: number): glue.HessianAcc {
  const a = accs.get(id);
  if (!a) throw new Error(`no Hessian accumulator ${id} on this Worker`);
  return a;
}

function prepared(
  p: glue.Prepared,
  seconds: number,
  parts: boolean,
): [PrepareReply, Transferable[]] {
  const reply: PrepareReply = {
    G: p.num_groups,
    gIdx: p.g_idx(),
    dampUsed: p.damp_used,
    deadColumns: p.dead_columns,
    prepareSeconds: seconds,
  };
  const transfer: Transferable[] = [reply.gIdx.buffer as ArrayBuffer];
  if (parts) {
    reply.perm = p.perm();
    reply.dead = p.dead();
    transfer.push(reply.perm.buffer as ArrayBuffer, reply.dead.buffer as ArrayBuffer);
  }
  return [reply, transfer];
}

function distOf(): glue.DistFactor {
  if (!dist) throw new Error("split prepare: no DistFactor on this Worker (dNew first)");
  return dist;
}

function diag(d: glue.DistFactor, s: number): [DiagReply, Transferable[]] {
  const l = d.chol_diag(s);
  return l ? [l, [l.buffer as ArrayBuffer]] : [{ pivot: Number(d.pivot) }, []];
}

function out(a: Float32Array): [Float32Array, Transferable[]] {
  return [a, [a.buffer as ArrayBuffer]];
}

function handleDist(req: DistRequest): [unknown, Transferable[]] {
  switch (req.type) {
    case "dNew":
      drop();
      dist = new glue.DistFactor(req.K, req.parts, req.rank);
      return [null, []];
    case "dPlan": {
      const d = distOf(), args = prepareArgs(req.opts);
      if (req.h) d.plan(req.h, ...args);
      else d.plan_acc(accOf(req.acc!), ...args);
      distH = req.h ?? req.acc!;
      return [null, []];
    }
    case "dRetry": {
      const d = distOf();
      if (typeof distH === "number") d.retry_acc(accOf(distH));
      else d.retry(distH!);
      return [null, []];
    }
    case "dRows":
      return out(distOf().rows_of_rank(req.owner, req.b0, req.b1));
    case "dSetRows":
      distOf().set_rows(req.from, req.b0, req.b1, req.rows);
      discard(req.rows);
      return [null, []];
    case "dDiag":
      return diag(distOf(), req.s);
    case "dPanel":
      return out(distOf().chol_panel(req.s, req.l11));
    case "dUpdate": {
      const d = distOf();
      d.chol_update(req.s, req.pieces);
      discard(req.pieces);
      return req.diagNext ? diag(d, req.s + 1) : [null, []];
    }
    case "dInvColumn": {
      const d = distOf();
      d.inv_begin();
      return out(d.inv_column(req.s));
    }
    case "dInvStep": {
      const d = distOf();
      d.inv_step(req.s, req.pieces);
      discard(req.pieces);
      return req.next ? out(d.inv_column(req.s - 1)) : [null, []];
    }
    case "dMeta": {
      const d = distOf();
      const perm = d.perm(), dead = d.dead();
      return [{ perm, dead, dampUsed: d.damp_used }, [
        perm.buffer as ArrayBuffer,
        dead.buffer as ArrayBuffer,
      ]];
    }
    case "dFinish": {
      const d = distOf(), o = req.opts;
      dist = undefined; // consumed
      distH = undefined;
      const p = d.into_prepared(
        req.perm,
        req.dead,
        req.dampUsed,
        o.bits,
        o.group_size,
        o.sym,
        o.desc_act,
        o.static_groups,
        o.blocksize,
        o.mse,
      );
      prep = p;
      return prepared(p, 0, false);
    }
  }
}

function isDist(req: WorkerRequest): req is DistRequest {
  return req.type.startsWith("d");
}

function handle(req: WorkerRequest): [unknown, Transferable[]] {
  if (isDist(req)) return handleDist(req);
  switch (req.type) {
    case "init":
      return [null, []];
    case "accNew": {
      accs.get(req.acc)?.free();
      accs.set(req.acc, new glue.HessianAcc(req.K));
      return [null, []];
    }
    case "accAdd": {
      const t0 = performance.now();
      try {
        accOf(req.acc).add_batch(req.x, req.nSeq, req.tokens);
      } finally {
        discard(req.x);
      }
      return [{ seconds: (performance.now() - t0) / 1000 }, []];
    }
    case "accPrepare": {
      drop();
      const t0 = performance.now();
      prep = accOf(req.acc).prepare(...prepareArgs(req.opts));
      return prepared(prep, (performance.now() - t0) / 1000, req.parts);
    }
    case "accErrors": {
      let sums: Float64Array;
      try {
        sums = accOf(req.acc).error_sums(req.d, req.m, req.parts);
      } finally {
        discard(req.d);
      }
      return [sums, [sums.buffer as ArrayBuffer]];
    }
    case "accFree": {
      accs.get(req.acc)?.free();
      accs.delete(req.acc);
      return [null, []];
    }
    case "prepare": {
      drop();
      const t0 = performance.now();
      prep = glue.prepare_hessian(req.h, req.K, ...prepareArgs(req.opts));
      discard(req.h);
      return prepared(prep, (performance.now() - t0) / 1000, req.parts);
    }
    case "uRange": {
      if (!prep) throw new Error("uRange before prepare");
      const u = prep.u_range(req.offset, req.len);
      return [u, [u.buffer as ArrayBuffer]];
    }
    case "uBegin": {
      drop();
      uBuf = new glue.UBuffer(req.len);
      return [null, []];
    }
    case "uWrite": {
      if (!uBuf) throw new Error("uWrite before uBegin");
      uBuf.write(req.offset, req.u);
      discard(req.u);
      return [null, []];
    }
    case "fromUBuffer": {
      if (!uBuf) throw new Error("fromUBuffer before uBegin");
      const o = req.opts;
      const t0 = performance.now();
      const u = uBuf;
      uBuf = undefined; // consumed by from_u_buffer
      prep = glue.Prepared.from_u_buffer(
        u,
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
      if (!prep) throw new Error("quantize before prepare/fromUBuffer");
      const K = prep.k, G = prep.num_groups, rows = req.rows;
      // At most ~8 MiB of W (or 256 rows) per call: the wasm memory never
      // shrinks, so it only ever holds one chunk of W, Q and codes (rows are
      // independent, so the result does not depend on the chunking).
      const step = Math.max(256, Math.floor((1 << 21) / K));
      const qRows = req.qRows;
      // With qRows, Q goes through one chunk-sized buffer and only the asked
      // rows are kept: the full [rows, K] Q is never allocated.
      const q = new Float32Array((qRows ? qRows.length : rows) * K);
      const qChunk = qRows ? new Float32Array(Math.min(step, rows) * K) : q;
      const codes = new Uint8Array(rows * K);
      const scale = new Float32Array(rows * G), zero = new Float32Array(rows * G);
      const t0 = performance.now();
      let loss = 0, next = 0;
      for (let r0 = 0; r0 < rows; r0 += step) {
        const r1 = Math.min(rows, r0 + step);
        const qOut = qRows ? qChunk.subarray(0, (r1 - r0) * K) : q.subarray(r0 * K, r1 * K);
        loss += prep.quantize_rows(
          req.w.subarray(r0 * K, r1 * K),
          r1 - r0,
          qOut,
          codes.subarray(r0 * K, r1 * K),
          scale.subarray(r0 * G, r1 * G),
          zero.subarray(r0 * G, r1 * G),
        );
        if (qRows) {
          for (; next < qRows.length && qRows[next]! < r1; next++) {
            const r = qRows[next]! - r0;
            q.set(qChunk.subarray(r * K, (r + 1) * K), next * K);
          }
        }
      }
      discard(req.w);
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
