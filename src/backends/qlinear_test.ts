// Copyright 2026 the GPTQ toolkit authors. MIT license.
import { hostBackend } from "./host.ts";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../io/safetensors.ts";
import type { Bits, ZeroFormat } from "../gptq/pack.ts";
import { dequantizeLinear, type QuantLinearTensors } from "../gptq/quant_linear.ts";
import { GptqError } from "../errors.ts";
import type { Kernels } from "./host_kernels.ts";
import { CausalLM } from "../runtime/model.ts";
import { createTsKernels } from "./typescript/ts_kernels.ts";
import { createWasmKernels } from "./wasm/wasm_kernels.ts";
import { sliceGptqHalf, SYNC_POOL_STATS } from "./wasm/_sync_pool.ts";
import { mulberry32 } from "../runtime/sample.ts";
import { randomLayer } from "./_test_layers.ts";

const GOLDEN = fileURLToPath(
  new URL("../../../shared/data/golden/models/llama-gptq-4bit-g32/", import.meta.url),
);

/** Checks `got` against the TS backend's `want`: |Δ| ≤ 1e-5 · Σ|x·w| (+ 1e-6). */
function assertClose(
  got: Float32Array,
  want: Float32Array,
  x: Float32Array,
  W: Float32Array,
  t: QuantLinearTensors,
  M: number,
  what: string,
): number {
  const { K, N } = t;
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < M; i++) {
    for (let n = 0; n < N; n++) {
      let mag = Math.abs(t.bias ? t.bias[n]! : 0);
      for (let k = 0; k < K; k++) mag += Math.abs(x[i * K + k]! * W[n * K + k]!);
      const d = Math.abs(got[i * N + n]! - want[i * N + n]!);
      worst = Math.max(worst, d / (mag + 1e-6));
      assert.ok(
        d <= 1e-5 * mag + 1e-6,
        `${what}: [${i}, ${n}] got ${got[i * N + n]} want ${want[i * N + n]}`,
      );
    }
  }
  return worst;
}

Deno.test("fused GPTQ linears (1 and 2 threads, reorder and gather) match the dequantizing TS backend", async () => {
  const ts = createTsKernels();
  const backends: [string, Kernels][] = [
    ["1 thread", await createWasmKernels({ threads: 1 })],
    ["2 threads", await createWasmKernels({ threads: 2, minSplit: 0 })],
    ["1 thread gather", await createWasmKernels({ threads: 1, actOrder: "gather" })],
    [
      "2 threads reorder",
      await createWasmKernels({ threads: 2, minSplit: 0, actOrder: "reorder" }),
    ],
  ];
  const r = mulberry32(12345);
  const calls0 = SYNC_POOL_STATS.linearCalls;
  let worst = 0, cases = 0;
  try {
    for (const bits of [2, 3, 4, 8] as Bits[]) {
      for (const group of [32, 128, -1]) {
        for (const act of [false, true]) {
          for (const format of ["gptq", "gptq_v2"] as ZeroFormat[]) {
            // K = 320 (g128: a short last group); N = 96 splits 64 | 32.
            const K = 320, N = 96;
            const t = randomLayer(r, K, N, bits, group === -1 ? K : group, act, format);
            const W = dequantizeLinear(t, format);
            const src = { tensors: t, format };
            const hRef = ts.linearFromGptq(src);
            for (const [name, k] of backends) {
              const h = k.linearFromGptq(src);
              assert.equal(h.N, N);
              assert.equal(h.K, K);
              // Packed: about bits/8 bytes per weight, far below f32's 4.
              assert.ok(h.bytes < (N * K * bits) / 8 * 1.6 + 4096, `${name}: ${h.bytes} bytes`);
              for (const M of [1, 3, 4, 17]) {
                const x = new Float32Array(M * K).map(() => r() * 2 - 1);
                const what = `${name} bits ${bits} group ${group} act ${act} ${format} M ${M}`;
                const e = assertClose(k.linear(x, M, h), ts.linear(x, M, hRef), x, W, t, M, what);
                worst = Math.max(worst, e);
                cases++;
              }
              k.release(h);
            }
            ts.release(hRef);
          }
        }
      }
    }
  } finally {
    for (const [, k] of backends) k.dispose?.();
  }
  console.log(`${cases} cases, max relative error ${worst.toExponential(2)}`);
  assert.ok(SYNC_POOL_STATS.linearCalls > calls0, "the helper Worker computed nothing");
  assert.equal(SYNC_POOL_STATS.started, SYNC_POOL_STATS.closed, "a helper Worker leaked");
});

Deno.test("sliceGptqHalf cuts packed columns; bad layers are GptqErrors", async () => {
  const r = mulberry32(7);
  const t = randomLayer(r, 64, 96, 3, 32, true, "gptq_v2");
  const h = sliceGptqHalf(t, true, 0, 32, 96);
  assert.equal(h.N, 64);
  assert.equal(h.qweight.length, 6 * 64);
  assert.equal(h.qweight[64 + 5], t.qweight[96 + 32 + 5]);
  assert.deepEqual(Array.from(h.qzeros.subarray(0, 6)), Array.from(t.qzeros.subarray(3, 9)));
  assert.equal(h.scales[64], t.scales[96 + 32]);
  assert.deepEqual(Array.from(h.bias!), Array.from(t.bias!.subarray(32)));
  assert.throws(() => sliceGptqHalf(t, true, 0, 8, 96), GptqError);
  const k = await createWasmKernels({ threads: 1 });
  const bad = { ...t, qzeros: t.qzeros.subarray(1) };
  assert.throws(
    () => k.linearFromGptq({ tensors: bad, format: "gptq_v2" }),
    (e: unknown) => e instanceof GptqError && e.code === "GPTQ_FORMAT" && /qzeros/.test(e.message),
  );
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    createWasmKernels({ threads: 1, actOrder: "sideways" as any }),
    GptqError,
  );
});

Deno.test("golden llama-gptq-4bit-g32 through the fused kernels, every linear split", async () => {
  using g = await SafetensorsFile.open(`${GOLDEN}/golden.safetensors`);
  const ids = Array.from(await g.readFloat32("input_ids"));
  const logits = await g.readFloat32("logits");
  for (const opts of [{ threads: 1 }, { threads: 2, minSplit: 0 }]) {
    const kernels = await createWasmKernels(opts);
    const lm = await CausalLM.load(GOLDEN, { backend: hostBackend(kernels) });
    try {
      const out = await lm.forward(ids, lm.newCache(ids.length));
      let d = 0;
      for (let i = 0; i < out.length; i++) d = Math.max(d, Math.abs(out[i]! - logits[i]!));
      console.log(`threads ${opts.threads}: max |Δlogit| vs AutoGPTQ = ${d.toExponential(3)}`);
      assert.ok(d <= 1e-3, `max abs diff ${d}`);
    } finally {
      lm.close();
    }
  }
});
