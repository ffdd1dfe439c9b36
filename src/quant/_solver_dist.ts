// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * `prepare` (Cholesky + triangular inverse of the damped Hessian, `O(K³)`)
 * split across the solver Workers, driven from the pool's thread.
 *
 * Row blocks of the `K×K` factor (64 rows) are owned round-robin by the
 * Workers, each in its own wasm memory. Rank 0 orders and damps the Hessian
 * and hands the other ranks their rows. Then, per 64-column panel: the owner
 * of the diagonal block factors it, every rank solves its panel rows, the
 * panel goes to every rank, and each rank updates its own rows of the
 * trailing matrix (the GEMM-heavy part, split evenly). The triangular inverse
 * runs the same way from the last panel up, and at the end every rank
 * receives the others' rows, so each holds the whole factor `U` for the
 * row phase. `U` is bit-identical to a single Worker's `prepare_hessian`
 * (see `gptq_core::gptq::dist`).
 *
 * @module
 */

import type { DiagReply, DistRequest, PrepareReply, WorkerSolveOptions } from "./_solver_worker.ts";

type DistOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** What the driver needs of a solver Worker. */
export interface DistWorker {
  /** Posts a request and resolves with its answer. */
  call<T>(req: DistOmit<DistRequest, "id">, transfer?: Transferable[]): Promise<T>;
}

/** Where `H` lives: an accumulator on Worker 0, or an array (transferred to it). */
export type DistSource = { acc: number } | { h: Float32Array };

/** Values per message when moving whole rows between Workers (16 MiB). */
const ROWS_SLICE = 1 << 22;
/** Rows per block (`gptq_core::gptq::linalg::NB_FACTOR`). */
const NB = 64;

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Posts `pieces` to every Worker (a copy each, the last one gets the original). */
function toAll<T>(
  ws: DistWorker[],
  make: (pieces: Float32Array, rank: number) => DistOmit<DistRequest, "id">,
  pieces: Float32Array,
): Promise<T[]> {
  return Promise.all(ws.map((w, r) => {
    const c = r === ws.length - 1 ? pieces : pieces.slice();
    return w.call<T>(make(c, r), [c.buffer as ArrayBuffer]);
  }));
}

/** Copies the rows rank `from` owns (blocks `0..nb`) from `src` to the `dst` Workers. */
async function moveRows(
  src: DistWorker,
  from: number,
  dst: DistWorker[],
  K: number,
  nb: number,
  parts: number,
): Promise<void> {
  const step = Math.max(1, Math.floor(ROWS_SLICE / (NB * K))) * parts;
  for (let b0 = 0; b0 < nb; b0 += step) {
    const b1 = Math.min(nb, b0 + step);
    const rows = await src.call<Float32Array>({ type: "dRows", owner: from, b0, b1 });
    await toAll(dst, (c) => ({ type: "dSetRows", from, b0, b1, rows: c }), rows);
  }
}

/** The Cholesky steps; `undefined` when done, else the failed pivot. */
async function cholesky(ws: DistWorker[], nb: number): Promise<number | undefined> {
  const P = ws.length;
  let l11 = await ws[0]!.call<DiagReply>({ type: "dDiag", s: 0 });
  for (let s = 0; s < nb; s++) {
    if (!(l11 instanceof Float32Array)) return l11!.pivot;
    const diag = l11;
    const parts = await Promise.all(ws.map((w, r) => {
      const c = r === P - 1 ? diag : diag.slice();
      return w.call<Float32Array>({ type: "dPanel", s, l11: c }, [c.buffer as ArrayBuffer]);
    }));
    const next = (s + 1) % P;
    const replies = await toAll<DiagReply>(
      ws,
      (c, r) => ({ type: "dUpdate", s, pieces: c, diagNext: s + 1 < nb && r === next }),
      concat(parts),
    );
    l11 = replies[next]!;
  }
  return undefined;
}

async function inverse(ws: DistWorker[], nb: number): Promise<void> {
  let cols = await Promise.all(
    ws.map((w) => w.call<Float32Array>({ type: "dInvColumn", s: nb - 1 })),
  );
  for (let s = nb - 1; s >= 0; s--) {
    cols = await toAll<Float32Array>(
      ws,
      (c) => ({ type: "dInvStep", s, pieces: c, next: s > 0 }),
      concat(cols),
    );
  }
}

/**
 * Prepares `H` on all `ws` (≥ 2 Workers, `ws[0]` holding `source` if it is
 * an accumulator); afterwards every Worker holds the prepared Hessian, as
 * after `prepare` + the `U` shipping. Rejects with the solver's error
 * (e.g. not positive definite after all damping increments).
 *
 * @param ws The Workers, rank order.
 * @param K Hessian size.
 * @param opts Solver settings.
 * @param source Where `H` is.
 * @returns Rank 0's answer (with `perm`/`dead`), `prepareSeconds` = the whole wall time.
 */
export async function distPrepare(
  ws: DistWorker[],
  K: number,
  opts: WorkerSolveOptions,
  source: DistSource,
): Promise<PrepareReply> {
  const t0 = performance.now();
  const P = ws.length, nb = Math.ceil(K / NB);
  await Promise.all(ws.map((w, rank) => w.call({ type: "dNew", K, parts: P, rank })));
  if ("h" in source) {
    await ws[0]!.call({ type: "dPlan", h: source.h, opts }, [source.h.buffer as ArrayBuffer]);
  } else {
    await ws[0]!.call({ type: "dPlan", acc: source.acc, opts });
  }
  for (;;) {
    for (let r = 1; r < P; r++) await moveRows(ws[0]!, r, [ws[r]!], K, nb, P);
    if ((await cholesky(ws, nb)) === undefined) break;
    await ws[0]!.call({ type: "dRetry" }); // throws when the damping cannot grow
  }
  await inverse(ws, nb);
  for (let r = 0; r < P; r++) await moveRows(ws[r]!, r, ws.filter((_, q) => q !== r), K, nb, P);
  const meta = await ws[0]!.call<{ perm: Uint32Array; dead: Uint8Array; dampUsed: number }>(
    { type: "dMeta" },
  );
  const replies = await Promise.all(ws.map((w) => {
    const perm = meta.perm.slice(), dead = meta.dead.slice();
    return w.call<PrepareReply>(
      { type: "dFinish", perm, dead, dampUsed: meta.dampUsed, opts },
      [perm.buffer, dead.buffer],
    );
  }));
  return {
    ...replies[0]!,
    perm: meta.perm,
    dead: meta.dead,
    prepareSeconds: (performance.now() - t0) / 1000,
  };
}
