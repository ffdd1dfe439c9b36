// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The WebGPU backend's activation kernels besides the matmuls: norms, RoPE,
 * the qkv split, attention, elementwise ops and the reductions behind
 * `argmax`/`rowNll`. Each function encodes its dispatches on the context and
 * returns at once; only the reductions await (one submit and one readback).
 *
 * @module
 */

import { GptqError } from "../../errors.ts";
import type { QkvLayout } from "../backend.ts";
import type { Binding, GpuContext } from "./context.ts";
import { f32, type GpuTensor, grid, params, rowBlocks, span } from "./_common.ts";

/** Activation codes of `wgsl/elementwise.wgsl` by Hugging Face name. */
const ACT: Readonly<Record<string, number>> = {
  silu: 0,
  relu: 1,
  gelu_new: 2,
  gelu_tanh: 2,
  gelu_pytorch_tanh: 2,
  gelu: 3,
};

function actCode(act: string): number {
  const code = ACT[act];
  if (code === undefined) {
    throw new GptqError("UNSUPPORTED_ARCHITECTURE", `activation '${act}' is not supported`, {
      hint: `supported: ${Object.keys(ACT).join(", ")}`,
    });
  }
  return code;
}

function tensor(buf: GPUBuffer, rows: number, cols: number): GpuTensor {
  return { rows, cols, buf };
}

function fresh(ctx: GpuContext, rows: number, cols: number): GpuTensor {
  return tensor(ctx.buffer(rows * cols * 4), rows, cols);
}

/**
 * Calls `f` once per row block of `rows` rows such that every tensor's rows of the block fit a
 * binding of `limit` bytes, with each tensor's span of the block.
 */
function perBlock(
  rows: number,
  tensors: { buf: GPUBuffer; rowBytes: number }[],
  limit: number,
  f: (r0: number, n: number, spans: Binding[]) => void,
): void {
  const rowBytes = Math.max(...tensors.map((t) => t.rowBytes));
  for (const [r0, n] of rowBlocks(rows, rowBytes, limit)) {
    f(r0, n, tensors.map((t) => span(t.buf, r0 * t.rowBytes, n * t.rowBytes)));
  }
}

/** An elementwise dispatch over `n` f32s of each buffer (256 per workgroup, 2-D grid). */
function elementwise(
  ctx: GpuContext,
  entry: string,
  bufs: GPUBuffer[],
  n: number,
  op: number,
  limit: number,
): void {
  const pipe = ctx.pipeline("elementwise", entry);
  const tensors = bufs.map((buf) => ({ buf, rowBytes: 4 }));
  perBlock(n, tensors, limit, (_r0, len, spans) => {
    ctx.dispatch(pipe, spans, params(len, op), grid(ctx, Math.ceil(len / 256)));
  });
}

function sameSize(a: GpuTensor, b: GpuTensor, what: string): void {
  if (a.rows * a.cols !== b.rows * b.cols) {
    throw new GptqError(
      "SHAPE",
      `${what}: [${a.rows}, ${a.cols}] and [${b.rows}, ${b.cols}] differ in size`,
    );
  }
}

/**
 * RMSNorm of each row: `x / sqrt(mean(x²) + eps) · weight`.
 *
 * @example
 * ```ts ignore
 * const y = rmsNorm(ctx, x, w, 1e-6, limit);
 * ```
 *
 * @param ctx The context.
 * @param x `[M, H]`.
 * @param w `[1, H]`.
 * @param eps Epsilon.
 * @param limit The binding size limit in bytes.
 * @returns `[M, H]`.
 */
export function rmsNorm(
  ctx: GpuContext,
  x: GpuTensor,
  w: GpuTensor,
  eps: number,
  limit: number,
): GpuTensor {
  return norm(ctx, "rms_norm", x, w, null, eps, limit);
}

/**
 * LayerNorm of each row (biased variance).
 *
 * @example
 * ```ts ignore
 * const y = layerNorm(ctx, x, w, b, 1e-5, limit);
 * ```
 *
 * @param ctx The context.
 * @param x `[M, H]`.
 * @param w `[1, H]`.
 * @param b `[1, H]` or null.
 * @param eps Epsilon.
 * @param limit The binding size limit in bytes.
 * @returns `[M, H]`.
 */
