// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * CUDA/HIP kernel benchmark at Llama-7B shapes (hidden 4096, intermediate
 * 11008), random weights, timed with device events:
 *
 * 1. **Copy bandwidth**: device-to-device `cudaMemcpyAsync` of 1 GiB (read +
 *    write bytes counted), the ceiling of batch-1 decode.
 * 2. **Decode GEMV**, GPTQ 4-bit g128 (in order, and act-order reordered at
 *    load): the 7 linears of `--layers` layers at M = 1 back to back (more
 *    bytes than L2 holds), weight bytes (codes + scales/zeros) per second as a
 *    fraction of the copy's read bandwidth (half its read+write figure).
 *    The same for fp16 dense weights.
 * 3. **Prefill GEMM** at M = 128, 512, 2048: GPTQ 4-bit and fp16 dense,
 *    TFLOP/s, against torch's fp16 `x @ Wᵀ` of the same shapes when `python3
 *    -c "import torch"` works with a GPU (run as a subprocess).
 * 4. **Attention** decode at 2048 keys (32 heads of 128) and the **Hessian**
 *    accumulation `H += 2/n·XᵀX` (K = 4096, 2048 rows).
 *
 * ```sh
 * deno run -A bench/cuda_bench.ts [--layers N] [--kind cuda|hip|hip-cpu] [--quick] [--json FILE]
 * ```
 *
 * `--kind hip-cpu --quick` runs tiny shapes on the CPU emulation (a smoke test
 * of this script; its figures mean nothing).
 *
 * @module
 */

import { f32ToF16Bits } from "../src/io/dtype.ts";
import type { QuantLinearTensors } from "../src/gptq/quant_linear.ts";
import type { LinearHandle, Tensor } from "../src/backends/backend.ts";
import { createCudaBackend, type CudaBackend } from "../src/backends/cuda/cuda_backend.ts";
import type { GpuLibraryKind } from "../src/backends/cuda/ffi.ts";
import { mulberry32 } from "../src/runtime/sample.ts";

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}
const QUICK = Deno.args.includes("--quick");
const KIND = (arg("--kind") ?? "cuda") as GpuLibraryKind;
const LAYERS = Number(arg("--layers") ?? (QUICK ? 1 : 8));
const H = QUICK ? 256 : 4096, I = QUICK ? 512 : 11008;
const GROUP = QUICK ? 64 : 128;

const be: CudaBackend = createCudaBackend({ kind: KIND });
const S = be.library.symbols;
const results: Record<string, unknown> = { device: be.device, kind: be.name, layers: LAYERS };
console.log(`device: ${be.name} ${be.device}; Llama-7B shapes${QUICK ? " (quick: tiny)" : ""}`);

/** Milliseconds per repetition of `f`, from device events around `reps` repetitions. */
async function timed(f: () => void, reps: number): Promise<number> {
  const ev = new BigUint64Array(2);
  be.library.check(S.gptq_event_create(ev.subarray(0, 1)), "event");
  be.library.check(S.gptq_event_create(ev.subarray(1, 2)), "event");
  f(); // warm-up
  await be.sync();
  be.library.check(S.gptq_event_record(ev[0]!), "record");
  for (let r = 0; r < reps; r++) f();
  be.library.check(S.gptq_event_record(ev[1]!), "record");
  const ms = new Float32Array(1);
  be.library.check(await S.gptq_event_elapsed(ev[0]!, ev[1]!, ms), "elapsed");
  S.gptq_event_destroy(ev[0]!);
  S.gptq_event_destroy(ev[1]!);
  return ms[0]! / reps;
}

// ------------------------------------------------------------------ 1. copy bandwidth
const copyBytes = QUICK ? 1 << 20 : 1 << 30;
const src = be.library.malloc(copyBytes), dst = be.library.malloc(copyBytes);
S.gptq_memset(src, 1, BigInt(copyBytes));
const copyMs = await timed(() => {
  be.library.check(S.gptq_memcpy_d2d(dst, src, BigInt(copyBytes)), "copy");
}, QUICK ? 2 : 20);
const copyGBs = (2 * copyBytes) / (copyMs / 1000) / 1e9; // read + write
S.gptq_free(src);
S.gptq_free(dst);
const readGBs = copyGBs / 2;
console.log(
  `copy: ${copyGBs.toFixed(0)} GB/s read+write (${readGBs.toFixed(0)} GB/s each way)`,
);
results.copy_gbs_read_write = copyGBs;

// ------------------------------------------------------------------ 2. decode GEMV
function randomGptq(r: () => number, K: number, N: number, act: boolean): QuantLinearTensors {
  const G = Math.ceil(K / GROUP);
  const qweight = new Int32Array((K / 32) * 4 * N);
  for (let i = 0; i < qweight.length; i++) qweight[i] = (r() * 2 ** 32) | 0;
  const qzeros = new Int32Array(G * (N / 32) * 4).fill(0x77777777);
  const scales = new Uint16Array(G * N);
  for (let i = 0; i < scales.length; i++) scales[i] = f32ToF16Bits(0.001 + 0.01 * r());
  let gIdx: Int32Array | null = null;
  if (act) {
    const perm = Array.from({ length: K }, (_, i) => i);
    for (let i = K - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    gIdx = new Int32Array(K);
    perm.forEach((p, i) => gIdx![p] = Math.floor(i / GROUP));
  }
  return { qweight, qzeros, scales, gIdx, bias: null, K, N, G, bits: 4 };
}

const SHAPES: [string, number, number][] = [
  ["q", H, H],
  ["k", H, H],
  ["v", H, H],
  ["o", H, H],
  ["gate", H, I],
  ["up", H, I],
  ["down", I, H],
]; // [name, K, N]

function gptqLayers(act: boolean): LinearHandle[] {
  const r = mulberry32(act ? 2 : 1);
  const out: LinearHandle[] = [];
  // One random layer's 7 linears uploaded LAYERS times (upload is the slow part here).
  const tensors = SHAPES.map(([, K, N]) => randomGptq(r, K, N, act));
  for (let l = 0; l < LAYERS; l++) {
    for (const t of tensors) out.push(be.linearFromGptq({ tensors: t, format: "gptq" }));
  }
  return out;
}

function denseLayers(): LinearHandle[] {
  const r = mulberry32(3);
  const out: LinearHandle[] = [];
  const raws = SHAPES.map(([, K, N]) => {
    // Random fp16 bits of magnitude 2^-10 .. 2^-6 (exponent 5..9), either sign.
    const u = new Uint16Array(K * N);
    for (let i = 0; i < u.length; i++) {
      const b = (r() * 2 ** 16) | 0;
      u[i] = (b & 0x83ff) | ((5 + (b % 5)) << 10);
    }
    return { dtype: "F16" as const, shape: [N, K], data: new Uint8Array(u.buffer) };
  });
  const layers = Math.max(1, Math.floor(LAYERS / 4)); // fp16 is 4× the bytes
  for (let l = 0; l < layers; l++) {
    for (const raw of raws) out.push(be.linearFromDense(raw, null, false));
  }
  return out;
}

const xs = new Map<number, Tensor>();
function input(M: number, K: number): Tensor {
  const key = M * 1e6 + K;
  let x = xs.get(key);
  if (!x) {
    const r = mulberry32(M + K);
    x = be.upload(new Float32Array(M * K).map(() => r() * 2 - 1), M, K);
    xs.set(key, x);
  }
  return x;
}

async function decode(label: string, ws: LinearHandle[]): Promise<void> {
  const bytes = ws.reduce((s, w) => s + w.bytes, 0);
  const ms = await timed(() => {
    for (const w of ws) be.free(be.linear(input(1, w.K), w));
  }, QUICK ? 2 : 10);
  const gbs = bytes / (ms / 1000) / 1e9;
  const frac = gbs / readGBs;
  console.log(
    `decode GEMV ${label}: ${(bytes / 2 ** 20).toFixed(0)} MiB of weights in ${ms.toFixed(3)} ms ` +
      `= ${gbs.toFixed(0)} GB/s, ${(frac * 100).toFixed(1)} % of copy read bandwidth`,
  );
  results[`decode_${label}`] = { ms, gbs, fraction_of_copy_read: frac, weight_bytes: bytes };
}

const flops = (M: number) => SHAPES.reduce((s, [, K, N]) => s + 2 * M * K * N, 0);
async function prefill(label: string, ws: LinearHandle[], M: number): Promise<number> {
  const one = ws.slice(0, 7);
  const ms = await timed(() => {
    for (const w of one) be.free(be.linear(input(M, w.K), w));
  }, QUICK ? 1 : 3);
  const tf = flops(M) / (ms / 1000) / 1e12;
  console.log(
    `prefill ${label} M=${M}: ${ms.toFixed(2)} ms for one layer = ${tf.toFixed(1)} TFLOP/s`,
  );
  results[`prefill_${label}_M${M}`] = { ms, tflops: tf };
  return tf;
}

const q4 = gptqLayers(false);
await decode("gptq4_g128", q4);
const q4act = gptqLayers(true);
await decode("gptq4_g128_actorder", q4act);
for (const w of q4act) be.release(w);
const f16 = denseLayers();
await decode("fp16", f16);

const Ms = QUICK ? [16] : [128, 512, 2048];
for (const M of Ms) {
  await prefill("gptq4_g128", q4, M);
  await prefill("fp16", f16, M);
}

// torch fp16 reference (a subprocess; skipped when torch or its GPU is missing)
if (KIND === "cuda") {
  const py = `
