// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Dense linears and tables (embeddings) on the WebGPU device, kept in their
 * stored dtype (f32, f16, bf16; other float dtypes become f32), and the
 * kernels that use them: the dense matmul (`wgsl/matmul.wgsl`: a GEMV for
 * decode, a tiled GEMM for prefill) and the embedding gather
 * (`wgsl/gather.wgsl`).
 *
 * A weight larger than the binding limit is split by output rows (a table by
 * rows) into several buffers, one dispatch each; activations larger than the
 * limit are processed in row blocks.
 *
 * @module
 */

import { GptqError } from "../../errors.ts";
import { toFloat32 } from "../../io/dtype.ts";
import type { RawTensor } from "../../io/safetensors.ts";
import type { LinearHandle, TableHandle } from "../backend.ts";
import type { GpuContext } from "./context.ts";
import { type GpuTensor, grid, params, rowBlocks, span } from "./_common.ts";

/** The dtypes weights and tables are kept in on the device. */
export type StoredDType = "F32" | "F16" | "BF16";

/** A dense linear on the device: `[N, K]` rows padded to `K4·4`, split by output rows. */
export interface GpuDenseLinear extends LinearHandle {
  /** Stored dtype. */
  readonly dtype: StoredDType;
  /** Padded row length / 4. */
  readonly K4: number;
  /** Row chunks: `rows` output features from `n0`, each in its own buffer. */
  readonly chunks: readonly { buf: GPUBuffer; n0: number; rows: number }[];
  /** The f32 bias `[N]`, or null. */
  readonly bias: GPUBuffer | null;
}

/** A table on the device, split by rows. */
export interface GpuTable extends TableHandle {
  /** Stored dtype. */
  readonly dtype: StoredDType;
  /** Row chunks: `rows` rows from `r0`, each in its own buffer. */
  readonly chunks: readonly { buf: GPUBuffer; r0: number; rows: number }[];
  /** Bytes held. */
  readonly bytes: number;
}

const W_PRELUDE: Record<StoredDType, string> = {
  F32: `@group(0) @binding(3) var<storage, read> W: array<vec4<f32>>;
fn load_w4(i: u32) -> vec4<f32> { return W[i]; }
`,
  F16: `@group(0) @binding(3) var<storage, read> W: array<vec2<u32>>;
fn load_w4(i: u32) -> vec4<f32> {
  let p = W[i];
  return vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y));
}
`,
  BF16: `@group(0) @binding(3) var<storage, read> W: array<vec2<u32>>;
fn load_w4(i: u32) -> vec4<f32> {
  let p = W[i];
  return vec4<f32>(bitcast<f32>(p.x << 16u), bitcast<f32>(p.x & 0xffff0000u),
                   bitcast<f32>(p.y << 16u), bitcast<f32>(p.y & 0xffff0000u));
}
`,
};

const T_PRELUDE: Record<StoredDType, string> = {
  F32: `@group(0) @binding(2) var<storage, read> Tb: array<f32>;
fn load_t(e: u32) -> f32 { return Tb[e]; }
`,
  F16: `@group(0) @binding(2) var<storage, read> Tb: array<u32>;
fn load_t(e: u32) -> f32 {
  let v = unpack2x16float(Tb[e >> 1u]);
  return select(v.x, v.y, (e & 1u) == 1u);
}
`,
  BF16: `@group(0) @binding(2) var<storage, read> Tb: array<u32>;
fn load_t(e: u32) -> f32 {
  let w = Tb[e >> 1u];
  return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (e & 1u) == 1u));
}
`,
};

/** Rows of x up to which the GEMV kernel runs instead of the tiled GEMM. */
export const GEMV_MAX_ROWS = 4;
const GV_ROWS = 8; // output features per GEMV workgroup (matmul.wgsl)
const TILE = 64; // GEMM tile (matmul.wgsl)

/** The tensor's elements in a stored dtype: a view when aligned, else a copy. */
function elements(raw: RawTensor): { dtype: StoredDType; data: Float32Array | Uint16Array } {
  const d = raw.data;
  if (raw.dtype === "F16" || raw.dtype === "BF16") {
    const a = d.byteOffset % 2 === 0 ? d : d.slice();
    return { dtype: raw.dtype, data: new Uint16Array(a.buffer, a.byteOffset, a.byteLength / 2) };
  }
  if (raw.dtype === "F32") {
    const a = d.byteOffset % 4 === 0 ? d : d.slice();
    return { dtype: "F32", data: new Float32Array(a.buffer, a.byteOffset, a.byteLength / 4) };
  }
  return { dtype: "F32", data: toFloat32(d, raw.dtype) };
}