export function layerNorm(
  ctx: GpuContext,
  x: GpuTensor,
  w: GpuTensor,
  b: GpuTensor | null,
  eps: number,
  limit: number,
): GpuTensor {
  return norm(ctx, "layer_norm", x, w, b, eps, limit);
}

function norm(
  ctx: GpuContext,
  entry: string,
  x: GpuTensor,
  w: GpuTensor,
  b: GpuTensor | null,
  eps: number,
  limit: number,
): GpuTensor {
  const y = fresh(ctx, x.rows, x.cols);
  const pipe = ctx.pipeline("norm", entry);
  const rowBytes = x.cols * 4;
  const rows = [{ buf: x.buf, rowBytes }, { buf: y.buf, rowBytes }];
  perBlock(x.rows, rows, limit, (_r0, n, [xs, ys]) => {
    const [gx, gy] = grid(ctx, n);
    const p = params(n, x.cols, f32(eps), b ? 1 : 0, gx);
    const bindings = entry === "rms_norm" ? [xs!, w.buf, ys!] : [xs!, w.buf, ys!, (b ?? w).buf];
    ctx.dispatch(pipe, bindings, p, [gx, gy]);
  });
  return y;
}

/**
 * Rotary embedding (rotate_half) in place on the first `rotaryDim` dims of each head,
 * positions `past .. past + T - 1`.
 *
 * @example
 * ```ts ignore
 * rope(ctx, q, 32, 128, 128, past, invFreq, limit);
 * ```
 *
 * @param ctx The context.
 * @param x `[T, heads·headDim]`, modified.
 * @param heads Heads.
 * @param headDim Head size.
 * @param rotaryDim Rotated dims (even, ≤ headDim).
 * @param past Position of the first row.
 * @param invFreq `[1, rotaryDim/2]`.
 * @param limit The binding size limit in bytes.
 */
export function rope(
  ctx: GpuContext,
  x: GpuTensor,
  heads: number,
  headDim: number,
  rotaryDim: number,
  past: number,
  invFreq: GpuTensor,
  limit: number,
): void {
  const half = rotaryDim >> 1;
  if (half === 0) return;
  const pipe = ctx.pipeline("rope", "rope");
  perBlock(x.rows, [{ buf: x.buf, rowBytes: heads * headDim * 4 }], limit, (r0, n, [xs]) => {
    const p = params(n, heads, headDim, half, past + r0);
    ctx.dispatch(pipe, [xs!, invFreq.buf], p, grid(ctx, Math.ceil((n * heads * half) / 256)));
  });
}

/**
 * Splits a fused qkv output `[T, 3·H·D]` into q, k, v `[T, H·D]`.
 *
 * @example
 * ```ts ignore
 * const [q, k, v] = splitQkv(ctx, qkv, 12, 64, "concat", limit);
 * ```
 *
 * @param ctx The context.
 * @param x The fused output.
 * @param heads Heads.
 * @param D Head size.
 * @param layout `concat` (`[q | k | v]`) or `per_head` (`[q_h | k_h | v_h]` per head).
 * @param limit The binding size limit in bytes.
 * @returns q, k, v.
 */
export function splitQkv(
  ctx: GpuContext,
  x: GpuTensor,
  heads: number,
  D: number,
  layout: QkvLayout,
  limit: number,
): [GpuTensor, GpuTensor, GpuTensor] {
  const T = x.rows, hd = heads * D;
  const q = fresh(ctx, T, hd), k = fresh(ctx, T, hd), v = fresh(ctx, T, hd);
  const pipe = ctx.pipeline("layout", "split_qkv");
  const tensors = [
    { buf: x.buf, rowBytes: 3 * hd * 4 },
    ...[q, k, v].map((t) => ({ buf: t.buf, rowBytes: hd * 4 })),
  ];
  perBlock(T, tensors, limit, (_r0, n, spans) => {
    const p = params(n, heads, D, layout === "per_head" ? 1 : 0);
    ctx.dispatch(pipe, spans, p, grid(ctx, Math.ceil((n * hd) / 256)));
  });
  return [q, k, v];
}

/** Largest head size the attention kernel takes. */
export const MAX_HEAD_DIM = 256;
const KEY_BLOCK = 64; // keys per block (attention.wgsl AW)
const MIN_GROUPS = 256; // split the keys when fewer (t, head) workgroups than this

/**
 * Options of {@linkcode attention} (for tests).
 */
