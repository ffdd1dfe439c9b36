// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * One GPTQ linear on the WASM kernels, f32 activations (exact) next to int8
 * activations (`actQuant: "int8"`), same run, alternating: Llama-7B shapes
 * (4096→4096, 4096→11008, 11008→4096), decode (M = 1) and prefill (M = 64),
 * random codes, g128 (or `--group`), `--bits`, `--act-order`. Prints the
 * median time of `--reps` calls per variant, GFLOP/s, weight GB/s and the
 * int8/f32 speed ratio.
 *
 * ```sh
 * deno run -A bench/act_quant_bench.ts                 # 4-bit g128, 1 thread
 * deno run -A bench/act_quant_bench.ts --bits 8 --threads 2 --act-order
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createWasmKernels } from "../src/backends/wasm/wasm_kernels.ts";
import { type Bits, packQWeight, packQZeros } from "../src/gptq/pack.ts";
import type { QuantLinearTensors } from "../src/gptq/quant_linear.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    bits: { type: "string", default: "4" },
    group: { type: "string", default: "128" },
    threads: { type: "string", default: "1" },
    reps: { type: "string", default: "5" },
    "act-order": { type: "boolean", default: false },
  },
});
const BITS = Number(args.bits) as Bits, GROUP = Number(args.group), REPS = Number(args.reps);
const THREADS = Number(args.threads);

function layer(K: number, N: number): QuantLinearTensors {
  const G = GROUP === -1 ? 1 : K / GROUP, maxq = (1 << BITS) - 1;
  let s = 12345;
  const r = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const codes = new Uint8Array(K * N).map(() => Math.floor(r() * (maxq + 1)));
  const zeros = new Uint8Array(G * N).fill((maxq + 1) >> 1);
  let gIdx: Int32Array | null = null;
  if (args["act-order"]) {
    const perm = Array.from({ length: K }, (_, i) => i).sort(() => r() - 0.5);
    gIdx = new Int32Array(K);
    perm.forEach((p, i) => gIdx![p] = Math.floor(i / (K / G)));
  }
  return {
    qweight: packQWeight(codes, K, N, BITS),
    qzeros: packQZeros(zeros, G, N, BITS, "gptq"),
    scales: new Uint16Array(G * N).fill(0x1c00),
    gIdx,
    bias: null,
    K,
    N,
    G,
    bits: BITS,
  };
}

const median = (v: number[]) => v.toSorted((a, b) => a - b)[v.length >> 1]!;
const kernels = {
  f32: await createWasmKernels({ threads: THREADS, actQuant: "f32" }),
  int8: await createWasmKernels({ threads: THREADS, actQuant: "int8" }),
};
console.log(
  `GPTQ ${BITS}-bit g${GROUP}${args["act-order"] ? " act-order" : ""}, ${THREADS} thread(s), ` +
    `median of ${REPS}; load average ${(await Deno.readTextFile("/proc/loadavg")).split(" ")[0]}`,
);
console.log(
  "shape (K→N)        M   f32 ms  int8 ms  f32 GFLOP/s  int8 GFLOP/s  int8 GB/s  int8/f32",
);
for (const [K, N] of [[4096, 4096], [4096, 11008], [11008, 4096]] as const) {
  const t = layer(K, N);
  const h = {
    f32: kernels.f32.linearFromGptq({ tensors: t, format: "gptq" }),
    int8: kernels.int8.linearFromGptq({ tensors: t, format: "gptq" }),
  };
  for (const M of [1, 64]) {
    const x = new Float32Array(M * K).map((_, i) => Math.sin(i));
    const ms: Record<"f32" | "int8", number[]> = { f32: [], int8: [] };
    // Three untimed calls each: V8 compiles wasm with its baseline tier first.
    for (let rep = 0; rep < REPS + 3; rep++) {
      for (const a of ["f32", "int8"] as const) {
        const t0 = performance.now();
        kernels[a].linear(x, M, h[a]);
        if (rep >= 3) ms[a].push(performance.now() - t0);
      }
    }
    const [f, q] = [median(ms.f32), median(ms.int8)];
    const gf = (v: number) => (2 * M * K * N / v / 1e6).toFixed(1);
    console.log(
      `${`${K}→${N}`.padEnd(16)} ${String(M).padStart(3)} ${f.toFixed(2).padStart(8)} ${
        q.toFixed(2).padStart(8)
      } ` +
        `${gf(f).padStart(12)} ${gf(q).padStart(13)} ${
          (K * N * BITS / 8 / q / 1e6).toFixed(1).padStart(10)
        } ` +
        `${(f / q).toFixed(2).padStart(9)}`,
    );
  }
  kernels.f32.release(h.f32);
  kernels.int8.release(h.int8);
}
kernels.f32.dispose?.();
kernels.int8.dispose?.();