function check2d(raw: RawTensor, what: string): [number, number] {
  if (raw.shape.length !== 2) {
    throw new GptqError("SHAPE", `${what} must be 2-D, got [${raw.shape.join(", ")}]`);
  }
  return raw.shape as [number, number];
}

/**
 * Uploads a dense weight (`[N, K]`, or `[K, N]` when `transposed`) and bias.
 *
 * @example
 * ```ts ignore
 * const w = uploadDenseLinear(ctx, { dtype: "F16", shape: [N, K], data }, null, false, limit);
 * ```
 *
 * @param ctx The context.
 * @param raw The weight.
 * @param bias `[N]` or null.
 * @param transposed Stored `[K, N]` (GPT-2 Conv1D).
 * @param maxBinding The binding size limit in bytes (a chunk's size).
 * @returns The handle.
 */
export function uploadDenseLinear(
  ctx: GpuContext,
  raw: RawTensor,
  bias: Float32Array | null,
  transposed: boolean,
  maxBinding: number,
): GpuDenseLinear {
  const [a, b] = check2d(raw, "a linear weight");
  const N = transposed ? b : a, K = transposed ? a : b;
  if (bias && bias.length !== N) {
    throw new GptqError("SHAPE", `bias has ${bias.length} values for ${N} output features`);
  }
  const { dtype, data } = elements(raw);
  const K4 = Math.ceil(K / 4), Kp = K4 * 4;
  const rowBytes = Kp * (dtype === "F32" ? 4 : 2);
  if (rowBytes > maxBinding) {
    throw new GptqError(
      "WEBGPU",
      `a weight row of ${rowBytes} bytes exceeds the ${maxBinding}-byte binding limit`,
    );
  }
  const per = Math.floor(maxBinding / rowBytes);
  const chunks: { buf: GPUBuffer; n0: number; rows: number }[] = [];
  let bytes = 0;
  for (let n0 = 0; n0 < N; n0 += per) {
    const rows = Math.min(per, N - n0);
    const part = packRows(data, N, K, Kp, transposed, n0, rows);
    chunks.push({ buf: ctx.upload(part), n0, rows });
    bytes += part.byteLength;
  }
  const biasBuf = bias ? ctx.upload(bias) : null;
  if (bias) bytes += bias.byteLength;
  return { N, K, bytes, dtype, K4, chunks, bias: biasBuf };
}

/** Rows `n0 .. n0+rows` of `[N, K]` (or of the transpose of `[K, N]`), padded to Kp. */
function packRows<T extends Float32Array | Uint16Array>(
  src: T,
  N: number,
  K: number,
  Kp: number,
  transposed: boolean,
  n0: number,
  rows: number,
): T {
  if (!transposed && Kp === K) return src.subarray(n0 * K, (n0 + rows) * K) as T;
  const out = new (src.constructor as new (n: number) => T)(rows * Kp);
  if (!transposed) {
    for (let r = 0; r < rows; r++) out.set(src.subarray((n0 + r) * K, (n0 + r + 1) * K), r * Kp);
  } else {
    for (let k = 0; k < K; k++) {
      const o = k * N + n0;
      for (let r = 0; r < rows; r++) out[r * Kp + k] = src[o + r]!;
    }
  }
  return out;
}

/**
 * Encodes `y[M, N] = x[M, K] · Wᵀ + bias` (GEMV for M ≤ {@linkcode GEMV_MAX_ROWS},
 * tiled GEMM above, in row blocks when x or y exceed the binding limit).
 *
 * @example
 * ```ts ignore
 * encodeDenseLinear(ctx, x, w, y.buf, dummy, limit);
 * ```
 *
 * @param ctx The context.
 * @param x Input `[M, K]`.
 * @param w The weight.
 * @param y Output buffer (`M·N` f32).
 * @param dummy Any small storage buffer (bound when there is no bias).
 * @param maxBinding The binding size limit in bytes.
 */
