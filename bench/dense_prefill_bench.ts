// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Dense (f32/f16/bf16 weight) prefill GEMM against the wasm SIMD
 * multiply-add peak measured in the same run.
 *
 * ```sh
 * deno run -A bench/dense_prefill_bench.ts                     # SmolLM2 shapes + Llama 4096², M=64/128/512
 * deno run -A bench/dense_prefill_bench.ts --llama --ms 64,128 # all three Llama-7B shapes
 * deno run -A bench/dense_prefill_bench.ts --before DIR        # also an older build (its src/wasm/_generated)
 * deno run -A bench/dense_prefill_bench.ts --extra x=DIR/gptq_wasm_relaxed  # any other build's module
 * ```
 *
 * Peak: `fma_peak` (12 independent f32x4 multiply-add chains, see
 * `gptq_core::runtime::peak`) in T Workers at once, GFLOP/s summed over
 * them. GEMM: `y = x·Wᵀ` with random `W [N, K]`, T Workers each holding
 * `N/T` rows (as the inference backend splits), timed from the bench thread
 * until every Worker is done; 2·M·N·K flops. Each module runs in its own
 * Workers (each warmed up first, so V8 has tiered up to optimized code):
 * `baseline` (SIMD128, multiply + add), `relaxed` (relaxed SIMD,
 * fused `f32x4.relaxed_madd`) and optionally `before`. Repetitions
 * alternate between the modules so that load from other processes hits them
 * alike; the table gives the median (and best) of `--reps` runs, and
 * "% peak" is against the median (best) relaxed-SIMD peak of the same thread
 * count: on a shared machine the best runs are the ones least disturbed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { DenseReply, DenseRequest } from "./_dense_bench_worker.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    ms: { type: "string", default: "64,128,512" },
    threads: { type: "string", default: "1,2" },
    dtypes: { type: "string", default: "F32,F16,BF16" },
    reps: { type: "string", default: "3" },
    llama: { type: "boolean", default: false },
    "no-smollm2": { type: "boolean", default: false },
    shapes: { type: "string" },
    before: { type: "string" },
    variants: { type: "string", default: "baseline,relaxed" },
    extra: { type: "string", multiple: true },
  },
});

const list = (s: string) => s.split(",").map((v) => v.trim()).filter((v) => v);
const MS = list(args.ms).map(Number);
const THREADS = list(args.threads).map(Number);
const DTYPES = list(args.dtypes).map((d) => d.toUpperCase()) as ("F32" | "F16" | "BF16")[];
const REPS = Number(args.reps);

/** `[name, K (in), N (out)]`. */
type Shape = [string, number, number];
const SMOLLM2: Shape[] = [
  ["smollm2 up/gate 576→1536", 576, 1536],
  ["smollm2 down 1536→576", 1536, 576],
  ["smollm2 q/o 576→576", 576, 576],
  ["smollm2 lm_head 576→49152", 576, 49152],
];
const LLAMA: Shape[] = [
  ["llama7b q/k/v/o 4096→4096", 4096, 4096],
  ["llama7b up/gate 4096→11008", 4096, 11008],
  ["llama7b down 11008→4096", 11008, 4096],
];
function shapes(): Shape[] {
  if (args.shapes) {
    return list(args.shapes).map((s) => {
      const [k, n] = s.split("x").map(Number);
      return [`${k}→${n}`, k!, n!];
    });
  }
  return [...(args["no-smollm2"] ? [] : SMOLLM2), ...(args.llama ? LLAMA : LLAMA.slice(0, 1))];
}

interface Variant {
  name: string;
  glueUrl: string;
  bytes: Uint8Array;
}

async function variants(): Promise<Variant[]> {
  const gen = new URL("../src/wasm/_generated/", import.meta.url);
  const dirs: [string, URL, string][] = [];
  if (args.before) {
    dirs.push(["before", new URL(`file://${Deno.realPathSync(args.before)}/`), "gptq_wasm"]);
  }
  for (const e of args.extra ?? []) {
    // label=DIR/module, e.g. old=/tmp/gen/gptq_wasm_relaxed (another build's generated files)
    const [label, path] = e.split("=") as [string, string];
    const cut = path.lastIndexOf("/");
    dirs.push([
      label,
      new URL(`file://${Deno.realPathSync(path.slice(0, cut))}/`),
      path.slice(cut + 1),
    ]);
  }
  for (const v of list(args.variants)) {
    dirs.push([v, gen, v === "relaxed" ? "gptq_wasm_relaxed" : "gptq_wasm"]);
  }
  const out: Variant[] = [];
  for (const [name, dir, mod] of dirs) {
    const m = await import(new URL(`${mod}.wasm.js`, dir).href);
    out.push({ name, glueUrl: new URL("gptq_wasm.internal.js", dir).href, bytes: m.wasmBytes() });
  }
  return out;
}

