// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * GPTQ dequant-matmul on WebGPU: the packed weights stay on the device, and
 * `y[M, N] = x[M, K] · Wᵀ + bias` runs as a fused dequantizing GEMV (decode,
 * M ≤ 8, `wgsl/gptq_gemv.wgsl`) or a tiled dequantizing GEMM (prefill,
 * `wgsl/gptq_gemm.wgsl`), both accumulating in f32.
 *
 * Load-time layout (done once, in {@linkcode uploadGptqLinear}):
 * - Act-order (`g_idx` not monotone) is resolved ExLlama's way: the input
 *   rows are sorted by group (stable), the weights repacked in that order, and
 *   the permutation kept; at run time `wgsl/gather_cols.wgsl` gathers x's
 *   columns into a scratch buffer first. Layers in order pay nothing.
 * - `qw`: `[K/32 chunks][bits words][N]` u32. For 2/4/8 bits this is GPTQ's
 *   own `qweight` (uploaded as is when nothing needs repacking); 3 bits are
 *   repacked so that no code straddles two words: per chunk two words of
 *   2-bit low parts (16 codes each) and one word of the 32 high bits.
 * - `sz`: `[G, N]` u32, the fp16 scale in the low half and the zero point as
 *   fp16 in the high half (v1 zeros get their +1 back here), read with
 *   `unpack2x16float`.
 * - `aux`: the bias as f32 bits `[N]` (zeros without one), then, only when
 *   the sorted groups are not all `gs` rows long, the group of each sorted
 *   row `[K]`; otherwise the kernels compute `k / gs`.
 * - A tensor larger than the binding limit is split by output columns into
 *   slices of a multiple of 32 columns, one dispatch each.
 *
 * @module
 */

import { GptqError } from "../../errors.ts";
import type { Bits } from "../../gptq/pack.ts";
import { gptqLayout, ZERO_HIGH_BITS } from "../_gptq_layout.ts";
import type { LinearHandle, QuantLinearSource } from "../backend.ts";
import type { Binding, GpuContext } from "./context.ts";

/** One column slice of a GPTQ linear (one binding per tensor). */
export interface GptqSlice {
  /** First output column. */
  readonly n0: number;
  /** Columns (a multiple of 32, except never past N). */
  readonly cols: number;
  /** Packed codes `[K/32][bits][cols]` u32. */
  readonly qw: GPUBuffer;
  /** Scale and zero pairs `[G, cols]` (f16 scale | f16 zero << 16). */
  readonly sz: GPUBuffer;
}

/** A GPTQ linear held by the WebGPU backend. */
export interface GpuGptqLinear extends LinearHandle {
  /** Bit width. */
  readonly bits: Bits;
  /** Number of groups. */
  readonly G: number;
  /** Group size of the sorted rows, or 0 when `aux` carries a group table. */
  readonly gs: number;
  /** Act-order permutation (`u32 [K]`: sorted row i is input row perm[i]), or null. */
  readonly perm: GPUBuffer | null;
  /** Bias bits `[N]` then, when `gs` is 0, the sorted rows' groups `[K]`. */
  readonly aux: GPUBuffer;
  /** The column slices. */
  readonly slices: readonly GptqSlice[];
  /** The binding size limit the slices were cut for (also bounds the row blocks of x and y). */
  readonly maxBindingBytes: number;
  /** The context that owns the buffers. */
  readonly ctx: GpuContext;
}

/** Options of {@linkcode uploadGptqLinear}. */
export interface UploadGptqOptions {
  /** Largest binding in bytes; default the device's `maxStorageBufferBindingSize` (tests lower it). */
  maxBindingBytes?: number;
}

/** Rows up to which {@linkcode encodeGptqLinear} runs the GEMV kernel. */
export const GEMV_MAX_ROWS = 8;

/**
 * Repacks the columns `n0 .. n0+cols` of `qweight` into the kernels' layout,
 * with the input rows in sorted order.
 */
function packSlice(
  qweight: Int32Array,
  K: number,
  N: number,
  bits: Bits,
  perm: Int32Array | null,
  n0: number,
  cols: number,
): Uint32Array {
  const out = new Uint32Array((K / 32) * bits * cols);
  const mask = (1 << bits) - 1;
  for (let i = 0; i < K; i++) {
    const p = perm ? perm[i]! : i;
    const bit = p * bits;
    const src = (bit >>> 5) * N + n0;
    const sh = bit & 31;
    const straddle = sh + bits > 32;
    const c = i >>> 5, j = i & 31;
    if (bits === 3) {
      const lo = (c * 3 + (j >>> 4)) * cols, loSh = 2 * (j & 15), hi = (c * 3 + 2) * cols;
      for (let n = 0; n < cols; n++) {
        let v = qweight[src + n]! >>> sh;
        if (straddle) v |= qweight[src + N + n]! << (32 - sh);
        v &= mask;
        out[lo + n]! |= (v & 3) << loSh;
        out[hi + n]! |= (v >>> 2) << j;
      }
    } else {
      const per = 32 / bits;
      const row = (c * bits + Math.floor(j / per)) * cols, dsh = (j % per) * bits;
      for (let n = 0; n < cols; n++) out[row + n]! |= ((qweight[src + n]! >>> sh) & mask) << dsh;
    }
  }
  return out;
}

