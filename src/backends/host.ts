// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Device-resident {@linkcode Backend} over host-memory kernels: the tensors
 * are `Float32Array`s in the JS heap and every operation runs at once through
 * a synchronous {@linkcode Kernels} set (the TypeScript reference or WASM).
 * The asynchronous edges resolve immediately, and {@linkcode Backend.readSync}
 * exposes the data to the quantizer's Hessian capture.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { DTYPE_SIZE, toFloat32 } from "../io/dtype.ts";
import type { RawTensor } from "../io/safetensors.ts";
import type {
  Backend,
  LinearHandle,
  QkvLayout,
  QuantLinearSource,
  TableHandle,
  Tensor,
} from "./backend.ts";
import type { Kernels } from "./host_kernels.ts";
import { argmax } from "../runtime/sample.ts";

/** A host tensor: its data in the JS heap. */
export interface HostTensor extends Tensor {
  /** `rows × cols` values, row-major. */
  readonly data: Float32Array;
}

interface HostTable extends TableHandle {
  raw: RawTensor;
}

function tensor(data: Float32Array, rows: number, cols: number): HostTensor {
  return { rows, cols, data };
}

function host(t: Tensor): HostTensor {
  return t as HostTensor;
}

/**
 * `−log softmax(row)[target]`, computed in f64 (the reference every backend's
 * {@linkcode Backend.rowNll} is compared with).
 *
 * @example
 * ```ts
 * import { nllOf } from "./host.ts";
 * console.log(nllOf(new Float32Array([0, 0]), 1)); // ln 2
 * ```
 *
 * @param row Logits.
 * @param target The target id.
 * @returns The negative log-likelihood.
 */
export function nllOf(row: Float32Array, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i]! - max);
  return Math.log(s) + max - row[target]!;
}

/** Splits a fused qkv output `[T, 3·H·D]` into q, k, v `[T, H·D]`. */
function splitQkvHost(
  out: Float32Array,
  T: number,
  heads: number,
  D: number,
  layout: QkvLayout,
): [Float32Array, Float32Array, Float32Array] {
  const HD = heads * D;
  const q = new Float32Array(T * HD), k = new Float32Array(T * HD), v = new Float32Array(T * HD);
  for (let t = 0; t < T; t++) {
    const row = out.subarray(t * 3 * HD, (t + 1) * 3 * HD);
    if (layout === "concat") {
      q.set(row.subarray(0, HD), t * HD);
      k.set(row.subarray(HD, 2 * HD), t * HD);
      v.set(row.subarray(2 * HD, 3 * HD), t * HD);
    } else {
      for (let h = 0; h < heads; h++) {
        const o = h * 3 * D;
        q.set(row.subarray(o, o + D), t * HD + h * D);
        k.set(row.subarray(o + D, o + 2 * D), t * HD + h * D);
        v.set(row.subarray(o + 2 * D, o + 3 * D), t * HD + h * D);
      }
    }
  }
  return [q, k, v];
}

/**
 * Wraps synchronous host kernels as a device-resident {@linkcode Backend}.
 *
 * @example
 * ```ts
 * import { hostBackend } from "./host.ts";
 * import { createTsKernels } from "./typescript/ts_kernels.ts";
 * const be = hostBackend(createTsKernels());
 * const x = be.upload(new Float32Array([1, 2, 3]), 1, 3);
 * console.log(await be.argmax(x)); // Int32Array [2]
 * ```
 *
 * @param k The kernels.
 * @param device The device in words (default: `CPU`).
 * @returns The backend.
 */
export function hostBackend(k: Kernels, device = "CPU"): Backend {
  return {
    get name() {
      return k.name;
    },
    device,
    linearFromDense: (w, bias, transposed) => k.linearFromDense(w, bias, transposed),
    linearFromGptq: (q: QuantLinearSource) => k.linearFromGptq(q),
    tableFrom(raw: RawTensor): TableHandle {
      if (raw.shape.length !== 2) {
        throw new GptqError("SHAPE", `a table must be 2-D, got [${raw.shape.join(", ")}]`);
      }
      return { rows: raw.shape[0]!, cols: raw.shape[1]!, raw } as HostTable;
    },
    constant: (data) => tensor(data, 1, data.length),
    release(w: LinearHandle | TableHandle) {
      if ("N" in w) k.release(w);
    },
    upload: (data, rows, cols) => tensor(data, rows, cols),
    zeros: (rows, cols) => tensor(new Float32Array(rows * cols), rows, cols),
    free() {},
    gather(table, ids, offset) {
      const { raw, cols } = table as HostTable;
      const bytes = cols * DTYPE_SIZE[raw.dtype];
      const out = new Float32Array(ids.length * cols);
      for (let t = 0; t < ids.length; t++) {
        const r = ids[t]! + offset;
        out.set(toFloat32(raw.data.subarray(r * bytes, (r + 1) * bytes), raw.dtype), t * cols);
      }
      return tensor(out, ids.length, cols);
    },
    linear: (x, w) => tensor(k.linear(host(x).data, x.rows, w), x.rows, w.N),
    rmsNorm: (x, w, eps) =>
      tensor(k.rmsNorm(host(x).data, x.rows, x.cols, host(w).data, eps), x.rows, x.cols),
    layerNorm: (x, w, b, eps) =>
      tensor(
        k.layerNorm(host(x).data, x.rows, x.cols, host(w).data, b ? host(b).data : null, eps),
        x.rows,
        x.cols,
      ),
    rope(x, heads, headDim, rotaryDim, past, invFreq) {
      const pos = new Int32Array(x.rows);
      for (let t = 0; t < x.rows; t++) pos[t] = past + t;
      k.rope(host(x).data, x.rows, heads, headDim, rotaryDim, pos, host(invFreq).data);
    },
    writeRows(dst, src, row) {
      host(dst).data.set(host(src).data, row * dst.cols);
    },
    sliceRows: (x, start, count) =>
      tensor(host(x).data.slice(start * x.cols, (start + count) * x.cols), count, x.cols),
    splitQkv(x, heads, D, layout) {
      const [q, kk, v] = splitQkvHost(host(x).data, x.rows, heads, D, layout);
      const c = heads * D;
      return [tensor(q, x.rows, c), tensor(kk, x.rows, c), tensor(v, x.rows, c)];
    },
    attention: (q, Hq, Hkv, D, kc, vc, past) =>
      tensor(
        k.attention(host(q).data, q.rows, Hq, Hkv, D, host(kc).data, host(vc).data, past),
        q.rows,
        q.cols,
      ),
    addInPlace(a, b) {
      const x = host(a).data, y = host(b).data;
      for (let i = 0; i < x.length; i++) x[i] = x[i]! + y[i]!;
    },
    activate: (x, act) => k.activate(host(x).data, act),
    gatedActivate: (g, u, act) => k.gatedActivate(host(g).data, host(u).data, act),
    read: (x) => Promise.resolve(host(x).data),
    readSync: (x) => host(x).data,
    argmax(x) {
      const d = host(x).data, out = new Int32Array(x.rows);
      for (let r = 0; r < x.rows; r++) out[r] = argmax(d.subarray(r * x.cols, (r + 1) * x.cols));
      return Promise.resolve(out);
    },
    rowNll(x, targets) {
      const d = host(x).data, out = new Float64Array(targets.length);
      for (let r = 0; r < targets.length; r++) {
        out[r] = nllOf(d.subarray(r * x.cols, (r + 1) * x.cols), targets[r]!);
      }
      return Promise.resolve(out);
    },
    dispose: () => k.dispose?.(),
  };
}
