// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Runtime benchmark: matmul GFLOP/s (scalar TypeScript, wasm on 1 thread,
 * wasm on a pool of Workers) against the machine's estimated SIMD128 peak
 * and memory bandwidth, then prefill/decode tokens/s of a model with
 * Llama-7B layer shapes (hidden 4096, intermediate 11008, 32 heads, vocab
 * 32000, random f16 weights, 2 layers) on the wasm backend.
 *
 * ```sh
 * deno run -A bench/runtime_bench.ts          # ~3 minutes
 * deno run -A bench/runtime_bench.ts --quick  # ~40 seconds, smaller M and fewer tokens
 * deno run -A bench/runtime_bench.ts --threads 16  # measured rows at 1, 2, 4, 8, 16 threads
 * ```
 *
 * Peak estimate: `cores × GHz × 8 FLOP/cycle` — one f32x4 multiply and one
 * f32x4 add per cycle (SIMD128 has no fused multiply-add), GHz from the
 * first `cpu MHz` line of `/proc/cpuinfo` (the nominal clock; turbo is not
 * visible there). Bandwidth reference: copying a 256 MiB typed array with
 * `TypedArray.set` on one thread.
 *
 * The runtime's `Kernels` interface is synchronous, so `CausalLM` runs on
 * one thread; the "2 workers (projected)" rows replace the measured time of
 * its linear layers with the time of the same linear calls on the Worker
 * pool. The last rows measure the synchronous wasm backend end to end
 * (`createWasmKernels({ threads })`, `threads - 1` helper Workers) at 1, 2,
 * 4, … threads up to `--threads N` (default: every core), with the speedup
 * over 1 thread: the thread-scaling rows.
 *
 * @module
 */

import { hostBackend } from "../src/backends/host.ts";
import { writeSafetensors } from "../src/io/safetensors_writer.ts";
import { type RawTensor, SafetensorsFile } from "../src/io/safetensors.ts";
import type { LinearHandle } from "../src/backends/backend.ts";
import type { Kernels } from "../src/backends/host_kernels.ts";
import { CausalLM } from "../src/runtime/model.ts";
import { type GenerateStats, generateTokens, newGenerateStats } from "../src/runtime/generate.ts";
import { perplexity } from "../src/runtime/perplexity.ts";
import { createWasmKernels, MAX_WASM_THREADS } from "../src/backends/wasm/wasm_kernels.ts";
import { MatmulPool, type ParallelLinear } from "../src/backends/wasm/_matmul_pool.ts";
import { LLAMA7B, llama7bConfig } from "./_llama7b.ts";
import { randomF16, rnd } from "./_random.ts";

const QUICK = Deno.args.includes("--quick");
const t0Total = performance.now();

// ---------------------------------------------------------------- machine
function cpuGHz(): number {
  try {
    const m = /cpu MHz\s*:\s*([\d.]+)/.exec(Deno.readTextFileSync("/proc/cpuinfo"));
    if (m) return Number(m[1]) / 1000;
  } catch { /* not Linux */ }
  return NaN;
}
function cpuModel(): string {
  try {
    const m = /model name\s*:\s*(.+)/.exec(Deno.readTextFileSync("/proc/cpuinfo"));
    if (m) return m[1]!.trim();
  } catch { /* not Linux */ }
  return "unknown CPU";
}
const CORES = navigator.hardwareConcurrency || 2;
const wi = Deno.args.indexOf("--workers");
const WORKERS = wi >= 0 ? Number(Deno.args[wi + 1]) : CORES;
const GHZ = cpuGHz();
const PEAK_CORE = GHZ * 8; // GFLOP/s per core
const PEAK = CORES * PEAK_CORE;

// ---------------------------------------------------------------- helpers
/** CPU seconds this process (all threads, Workers included) has used, or NaN. */
function cpuSeconds(): number {
  try {
    const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, USER_HZ = 100
  } catch {
    return NaN;
  }
}

/** Best wall time (s) of `f` over reps filling about `budgetMs`, and CPU-seconds per wall-second. */
async function bestTime(
  f: () => unknown,
  budgetMs: number,
  maxReps = 20,
  minReps = 2,
  warmUp = true,
): Promise<{ s: number; cpu: number }> {
  if (warmUp) await f();
  let best = Infinity, spent = 0, reps = 0;
  const c0 = cpuSeconds();
  while (reps < maxReps && (reps < minReps || spent < budgetMs)) {
    const t = performance.now();
    await f();
    const d = performance.now() - t;
    best = Math.min(best, d);
    spent += d;
    reps++;
  }
  return { s: best / 1000, cpu: (cpuSeconds() - c0) / (spent / 1000) };
}

