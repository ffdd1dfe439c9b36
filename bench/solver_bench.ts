// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The WASM GPTQ solver at Llama-7B layer shapes, 4-bit g128, next to
 * AutoGPTQ's `fasterquant` on torch CPU at the same thread count.
 *
 * ```sh
 * deno run -A bench/solver_bench.ts              # the AutoGPTQ comparison (below)
 * deno run -A bench/solver_bench.ts --repeat 3   # each measurement 3×, medians (and min) printed
 * deno run -A bench/solver_bench.ts --quick      # without down_proj (its H is 11008², minutes)
 * deno run -A bench/solver_bench.ts --layers down  # only layers whose name starts with q, gate or down
 * deno run -A bench/solver_bench.ts --detail     # act-order off/on × 1/2 Workers, our solver only
 * deno bench -A bench/solver_bench.ts            # a small 1-vs-2-Worker pair as `deno bench` entries
 * ```
 *
 * Inputs are random: `W` uniform in ±0.02, `H` = 2·XᵀX/T (T = 256 random
 * tokens, as AutoGPTQ's `add_batch` accumulates) plus 1e-3 on the diagonal.
 *
 * The comparison (`--threads`, default 2): per shape and repeat, back to
 * back on the same `H`/`W`: our `gptq` on a pool of `threads` Workers with
 * `prepare` split across them (`prep split`), the same on a pool that
 * prepares on Worker 0 and ships `U` (`prep w0`, the previous design; the
 * factor is bit-identical), and AutoGPTQ 0.7.1's unmodified `fasterquant`
 * (`tests/interop/autogptq_solver_bench.py`, torch with
 * `set_num_threads(threads)`, inputs passed in a temporary safetensors
 * file). Columns are seconds (median of the repeats): `prepare` is damping +
 * Cholesky + inverse (for AutoGPTQ: its three torch calls timed alone on the
 * same `H`), `total` the whole layer, and `×` = ours / AutoGPTQ (below 1 is
 * faster). The last row is one Llama-7B block: q, k, v, o (4096×4096) ×4,
 * gate, up (11008×4096) ×2 and down (4096×11008), each layer prepared and
 * quantized on its own, as `fasterquant` does. Python: `$AUTOGPTQ_PY` or
 * `.tools/llama.cpp/venv/bin/python`; the wheel: `$AUTOGPTQ_WHEEL` or
 * `.cache/autogptq/auto_gptq-0.7.1-*.whl` (see
 * `tests/interop/autogptq_smollm2.py`); without them the AutoGPTQ columns
 * print "skipped: …".
 *
 * `--detail`: the Hessian is prepared once per act-order setting and `W`
 * quantized on 1 and on 2 Workers; `loop` = `quantize_rows` wall time
 * including moving W and the results, GFLOP/s use nominal counts (prepare
 * K³, loop 2·N·K²).
 *
 * @module
 */

import { createWasmSolver } from "../src/quant/solver.ts";
import { writeSafetensors } from "../src/io/safetensors_writer.ts";
import { createParallelGptq } from "../src/quant/_solver_pool.ts";
import type { GptqSolveOptions } from "../src/quant/solver.ts";
import { parseArgs } from "node:util";
import { autogptqAvailable, runAutogptq } from "./_autogptq_solver.ts";

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

async function detail(quick: boolean): Promise<void> {
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

const med = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Our seconds for one layer, one repeat. */
interface Ours {
  prepare: number;
  total: number;
  loss: number;
}

async function ours(
  threads: number,
  splitPrepareMinK: number,
  shape: Shape,
  h: Float32Array,
  w: Float32Array,
): Promise<Ours> {
  using pool = await createParallelGptq(threads, { splitPrepareMinK });
  const r = await pool.gptq(w, shape.N, shape.K, h, opts(false), shape.name);
  return { prepare: r.timings.prepare, total: r.timings.total, loss: r.loss };
}

async function compare(
  quick: boolean,
  repeat: number,
  threads: number,
  only: string | undefined,
): Promise<void> {
  const shapes = SHAPES.filter((s) =>
    (!quick || s.K === 4096) && (!only || only.split(",").some((o) => s.name.startsWith(o)))
  );
  const ag = await autogptqAvailable();
  console.log(
    `GPTQ solve, 4-bit g128 sym, damp 0.01, blocksize 128, act-order off; ${threads} threads ` +
      `(${navigator.hardwareConcurrency} CPUs); seconds, median of ${repeat}` +
      (quick ? " (--quick: down_proj skipped)" : ""),
  );
  console.log(ag.ok ? `AutoGPTQ: ${ag.what}` : `AutoGPTQ: skipped: ${ag.why}`);
  const load = () => Deno.loadavg().map((v) => v.toFixed(1)).join(" ");
  console.log(`load average at start: ${load()}`);
  const tmp = await Deno.makeTempDir({ prefix: "solver_bench_" });
  const data = new Map<string, Float32Array>();
  for (const { N, K } of shapes) {
    if (!data.has(`H${K}`)) data.set(`H${K}`, await hessian(K, K));
    data.set(`W${N}x${K}`, weight(N, K, N + K));
  }
  const file = `${tmp}/inputs.safetensors`;
  if (ag.ok) {
    await writeSafetensors(
      file,
      [...data].map(([name, a]) => ({
        name,
        dtype: "F32" as const,
        shape: name.startsWith("H")
          ? [Number(name.slice(1)), Number(name.slice(1))]
          : name.slice(1).split("x").map(Number),
        data: new Uint8Array(a.buffer, a.byteOffset, a.byteLength),
      })),
    );
  }
  const head = ["layer".padEnd(13), pad("N×K", 10)];
  const cols = [
    "prep split",
    "total",
    "prep w0",
    "total",
    "AG prep",
    "AG total",
    "× prep",
    "× total",
  ];
  console.log([...head, ...cols.map((c) => pad(c, 10))].join(" "));
  const block = { split: 0, w0: 0, ag: 0 };
  const COUNT: Record<string, number> = { "q/k/v/o_proj": 4, "gate/up_proj": 2, "down_proj": 1 };
  try {
    for (const shape of shapes) {
      const { N, K } = shape;
      const h = data.get(`H${K}`)!, w = data.get(`W${N}x${K}`)!;
      const split: Ours[] = [], w0: Ours[] = [];
      const agp: number[] = [], agt: number[] = [], agLoss: number[] = [];
      for (let i = 0; i < repeat; i++) {
        split.push(await ours(threads, 0, shape, h, w));
        w0.push(await ours(threads, Infinity, shape, h, w));
        if (ag.ok) {
          const r = await runAutogptq(ag, file, tmp, `x:${N}x${K}`, threads);
          agp.push(r.prepare);
          agt.push(r.seconds);
          agLoss.push(r.loss);
        }
        const last = (xs: Ours[]) => f(xs.at(-1)!.total);
        console.log(
          `  ${shape.name} #${i + 1}: split ${last(split)} s (prepare ` +
            `${f(split.at(-1)!.prepare)}), w0 ${last(w0)} s (prepare ${f(w0.at(-1)!.prepare)})` +
            (ag.ok ? `, AutoGPTQ ${f(agt.at(-1)!)} s (prepare ${f(agp.at(-1)!)})` : "") +
            `; load ${load()}`,
        );
      }
      const s = { p: med(split.map((r) => r.prepare)), t: med(split.map((r) => r.total)) };
      const o = { p: med(w0.map((r) => r.prepare)), t: med(w0.map((r) => r.total)) };
      const a = ag.ok ? { p: med(agp), t: med(agt) } : undefined;
      const n = COUNT[shape.name] ?? 1;
      block.split += n * s.t;
      block.w0 += n * o.t;
      block.ag += a ? n * a.t : NaN;
      const cell = (x: number | undefined, d = 2) =>
        pad(x === undefined || Number.isNaN(x) ? "skipped" : f(x, d), 10);
      console.log(
        [
          shape.name.padEnd(13),
          pad(`${N}×${K}`, 10),
          cell(s.p),
          cell(s.t),
          cell(o.p),
          cell(o.t),
          cell(a?.p),
          cell(a?.t),
          cell(a ? s.p / a.p : undefined),
          cell(a ? s.t / a.t : undefined),
        ].join(" "),
      );
      console.log(
        `  min: split ${f(Math.min(...split.map((r) => r.total)))} s, w0 ` +
          `${f(Math.min(...w0.map((r) => r.total)))} s` +
          (a ? `, AutoGPTQ ${f(Math.min(...agt))} s` : "") +
          `; loss ours ${split[0]!.loss.toExponential(4)}` +
          (a ? `, AutoGPTQ ${agLoss[0]!.toExponential(4)}` : ""),
      );
    }
    if (shapes.length === SHAPES.length) {
      console.log(
        [
          "Llama-7B block".padEnd(13),
          pad("7 layers", 10),
          pad("", 10),
          pad(f(block.split, 1), 10),
          pad("", 10),
          pad(f(block.w0, 1), 10),
          pad("", 10),
          pad(ag.ok ? f(block.ag, 1) : "skipped", 10),
          pad("", 10),
          pad(ag.ok ? f(block.split / block.ag) : "skipped", 10),
        ].join(" "),
      );
    }
    console.log(`load average at end: ${load()}`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) {
  const { values: args } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      detail: { type: "boolean", default: false },
      repeat: { type: "string" },
      threads: { type: "string" },
      layers: { type: "string" },
    },
  });
  const quick = args.quick;
  if (args.detail) await detail(quick);
  else {
    await compare(quick, Number(args.repeat ?? 1), Number(args.threads ?? 2), args.layers);
  }
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
