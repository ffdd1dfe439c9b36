// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Plain TypeScript reference kernels for the model runtime: slow, obvious,
 * fp32 (accumulating in float64 where that is free). They define what the
 * WASM/WebGPU/CUDA kernels must compute and are the oracle in their tests.
 *
 * Layouts: row-major; activations `[M, K]`; linear weights `[N, K]` like
 * `nn.Linear.weight`.
 *
 * @module
 */

/**
 * `y[M,N] = x[M,K] · wᵀ + bias`.
 *
 * @example
 * ```ts
 * import { refLinear } from "./ref_kernels.ts";
 * const y = refLinear(new Float32Array([1, 2]), 1, 2, new Float32Array([1, 0, 0, 1, 1, 1]), 3, null);
 * console.log(y); // Float32Array [1, 2, 3]
 * ```
 *
 * @param x Input `[M, K]`.
 * @param M Rows of x.
 * @param K Inner size.
 * @param w Weight `[N, K]`.
 * @param N Output features.
 * @param bias Optional `[N]`.
 * @returns `[M, N]`.
 */
export function refLinear(
  x: Float32Array,
  M: number,
  K: number,
  w: Float32Array,
  N: number,
  bias: Float32Array | null,
): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    const xo = m * K;
    for (let n = 0; n < N; n++) {
      const wo = n * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += x[xo + k]! * w[wo + k]!;
      y[m * N + n] = s + (bias ? bias[n]! : 0);
    }
  }
  return y;
}

/**
 * RMSNorm over rows: `x / sqrt(mean(x²) + eps) * weight` (computed in fp32
 * like HF's LlamaRMSNorm).
 *
 * @example
 * ```ts
 * import { refRmsNorm } from "./ref_kernels.ts";
 * console.log(refRmsNorm(new Float32Array([3, 4]), 1, 2, new Float32Array([1, 1]), 0));
 * ```
 *
 * @param x Input `[M, H]`.
 * @param M Rows.
 * @param H Row width.
 * @param weight `[H]`.
 * @param eps Epsilon.
 * @returns Normalized `[M, H]`.
 */
export function refRmsNorm(
  x: Float32Array,
  M: number,
  H: number,
  weight: Float32Array,
  eps: number,
): Float32Array {
  const y = new Float32Array(M * H);
  for (let m = 0; m < M; m++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[m * H + i]! * x[m * H + i]!;
    const r = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) y[m * H + i] = Math.fround(x[m * H + i]! * r) * weight[i]!;
  }
  return y;
}

/**
 * LayerNorm over rows (biased variance, as torch).
 *
 * @example
 * ```ts
 * import { refLayerNorm } from "./ref_kernels.ts";
 * const y = refLayerNorm(new Float32Array([1, 3]), 1, 2, new Float32Array([1, 1]), new Float32Array(2), 0);
 * console.log(y); // Float32Array [-1, 1]
 * ```
 *
 * @param x Input `[M, H]`.
 * @param M Rows.
 * @param H Row width.
 * @param weight `[H]`.
 * @param bias `[H]` or null.
 * @param eps Epsilon.
 * @returns Normalized `[M, H]`.
 */
export function refLayerNorm(
  x: Float32Array,
  M: number,
  H: number,
  weight: Float32Array,
  bias: Float32Array | null,
  eps: number,
): Float32Array {
  const y = new Float32Array(M * H);
  for (let m = 0; m < M; m++) {
    let mean = 0;
    for (let i = 0; i < H; i++) mean += x[m * H + i]!;
    mean /= H;
    let v = 0;
    for (let i = 0; i < H; i++) v += (x[m * H + i]! - mean) ** 2;
    const r = 1 / Math.sqrt(v / H + eps);
    for (let i = 0; i < H; i++) {
      y[m * H + i] = (x[m * H + i]! - mean) * r * weight[i]! + (bias ? bias[i]! : 0);
    }
  }
  return y;
}

/**
 * Rotary embedding in HF's `rotate_half` layout, in place, on the first
 * `rotaryDim` dims of each head: for i < rotaryDim/2, pairs (i, i + rotaryDim/2).
 *
 * @example
 * ```ts
 * import { refRope } from "./ref_kernels.ts";
 * const q = new Float32Array([1, 0, 0, 0]);
 * refRope(q, 1, 1, 4, 4, [0], new Float32Array([1, 0.01]));
 * console.log(q); // unchanged at position 0
 * ```
 *
 * @param x `[T, heads, headDim]`, modified in place.
 * @param T Tokens.
 * @param heads Heads.
 * @param headDim Head size.
 * @param rotaryDim Rotated dims (≤ headDim, even).
 * @param positions Position of each token.
 * @param invFreq `[rotaryDim/2]` inverse frequencies.
 */
