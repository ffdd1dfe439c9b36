// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The WASM GPTQ solver at Llama-7B layer shapes, 4-bit g128, act-order off
 * and on, on 1 and 2 Workers ({@linkcode createParallelGptq}).
 *
 * ```sh
 * deno run -A bench/solver_bench.ts          # q/k/v/o 4096×4096, gate/up 11008×4096, down 4096×11008
 * deno run -A bench/solver_bench.ts --quick  # without down_proj (its H is 11008², minutes of Cholesky)
 * deno bench -A bench/solver_bench.ts        # a small 1-vs-2-Worker pair as `deno bench` entries
 * ```
 *
 * Inputs are random: `W` uniform in ±0.02, `H` = 2·XᵀX/T (T = 256 random
 * tokens, as AutoGPTQ's `add_batch` accumulates) plus 1e-3 on the diagonal.
 * The Hessian is prepared once per act-order setting (Worker 0) and shipped
 * to Worker 1; the same prepared Hessian then quantizes `W` on 1 and on 2
 * Workers, so the two rows of a pair differ only in the row phase.
 *
 * Columns: `prepare` = `prepare_hessian` (dead columns, damping, Cholesky,
 * triangular inverse; single-threaded in both cases), `ship` = exporting `U`
 * and rebuilding it on Worker 1, `loop` = `quantize_rows` (column loop plus
 * lazy-update GEMMs) wall time including moving W and the results, `total`
 * = prepare + ship + loop. GFLOP/s use nominal counts: prepare K³ (Cholesky
 * K³/3 + inverse 2K³/3), loop 2·N·K² (the real work of the loop is about
 * N·K² for the lazy updates + N·K·128 inside blocks, i.e. about half). The
 * `chol %` / `loop %` columns are the shares of `total`. The lazy-update
 * share inside `loop` is not visible from JavaScript (one wasm call); see the
 * native split of `cargo run --release -p gptq-core --example bench_solver`.
 *
 * @module
 */

import { createWasmSolver } from "../src/quant/solver.ts";
import { createParallelGptq } from "../src/quant/_solver_pool.ts";
import type { GptqSolveOptions } from "../src/quant/solver.ts";

/** One layer shape. */
interface Shape {
  name: string;
  N: number;
  K: number;
}

const SHAPES: Shape[] = [
  { name: "q/k/v/o_proj", N: 4096, K: 4096 },
  { name: "gate/up_proj", N: 11008, K: 4096 },
  { name: "down_proj", N: 4096, K: 11008 },
];

/** xorshift32 in [-1, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 31 - 1;
  };
}

async function hessian(K: number, seed: number): Promise<Float32Array> {
  const s = await createWasmSolver();
  const r = rng(seed);
  const T = 256;
  const x = new Float32Array(T * K);
  for (let i = 0; i < x.length; i++) x[i] = r();
  const acc = s.hessian(K);
  acc.add(x, 1, T);
  const h = acc.h();
  acc.free();
  for (let i = 0; i < K; i++) h[i * K + i]! += 1e-3;
  return h;
}

function weight(N: number, K: number, seed: number): Float32Array {
  const r = rng(seed);
  const w = new Float32Array(N * K);
  for (let i = 0; i < w.length; i++) w[i] = 0.02 * r();
  return w;
}

function opts(descAct: boolean): GptqSolveOptions {
  return {
    bits: 4,
    group_size: 128,
    sym: true,
    desc_act: descAct,
    static_groups: false,
    damp_percent: 0.01,
  };
}

/** One measured row of the table. */
interface Row {
  shape: Shape;
  act: boolean;
  workers: number;
  prepare: number;
  ship: number;
  loop: number;
  total: number;
}

const pad = (s: string, n: number) => s.padStart(n);
const f = (x: number, d = 2) => x.toFixed(d);

function printRow(r: Row, base?: Row): void {
  const { N, K } = r.shape;
  const gPrep = K ** 3 / r.prepare / 1e9;
  const gLoop = 2 * N * K * K / r.loop / 1e9;
  const gAll = (K ** 3 + 2 * N * K * K) / r.total / 1e9;
  console.log(
    [
      r.shape.name.padEnd(13),
      pad(`${N}×${K}`, 10),
      pad(r.act ? "on" : "off", 4),
      pad(String(r.workers), 3),
      pad(f(r.prepare), 8),
      pad(f(r.ship), 6),
      pad(f(r.loop), 7),
      pad(f(r.total), 7),
      pad(f(gPrep, 1), 6),
      pad(f(gLoop, 1), 6),
      pad(f(gAll, 1), 6),
      pad(f(100 * r.prepare / r.total, 0), 7),
      pad(f(100 * r.loop / r.total, 0), 7),
      pad(base ? f(base.loop / r.loop) + "×" : "", 7),
      pad(base ? f(base.total / r.total) + "×" : "", 7),
    ].join(" "),
  );
}

async function main(quick: boolean): Promise<void> {
  const shapes = quick ? SHAPES.filter((s) => s.K === 4096) : SHAPES;
  console.log(
    `GPTQ solver (wasm simd128), 4-bit g128 sym, damp 0.01, blocksize 128; ` +
      `${navigator.hardwareConcurrency} CPUs; seconds and nominal GFLOP/s` +
      (quick ? " (--quick: down_proj skipped)" : ""),
  );
  console.log(
    [
      "layer".padEnd(13),
      pad("N×K", 10),
      pad("act", 4),
      pad("wk", 3),
      pad("prepare", 8),
      pad("ship", 6),
      pad("loop", 7),
      pad("total", 7),
      pad("GF/s p", 6),
      pad("GF/s l", 6),
      pad("GF/s", 6),
      pad("chol %", 7),
      pad("loop %", 7),
      pad("loop ×", 7),
      pad("total×", 7),
    ].join(" "),
  );
  using pool = await createParallelGptq(2);
  const hs = new Map<number, Float32Array>();
  const t0 = performance.now();
  for (const shape of shapes) {
    const { N, K } = shape;
    if (!hs.has(K)) hs.set(K, await hessian(K, K));
    const h = hs.get(K)!;
    const w = weight(N, K, N + K);
    for (const act of [false, true]) {
      const prepared = await pool.prepare(h, K, opts(act), shape.name);
      let base: Row | undefined;
      for (const workers of [1, 2]) {
        const r = await pool.quantize(prepared, w, N, { workers, name: shape.name });
        const ship = workers > 1 ? prepared.shipSeconds : 0;
        const row: Row = {
          shape,
          act,
          workers,
          prepare: prepared.prepareSeconds,
          ship,
          loop: r.timings.columnLoop,
          total: prepared.prepareSeconds + ship + r.timings.columnLoop,
        };
        printRow(row, base);
        base ??= row;
      }
    }
  }
  console.log(`wall ${f((performance.now() - t0) / 1000, 1)} s`);
}

if (import.meta.main) {
  await main(Deno.args.includes("--quick"));
} else if (typeof Deno.bench === "function") {
  const K = 512, N = 1024;
  const h = await hessian(K, 1);
  const w = weight(N, K, 2);
  for (const workers of [1, 2]) {
    Deno.bench({
      name: `${workers} Worker(s)`,
      group: `gptq ${N}×${K} 4-bit g128 act-order (pool start included)`,
      baseline: workers === 1,
      async fn() {
        using pool = await createParallelGptq(workers);
        await pool.gptq(w, N, K, h, opts(true));
      },
    });
  }
}
