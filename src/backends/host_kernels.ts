// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Synchronous kernels over host memory (`Float32Array` in, `Float32Array`
 * out), implemented by the TypeScript reference and the WASM backend and
 * lifted to the device-resident `Backend` of `backend.ts` by `host.ts`.
 *
 * Layouts are row-major; activations are fp32 `[M, K]`; linear weights are
 * `[N, K]` like `nn.Linear.weight`. A backend may keep weights in its own
 * memory and dtype: the runtime only holds {@linkcode LinearHandle}s.
 *
 * @module
 */

import type { RawTensor } from "../io/safetensors.ts";
import type { LinearHandle, QuantLinearSource } from "./backend.ts";

/**
 * Synchronous host-memory kernels (the TypeScript reference and WASM
 * implement them); `hostBackend` in `host.ts` turns a set into a
 * device-resident `Backend`.
 */
export interface Kernels {
  /** Backend name shown to users (e.g. `wasm-simd128`, `typescript`). */
  readonly name: string;
  /**
   * Takes ownership of a dense weight `[N, K]` (any float dtype) and optional bias.
   * `transposed` means the tensor is stored `[K, N]` (GPT-2 Conv1D).
   */
  linearFromDense(w: RawTensor, bias: Float32Array | null, transposed: boolean): LinearHandle;
  /** Takes a GPTQ-packed linear. */
  linearFromGptq(q: QuantLinearSource): LinearHandle;
  /** `y[M,N] = x[M,K] · Wᵀ + b`. */
  linear(x: Float32Array, M: number, w: LinearHandle): Float32Array;
  /** Frees a linear's memory. */
  release(w: LinearHandle): void;
  /**
   * Frees what the backend holds beyond its linears (helper threads); the
   * model calls it on close. Linears still held become unusable.
   */
  dispose?(): void;
  /** RMSNorm of each row. */
  rmsNorm(x: Float32Array, M: number, H: number, weight: Float32Array, eps: number): Float32Array;
  /** LayerNorm of each row. */
  layerNorm(
    x: Float32Array,
    M: number,
    H: number,
    weight: Float32Array,
    bias: Float32Array | null,
    eps: number,
  ): Float32Array;
  /** Rotary embedding (rotate_half layout) in place on `[T, heads, headDim]`. */
  rope(
    x: Float32Array,
    T: number,
    heads: number,
    headDim: number,
    rotaryDim: number,
    positions: Int32Array,
    invFreq: Float32Array,
  ): void;
  /** Causal attention of T new queries over a cache holding past+T keys/values. */
  attention(
    q: Float32Array,
    T: number,
    Hq: number,
    Hkv: number,
    D: number,
    kCache: Float32Array,
    vCache: Float32Array,
    past: number,
  ): Float32Array;
  /** Applies an activation in place. */
  activate(x: Float32Array, act: string): void;
  /** `x = act(gate) * up` elementwise, into gate. */
  gatedActivate(gate: Float32Array, up: Float32Array, act: string): void;
}