export function refRope(
  x: Float32Array,
  T: number,
  heads: number,
  headDim: number,
  rotaryDim: number,
  positions: ArrayLike<number>,
  invFreq: Float32Array,
): void {
  const half = rotaryDim / 2;
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const ang = Math.fround(positions[t]! * invFreq[i]!);
      const c = Math.cos(ang), s = Math.sin(ang);
      for (let h = 0; h < heads; h++) {
        const o = (t * heads + h) * headDim;
        const a = x[o + i]!, b = x[o + i + half]!;
        x[o + i] = a * c - b * s;
        x[o + i + half] = b * c + a * s;
      }
    }
  }
}

/**
 * Causal multi-head attention with grouped KV heads over a cache.
 *
 * @example
 * ```ts
 * import { refAttention } from "./ref_kernels.ts";
 * const q = new Float32Array([1]), k = new Float32Array([1]), v = new Float32Array([5]);
 * console.log(refAttention(q, 1, 1, 1, 1, k, v, 0)); // Float32Array [5]
 * ```
 *
 * @param q `[T, Hq, D]`.
 * @param T New tokens.
 * @param Hq Query heads.
 * @param Hkv KV heads (Hq is a multiple).
 * @param D Head size.
 * @param kCache `[past + T, Hkv, D]` (at least).
 * @param vCache Same layout as kCache.
 * @param past Tokens already in the cache before these T.
 * @returns `[T, Hq, D]`.
 */
export function refAttention(
  q: Float32Array,
  T: number,
  Hq: number,
  Hkv: number,
  D: number,
  kCache: Float32Array,
  vCache: Float32Array,
  past: number,
): Float32Array {
  const out = new Float32Array(T * Hq * D);
  const scale = 1 / Math.sqrt(D);
  const group = Hq / Hkv;
  const scores = new Float64Array(past + T);
  for (let t = 0; t < T; t++) {
    const len = past + t + 1;
    for (let h = 0; h < Hq; h++) {
      const kh = Math.floor(h / group);
      const qo = (t * Hq + h) * D;
      let max = -Infinity;
      for (let s = 0; s < len; s++) {
        const ko = (s * Hkv + kh) * D;
        let d = 0;
        for (let i = 0; i < D; i++) d += q[qo + i]! * kCache[ko + i]!;
        scores[s] = d * scale;
        if (scores[s]! > max) max = scores[s]!;
      }
      let sum = 0;
      for (let s = 0; s < len; s++) {
        scores[s] = Math.exp(scores[s]! - max);
        sum += scores[s]!;
      }
      for (let s = 0; s < len; s++) {
        const p = scores[s]! / sum;
        const vo = (s * Hkv + kh) * D;
        for (let i = 0; i < D; i++) out[qo + i]! += p * vCache[vo + i]!;
      }
    }
  }
  return out;
}

/** Activation functions by their Hugging Face names. */
export const REF_ACTIVATIONS: Readonly<Record<string, (x: number) => number>> = {
  silu: (x) => x / (1 + Math.exp(-x)),
  relu: (x) => (x > 0 ? x : 0),
  gelu_new: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
};

/**
 * The error function (Abramowitz–Stegun 7.1.26 refined by one Newton-free
 * series for small |x|; absolute error below 1e-7, enough for fp32).
 *
 * @example
 * ```ts
 * import { erf } from "./ref_kernels.ts";
 * console.log(erf(0)); // 0
 * ```
 *
 * @param x The argument.
 * @returns erf(x).
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 0.5) {
    // Maclaurin series, converges fast here.
    let term = x, sum = x;
    const x2 = x * x;
    for (let n = 1; n < 12; n++) {
      term *= -x2 / n;
      sum += term / (2 * n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // Continued fraction / complementary via high-accuracy rational approx (W. J. Cody).
  const t = 1 / (1 + 0.5 * ax);
  const y = t *
    Math.exp(
      -ax * ax - 1.26551223 +
        t * (1.00002368 +
            t * (0.37409196 +
                t * (0.09678418 +
                    t * (-0.18628806 +
                        t * (0.27886807 +
                            t *
                              (-1.13520398 +
                                t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - y : y - 1;
}
