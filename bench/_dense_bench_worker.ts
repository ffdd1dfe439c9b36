// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Worker of `bench/dense_prefill_bench.ts`: one wasm instance (any build of
 * the module, with the glue it was built with), holding rows `n0..n1` of one
 * random weight, timing the multiply-add peak probe and dense matmuls.
 *
 * @module
 */

/** Requests from the bench (internal). */
export type DenseRequest =
  | { op: "init"; glueUrl: string; bytes: Uint8Array }
  | { op: "peak"; iters: number }
  | { op: "load"; dtype: "F32" | "F16" | "BF16"; rows: number; K: number; M: number; seed: number }
  | { op: "gemm" }
  | { op: "free" };

/** Replies: `ms` for timed ops, `variant` after init. */
export interface DenseReply {
  ok: boolean;
  ms?: number;
  variant?: string;
  message?: string;
}

// deno-lint-ignore no-explicit-any
type Glue = any;
let glue: Glue;
// deno-lint-ignore no-explicit-any
let w: any = null, x: any = null, y: any = null;
let shape = { M: 0, rows: 0 };

/** Values like N(0, 0.05) (sum of four uniforms), deterministic from `seed`. */
function randomF32(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  const u = () => ((s ^= s << 13, s ^= s >>> 17, s ^= s << 5) >>> 0) / 4294967296;
  for (let i = 0; i < n; i++) out[i] = (u() + u() + u() + u() - 2) * 0.087;
  return out;
}

function free(): void {
  w?.free();
  x?.free();
  y?.free();
  w = x = y = null;
}

function load(r: Extract<DenseRequest, { op: "load" }>): void {
  free();
  const f = randomF32(r.rows * r.K, r.seed);
  if (r.dtype === "F32") w = glue.WeightBuf.from_f32(f, r.rows, r.K);
  else if (r.dtype === "F16") w = glue.WeightBuf.from_f16(glue.f32_to_f16(f), r.rows, r.K);
  else w = glue.WeightBuf.from_bf16(glue.f32_to_bf16(f), r.rows, r.K);
  x = glue.F32Buf.from_array(randomF32(r.M * r.K, r.seed + 1));
  y = new glue.F32Buf(r.M * r.rows);
  shape = { M: r.M, rows: r.rows };
}

/**
 * Runs every dtype's GEMM for ~0.3 s each so that V8's dynamic tiering has
 * replaced the baseline (Liftoff) code with optimized code before timing.
 */
function warmUp(): void {
  for (const dtype of ["F32", "F16", "BF16"] as const) {
    load({ op: "load", dtype, rows: 256, K: 512, M: 64, seed: 1 });
    const t0 = performance.now();
    while (performance.now() - t0 < 300) {
      glue.Kernels.matmul(x, shape.M, w, 0, shape.rows, y, 0, shape.rows);
    }
  }
  free();
}

async function handle(r: DenseRequest): Promise<DenseReply> {
  switch (r.op) {
    case "init": {
      glue = await import(r.glueUrl);
      glue.initSync({ module: new WebAssembly.Module(r.bytes as Uint8Array<ArrayBuffer>) });
      warmUp();
      return { ok: true, variant: glue.simd_variant?.() ?? "simd128" };
    }
    case "peak": {
      if (!glue.fma_peak) return { ok: false, message: "this module has no fma_peak" };
      const t0 = performance.now();
      glue.fma_peak(r.iters, 0.999, 0.001);
      return { ok: true, ms: performance.now() - t0 };
    }
    case "load":
      load(r);
      return { ok: true };
    case "gemm": {
      const t0 = performance.now();
      glue.Kernels.matmul(x, shape.M, w, 0, shape.rows, y, 0, shape.rows);
      return { ok: true, ms: performance.now() - t0 };
    }
    case "free":
      free();
      return { ok: true };
  }
}

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<DenseRequest>) => void) | null;
  postMessage(m: DenseReply): void;
};
scope.onmessage = (e) => {
  handle(e.data).then(
    (r) => scope.postMessage(r),
    (err) => scope.postMessage({ ok: false, message: String(err?.stack ?? err) }),
  );
};