/**
 * Uploads a GPTQ linear: validates it, resolves act-order, repacks where the
 * kernels need it and splits it into column slices that fit one binding.
 *
 * @example
 * ```ts ignore
 * import { GpuContext } from "./context.ts";
 * import { uploadGptqLinear, releaseGptqLinear } from "./_gptq.ts";
 * const ctx = await GpuContext.create();
 * const w = uploadGptqLinear(ctx, { tensors, format: "gptq" }); // tensors from readQuantLinear
 * console.log(w.N, w.K, w.bytes);
 * releaseGptqLinear(w);
 * ```
 *
 * @param ctx The device.
 * @param q The packed tensors and zero format.
 * @param opts The binding size limit (for tests).
 * @returns The handle.
 * @throws {GptqError} `SHAPE`/`GPTQ_FORMAT` on inconsistent tensors, `WEBGPU` when 32 columns do not fit a binding.
 */
export function uploadGptqLinear(
  ctx: GpuContext,
  q: QuantLinearSource,
  opts: UploadGptqOptions = {},
): GpuGptqLinear {
  const t = q.tensors;
  const { K, N, G, bits } = t;
  const limit = opts.maxBindingBytes ?? ctx.limits.maxStorageBufferBindingSize;

  const { perm: permHost, sortedGroups, groupSize: gs, zeros } = gptqLayout(q);

  const auxHost = new Uint32Array(N + (gs ? 0 : K));
  if (t.bias) auxHost.set(new Uint32Array(t.bias.buffer, t.bias.byteOffset, N));
  if (!gs) auxHost.set(sortedGroups, N);
  if (auxHost.byteLength > limit) {
    throw new GptqError("WEBGPU", `the bias and group table of a ${N}x${K} layer exceed a binding`);
  }

  // Column slices of a multiple of 32 columns that fit one binding each.
  const perCol = Math.max((K / 32) * bits * 4, G * 4);
  const maxCols = Math.floor(limit / perCol / 32) * 32;
  if (maxCols < 32) {
    throw new GptqError(
      "WEBGPU",
      `32 columns of a ${N}x${K} ${bits}-bit layer (${
        32 * perCol
      } bytes) exceed the binding limit ${limit}`,
    );
  }
  const nSlices = Math.ceil(N / maxCols);
  const width = Math.ceil(N / nSlices / 32) * 32;

  const repack = permHost !== null || bits === 3 || nSlices > 1;
  const buffers: GPUBuffer[] = [];
  const slices: GptqSlice[] = [];
  try {
    for (let n0 = 0; n0 < N; n0 += width) {
      const cols = Math.min(width, N - n0);
      const qw = ctx.upload(
        repack ? packSlice(t.qweight, K, N, bits, permHost, n0, cols) : t.qweight,
      );
      buffers.push(qw);
      const szHost = new Uint32Array(G * cols);
      for (let g = 0; g < G; g++) {
        for (let n = 0; n < cols; n++) {
          const i = g * N + n0 + n;
          szHost[g * cols + n] = t.scales[i]! | ZERO_HIGH_BITS[zeros[i]!]!;
        }
      }
      const sz = ctx.upload(szHost);
      buffers.push(sz);
      slices.push({ n0, cols, qw, sz });
    }
    const aux = ctx.upload(auxHost);
    buffers.push(aux);
    const perm = permHost ? ctx.upload(permHost) : null;
    if (perm) buffers.push(perm);
    return {
      N,
      K,
      bytes: buffers.reduce((s, b) => s + b.size, 0),
      bits,
      G,
      gs,
      perm,
      aux,
      slices,
      maxBindingBytes: limit,
      ctx,
    };
  } catch (e) {
    for (const b of buffers) b.destroy();
    throw e;
  }
}

/** Rows per block so that x and y blocks fit a binding at aligned offsets. */
function rowBlock(ctx: GpuContext, M: number, K: number, N: number, limit: number): number {
  const rowBytes = Math.max(K, N) * 4;
  if (M * rowBytes <= limit) return M;
  const align = ctx.limits.minStorageBufferOffsetAlignment;
  let step = 1;
  while ((step * K * 4) % align !== 0 || (step * N * 4) % align !== 0) step++;
  const rows = Math.floor(Math.floor(limit / rowBytes) / step) * step;
  if (rows < 1) {
    throw new GptqError("WEBGPU", `${step} rows of a ${N}x${K} linear's input exceed a binding`);
  }
  return rows;
}