export interface AttentionOptions {
  /** Key splits (default: chosen from the occupancy). */
  splits?: number;
}

/**
 * Causal attention of `q [T, Hq·D]` over caches `[≥ past+T, Hkv·D]` (online softmax; keys
 * split over several workgroups and merged when there are few queries).
 *
 * @example
 * ```ts ignore
 * const out = attention(ctx, q, 32, 8, 128, kCache, vCache, past);
 * ```
 *
 * @param ctx The context.
 * @param q Queries.
 * @param Hq Query heads.
 * @param Hkv KV heads (divides Hq).
 * @param D Head size (≤ {@linkcode MAX_HEAD_DIM}).
 * @param kc Key cache.
 * @param vc Value cache.
 * @param past Rows in the cache before these T.
 * @param opts Options.
 * @returns `[T, Hq·D]`.
 */
export function attention(
  ctx: GpuContext,
  q: GpuTensor,
  Hq: number,
  Hkv: number,
  D: number,
  kc: GpuTensor,
  vc: GpuTensor,
  past: number,
  opts: AttentionOptions = {},
): GpuTensor {
  if (D > MAX_HEAD_DIM || Hkv <= 0 || Hq % Hkv !== 0) {
    throw new GptqError(
      "UNSUPPORTED_ARCHITECTURE",
      `attention with Hq=${Hq}, Hkv=${Hkv}, head size ${D} is not supported by the WebGPU backend`,
      { hint: `head size at most ${MAX_HEAD_DIM} and Hq a multiple of Hkv; use --backend wasm` },
    );
  }
  const T = q.rows, len = past + T;
  if (
    q.cols !== Hq * D || kc.cols !== Hkv * D || vc.cols !== Hkv * D || kc.rows < len ||
    vc.rows < len
  ) {
    throw new GptqError(
      "SHAPE",
      `attention: q [${q.rows}, ${q.cols}], caches [${kc.rows}, ${kc.cols}] and ` +
        `[${vc.rows}, ${vc.cols}] for Hq=${Hq}, Hkv=${Hkv}, D=${D}, ${len} positions`,
    );
  }
  const out = fresh(ctx, T, Hq * D);
  if (T === 0) return out;
  let splits = opts.splits ??
    Math.min(Math.ceil(MIN_GROUPS / (T * Hq)), Math.ceil(len / (2 * KEY_BLOCK)));
  splits = Math.max(1, Math.min(splits, Math.ceil(len / KEY_BLOCK)));
  const chunk = Math.ceil(len / splits / KEY_BLOCK) * KEY_BLOCK;
  splits = Math.ceil(len / chunk);
  const p = params(
    T,
    Hq,
    Hkv,
    D,
    past,
    Hq * D,
    Hkv * D,
    chunk,
    splits,
    f32(1 / Math.sqrt(D)),
    D % 4 === 0 ? 1 : 0,
  );
  const attend = ctx.pipeline("attention", "attend");
  // Bind only the cache rows in use: a long preallocated cache may exceed the binding limit.
  const used = len * Hkv * D * 4;
  if (used > ctx.limits.maxStorageBufferBindingSize) {
    throw new GptqError(
      "WEBGPU",
      `a KV cache of ${len} rows (${used} bytes) exceeds the adapter's binding size ` +
        `${ctx.limits.maxStorageBufferBindingSize}`,
      { hint: "use a shorter context or --backend wasm" },
    );
  }
  const ks = span(kc.buf, 0, used), vs = span(vc.buf, 0, used);
  if (splits === 1) {
    ctx.dispatch(attend, [q.buf, ks, vs, out.buf], p, [1, Hq, T]);
    return out;
  }
  const part = ctx.buffer(T * Hq * splits * (D + 2) * 4);
  ctx.dispatch(attend, [q.buf, ks, vs, part], p, [splits, Hq, T]);
  const pc = params(Hq, D, splits, Hq * D);
  ctx.dispatch(ctx.pipeline("attention_combine", "combine"), [part, out.buf], pc, [Hq, T]);
  ctx.release(part);
  return out;
}

/**
 * `a += b` elementwise.
 *
 * @example
 * ```ts ignore
 * addInPlace(ctx, h, attnOut, limit);
 * ```
 *
 * @param ctx The context.
 * @param a Modified.
 * @param b Added.
 * @param limit The binding size limit in bytes.
 */