const F16_TO_F32 = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1, e = (h >>> 10) & 0x1f, m = h & 0x3ff;
    t[h] = e === 0
      ? s * m * 2 ** -24
      : e === 31
      ? (m ? NaN : s * Infinity)
      : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

function bytesOf(a: Uint16Array | Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The scalar baseline: `y = x·Wᵀ` over rows `0..n` of W, one multiply-add at a time. */
function tsMatmulF32(x: Float32Array, M: number, K: number, w: Float32Array, n: number): number {
  let acc = 0;
  for (let m = 0; m < M; m++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      const xo = m * K, wo = j * K;
      for (let k = 0; k < K; k++) s += x[xo + k]! * w[wo + k]!;
      acc += s;
    }
  }
  return acc;
}

/** The scalar baseline for f16 weights (table lookup per element). */
function tsMatmulF16(x: Float32Array, M: number, K: number, w: Uint16Array, n: number): number {
  let acc = 0;
  for (let m = 0; m < M; m++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      const xo = m * K, wo = j * K;
      for (let k = 0; k < K; k++) s += x[xo + k]! * F16_TO_F32[w[wo + k]!]!;
      acc += s;
    }
  }
  return acc;
}

const fmt = (v: number, d = 1): string => Number.isFinite(v) ? v.toFixed(d) : "n/a";
function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => {
    const s = String(c);
    return i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!);
  }).join("  ");
}

// ---------------------------------------------------------------- memcpy
function memcpyGBs(): number {
  const n = 256 * 1024 * 1024;
  const src = new Uint8Array(n), dst = new Uint8Array(n);
  for (let i = 0; i < n; i += 4096) src[i] = i & 255;
  dst.set(src); // fault pages in
  let best = Infinity;
  for (let r = 0; r < (QUICK ? 3 : 5); r++) {
    const t = performance.now();
    dst.set(src);
    best = Math.min(best, performance.now() - t);
  }
  return n / (best / 1000) / 1e9;
}

// ---------------------------------------------------------------- matmul
interface MatmulCase {
  label: string;
  M: number;
  N: number;
  K: number;
}

async function matmulSection(pool: MatmulPool, wasm: Kernels, copyGBs: number): Promise<string[]> {
  const lines: string[] = [];
  const bigM = QUICK ? 64 : 512;
  const cases: MatmulCase[] = [
    { label: "[1x4096]·[4096x4096]ᵀ", M: 1, N: 4096, K: 4096 },
    { label: `[${bigM}x4096]·[4096x11008]ᵀ`, M: bigM, N: 11008, K: 4096 },
  ];
  const W = [26, 5, 22, 8, 8, 6, 6, 6, 5];
  lines.push(
    row(["matmul", "dtype", "backend", "GFLOP/s", "×scalar", "%peak", "GB/s", "%bw", "CPUs"], W),
  );
  const budget = QUICK ? 200 : 1000;
  for (const c of cases) {
    const { M, N, K } = c;
    const flops = 2 * M * N * K;
    const x = new Float32Array(M * K);
    for (let i = 0; i < x.length; i++) x[i] = (rnd() / 2 ** 32) * 2 - 1;
    const w16 = randomF16(N * K, 0.02);
    for (const dtype of ["F32", "F16"] as const) {
      const wf = dtype === "F32" ? new Float32Array(N * K) : null;
      if (wf) { for (let i = 0; i < wf.length; i++) wf[i] = F16_TO_F32[w16[i]!]!; }
      const raw: RawTensor = {
        dtype,
        shape: [N, K],
        data: wf ? bytesOf(wf) : bytesOf(w16),
      };
      const wBytes = N * K * (dtype === "F32" ? 4 : 2);
      // Scalar baseline on a slice (same K), scaled per FLOP.
      const sm = Math.min(M, 2), sn = M === 1 ? 512 : 64;
      const { s: ts, cpu: tsCpu } = await bestTime(
        () => wf ? tsMatmulF32(x, sm, K, wf, sn) : tsMatmulF16(x, sm, K, w16, sn),
        budget / 2,
        5,
      );
      const tsG = (2 * sm * sn * K) / ts / 1e9;
      const h = wasm.linearFromDense(raw, null, false);
      const { s: t1, cpu: c1 } = await bestTime(
        () => wasm.linear(x, M, h),
        budget,
        M === 1 ? 50 : 3,
        M === 1 ? 2 : 1,
      );
      wasm.release(h);
      const ph = await pool.load(raw, null, false, c.label);
      const { s: t2, cpu: c2 } = await bestTime(
        () => pool.linear(x, M, ph),
        budget,
        M === 1 ? 50 : 3,
        M === 1 ? 2 : 1,
      );
      await pool.release(ph);
      const g1 = flops / t1 / 1e9, g2 = flops / t2 / 1e9;
      const bw = (t: number): string[] =>
        M === 1
          ? [fmt(wBytes / t / 1e9, 2), fmt((100 * wBytes / t / 1e9) / (2 * copyGBs))]
          : ["", ""];
      const line = (name: string, g: number, t: number, cpu: number): string =>
        row([
          name === "TS" ? c.label : "",
          dtype,
          name === "TS" ? `TS scalar (${sm}x${sn} slice)` : name,
          fmt(g, 2),
          fmt(g / tsG),
          fmt(100 * g / PEAK),
          ...bw(t),
          fmt(cpu, 2),
        ], W);
      lines.push(line("TS", tsG, flops / tsG / 1e9, tsCpu));
      lines.push(line("wasm 1 thread", g1, t1, c1));
      lines.push(line(`wasm ${pool.size} workers`, g2, t2, c2));
    }
  }
  lines.push(
    `GB/s (M=1): weight bytes streamed per second; %bw: of the measured memcpy traffic ` +
      `(1-thread TypedArray.set of 256 MiB: ${fmt(copyGBs, 2)} GB/s copied = ` +
      `${fmt(2 * copyGBs, 2)} GB/s read+write). CPUs: process CPU-seconds per wall-second ` +
      `while timing (below the worker count = the machine was busy with other work).`,
  );
  if (QUICK) lines.push(`(--quick: M=${bigM} instead of 512 for the second shape)`);
  return lines;
}