/** T Workers running one module; `all` sends a request to each and awaits every reply. */
class Team {
  readonly workers: Worker[] = [];
  constructor(readonly v: Variant, t: number) {
    for (let i = 0; i < t; i++) {
      this.workers.push(
        new Worker(new URL("./_dense_bench_worker.ts", import.meta.url), { type: "module" }),
      );
    }
  }
  call(i: number, req: DenseRequest): Promise<DenseReply> {
    const w = this.workers[i]!;
    return new Promise((resolve, reject) => {
      w.onmessage = (e: MessageEvent<DenseReply>) =>
        e.data.ok ? resolve(e.data) : reject(new Error(`${this.v.name}: ${e.data.message}`));
      w.postMessage(req);
    });
  }
  all(req: (i: number) => DenseRequest): Promise<DenseReply[]> {
    return Promise.all(this.workers.map((_, i) => this.call(i, req(i))));
  }
  /** Wall time of one request sent to every Worker at once, in ms. */
  async timed(req: DenseRequest): Promise<number> {
    const t0 = performance.now();
    await this.all(() => req);
    return performance.now() - t0;
  }
  close(): void {
    for (const w of this.workers) w.terminate();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const PEAK_ITERS = 16_000_000; // ~1.5 GFLOP: about as long as a GEMM run
const PEAK_FLOPS_PER_ITER = 96; // fma_peak_flops_per_iter(): 12 chains × 4 lanes × 2

async function peaks(teams: Team[], t: number, into: Map<string, number[]>): Promise<void> {
  for (let r = 0; r < 5; r++) {
    for (const team of teams) {
      if (team.v.name === "before") continue;
      const ms = await team.timed({ op: "peak", iters: PEAK_ITERS });
      const key = team.v.name;
      into.set(key, [...(into.get(key) ?? []), (t * PEAK_ITERS * PEAK_FLOPS_PER_ITER) / ms / 1e6]);
    }
  }
}

function print(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  for (const r of rows) {
    console.log(r.map((v, i) => (i ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join("  "));
  }
}

async function runThreads(vs: Variant[], t: number): Promise<void> {
  const teams = vs.map((v) => new Team(v, t));
  try {
    const names = (await Promise.all(teams.map((tm) =>
      tm.all(() => ({
        op: "init",
        glueUrl: tm.v.glueUrl,
        bytes: tm.v.bytes,
      }))
    ))).map((r, i) => `${vs[i]!.name}=${r[0]!.variant}`);
    const peak = new Map<string, number[]>();
    await peaks(teams, t, peak);
    const header = ["shape", "dtype", "M"];
    for (const v of vs) header.push(`${v.name} GF/s`, `${v.name} %pk`);
    if (vs.length > 1) header.push(`${vs.at(-1)!.name}/${vs[0]!.name}`);
    const rows: string[][] = [header];
    const results: [string, string, number, number[], number[]][] = [];
    for (const [label, K, N] of shapes()) {
      for (const dtype of DTYPES) {
        for (const M of MS) {
          const bounds = Array.from({ length: t + 1 }, (_, i) => Math.round((N * i) / t));
          for (const tm of teams) {
            await tm.all((i) => ({
              op: "load",
              dtype,
              rows: bounds[i + 1]! - bounds[i]!,
              K,
              M,
              seed: 17 + i,
            }));
          }
          const times: number[][] = teams.map(() => []);
          for (const tm of teams) await tm.timed({ op: "gemm" }); // warm-up
          for (let r = 0; r < REPS; r++) {
            for (const [i, tm] of teams.entries()) times[i]!.push(await tm.timed({ op: "gemm" }));
          }
          for (const tm of teams) await tm.all(() => ({ op: "free" }));
          const gf = times.map((ts) => (2 * M * N * K) / median(ts) / 1e6);
          const best = times.map((ts) => (2 * M * N * K) / Math.min(...ts) / 1e6);
          results.push([label, dtype, M, gf, best]);
          console.error(
            `  ${t}T ${label} ${dtype} M=${M}: ${gf.map((g) => g.toFixed(1)).join(" / ")} GFLOP/s`,
          );
        }
      }
    }
    await peaks(teams, t, peak);
    const peakRuns = peak.get("relaxed") ?? peak.get("baseline") ?? [NaN];
    const relaxedPeak = median(peakRuns), relaxedBest = Math.max(...peakRuns);
    console.log(`\n## ${t} thread${t > 1 ? "s" : ""} (modules: ${names.join(", ")})`);
    for (const [k, v] of peak) {
      console.log(
        `peak ${k}: median ${median(v).toFixed(1)} GFLOP/s, max ${
          Math.max(...v).toFixed(1)
        } (${v.length} runs, ${t} Worker${t > 1 ? "s" : ""})`,
      );
    }
    for (const [label, dtype, M, gf, best] of results) {
      const row = [label, dtype, String(M)];
      for (const [i, g] of gf.entries()) {
        const pct = (v: number, p: number) => `${((100 * v) / p).toFixed(0)}%`;
        row.push(`${g.toFixed(1)} (${best[i]!.toFixed(1)})`);
        row.push(`${pct(g, relaxedPeak)} (${pct(best[i]!, relaxedBest)})`);
      }
      if (gf.length > 1) row.push(`${(gf.at(-1)! / gf[0]!).toFixed(2)}x`);
      rows.push(row);
    }
    console.log(
      `GEMM GFLOP/s = 2·M·N·K / time: median of ${REPS} runs (best run); ` +
        `%pk: median vs median relaxed peak (best vs best peak)`,
    );
    print(rows);
  } finally {
    for (const tm of teams) tm.close();
  }
}

if (import.meta.main) {
  const vs = await variants();
  for (const t of THREADS) await runThreads(vs, t);
}
