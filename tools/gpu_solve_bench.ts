// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Per-block GPTQ solve time of the CUDA solver (`src/backends/cuda/solver.ts`) at Llama-7B
 * shapes (4-bit, g128, sym, blocksize 128), random SPD Hessians `2·XᵀX/T + damping` from T
 * random tokens: per module `prepare` + `quantize` (what AutoGPTQ's fasterquant does per
 * module: `tools/gpu_solve_bench.py` is the torch anchor), and the block as the quantize
 * engine runs it (one `prepare` per distinct input, shared by q/k/v and gate/up).
 *
 * ```sh
 * deno run -A tools/gpu_solve_bench.ts [--kind cuda|hip|hip-cpu] [--tokens 4096] [--json out.json] [--small]
 * ```
 *
 * `--small` divides every shape by 16 (a functional run on HIP-CPU).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { mulberry32 } from "../src/runtime/sample.ts";
import type { GptqSolveOptions } from "../src/quant/solver.ts";
import { createCudaSolver, type CudaHessian } from "../src/backends/cuda/solver.ts";
import type { GpuLibraryKind } from "../src/backends/cuda/ffi.ts";

const { values: a } = parseArgs({
  options: {
    kind: { type: "string", default: "cuda" },
    tokens: { type: "string", default: "4096" },
    json: { type: "string" },
    small: { type: "boolean", default: false },
    repeat: { type: "string", default: "2" },
  },
});
const div = a.small ? 16 : 1;
const T = Math.max(1, Math.floor(Number(a.tokens) / div));
const MODULES: [string, number, number, string][] = [
  ["q_proj", 4096, 4096, "attn"],
  ["k_proj", 4096, 4096, "attn"],
  ["v_proj", 4096, 4096, "attn"],
  ["o_proj", 4096, 4096, "o"],
  ["gate_proj", 11008, 4096, "mlp"],
  ["up_proj", 11008, 4096, "mlp"],
  ["down_proj", 4096, 11008, "down"],
].map(([m, n, k, i]) => [m as string, (n as number) / div, (k as number) / div, i as string]);

const opts: GptqSolveOptions = {
  bits: 4,
  group_size: 128,
  sym: true,
  desc_act: false,
  static_groups: false,
  damp_percent: 0.01,
};
const s = await createCudaSolver({ kind: a.kind as GpuLibraryKind });
console.log(`solver: ${s.name}; H from ${T} random tokens`);
const rnd = mulberry32(0);
const hs = new Map<string, CudaHessian>();
for (const [, , K, input] of MODULES) {
  if (hs.has(input)) continue;
  const h = s.hessian(K);
  const x = new Float32Array(T * K);
  const sc = 1 / Math.sqrt(K);
  for (let i = 0; i < x.length; i++) x[i] = (rnd() * 2 - 1) * 1.7 * sc;
  h.add(x, 1, T);
  hs.set(input, h);
}
const weights = new Map<string, Float32Array>();
for (const [m, N, K] of MODULES) {
  weights.set(m, new Float32Array(N * K).map(() => (rnd() * 2 - 1) * 0.035));
}
const repeat = Math.max(1, Number(a.repeat));
const time = async (f: () => Promise<void>) => {
  await f(); // warm-up
  let best = Infinity;
  for (let r = 0; r < repeat; r++) {
    const t0 = performance.now();
    await f();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
};
const rows: { module: string; N: number; K: number; ms: number }[] = [];
for (const [m, N, K, input] of MODULES) {
  const ms = await time(async () => {
    const prep = await s.prepare(hs.get(input)!, opts, m);
    await s.quantize(prep, weights.get(m)!, N, { name: m, qRows: [] });
    prep.free();
  });
  rows.push({ module: m, N, K, ms });
  console.log(
    `cuda ${m.padEnd(10)} ${String(N).padStart(5)}×${String(K).padEnd(5)} ${
      ms.toFixed(1).padStart(9)
    } ms`,
  );
}
const perModule = rows.reduce((t, r) => t + r.ms, 0);
const engine = await time(async () => {
  let last = "", prep = null as Awaited<ReturnType<typeof s.prepare>> | null;
  for (const [m, N, , input] of MODULES) {
    if (input !== last) {
      prep?.free();
      prep = await s.prepare(hs.get(input)!, opts, m);
      last = input;
    }
    await s.quantize(prep!, weights.get(m)!, N, { name: m, qRows: [] });
  }
  prep?.free();
});
console.log(
  `cuda block total ${perModule.toFixed(1)} ms (a factorization per module, as fasterquant); ` +
    `${engine.toFixed(1)} ms with shared Hessians (the engine's order)`,
);
if (a.json) {
  await Deno.writeTextFile(
    a.json,
    JSON.stringify(
      { solver: s.name, tokens: T, modules: rows, block_ms: perModule, engine_block_ms: engine },
      null,
      2,
    ) + "\n",
  );
}
for (const h of hs.values()) h.free();
s.dispose();
