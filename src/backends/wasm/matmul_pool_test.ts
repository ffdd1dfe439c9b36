// Copyright 2026 the GPTQ toolkit authors. MIT license.
import { hostBackend } from "../host.ts";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../../errors.ts";
import { fromFloat32, toFloat32 } from "../../io/dtype.ts";
import { type RawTensor, SafetensorsFile } from "../../io/safetensors.ts";
import type { LinearHandle } from "../backend.ts";
import type { Kernels } from "../host_kernels.ts";
import { CausalLM } from "../../runtime/model.ts";
import { refLinear } from "../typescript/ref_kernels.ts";
import { createWasmKernels } from "./wasm_kernels.ts";
import { MatmulPool, splitRows } from "./_matmul_pool.ts";
import { relaxedSimdSupported, wasmModule } from "../../wasm/mod.ts";

const GOLDEN = fileURLToPath(new URL("../../../../shared/data/golden/models/", import.meta.url));

/** One linear call of a real forward pass through the single-thread wasm backend. */
interface Call {
  raw: RawTensor;
  bias: Float32Array | null;
  transposed: boolean;
  x: Float32Array;
  M: number;
  y: Float32Array;
}

/**
 * Runs the golden prompt through CausalLM on the wasm kernels, recording the
 * first call of every dense linear (its weight, real input and output).
 */
async function recordForward(
  name: string,
): Promise<{ calls: Call[]; logits: Float32Array; V: number }> {
  const dir = GOLDEN + name;
  using g = await SafetensorsFile.open(`${dir}/golden.safetensors`);
  const ids = Array.from(await g.readFloat32("input_ids"));
  const logits = await g.readFloat32("logits");
  const base = await createWasmKernels();
  const src = new Map<LinearHandle, Omit<Call, "x" | "M" | "y">>();
  const calls: Call[] = [];
  const seen = new Set<LinearHandle>();
  const kernels: Kernels = {
    ...base,
    linearFromDense(w, bias, transposed) {
      const h = base.linearFromDense(w, bias, transposed);
      src.set(h, { raw: w, bias, transposed });
      return h;
    },
    linear(x, M, h) {
      const y = base.linear(x, M, h);
      const s = src.get(h);
      if (s && !seen.has(h)) {
        seen.add(h);
        calls.push({ ...s, x: x.slice(0, M * h.K), M, y: y.slice() }); // the model edits y in place
      }
      return y;
    },
  };
  const lm = await CausalLM.load(dir, { backend: hostBackend(kernels) });
  try {
    await lm.forward(ids, lm.newCache(ids.length));
  } finally {
    lm.close();
  }
  return { calls, logits, V: logits.length / ids.length };
}

function assertBitEqual(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i} differs: ${a[i]} vs ${b[i]}`);
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

Deno.test("splitRows gives contiguous ranges aligned to 8 rows", () => {
  assert.deepEqual(splitRows(100, 2), [0, 48, 100]);
  assert.deepEqual(splitRows(4096, 2), [0, 2048, 4096]);
  assert.deepEqual(splitRows(11008, 2), [0, 5504, 11008]);
  assert.deepEqual(splitRows(64, 3), [0, 24, 40, 64]);
  assert.deepEqual(splitRows(5, 2), [0, 0, 5]);
  assert.deepEqual(splitRows(7, 1), [0, 7]);
});

for (const model of ["llama", "gpt2"]) {
  for (const workers of [2, 3]) {
    Deno.test(
      `MatmulPool (${workers} workers) equals the single-thread wasm matmul bit for bit on ${model}'s real linears`,
      async () => {
        const { calls, logits, V } = await recordForward(model);
        // llama: 7 block linears × 2 layers + lm_head; gpt2: 4 × 2 + tied head.
        assert.equal(calls.length, model === "llama" ? 15 : 9);
        const pool = await MatmulPool.create({ workers });
        try {
          assert.equal(pool.size, workers);
          for (const [i, c] of calls.entries()) {
            const h = await pool.load(c.raw, c.bias, c.transposed, `${model} call ${i}`);
            assert.equal(h.N * c.M, c.y.length);
            const y = await pool.linear(c.x, c.M, h);
            assertBitEqual(y, c.y, `${model} linear ${i} [${h.N}x${h.K}] ${h.dtype}`);
            await pool.release(h);
          }
          // The last call is the LM head: its output is the model's logits,
          // which must match the transformers reference.
          const last = calls[calls.length - 1]!;
          assert.equal(last.y.length / last.M, V);
          const d = maxAbsDiff(last.y, logits);
          console.log(
            `${model}: pool lm_head vs transformers logits max |Δ| = ${d.toExponential(3)}`,
          );
          assert.ok(d <= 1e-3, `logits differ by ${d}`);
        } finally {
          pool.close();
        }
      },
    );
  }
}