// ---------------------------------------------------------------- model
const { hidden: H, intermediate: I } = LLAMA7B;
const LAYERS = 2, VOCAB = 32000;

async function buildModel(dir: string): Promise<void> {
  const config = llama7bConfig(LAYERS, VOCAB);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config, null, 2));
  // One random pool of f16 values; tensors are windows into it (random
  // weights either way — speed does not depend on the values).
  const big = randomF16(VOCAB * H + 4096, 0.02);
  const ones = new Uint16Array(H).fill(0x3c00);
  const win = (n: number, off: number) => bytesOf(big.subarray(off % 4096, (off % 4096) + n));
  const t = (name: string, shape: number[], data: Uint8Array) => ({
    name,
    dtype: "F16" as const,
    shape,
    data,
  });
  const tensors = [t("model.embed_tokens.weight", [VOCAB, H], win(VOCAB * H, 0))];
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}.`;
    tensors.push(
      t(`${p}input_layernorm.weight`, [H], bytesOf(ones)),
      t(`${p}post_attention_layernorm.weight`, [H], bytesOf(ones)),
      t(`${p}self_attn.q_proj.weight`, [H, H], win(H * H, 11 + l)),
      t(`${p}self_attn.k_proj.weight`, [H, H], win(H * H, 23 + l)),
      t(`${p}self_attn.v_proj.weight`, [H, H], win(H * H, 37 + l)),
      t(`${p}self_attn.o_proj.weight`, [H, H], win(H * H, 41 + l)),
      t(`${p}mlp.gate_proj.weight`, [I, H], win(I * H, 53 + l)),
      t(`${p}mlp.up_proj.weight`, [I, H], win(I * H, 67 + l)),
      t(`${p}mlp.down_proj.weight`, [H, I], win(H * I, 79 + l)),
    );
  }
  tensors.push(t("model.norm.weight", [H], bytesOf(ones)));
  tensors.push(t("lm_head.weight", [VOCAB, H], win(VOCAB * H, 97)));
  await writeSafetensors(`${dir}/model.safetensors`, tensors, { format: "pt" });
}

/** The linear weights in the order one forward pass calls them. */
function linearOrder(): string[] {
  const names: string[] = [];
  for (let l = 0; l < LAYERS; l++) {
    for (const n of ["q", "k", "v", "o"]) {
      names.push(`model.layers.${l}.self_attn.${n}_proj.weight`);
    }
    for (const n of ["gate", "up", "down"]) names.push(`model.layers.${l}.mlp.${n}_proj.weight`);
  }
  names.push("lm_head.weight");
  return names;
}

/** Time of the linears of one forward pass of `M` tokens on the pool. */
async function poolLinearsMs(pool: MatmulPool, hs: ParallelLinear[], M: number): Promise<number> {
  const xs = new Map<number, Float32Array>();
  for (const h of hs) if (!xs.has(h.K)) xs.set(h.K, new Float32Array(M * h.K).fill(0.01));
  const run = async () => {
    for (const h of hs) {
      // The LM head runs on the last row only when generating (lastOnly).
      await pool.linear(xs.get(h.K)!, h.N === VOCAB ? 1 : M, h);
    }
  };
  // One timed pass for prefill (seconds of work), best of a few for decode.
  const r = M === 1 ? await bestTime(run, 300, 5) : await bestTime(run, 0, 1, 1, false);
  return 1000 * r.s;
}

async function modelSection(pool: MatmulPool, base: Kernels): Promise<string[]> {
  const lines: string[] = [];
  const dir = await Deno.makeTempDir({ prefix: "gptq-runtime-bench-" });
  try {
    let t = performance.now();
    await buildModel(dir);
    const buildS = (performance.now() - t) / 1000;
    let linMs = 0, linCalls = 0;
    const kernels: Kernels = {
      ...base,
      linear(x: Float32Array, M: number, h: LinearHandle): Float32Array {
        const t0 = performance.now();
        const y = base.linear(x, M, h);
        linMs += performance.now() - t0;
        linCalls++;
        return y;
      },
    };
    t = performance.now();
    const lm = await CausalLM.load(dir, { backend: hostBackend(kernels) });
    const loadS = (performance.now() - t) / 1000;
    lines.push(
      `model: Llama-7B layer shapes, ${LAYERS} layers, vocab ${VOCAB} (untied lm_head), random f16 ` +
        `(${fmt((await Deno.stat(`${dir}/model.safetensors`)).size / 2 ** 30, 2)} GiB; ` +
        `written in ${fmt(buildS)} s, loaded in ${fmt(loadS)} s)`,
    );
    const P = QUICK ? 16 : 128, D = QUICK ? 4 : 16;
    const prompt = Array.from({ length: P }, (_, i) => 3 + ((i * 7919) % (VOCAB - 3)));
    try {
      // Warm-up: one short forward.
      await lm.forward([5, 6], lm.newCache(2));
      linMs = 0;
      linCalls = 0;
      const stats: GenerateStats = newGenerateStats();
      const gen = generateTokens(lm, prompt, {
        temperature: 0,
        max_new_tokens: D,
        eos_token_id: [],
      }, stats);
      let n = 0, prefillLin = 0, prefillCalls = 0;
      for await (const _ of gen) {
        if (n === 0) [prefillLin, prefillCalls] = [linMs, linCalls];
        n++;
      }
      const decodeLin = linMs - prefillLin;
      // Decode forwards run (15 linear calls each), counted rather than assumed.
      const decodeSteps = (linCalls - prefillCalls) / linearOrder().length;
      linMs = 0;
      t = performance.now();
      const ppl = await perplexity(lm, prompt, { seqlen: P, maxSamples: 1 });
      const evalMs = performance.now() - t;
      const evalLin = linMs;

      // The same linear calls on the Worker pool (weights loaded from the file).
      using f = await SafetensorsFile.open(`${dir}/model.safetensors`);
      const hs: ParallelLinear[] = [];
      for (const name of linearOrder()) {
        hs.push(await pool.load(await f.read(name), null, false, name));
      }
      const poolDecode = await poolLinearsMs(pool, hs, 1);
      const poolPrefill = await poolLinearsMs(pool, hs, P);
      for (const h of hs) await pool.release(h);

      const W = [34, 10, 12, 14];
      lines.push(row(["phase", "tokens", "tokens/s", "linear share"], W));
      const pre = stats.prefillMs, dec = stats.decodeMs / decodeSteps;
      lines.push(
        row([
          `prefill (generate, wasm 1 thread)`,
          P,
          fmt(P / (pre / 1000), 2),
          `${fmt(100 * prefillLin / pre)}%`,
        ], W),
      );
      lines.push(
        row([
          `decode (generate, wasm 1 thread)`,
          decodeSteps,
          fmt(1000 / dec, 2),
          `${fmt(100 * decodeLin / stats.decodeMs)}%`,
        ], W),
      );
      lines.push(
        row([
          `eval (perplexity, wasm 1 thread)`,
          P,
          fmt(P / (evalMs / 1000), 2),
          `${fmt(100 * evalLin / evalMs)}%`,
        ], W),
      );
      const preProj = pre - prefillLin + poolPrefill;
      const decProj = dec - decodeLin / decodeSteps + poolDecode;
      lines.push(
        row([`prefill, ${pool.size} workers (projected)`, P, fmt(P / (preProj / 1000), 2), ""], W),
      );
      lines.push(
        row(
          [`decode, ${pool.size} workers (projected)`, decodeSteps, fmt(1000 / decProj, 2), ""],
          W,
        ),
      );
      lines.push(
        `(eval ppl on random weights = ${fmt(ppl.ppl, 0)}; decode weight bytes/token = ` +
          `${fmt((LAYERS * (4 * H * H + 3 * H * I) + VOCAB * H) * 2 / 1e9, 2)} GB → ` +
          `${
            fmt((LAYERS * (4 * H * H + 3 * H * I) + VOCAB * H) * 2 / 1e9 / (dec / 1000), 2)
          } GB/s streamed at 1 thread)`,
      );
    } finally {
      lm.close();
    }
    for (const l of await threadsRows(dir, prompt, D)) lines.push(l);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return lines;
}

/**
 * Measured (not projected) prefill and decode tokens/s of `generateTokens`
 * with the synchronous wasm backend at 1, 2, 4, … threads and `--threads N`
 * (the largest count to try, default every core), with the speedup over 1
 * thread.
 */
async function threadsRows(dir: string, prompt: number[], D: number): Promise<string[]> {
  const ti = Deno.args.indexOf("--threads");
  const maxThreads = ti >= 0 ? Number(Deno.args[ti + 1]) : Math.min(CORES, MAX_WASM_THREADS);
  if (!Number.isInteger(maxThreads) || maxThreads < 1 || maxThreads > MAX_WASM_THREADS) {
    throw new Error(`--threads must be an integer in [1, ${MAX_WASM_THREADS}]`);
  }
  const counts: number[] = [];
  for (let t = 1; t < maxThreads; t *= 2) counts.push(t);
  counts.push(maxThreads);
  const W = [46, 10, 12, 10, 8];
  const lines = [row(["phase (measured, sync split)", "tokens", "tokens/s", "speedup", "CPUs"], W)];
  let base: [number, number] | null = null;
  for (const threads of counts) {
    const kernels = await createWasmKernels({ threads });
    const lm = await CausalLM.load(dir, { backend: hostBackend(kernels) });
    try {
      await lm.forward([5, 6], lm.newCache(2));
      const stats: GenerateStats = newGenerateStats();
      const c0 = cpuSeconds(), t0 = performance.now();
      let n = 0;
      for await (
        const _ of generateTokens(lm, prompt, {
          temperature: 0,
          max_new_tokens: D,
          eos_token_id: [],
        }, stats)
      ) n++;
      const cpu = (cpuSeconds() - c0) / ((performance.now() - t0) / 1000);
      const steps = n - 1;
      const pre = prompt.length / (stats.prefillMs / 1000), dec = steps / (stats.decodeMs / 1000);
      base ??= [pre, dec];
      lines.push(row([
        `prefill (generate, ${kernels.name})`,
        prompt.length,
        fmt(pre, 2),
        `${fmt(pre / base[0], 2)}×`,
        fmt(cpu, 2),
      ], W));
      lines.push(row([
        `decode (generate, ${kernels.name})`,
        steps,
        fmt(dec, 2),
        `${fmt(dec / base[1], 2)}×`,
        "",
      ], W));
    } finally {
      lm.close();
    }
  }
  lines.push(
    `(thread scaling on ${CORES} cores; speedup: over 1 thread; CPUs: process CPU-seconds per ` +
      "wall-second over prefill + decode)",
  );
  return lines;
}

// ---------------------------------------------------------------- main
const wasm = await createWasmKernels({ threads: 1 });
const pool = await MatmulPool.create({ workers: WORKERS });
try {
  const load = (() => {
    try {
      return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
    } catch {
      return "n/a";
    }
  })();
  console.log(`load average before the run: ${load} (other processes skew the timings)`);
  console.log(
    `${cpuModel()}: ${CORES} cores @ ${fmt(GHZ, 2)} GHz (/proc/cpuinfo) → estimated SIMD128 peak ` +
      `${fmt(PEAK, 1)} GFLOP/s = ${CORES} × ${
        fmt(GHZ, 2)
      } GHz × 8 FLOP/cycle (f32x4 mul + f32x4 add); ` +
      `1 thread ≤ ${fmt(100 / CORES, 0)}% of it${QUICK ? " [--quick]" : ""}`,
  );
  const copy = memcpyGBs();
  for (const l of await matmulSection(pool, wasm, copy)) console.log(l);
  console.log("");
  for (const l of await modelSection(pool, wasm)) console.log(l);
} finally {
  pool.close();
}
console.log(`total ${fmt((performance.now() - t0Total) / 1000)} s`);
