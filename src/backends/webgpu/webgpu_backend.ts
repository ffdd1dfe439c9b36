// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The WebGPU {@linkcode Backend}: weights, activations and the KV cache live
 * on the device; every operation is encoded into one command encoder and
 * submitted when the host reads ({@linkcode Backend.read},
 * {@linkcode Backend.argmax}, {@linkcode Backend.rowNll}), so a decode step
 * is one submit and one readback.
 *
 * Dense weights and tables stay in their stored dtype (f32, f16, bf16);
 * GPTQ weights stay packed (`_gptq.ts`). Everything accumulates in f32.
 * Tensors larger than the adapter's `maxStorageBufferBindingSize` are split
 * over several bindings.
 *
 * @example
 * ```ts ignore
 * import { createWebGpuBackend } from "./webgpu_backend.ts";
 * const be = await createWebGpuBackend();
 * const x = be.upload(new Float32Array([1, 5, 3]), 1, 3);
 * console.log(await be.argmax(x)); // Int32Array [1]
 * be.dispose();
 * ```
 *
 * @module
 */

import { GptqError } from "../../errors.ts";
import { quietHeadlessWsi } from "./_headless.ts";
import type { RawTensor } from "../../io/safetensors.ts";
import type {
  Backend,
  LinearHandle,
  QkvLayout,
  QuantLinearSource,
  TableHandle,
  Tensor,
} from "../backend.ts";
import { describeAdapter, GpuContext } from "./context.ts";
import type { GpuTensor } from "./_common.ts";
import {
  encodeDenseLinear,
  encodeGather,
  type GpuDenseLinear,
  type GpuTable,
  releaseDenseLinear,
  releaseTable,
  uploadDenseLinear,
  uploadTable,
} from "./_dense.ts";
import {
  encodeGptqLinear,
  type GpuGptqLinear,
  releaseGptqLinear,
  uploadGptqLinear,
} from "./_gptq.ts";
import * as ops from "./_ops.ts";

export type { GpuTensor } from "./_common.ts";
export { type AdapterFacts, type Binding, GpuContext, type GpuContextOptions } from "./context.ts";

/** Options of {@linkcode createWebGpuBackend}. */
export interface WebGpuBackendOptions {
  /**
   * Largest storage binding in bytes (default and ceiling: the adapter's
   * `maxStorageBufferBindingSize`); lower it to exercise the split paths.
   */
  maxBindingBytes?: number;
  /** Enable `shader-f16` when the adapter offers it (default true). */
  f16?: boolean;
  /** Ask for the high-performance adapter (default true). */
  highPerformance?: boolean;
  /** Use this context instead of opening one (it is destroyed on dispose). */
  context?: GpuContext;
}

/** The WebGPU backend. */
export interface WebGpuBackend extends Backend {
  /** The device and its encoding state (for other WebGPU kernels and stats). */
  readonly context: GpuContext;
  /** The binding size limit in force. */
  readonly maxBindingBytes: number;
  /** Destroys the device; every handle and tensor becomes unusable. */
  dispose(): void;
}

/** What {@linkcode probeWebGpu} found. */
export interface WebGpuProbe {
  /** An adapter is there. */
  ok: boolean;
  /** The adapter's description. */
  description?: string;
  /** A software (CPU) adapter such as llvmpipe. */
  isFallback?: boolean;
  /** Why not, when not ok. */
  reason?: string;
}

/**
 * Checks cheaply (no device is opened) whether WebGPU has an adapter here.
 *
 * @example
 * ```ts
 * import { probeWebGpu } from "./webgpu_backend.ts";
 * const p = await probeWebGpu();
 * console.log(p.ok ? `webgpu: ${p.description}` : `no webgpu: ${p.reason}`);
 * ```
 *
 * @returns The adapter's description, or the reason there is none.
 */
export async function probeWebGpu(): Promise<WebGpuProbe> {
  // Not `Navigator`: Workers type-check without it.
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpu) return { ok: false, reason: "this runtime has no navigator.gpu (WebGPU)" };
  let adapter: GPUAdapter | null;
  try {
    quietHeadlessWsi();
    adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch (e) {
    return { ok: false, reason: `requestAdapter failed: ${(e as Error).message}` };
  }
  if (!adapter) {
    return {
      ok: false,
      reason: "no WebGPU adapter found (no Vulkan/Metal/DX12 device or driver)",
    };
  }
  return { ok: true, ...describeAdapter(adapter) };
}

function gt(t: Tensor): GpuTensor {
  return t as GpuTensor;
}

/**
 * Opens the WebGPU device and returns the backend.
 *
 * @example
 * ```ts ignore
 * import { createWebGpuBackend } from "./webgpu_backend.ts";
 * const be = await createWebGpuBackend({ maxBindingBytes: 1 << 20 });
 * console.log(be.name, be.device);
 * be.dispose();
 * ```
 *
 * @param opts Options.
 * @returns The backend.
 * @throws {GptqError} `WEBGPU_UNAVAILABLE` when there is no adapter.
 */