export function addInPlace(ctx: GpuContext, a: GpuTensor, b: GpuTensor, limit: number): void {
  sameSize(a, b, "addInPlace");
  elementwise(ctx, "add_inplace", [a.buf, b.buf], a.rows * a.cols, 0, limit);
}

/**
 * Applies an activation in place (`silu`, `relu`, `gelu`, `gelu_new`).
 *
 * @example
 * ```ts ignore
 * activate(ctx, h, "gelu_new", limit);
 * ```
 *
 * @param ctx The context.
 * @param x Modified.
 * @param act The activation's Hugging Face name.
 * @param limit The binding size limit in bytes.
 */
export function activate(ctx: GpuContext, x: GpuTensor, act: string, limit: number): void {
  elementwise(ctx, "activate", [x.buf], x.rows * x.cols, actCode(act), limit);
}

/**
 * `gate = act(gate) · up` elementwise.
 *
 * @example
 * ```ts ignore
 * gatedActivate(ctx, gate, up, "silu", limit);
 * ```
 *
 * @param ctx The context.
 * @param gate Modified.
 * @param up Multiplier.
 * @param act The activation's Hugging Face name.
 * @param limit The binding size limit in bytes.
 */
export function gatedActivate(
  ctx: GpuContext,
  gate: GpuTensor,
  up: GpuTensor,
  act: string,
  limit: number,
): void {
  sameSize(gate, up, "gatedActivate");
  const code = actCode(act);
  elementwise(ctx, "gated_activate", [gate.buf, up.buf], gate.rows * gate.cols, code, limit);
}

/** Encodes a per-row reduction over `rows` rows of x in binding-sized row blocks. */
function reduceRows(
  ctx: GpuContext,
  entry: string,
  x: GpuTensor,
  rows: number,
  out: GPUBuffer,
  extra: GPUBuffer[],
  maxBinding: number,
): void {
  const pipe = ctx.pipeline("reduce", entry);
  const rowBytes = x.cols * 4;
  for (const [r0, n] of rowBlocks(rows, rowBytes, maxBinding)) {
    const [gx, gy] = grid(ctx, n);
    const xb = span(x.buf, r0 * rowBytes, n * rowBytes);
    ctx.dispatch(pipe, [xb, out, ...extra], params(n, x.cols, r0, gx), [gx, gy]);
  }
}

/**
 * The index of each row's maximum (first on ties), reduced on the device.
 *
 * @example
 * ```ts ignore
 * const ids = await argmax(ctx, logits, limit);
 * ```
 *
 * @param ctx The context.
 * @param x `[rows, cols]`.
 * @param maxBinding The binding size limit in bytes.
 * @returns One index per row.
 */
export async function argmax(
  ctx: GpuContext,
  x: GpuTensor,
  maxBinding: number,
): Promise<Int32Array> {
  if (x.rows === 0) return new Int32Array(0);
  const out = ctx.buffer(x.rows * 4);
  reduceRows(ctx, "argmax_rows", x, x.rows, out, [], maxBinding);
  try {
    return new Int32Array(await ctx.read(out, 0, x.rows * 4));
  } finally {
    ctx.release(out);
  }
}

/**
 * Per row `t < targets.length`: `logsumexp(x[t]) − x[t, targets[t]]` in f32 on the device.
 *
 * @example
 * ```ts ignore
 * const nll = await rowNll(ctx, logits, targets, limit);
 * ```
 *
 * @param ctx The context.
 * @param x Logits `[≥ targets.length, vocab]`.
 * @param targets Target ids (checked by the caller).
 * @param maxBinding The binding size limit in bytes.
 * @returns The negative log-likelihoods.
 */
export async function rowNll(
  ctx: GpuContext,
  x: GpuTensor,
  targets: Int32Array,
  maxBinding: number,
): Promise<Float64Array> {
  const T = targets.length;
  if (T === 0) return new Float64Array(0);
  if (T > x.rows) {
    throw new GptqError("SHAPE", `rowNll: ${T} targets for ${x.rows} rows`);
  }
  const out = ctx.buffer(T * 4);
  const tg = ctx.upload(targets);
  reduceRows(ctx, "row_nll", x, T, out, [tg], maxBinding);
  ctx.discard(tg);
  try {
    return Float64Array.from(new Float32Array(await ctx.read(out, 0, T * 4)));
  } finally {
    ctx.release(out);
  }
}
