// Copyright 2026 the GPTQ toolkit authors. MIT license.
// The int8-activation route of GPTQ linears (`actQuant: "int8"`) through the public path: a
// packed linear against a TypeScript reference (x quantized to int8 per 32 values in the
// kernel's code order, times the dequantized weights) for 2/3/4/8 bits, act-order and v1/v2
// zeros; against the exact f32 route within the quantization bound; a GPTQ model's logits;
// `--act-quant` parsing.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../../errors.ts";
import { f16BitsToF32, f32ToF16Bits } from "../../io/dtype.ts";
import { type Bits, packQWeight, packQZeros, roundHalfEven } from "../../gptq/pack.ts";
import type { QuantLinearTensors } from "../../gptq/quant_linear.ts";
import { loadModel } from "../../load_model.ts";
import { actQuantOption, parseCommandArgs } from "../../cli/_command.ts";
import { evalCommand } from "../../cli/eval.ts";
import { createWasmKernels } from "./wasm_kernels.ts";

const DATA = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));

/** Deterministic uniform numbers in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Layer {
  t: QuantLinearTensors;
  /** `W [N, K]` dequantized, f64. */
  w: Float64Array;
  /** Group of each input row. */
  gIdx: Int32Array;
}

function randomLayer(
  K: number,
  N: number,
  bits: Bits,
  group: number,
  v2: boolean,
  r: () => number,
): Layer {
  const G = Math.ceil(K / group), maxq = (1 << bits) - 1;
  const codes = new Uint8Array(K * N).map(() => Math.floor(r() * (maxq + 1)));
  // v1 stores zero − 1, so a zero of 0 cannot be written.
  const zeros = new Uint8Array(G * N).map(() =>
    (v2 ? 0 : 1) + Math.floor(r() * (v2 ? maxq + 1 : maxq))
  );
  const scales = new Uint16Array(G * N).map(() => f32ToF16Bits(0.002 + 0.05 * r()));
  const perm = Array.from({ length: K }, (_, i) => i);
  for (let i = K - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const gIdx = new Int32Array(K);
  perm.forEach((p, i) => gIdx[p] = Math.floor(i / group));
  const w = new Float64Array(N * K);
  for (let k = 0; k < K; k++) {
    const g = gIdx[k]!;
    for (let n = 0; n < N; n++) {
      w[n * K + k] = f16BitsToF32(scales[g * N + n]!) * (codes[k * N + n]! - zeros[g * N + n]!);
    }
  }
  const bias = new Float32Array(N).map(() => r() - 0.5);
  const t: QuantLinearTensors = {
    qweight: packQWeight(codes, K, N, bits),
    qzeros: packQZeros(zeros, G, N, bits, v2 ? "gptq_v2" : "gptq"),
    scales,
    gIdx,
    bias,
    K,
    N,
    G,
    bits,
  };
  return { t, w, gIdx };
}

/** Rows sorted by group (stably), each group's run padded to 32 (-1: padding). */
function codeOrder(gIdx: Int32Array, G: number): number[] {
  const order: number[] = [];
  for (let g = 0; g < G; g++) {
    gIdx.forEach((v, k) => v === g && order.push(k));
    while (order.length % 32 !== 0) order.push(-1);
  }
  return order;
}

/** `x̂` (x quantized per 32 values in code order, f32 arithmetic like the kernel) and `d/2` per row. */
function quantizeRow(x: Float32Array, order: number[]): { xh: Float64Array; half: Float64Array } {
  const xh = new Float64Array(x.length), half = new Float64Array(x.length);
  for (let b = 0; b < order.length; b += 32) {
    const rows = order.slice(b, b + 32).filter((k) => k >= 0);
    const amax = rows.reduce((a, k) => Math.max(a, Math.abs(x[k]!)), 0);
    const d = Math.fround(amax / 127), id = d > 0 ? Math.fround(1 / d) : 0;
    for (const k of rows) {
      xh[k] = d * roundHalfEven(Math.fround(x[k]! * id));
      half[k] = d / 2;
    }
  }
  return { xh, half };
}

Deno.test("actQuant int8: a packed linear matches the int8 reference and the exact route within bound", async () => {
  const r = rng(7);
  const int8 = await createWasmKernels({ threads: 1, actQuant: "int8" });
  const f32 = await createWasmKernels({ threads: 1, actQuant: "f32" });
  try {
    let worst = 0;
    for (const bits of [2, 3, 4, 8] as Bits[]) {
      for (const [group, v2] of [[64, true], [32, false], [256, false]] as const) {
        const K = 256, N = 96, M = 5;
        const { t, w, gIdx } = randomLayer(K, N, bits, group, v2, r);
        const order = codeOrder(gIdx, t.G);
        const x = new Float32Array(M * K).map(() => (r() - 0.5) * (r() < 0.1 ? 16 : 1));
        const src = { tensors: t, format: v2 ? "gptq_v2" : "gptq" } as const;
        const hq = int8.linearFromGptq(src), hf = f32.linearFromGptq(src);
        const yq = int8.linear(x, M, hq), yf = f32.linear(x, M, hf);
        int8.release(hq);
        f32.release(hf);
        for (let i = 0; i < M; i++) {
          const { xh, half } = quantizeRow(x.subarray(i * K, (i + 1) * K), order);
          for (let n = 0; n < N; n++) {
            let want = t.bias![n]!,
              magQ = Math.abs(want),
              exact = want,
              mag = Math.abs(want),
              bound = 0;
            for (let k = 0; k < K; k++) {
              const wv = w[n * K + k]!, xv = x[i * K + k]!;
              want += xh[k]! * wv;
              magQ += Math.abs(xh[k]! * wv);
              exact += xv * wv;
              mag += Math.abs(xv * wv);
              bound += half[k]! * Math.abs(wv);
            }
            const what = `bits ${bits} group ${group} v2 ${v2} row ${i} col ${n}`;
            const got = yq[i * N + n]!;
            assert.ok(
              Math.abs(got - want) <= 1e-5 * magQ + 1e-6,
              `${what}: ${got} vs int8 reference ${want}`,
            );
            assert.ok(
              Math.abs(got - exact) <= bound + 1e-5 * mag + 1e-6,
              `${what}: ${got} vs exact ${exact}`,
            );
            assert.ok(Math.abs(yf[i * N + n]! - exact) <= 1e-5 * mag + 1e-6, `${what}: f32 route`);
            worst = Math.max(worst, Math.abs(got - exact) / mag);
          }
        }
      }
    }
    console.log(`int8 vs exact: worst error ${worst.toExponential(2)} of Σ|x·w|`);
  } finally {
    int8.dispose?.();
    f32.dispose?.();
  }
});

Deno.test("actQuant int8: a GPTQ model's logits stay close to the exact route; bad values are errors", async () => {
  const dir = `${DATA}golden/models/llama-gptq-4bit-g32`;
  const logits: Float32Array[] = [];
  for (const actQuant of ["f32", "int8"] as const) {
    const m = await loadModel(dir, { backend: "wasm", threads: 1, actQuant });
    try {
      logits.push(await m.lm.forward([1, 5, 9, 13, 17, 21, 25, 29], m.lm.newCache(8)));
    } finally {
      m.close();
    }
  }
  const [a, b] = logits as [Float32Array, Float32Array];
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(a[i]!));
  }
  console.log(
    `int8 vs f32 logits: max difference ${diff.toFixed(4)}, largest logit ${scale.toFixed(2)}`,
  );
  assert.ok(diff > 0, "int8 activations should change the logits");
  assert.ok(diff <= 0.02 * scale, `logits moved by ${diff} (largest logit ${scale})`);
  await assert.rejects(
    createWasmKernels({ threads: 1, actQuant: "int4" as "int8" }),
    (e: unknown) => e instanceof GptqError && e.code === "INVALID_ARGUMENT",
  );
  const parse = (...v: string[]) => parseCommandArgs(evalCommand, ["m", "--dataset", "d", ...v]);
  assert.equal(actQuantOption(parse()), undefined);
  assert.equal(actQuantOption(parse("--act-quant", "int8")), "int8");
  assert.throws(
    () => actQuantOption(parse("--act-quant", "fp8")),
    (e: unknown) =>
      e instanceof GptqError && e.code === "INVALID_ARGUMENT" && !e.message.includes("\n") &&
      e.message.startsWith("--act-quant must be f32 or int8, got 'fp8'"),
  );
});
