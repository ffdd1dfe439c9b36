// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The one device-resident interface every compute backend implements (the
 * TypeScript reference, WASM, WebGPU, later CUDA/HIP). The forward pass in
 * `src/runtime/model.ts` is written against it and never knows which backend
 * runs.
 *
 * Tensors live on the backend: weights are uploaded once at load (GPTQ
 * weights stay packed), activations, the KV cache and scratch buffers stay on
 * the device between operations. Every operation is *encoded* synchronously
 * and returns at once (a host backend computes it right away, a GPU backend
 * records it); the host sees data only at the model's edges, through the
 * three asynchronous reads: {@linkcode Backend.read} (a logits row),
 * {@linkcode Backend.argmax} (the greedy token) and
 * {@linkcode Backend.rowNll} (an eval window's log-likelihoods). A GPU backend
 * submits everything encoded so far when one of them is awaited, so a whole
 * decode step is one submit.
 *
 * Activations are fp32 matrices `[rows, cols]`, row-major. Linear weights are
 * `[N, K]` like `nn.Linear.weight`.
 *
 * @module
 */

import type { RawTensor } from "../io/safetensors.ts";
import type { QuantLinearTensors } from "../gptq/quant_linear.ts";
import type { ZeroFormat } from "../gptq/pack.ts";

/** An fp32 matrix `[rows, cols]` held by a backend. */
export interface Tensor {
  /** Rows. */
  readonly rows: number;
  /** Columns. */
  readonly cols: number;
}

/** A linear layer held by a backend. */
export interface LinearHandle {
  /** Output features. */
  readonly N: number;
  /** Input features. */
  readonly K: number;
  /** Bytes the backend keeps for it. */
  readonly bytes: number;
}

/** A table of rows (token embeddings, learned positions) held by a backend in its stored dtype. */
export interface TableHandle {
  /** Rows (vocabulary or positions). */
  readonly rows: number;
  /** Columns (hidden size). */
  readonly cols: number;
}

/** A GPTQ-quantized linear as read from a checkpoint. */
export interface QuantLinearSource {
  /** The packed tensors. */
  tensors: QuantLinearTensors;
  /** Zero-point convention of the checkpoint. */
  format: ZeroFormat;
}

/** Layout of a fused qkv projection's output. */
export type QkvLayout = "concat" | "per_head";

/** The operations the runtime needs from a backend. */
export interface Backend {
  /** Backend name shown to users (e.g. `wasm-simd128 ×2 threads`, `webgpu`). */
  readonly name: string;
  /** The device it runs on, in words (e.g. `CPU, 2 threads`, the adapter's name). */
  readonly device: string;

  // ---- weights (uploaded once) ----
  /**
   * Takes a dense weight `[N, K]` (any float dtype) and optional bias.
   * `transposed` means the tensor is stored `[K, N]` (GPT-2 Conv1D).
   */
  linearFromDense(w: RawTensor, bias: Float32Array | null, transposed: boolean): LinearHandle;
  /** Takes a GPTQ-packed linear. */
  linearFromGptq(q: QuantLinearSource): LinearHandle;
  /** Takes a 2-D table (embeddings, learned positions) in its stored float dtype. */
  tableFrom(raw: RawTensor): TableHandle;
  /** Uploads a small constant vector (norm weights, RoPE frequencies) as `[1, n]`. */
  constant(data: Float32Array): Tensor;
  /** Frees a linear or table. */
  release(w: LinearHandle | TableHandle): void;

  // ---- activations ----
  /** Uploads host data as `[rows, cols]`. */
  upload(data: Float32Array, rows: number, cols: number): Tensor;
  /** A zero-filled `[rows, cols]` (KV caches). */
  zeros(rows: number, cols: number): Tensor;
  /** Frees an activation (host backends may do nothing). */
  free(t: Tensor): void;
  /** `y[T, cols] = table[ids[t] + offset]` (ids are checked by the caller). */
  gather(table: TableHandle, ids: Int32Array, offset: number): Tensor;
  /** `y[M,N] = x[M,K] · Wᵀ + b`. */
  linear(x: Tensor, w: LinearHandle): Tensor;
  /** RMSNorm of each row. */
  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor;
  /** LayerNorm of each row. */
  layerNorm(x: Tensor, weight: Tensor, bias: Tensor | null, eps: number): Tensor;
  /**
   * Rotary embedding (rotate_half layout) in place on `x [T, heads·headDim]`,
   * rotating the first `rotaryDim` of each head at positions `past .. past+T`.
   */
  rope(
    x: Tensor,
    heads: number,
    headDim: number,
    rotaryDim: number,
    past: number,
    invFreq: Tensor,
  ): void;
  /** Copies `src` into `dst` starting at row `row` (KV cache append). */
  writeRows(dst: Tensor, src: Tensor, row: number): void;
  /** Copies `count` rows of `x` from `start` into a new tensor. */
  sliceRows(x: Tensor, start: number, count: number): Tensor;
  /** Splits a fused qkv output `[T, 3·H·D]` into q, k, v `[T, H·D]`. */
  splitQkv(x: Tensor, heads: number, headDim: number, layout: QkvLayout): [Tensor, Tensor, Tensor];
  /**
   * Causal attention of `q [T, Hq·D]` (T new tokens) over caches `[maxLen, Hkv·D]`
   * holding `past + T` rows; returns `[T, Hq·D]`.
   */
  attention(
    q: Tensor,
    Hq: number,
    Hkv: number,
    D: number,
    kCache: Tensor,
    vCache: Tensor,
    past: number,
  ): Tensor;
  /** `a += b` elementwise. */
  addInPlace(a: Tensor, b: Tensor): void;
  /** Applies an activation in place. */
  activate(x: Tensor, act: string): void;
  /** `gate = act(gate) * up` elementwise. */
  gatedActivate(gate: Tensor, up: Tensor, act: string): void;

  // ---- the edges (asynchronous) ----
  /** Reads a tensor back to the host. */
  read(x: Tensor): Promise<Float32Array>;
  /** The index of each row's maximum (first on ties). */
  argmax(x: Tensor): Promise<Int32Array>;
  /** Per row `t`: `−log softmax(x[t])[targets[t]]`, for `targets.length` rows. */
  rowNll(x: Tensor, targets: Int32Array): Promise<Float64Array>;
  /**
   * Host backends only: the tensor's data, synchronously (a view that the
   * caller must not modify). GPU backends leave it undefined.
   */
  readSync?(x: Tensor): Float32Array;

  /** Frees everything the backend holds (helper threads, device); handles become unusable. */
  dispose?(): void;
}