import json, torch
assert torch.cuda.is_available()
shapes = ${JSON.stringify(SHAPES.map(([, K, N]) => [K, N]))}
out = {}
for M in ${JSON.stringify(Ms)}:
    ws = [torch.randn(N, K, dtype=torch.float16, device="cuda") * 0.02 for K, N in shapes]
    xs = [torch.randn(M, K, dtype=torch.float16, device="cuda") for K, N in shapes]
    for _ in range(3):
        for x, w in zip(xs, ws): x @ w.T
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(10):
        for x, w in zip(xs, ws): x @ w.T
    b.record(); torch.cuda.synchronize()
    ms = a.elapsed_time(b) / 10
    out[M] = {"ms": ms, "tflops": sum(2 * M * K * N for K, N in shapes) / ms / 1e9}
print(json.dumps(out))
`;
  try {
    const o = await new Deno.Command("python3", { args: ["-c", py], stderr: "piped" }).output();
    if (o.success) {
      const torch = JSON.parse(new TextDecoder().decode(o.stdout));
      results.torch_fp16 = torch;
      for (const M of Ms) {
        const ours = (results[`prefill_gptq4_g128_M${M}`] as { tflops: number }).tflops;
        const t = torch[M].tflops as number;
        console.log(
          `torch fp16 M=${M}: ${t.toFixed(1)} TFLOP/s; GPTQ 4-bit prefill here is ` +
            `${(ours / t * 100).toFixed(1)} % of it`,
        );
      }
    } else {
      console.log(
        `torch fp16 reference skipped: ${
          new TextDecoder().decode(o.stderr).trim().split("\n").pop()
        }`,
      );
    }
  } catch (e) {
    console.log(`torch fp16 reference skipped: ${(e as Error).message}`);
  }
}

// ------------------------------------------------------------------ 4. attention, Hessian
{
  const len = QUICK ? 256 : 2048, Hq = QUICK ? 4 : 32, D = 128;
  const r = mulberry32(9);
  const kc = be.upload(new Float32Array(len * Hq * D).map(() => r() - 0.5), len, Hq * D);
  const vc = be.upload(new Float32Array(len * Hq * D).map(() => r() - 0.5), len, Hq * D);
  const q = input(1, Hq * D);
  const ms = await timed(() => be.free(be.attention(q, Hq, Hq, D, kc, vc, len - 1)), 10);
  const gbs = (2 * len * Hq * D * 4) / (ms / 1000) / 1e9;
  console.log(
    `attention decode ${Hq}x${D} over ${len} keys: ${(ms * 1000).toFixed(1)} µs (${
      gbs.toFixed(0)
    } GB/s of KV)`,
  );
  results.attention_decode = { ms, gbs };
  const K = QUICK ? 256 : 4096, rows = QUICK ? 128 : 2048;
  const h = be.zeros(K, K), x = input(rows, K);
  const hm = await timed(() => be.hessianAccumulate(h, x, 2 / 128, 127 / 128), QUICK ? 1 : 5);
  const tf = (2 * rows * K * K) / 2 / (hm / 1000) / 1e12; // half: the symmetric tiles only
  console.log(`hessian K=${K} rows=${rows}: ${hm.toFixed(2)} ms (${tf.toFixed(1)} TFLOP/s useful)`);
  results.hessian = { ms: hm, K, rows, tflops: tf };
}

const mem = be.memoryBytes();
console.log(
  `device memory: ${(mem.weights / 2 ** 20).toFixed(0)} MiB weights, ${
    (mem.pool / 2 ** 20).toFixed(0)
  } MiB pool`,
);
const json = arg("--json");
if (json) await Deno.writeTextFile(json, JSON.stringify(results, null, 2) + "\n");
be.dispose();