export function encodeDenseLinear(
  ctx: GpuContext,
  x: GpuTensor,
  w: GpuDenseLinear,
  y: GPUBuffer,
  dummy: GPUBuffer,
  maxBinding: number,
): void {
  const M = x.rows, { N, K, K4 } = w;
  const bias = w.bias ?? dummy, hasBias = w.bias ? 1 : 0;
  const prelude = W_PRELUDE[w.dtype];
  if (M <= GEMV_MAX_ROWS) {
    const pipe = ctx.pipeline("matmul", "gemv", { MT: M <= 1 ? 1 : GEMV_MAX_ROWS }, prelude);
    for (const c of w.chunks) {
      const [gx, gy] = grid(ctx, Math.ceil(c.rows / GV_ROWS));
      const p = params(M, N, K, K4, c.n0, c.rows, hasBias, gx);
      ctx.dispatch(pipe, [x.buf, bias, c.buf, y], p, [gx, gy]);
    }
    return;
  }
  const pipe = ctx.pipeline("matmul", "gemm", {}, prelude);
  const blocks = rowBlocks(M, Math.max(K, N) * 4, maxBinding);
  for (const [m0, mb] of blocks) {
    const xb = span(x.buf, m0 * K * 4, mb * K * 4);
    const yb = span(y, m0 * N * 4, mb * N * 4);
    for (const c of w.chunks) {
      const p = params(mb, N, K, K4, c.n0, c.rows, hasBias, 0);
      ctx.dispatch(pipe, [xb, bias, c.buf, yb], p, [
        Math.ceil(c.rows / TILE),
        Math.ceil(mb / TILE),
      ]);
    }
  }
}

/**
 * Frees a dense linear's buffers (after the commands already encoded).
 *
 * @example
 * ```ts ignore
 * releaseDenseLinear(ctx, w);
 * ```
 *
 * @param ctx The context.
 * @param w The weight.
 */
export function releaseDenseLinear(ctx: GpuContext, w: GpuDenseLinear): void {
  for (const c of w.chunks) ctx.discard(c.buf);
  if (w.bias) ctx.discard(w.bias);
}

/**
 * Uploads a 2-D table in its stored dtype, split by rows under the binding limit.
 *
 * @example
 * ```ts ignore
 * const t = uploadTable(ctx, { dtype: "BF16", shape: [vocab, hidden], data }, limit);
 * ```
 *
 * @param ctx The context.
 * @param raw The table.
 * @param maxBinding The binding size limit in bytes.
 * @returns The handle.
 */
export function uploadTable(ctx: GpuContext, raw: RawTensor, maxBinding: number): GpuTable {
  const [rows, cols] = check2d(raw, "a table");
  const { dtype, data } = elements(raw);
  const rowBytes = cols * (dtype === "F32" ? 4 : 2);
  if (rowBytes > maxBinding) {
    throw new GptqError(
      "WEBGPU",
      `a table row of ${rowBytes} bytes exceeds the ${maxBinding}-byte binding limit`,
    );
  }
  const per = Math.floor(maxBinding / rowBytes);
  const chunks: { buf: GPUBuffer; r0: number; rows: number }[] = [];
  for (let r0 = 0; r0 < rows; r0 += per) {
    const n = Math.min(per, rows - r0);
    chunks.push({ buf: ctx.upload(data.subarray(r0 * cols, (r0 + n) * cols)), r0, rows: n });
  }
  return { rows, cols, dtype, chunks, bytes: rows * rowBytes };
}

/**
 * Encodes `y[t, :] = table[ids[t] + offset, :]` (ids are checked by the caller).
 *
 * @example
 * ```ts ignore
 * encodeGather(ctx, table, new Int32Array([5, 9]), 0, y.buf);
 * ```
 *
 * @param ctx The context.
 * @param table The table.
 * @param ids Row ids.
 * @param offset Added to every id.
 * @param y Output buffer (`ids.length · cols` f32).
 */
export function encodeGather(
  ctx: GpuContext,
  table: GpuTable,
  ids: Int32Array,
  offset: number,
  y: GPUBuffer,
): void {
  if (ids.length === 0) return;
  const idBuf = ctx.upload(ids);
  const pipe = ctx.pipeline("gather", "gather", {}, T_PRELUDE[table.dtype]);
  const n = ids.length * table.cols;
  const groups = grid(ctx, Math.ceil(n / 256));
  for (const c of table.chunks) {
    if (!ids.some((id) => id + offset >= c.r0 && id + offset < c.r0 + c.rows)) continue;
    const p = params(ids.length, table.cols, offset, c.r0, c.rows);
    ctx.dispatch(pipe, [idBuf, c.buf, y], p, groups);
  }
  ctx.discard(idBuf);
}

/**
 * Frees a table's buffers (after the commands already encoded).
 *
 * @example
 * ```ts ignore
 * releaseTable(ctx, t);
 * ```
 *
 * @param ctx The context.
 * @param t The table.
 */
export function releaseTable(ctx: GpuContext, t: GpuTable): void {
  for (const c of t.chunks) ctx.discard(c.buf);
}