Deno.test("MatmulPool handles f32, f16 and bf16 weights like the single-thread kernel and the TS reference", async () => {
  const dir = GOLDEN + "llama";
  using f = await SafetensorsFile.open(`${dir}/model.safetensors`);
  using g = await SafetensorsFile.open(`${dir}/golden.safetensors`);
  const ids = await g.readFloat32("input_ids");
  const emb = await f.readFloat32("model.embed_tokens.weight");
  const K = 128, M = 17;
  const x = new Float32Array(M * K);
  for (let m = 0; m < M; m++) x.set(emb.subarray(ids[m]! * K, (ids[m]! + 1) * K), m * K);
  const wasm = await createWasmKernels();
  const pool = await MatmulPool.create({ workers: 2 });
  try {
    for (const name of ["lm_head.weight", "model.layers.1.mlp.up_proj.weight"]) {
      const w16 = await f.read(name);
      const wf = toFloat32(w16.data, w16.dtype);
      const N = w16.shape[0]!;
      const bias = new Float32Array(N).map((_, i) => (i % 7) * 0.125 - 0.375);
      for (const dtype of ["F32", "F16", "BF16"] as const) {
        const raw: RawTensor = { dtype, shape: [N, K], data: fromFloat32(wf, dtype) };
        const single = wasm.linearFromDense(raw, bias, false);
        const want = wasm.linear(x, M, single);
        wasm.release(single);
        const h = await pool.load(raw, bias, false, name);
        assert.equal(h.dtype, dtype);
        assert.equal(h.bytes, N * K * (dtype === "F32" ? 4 : 2) + N * 4);
        const y = await pool.linear(x, M, h);
        await pool.release(h);
        assertBitEqual(y, want, `${name} ${dtype}`);
        const ref = refLinear(x, M, K, toFloat32(raw.data, dtype), N, bias);
        const d = maxAbsDiff(y, ref);
        assert.ok(d < 1e-4, `${name} ${dtype}: vs TS reference ${d}`);
      }
    }
    // A 64-bit float weight is widened to f32.
    const w = new Float64Array([1, 2, 3, 4, 5, 6]);
    const h = await pool.load({ dtype: "F64", shape: [3, 2], data: new Uint8Array(w.buffer) });
    assert.equal(h.dtype, "F32");
    assert.deepEqual(Array.from(await pool.linear(new Float32Array([1, -1]), 1, h)), [-1, -1, -1]);
  } finally {
    pool.close();
  }
});

Deno.test({
  name:
    "the baseline (SIMD128) and relaxed-SIMD modules agree on dense matmuls within fp tolerance",
  ignore: !relaxedSimdSupported(),
  async fn() {
    const pools = await Promise.all(
      (["baseline", "relaxed"] as const).map(async (simd) =>
        MatmulPool.create({ workers: 2, module: await wasmModule(simd) })
      ),
    );
    let seed = 7;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
    let differing = 0, total = 0;
    try {
      // GEMV (M < 4) and GEMM (remainder row blocks, K over one 256 tile, N over one 128 tile).
      for (const [M, K, N] of [[1, 576, 77], [3, 300, 130], [13, 576, 200], [64, 520, 300]]) {
        const x = Float32Array.from({ length: M! * K! }, rnd);
        const wf = Float32Array.from({ length: N! * K! }, () => rnd() * 0.2);
        const bias = Float32Array.from({ length: N! }, rnd);
        for (const dtype of ["F32", "F16", "BF16"] as const) {
          const raw: RawTensor = { dtype, shape: [N!, K!], data: fromFloat32(wf, dtype) };
          const ys: Float32Array[] = [];
          for (const pool of pools) {
            const h = await pool.load(raw, bias);
            ys.push(await pool.linear(x, M!, h));
            await pool.release(h);
          }
          const ref = refLinear(x, M!, K!, toFloat32(raw.data, dtype), N!, bias);
          const what = `M=${M} K=${K} N=${N} ${dtype}`;
          for (const [i, y] of ys.entries()) {
            assert.ok(maxAbsDiff(y, ref) < 1e-4, `${what} module ${i}: vs TS reference`);
          }
          assert.ok(maxAbsDiff(ys[0]!, ys[1]!) < 1e-4, `${what}: baseline vs relaxed`);
          differing += ys[0]!.filter((v, i) => v !== ys[1]![i]).length;
          total += ys[0]!.length;
        }
      }
    } finally {
      for (const p of pools) p.close();
    }
    console.log(`baseline vs relaxed: ${differing} of ${total} outputs differ in the last bits`);
  },
});

Deno.test("MatmulPool reports bad shapes and misuse as GptqErrors naming the tensor", async () => {
  const pool = await MatmulPool.create({ workers: 2 });
  try {
    const data = new Uint8Array(new Float32Array(6 * 4).buffer);
    await assert.rejects(
      pool.load({ dtype: "F32", shape: [6, 5], data }, null, false, "w.bad"),
      (e: unknown) => e instanceof GptqError && e.code === "SHAPE" && e.tensor === "w.bad",
    );
    await assert.rejects(
      pool.load({ dtype: "F32", shape: [6, 4], data }, new Float32Array(5), false, "w.bias"),
      (e: unknown) => e instanceof GptqError && e.code === "SHAPE" && /bias/.test(e.message),
    );
    const h = await pool.load({ dtype: "F32", shape: [6, 4], data }, null, false, "w.ok");
    await assert.rejects(
      pool.linear(new Float32Array(7), 2, h),
      (e: unknown) => e instanceof GptqError && e.code === "SHAPE" && e.tensor === "w.ok",
    );
    await pool.release(h);
    await assert.rejects(
      pool.linear(new Float32Array(4), 1, h),
      (e: unknown) => e instanceof GptqError && /after release/.test(e.message),
    );
  } finally {
    pool.close();
  }
  await assert.rejects(
    pool.load({ dtype: "F32", shape: [1, 1], data: new Uint8Array(4) }),
    (e: unknown) => e instanceof GptqError && /closed/.test(e.message),
  );
  await assert.rejects(
    MatmulPool.create({ workers: 0 }),
    (e: unknown) => e instanceof GptqError && e.code === "INVALID_ARGUMENT",
  );
});