export async function createWebGpuBackend(
  opts: WebGpuBackendOptions = {},
): Promise<WebGpuBackend> {
  const ctx = opts.context ??
    await GpuContext.create({ f16: opts.f16, highPerformance: opts.highPerformance });
  const limit = Math.min(
    opts.maxBindingBytes ?? Infinity,
    ctx.limits.maxStorageBufferBindingSize,
  );
  if (!(limit >= 256)) {
    throw new GptqError("INVALID_ARGUMENT", `maxBindingBytes must be at least 256, got ${limit}`);
  }
  const dense = new WeakSet<LinearHandle>();
  const tables = new WeakSet<TableHandle>();
  const freed = new WeakSet<Tensor>();
  const dummy = ctx.upload(new Float32Array(4));
  const device = ctx.facts.description + (ctx.facts.isFallback ? " (software adapter)" : "");

  const fresh = (rows: number, cols: number): GpuTensor => ({
    rows,
    cols,
    buf: ctx.buffer(rows * cols * 4),
  });

  return {
    name: "webgpu",
    device,
    context: ctx,
    maxBindingBytes: limit,

    linearFromDense(w: RawTensor, bias: Float32Array | null, transposed: boolean): LinearHandle {
      const h = uploadDenseLinear(ctx, w, bias, transposed, limit);
      dense.add(h);
      return h;
    },
    linearFromGptq(q: QuantLinearSource): LinearHandle {
      return uploadGptqLinear(ctx, q, { maxBindingBytes: limit });
    },
    tableFrom(raw: RawTensor): TableHandle {
      const t = uploadTable(ctx, raw, limit);
      tables.add(t);
      return t;
    },
    constant(data: Float32Array): Tensor {
      const t: GpuTensor = { rows: 1, cols: data.length, buf: ctx.upload(data) };
      return t;
    },
    release(w: LinearHandle | TableHandle): void {
      if (dense.has(w as LinearHandle)) {
        dense.delete(w as LinearHandle);
        releaseDenseLinear(ctx, w as GpuDenseLinear);
      } else if (tables.has(w as TableHandle)) {
        tables.delete(w as TableHandle);
        releaseTable(ctx, w as GpuTable);
      } else if ("N" in w) {
        releaseGptqLinear(w as GpuGptqLinear);
      }
    },

    upload(data: Float32Array, rows: number, cols: number): Tensor {
      if (data.length !== rows * cols) {
        throw new GptqError("SHAPE", `upload: ${data.length} values for [${rows}, ${cols}]`);
      }
      const t: GpuTensor = { rows, cols, buf: ctx.upload(data) };
      return t;
    },
    zeros(rows: number, cols: number): Tensor {
      const t = fresh(rows, cols);
      ctx.clear(t.buf);
      return t;
    },
    free(t: Tensor): void {
      if (freed.has(t)) return;
      freed.add(t);
      ctx.release(gt(t).buf);
    },
    gather(table: TableHandle, ids: Int32Array, offset: number): Tensor {
      const y = fresh(ids.length, table.cols);
      encodeGather(ctx, table as GpuTable, ids, offset, y.buf);
      return y;
    },
    linear(x: Tensor, w: LinearHandle): Tensor {
      if (x.cols !== w.K) {
        throw new GptqError("SHAPE", `linear: input has ${x.cols} features, the layer ${w.K}`);
      }
      const y = fresh(x.rows, w.N);
      if (x.rows === 0) return y;
      if (dense.has(w)) {
        encodeDenseLinear(ctx, gt(x), w as GpuDenseLinear, y.buf, dummy, limit);
      } else {
        encodeGptqLinear(ctx, gt(x).buf, x.rows, w as GpuGptqLinear, y.buf);
      }
      return y;
    },
    rmsNorm: (x, w, eps) => ops.rmsNorm(ctx, gt(x), gt(w), eps, limit),
    layerNorm: (x, w, b, eps) => ops.layerNorm(ctx, gt(x), gt(w), b ? gt(b) : null, eps, limit),
    rope(x, heads, headDim, rotaryDim, past, invFreq) {
      ops.rope(ctx, gt(x), heads, headDim, rotaryDim, past, gt(invFreq), limit);
    },
    writeRows(dst: Tensor, src: Tensor, row: number): void {
      if (src.cols !== dst.cols || row < 0 || row + src.rows > dst.rows) {
        throw new GptqError(
          "SHAPE",
          `writeRows: [${src.rows}, ${src.cols}] at row ${row} of [${dst.rows}, ${dst.cols}]`,
        );
      }
      ctx.copy(gt(src).buf, 0, gt(dst).buf, row * dst.cols * 4, src.rows * src.cols * 4);
    },
    sliceRows(x: Tensor, start: number, count: number): Tensor {
      if (start < 0 || count < 0 || start + count > x.rows) {
        throw new GptqError("SHAPE", `sliceRows: rows ${start}..${start + count} of ${x.rows}`);
      }
      const y = fresh(count, x.cols);
      ctx.copy(gt(x).buf, start * x.cols * 4, y.buf, 0, count * x.cols * 4);
      return y;
    },
    splitQkv: (x: Tensor, heads: number, headDim: number, layout: QkvLayout) =>
      ops.splitQkv(ctx, gt(x), heads, headDim, layout, limit),
    attention: (q, Hq, Hkv, D, kc, vc, past) =>
      ops.attention(ctx, gt(q), Hq, Hkv, D, gt(kc), gt(vc), past),
    addInPlace: (a, b) => ops.addInPlace(ctx, gt(a), gt(b), limit),
    activate: (x, act) => ops.activate(ctx, gt(x), act, limit),
    gatedActivate: (g, u, act) => ops.gatedActivate(ctx, gt(g), gt(u), act, limit),

    async read(x: Tensor): Promise<Float32Array> {
      const n = x.rows * x.cols;
      if (n === 0) return new Float32Array(0);
      return new Float32Array(await ctx.read(gt(x).buf, 0, n * 4));
    },
    argmax: (x) => ops.argmax(ctx, gt(x), limit),
    rowNll: (x, targets) => ops.rowNll(ctx, gt(x), targets, limit),

    dispose(): void {
      ctx.destroy();
    },
  };
}