function gemvShape(K: number): [number, number] {
  const C = K / 32;
  let wy = 4;
  while (wy < 64 && wy * 4 <= C) wy *= 2;
  return [256 / wy, wy];
}

function gemvPipeline(
  ctx: GpuContext,
  bits: Bits,
  rows: number,
  K: number,
): [GPUComputePipeline, number] {
  const mr = rows;
  const [wx, wy] = gemvShape(K);
  const wpc = bits === 3 ? 2 : bits;
  const cpw = bits === 3 ? 16 : 32 / bits;
  const prelude =
    `const BITS: u32 = ${bits}u;\nconst MR: u32 = ${mr}u;\nconst WX: u32 = ${wx}u;\n` +
    `const WY: u32 = ${wy}u;\nconst WPC: u32 = ${wpc}u;\nconst CPW: u32 = ${cpw}u;\n`;
  return [ctx.pipeline("gptq_gemv", "main", {}, prelude), wx];
}

/**
 * Encodes `y[M, N] = x[M, K] · Wᵀ + bias` (f32, row-major): the act-order
 * gather when the layer has one, then the GEMV (M ≤ {@linkcode GEMV_MAX_ROWS})
 * or the GEMM, one dispatch per column slice (and per row block when x or y
 * would exceed a binding).
 *
 * @example
 * ```ts ignore
 * import { encodeGptqLinear } from "./_gptq.ts";
 * const x = ctx.buffer(M * w.K * 4), y = ctx.buffer(M * w.N * 4);
 * encodeGptqLinear(ctx, x, M, w, y);
 * const out = new Float32Array(await ctx.read(y, 0, M * w.N * 4));
 * ```
 *
 * @param ctx The device.
 * @param x Input `[M, K]` f32.
 * @param M Rows.
 * @param w The layer.
 * @param y Output `[M, N]` f32 (written, not accumulated).
 */
export function encodeGptqLinear(
  ctx: GpuContext,
  x: GPUBuffer,
  M: number,
  w: GpuGptqLinear,
  y: GPUBuffer,
): void {
  if (M <= 0) return;
  const { K, N } = w;
  if (w.slices.length === 0) throw new Error("bug: the GPTQ linear was released");
  const rb = rowBlock(ctx, M, K, N, w.maxBindingBytes);
  const params = new Uint32Array(8);
  for (let m0 = 0; m0 < M; m0 += rb) {
    const mb = Math.min(rb, M - m0);
    let xb: Binding = { buffer: x, offset: m0 * K * 4, size: mb * K * 4 };
    let scratch: GPUBuffer | null = null;
    if (w.perm) {
      scratch = ctx.buffer(mb * K * 4);
      const groups = Math.ceil((mb * K) / 256);
      const gx = Math.min(groups, 65535);
      ctx.dispatch(
        ctx.pipeline("gather_cols", "main"),
        [xb, w.perm, { buffer: scratch, offset: 0, size: mb * K * 4 }],
        new Uint32Array([mb, K]),
        [gx, Math.ceil(groups / gx)],
      );
      xb = { buffer: scratch, offset: 0, size: mb * K * 4 };
    }
    const yb: Binding = { buffer: y, offset: m0 * N * 4, size: mb * N * 4 };
    for (const s of w.slices) {
      const nv = s.cols / 4;
      params.set([mb, K, nv, N / 4, s.n0, w.gs, N, 0]);
      if (mb <= GEMV_MAX_ROWS) {
        const [p, wx] = gemvPipeline(ctx, w.bits, mb, K);
        ctx.dispatch(p, [xb, s.qw, s.sz, w.aux, yb], params, [Math.ceil(nv / wx)]);
      } else {
        const p = ctx.pipeline("gptq_gemm", "main", {}, `const BITS: u32 = ${w.bits}u;\n`);
        ctx.dispatch(p, [xb, s.qw, s.sz, w.aux, yb], params, [
          Math.ceil(nv / 16),
          Math.ceil(mb / 64),
        ]);
      }
    }
    if (scratch) ctx.release(scratch);
  }
}

/**
 * Frees a GPTQ linear's buffers (after the commands encoded so far that use
 * them are submitted).
 *
 * @example
 * ```ts ignore
 * import { releaseGptqLinear } from "./_gptq.ts";
 * releaseGptqLinear(w);
 * ```
 *
 * @param w The layer; unusable afterwards.
 */
export function releaseGptqLinear(w: GpuGptqLinear): void {
  if (w.slices.length === 0) return;
  const bufs = [w.aux, ...w.slices.flatMap((s) => [s.qw, s.sz])];
  if (w.perm) bufs.push(w.perm);
  for (const b of bufs) w.ctx.discard(b);
  (w.slices as GptqSlice[]).length = 0;
}
