// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Small helpers shared by the WebGPU backend's modules: the tensor type,
 * params packing, 2-D grids and row blocks that keep bindings under the
 * adapter's binding size.
 *
 * @module
 */

import type { Tensor } from "../backend.ts";
import type { Binding, GpuContext } from "./context.ts";

/** A WebGPU activation: fp32 `[rows, cols]`, row-major, in a pooled storage buffer. */
export interface GpuTensor extends Tensor {
  /** The buffer (at least `rows·cols·4` bytes). */
  readonly buf: GPUBuffer;
}

/** An f32 field of a params struct (other numbers are written as u32/i32). */
export interface F32Field {
  /** The value. */
  readonly f32: number;
}

/**
 * Marks a params field as f32.
 *
 * @example
 * ```ts
 * import { f32, params } from "./_common.ts";
 * const p = params(3, f32(1e-5)); // { u32 3, f32 1e-5 }
 * console.log(p.byteLength); // 8
 * ```
 *
 * @param v The value.
 * @returns The field.
 */
export function f32(v: number): F32Field {
  return { f32: v };
}

/**
 * Packs the words of a params struct: numbers as u32 (negative ones as i32),
 * {@linkcode f32} fields as f32.
 *
 * @example
 * ```ts
 * import { params } from "./_common.ts";
 * console.log(params(1, 2, -1)); // Uint32Array [1, 2, 4294967295]
 * ```
 *
 * @param fields The fields in struct order.
 * @returns The bytes.
 */
export function params(...fields: Array<number | F32Field>): Uint32Array {
  const u = new Uint32Array(fields.length);
  const f = new Float32Array(u.buffer);
  fields.forEach((v, i) => {
    if (typeof v === "number") u[i] = v >>> 0;
    else f[i] = v.f32;
  });
  return u;
}

/**
 * A 2-D grid of `groups` workgroups (x at most the per-dimension limit); kernels
 * index `wid.x + wid.y · gx` and skip the extra ones.
 *
 * @example
 * ```ts ignore
 * const [gx, gy] = grid(ctx, 100_000); // [65535, 2]
 * ```
 *
 * @param ctx The context (for the limit).
 * @param groups Workgroups needed (≥ 0).
 * @returns `[gx, gy]`.
 */
export function grid(ctx: GpuContext, groups: number): [number, number] {
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  const gx = Math.max(1, Math.min(groups, max));
  return [gx, Math.ceil(groups / gx)];
}

/**
 * Row blocks `[start, count]` of a `[rows, ·]` activation such that each block's bytes fit a
 * binding of `limit` bytes; every start is a multiple of 64 rows, so block offsets keep the
 * 256-byte storage offset alignment.
 *
 * @example
 * ```ts
 * import { rowBlocks } from "./_common.ts";
 * console.log(rowBlocks(130, 256, 4096)); // [[0, 64], [64, 64], [128, 2]]
 * ```
 *
 * @param rows Rows.
 * @param rowBytes Bytes per row.
 * @param limit Binding size limit.
 * @returns The blocks (one when everything fits).
 */
export function rowBlocks(rows: number, rowBytes: number, limit: number): [number, number][] {
  if (rows * rowBytes <= limit) return [[0, rows]];
  const per = Math.max(64, Math.floor(limit / rowBytes / 64) * 64);
  const out: [number, number][] = [];
  for (let r = 0; r < rows; r += per) out.push([r, Math.min(per, rows - r)]);
  return out;
}

/**
 * A binding of `bytes` from `offset` (rounded up to 16 bytes so vec4 views see the
 * last elements; the whole buffer when that is the range).
 *
 * @example
 * ```ts ignore
 * ctx.dispatch(pipe, [span(x.buf, 64 * rowBytes, 64 * rowBytes)], p, [1]);
 * ```
 *
 * @param buffer The buffer.
 * @param offset Byte offset (a multiple of 256).
 * @param bytes Bytes the kernel uses.
 * @returns The binding.
 */
export function span(buffer: GPUBuffer, offset: number, bytes: number): Binding {
  const size = Math.min(Math.ceil(bytes / 16) * 16, buffer.size - offset);
  if (offset === 0 && size === buffer.size) return buffer;
  return { buffer, offset, size };
}
