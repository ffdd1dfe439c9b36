// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The CUDA/HIP {@linkcode Backend}: the kernels of `ffi/src/*.cu` through the
 * C ABI of `ffi/include/gptq_ffi.h` (`ffi.ts`). Tensors are device pointers;
 * weights are uploaded once (dense ones in their stored dtype, GPTQ ones
 * packed), activations and the KV cache stay on the device, and every
 * operation is enqueued on the library's one stream and returns at once. The
 * host waits only in the three reads ({@linkcode Backend.read},
 * {@linkcode Backend.argmax}, {@linkcode Backend.rowNll}): one copy into
 * pinned memory and one event wait, off the main thread, per read.
 *
 * One library build per kind: `cuda` (`ffi/lib/libgptq_cuda.so`, committed:
 * users need only the NVIDIA driver), `hip` (`ffi/build/libgptq_hip.so`,
 * built where ROCm is installed with `deno task build:hip`) and, for tests,
 * `hip-cpu` (the same kernels run on the CPU by HIP-CPU,
 * `deno task build:hip --cpu`).
 *
 * @example
 * ```ts ignore
 * import { createCudaBackend } from "./cuda_backend.ts";
 * const be = createCudaBackend({ kind: "cuda" });
 * const x = be.upload(new Float32Array([1, 5, 3]), 1, 3);
 * console.log(be.device, await be.argmax(x)); // NVIDIA H200, 139.8 GiB, sm_90 Int32Array [1]
 * be.dispose();
 * ```
 *
 * @module
 */

import { GptqError } from "../../errors.ts";
import { toFloat32 } from "../../io/dtype.ts";
import type { RawTensor } from "../../io/safetensors.ts";
import type {
  Backend,
  LinearHandle,
  QkvLayout,
  QuantLinearSource,
  TableHandle,
  Tensor,
} from "../backend.ts";
import { DeviceMemory } from "./_memory.ts";
import { type CudaGptqLinear, uploadGptq } from "./_gptq.ts";
import {
  ACTIVATIONS,
  DTYPE,
  type GpuDeviceInfo,
  GpuLibrary,
  type GpuLibraryKind,
  MAX_HEAD_DIM,
} from "./ffi.ts";
import { type CudaProbe, describeDevice, probeCuda } from "./probe.ts";

export { type CudaProbe, type CudaUnavailableReason, describeDevice, probeCuda } from "./probe.ts";
export type { GpuDeviceInfo, GpuLibraryKind } from "./ffi.ts";

/** A CUDA activation: f32 `[rows, cols]`, row-major, in a pooled device buffer. */
export interface CudaTensor extends Tensor {
  /** The device pointer. */
  readonly ptr: bigint;
  /** The buffer's size class in bytes (≥ rows·cols·4). */
  readonly bytes: number;
}

interface DenseLinear extends LinearHandle {
  readonly w: bigint;
  readonly dtype: number;
  readonly ldw: number;
  readonly bias: bigint;
  readonly allocations: [bigint, number][];
}

interface CudaTable extends TableHandle {
  readonly ptr: bigint;
  readonly dtype: number;
  readonly bytes: number;
}

/** Options of {@linkcode createCudaBackend}. */
export interface CudaBackendOptions {
  /** `cuda` (default), `hip`, or `hip-cpu` (the CPU emulation used in tests). */
  kind?: GpuLibraryKind;
  /** The device index (default 0). */
  device?: number;
  /** The library file (default: the kind's file in this checkout, or GPTQ_CUDA_LIB/GPTQ_HIP_LIB). */
  libraryPath?: string;
}

/** The CUDA/HIP backend. */
export interface CudaBackend extends Backend {
  /** The opened library (for benches and extra kernels). */
  readonly library: GpuLibrary;
  /** The device. */
  readonly info: GpuDeviceInfo;
  /** Host reads so far (each is one copy and one wait): a decode step should add one. */
  readonly reads: number;
  /** Device memory in use by weights and the activation pool, in bytes. */
  memoryBytes(): { weights: number; pool: number };
  /**
   * `H = beta·H + alpha·XᵀX` on the device (H `[K, K]`, X `[rows, K]`):
   * AutoGPTQ's `add_batch` with `beta = n/(n+b)`, `alpha = 2/(n+b)`.
   */
  hessianAccumulate(h: Tensor, x: Tensor, alpha: number, beta: number): void;
  /** {@linkcode Backend.attention} with a forced number of key splits (for tests). */
  attentionWithSplits(
    q: Tensor,
    Hq: number,
    Hkv: number,
    D: number,
    kCache: Tensor,
    vCache: Tensor,
    past: number,
    splits: number,
  ): Tensor;
  /** Waits for everything enqueued so far. */
  sync(): Promise<void>;
  /** Frees every buffer of this backend; handles and tensors become unusable. */
  dispose(): void;
}

function actCode(act: string): number {
  const code = ACTIVATIONS[act];
  if (code === undefined) {
    throw new GptqError("UNSUPPORTED_ARCHITECTURE", `activation '${act}' is not supported`, {
      hint: `supported: ${Object.keys(ACTIVATIONS).join(", ")}`,
    });
  }
  return code;
}

function check2d(raw: RawTensor, what: string): [number, number] {
  if (raw.shape.length !== 2) {
    throw new GptqError("SHAPE", `${what} must be 2-D, got [${raw.shape.join(", ")}]`);
  }
  return raw.shape as [number, number];
}

/** The tensor's elements in a stored dtype (f16/bf16 as u16, else f32): a view when aligned. */
function elements(raw: RawTensor): { dtype: number; data: Float32Array | Uint16Array } {
  const d = raw.data;
  if (raw.dtype === "F16" || raw.dtype === "BF16") {
    const a = d.byteOffset % 2 === 0 ? d : d.slice();
    return {
      dtype: raw.dtype === "F16" ? DTYPE.F16 : DTYPE.BF16,
      data: new Uint16Array(a.buffer, a.byteOffset, a.byteLength / 2),
    };
  }
  if (raw.dtype === "F32") {
    const a = d.byteOffset % 4 === 0 ? d : d.slice();
    return { dtype: DTYPE.F32, data: new Float32Array(a.buffer, a.byteOffset, a.byteLength / 4) };
  }
  return { dtype: DTYPE.F32, data: toFloat32(d, raw.dtype) };
}

/** `[N, K]` (or the transpose of `[K, N]`) with rows padded to `ldw`. */
function padRows<T extends Float32Array | Uint16Array>(
  src: T,
  N: number,
  K: number,
  ldw: number,
  transposed: boolean,
): T {
  if (!transposed && ldw === K) return src;
  const out = new (src.constructor as new (n: number) => T)(N * ldw);
  if (!transposed) {
    for (let n = 0; n < N; n++) out.set(src.subarray(n * K, (n + 1) * K), n * ldw);
  } else {
    for (let k = 0; k < K; k++) {
      const o = k * N;
      for (let n = 0; n < N; n++) out[n * ldw + k] = src[o + n]!;
    }
  }
  return out;
}

const KEY_BLOCK = 64; // keys per attention step (ops.cu AW)

/**
 * Opens a CUDA (or HIP) device and returns the backend.
 *
 * @example
 * ```ts ignore
 * import { createCudaBackend } from "./cuda_backend.ts";
 * const be = createCudaBackend({ kind: "cuda", device: 0 });
 * console.log(be.name, be.device);
 * be.dispose();
 * ```
 *
 * @param opts The build, device and library file.
 * @returns The backend.
 * @throws {GptqError} `CUDA_UNAVAILABLE` with the probe's reason when no device can be used.
 */
export function createCudaBackend(opts: CudaBackendOptions = {}): CudaBackend {
  const probe: CudaProbe = probeCuda(opts);
  const kind = opts.kind ?? "cuda";
  if (!probe.ok) {
    const other = kind === "cuda" ? "--backend webgpu or wasm" : "--backend wasm";
    throw new GptqError("CUDA_UNAVAILABLE", `${kind.toUpperCase()} unavailable: ${probe.message}`, {
      hint: `use ${other}`,
    });
  }
  const lib = GpuLibrary.open(probe.library);
  const S = lib.symbols;
  const dev = probe.device;
  lib.check(S.gptq_init(dev.index), "gptq_init");
  const mem = new DeviceMemory(lib);
  const dense = new WeakSet<LinearHandle>();
  const gptq = new WeakSet<LinearHandle>();
  const tables = new WeakSet<TableHandle>();
  const freed = new WeakSet<Tensor>();
  let disposed = false;
  let reads = 0;
  const minGroups = Math.max(256, 4 * dev.multiprocessors);

  const ck = (status: number, what: string) => lib.check(status, what);
  const ct = (t: Tensor): CudaTensor => {
    if (disposed) throw new GptqError("CUDA", "the CUDA backend was disposed");
    return t as CudaTensor;
  };
  const fresh = (rows: number, cols: number): CudaTensor => {
    const { ptr, bytes } = mem.take(rows * cols * 4);
    return { rows, cols, ptr, bytes };
  };
  const sameSize = (a: Tensor, b: Tensor, what: string) => {
    if (a.rows * a.cols !== b.rows * b.cols) {
      throw new GptqError(
        "SHAPE",
        `${what}: [${a.rows}, ${a.cols}] and [${b.rows}, ${b.cols}] differ in size`,
      );
    }
  };
  /** Uploads host data into a pooled buffer. */
  const scratchFrom = (data: ArrayBufferView) => {
    const s = mem.take(data.byteLength);
    lib.upload(s.ptr, data);
    return s;
  };

  const backend: CudaBackend = {
    name: probe.kind,
    device: describeDevice(dev),
    library: lib,
    info: dev,
    get reads() {
      return reads;
    },

    linearFromDense(w: RawTensor, bias: Float32Array | null, transposed: boolean): LinearHandle {
      const [a, b] = check2d(w, "a linear weight");
      const N = transposed ? b : a, K = transposed ? a : b;
      if (bias && bias.length !== N) {
        throw new GptqError("SHAPE", `bias has ${bias.length} values for ${N} output features`);
      }
      const { dtype, data } = elements(w);
      const ldw = Math.ceil(K / 8) * 8; // 16-byte rows for the GEMV's vector loads
      const host = padRows(data, N, K, ldw, transposed);
      const allocations: [bigint, number][] = [];
      const wp = mem.alloc(host.byteLength);
      allocations.push([wp, host.byteLength]);
      lib.upload(wp, host);
      let bp = 0n;
      if (bias) {
        bp = mem.alloc(bias.byteLength);
        allocations.push([bp, bias.byteLength]);
        lib.upload(bp, bias);
      }
      const h: DenseLinear = {
        N,
        K,
        bytes: host.byteLength + (bias?.byteLength ?? 0),
        w: wp,
        dtype,
        ldw,
        bias: bp,
        allocations,
      };
      dense.add(h);
      return h;
    },
    linearFromGptq(q: QuantLinearSource): LinearHandle {
      const h = uploadGptq(lib, mem, q);
      gptq.add(h);
      return h;
    },
    tableFrom(raw: RawTensor): TableHandle {
      const [rows, cols] = check2d(raw, "a table");
      const { dtype, data } = elements(raw);
      const ptr = mem.alloc(data.byteLength);
      lib.upload(ptr, data);
      const t: CudaTable = { rows, cols, ptr, dtype, bytes: data.byteLength };
      tables.add(t);
      return t;
    },
    constant(data: Float32Array): Tensor {
      return backend.upload(data, 1, data.length);
    },
    release(w: LinearHandle | TableHandle): void {
      if (disposed) return;
      if (dense.has(w as LinearHandle) || gptq.has(w as LinearHandle)) {
        dense.delete(w as LinearHandle);
        gptq.delete(w as LinearHandle);
        for (const [p, b] of (w as DenseLinear | CudaGptqLinear).allocations) mem.release(p, b);
      } else if (tables.has(w as TableHandle)) {
        tables.delete(w as TableHandle);
        const t = w as CudaTable;
        mem.release(t.ptr, t.bytes);
      }
    },

    upload(data: Float32Array, rows: number, cols: number): Tensor {
      if (data.length !== rows * cols) {
        throw new GptqError("SHAPE", `upload: ${data.length} values for [${rows}, ${cols}]`);
      }
      const t = fresh(rows, cols);
      lib.upload(t.ptr, data);
      return t;
    },
    zeros(rows: number, cols: number): Tensor {
      const t = fresh(rows, cols);
      ck(S.gptq_memset(t.ptr, 0, BigInt(rows * cols * 4)), "gptq_memset");
      return t;
    },
    free(t: Tensor): void {
      if (disposed || freed.has(t)) return;
      freed.add(t);
      mem.give(ct(t).ptr, ct(t).bytes);
    },
    gather(table: TableHandle, ids: Int32Array, offset: number): Tensor {
      const tb = table as CudaTable;
      const y = fresh(ids.length, tb.cols);
      if (ids.length === 0) return y;
      const idb = scratchFrom(ids);
      ck(
        S.gptq_gather(tb.ptr, tb.dtype, tb.cols, idb.ptr, ids.length, offset, y.ptr),
        "gptq_gather",
      );
      mem.give(idb.ptr, idb.bytes);
      return y;
    },
    linear(x: Tensor, w: LinearHandle): Tensor {
      if (x.cols !== w.K) {
        throw new GptqError("SHAPE", `linear: input has ${x.cols} features, the layer ${w.K}`);
      }
      const xt = ct(x), y = fresh(x.rows, w.N);
      if (x.rows === 0) return y;
      if (dense.has(w)) {
        const d = w as DenseLinear;
        ck(
          S.gptq_dense_linear(xt.ptr, x.rows, d.K, d.w, d.dtype, d.ldw, d.bias, d.N, y.ptr),
          "gptq_dense_linear",
        );
      } else if (gptq.has(w)) {
        const g = w as CudaGptqLinear;
        let src = xt.ptr;
        let scratch: { ptr: bigint; bytes: number } | null = null;
        if (g.perm) {
          scratch = mem.take(x.rows * g.K * 4);
          ck(S.gptq_gather_cols(xt.ptr, x.rows, g.K, g.perm, scratch.ptr), "gptq_gather_cols");
          src = scratch.ptr;
        }
        ck(
          S.gptq_gptq_linear(
            src,
            x.rows,
            g.K,
            g.N,
            g.bits,
            g.qw,
            g.sz,
            g.gs,
            g.gtab,
            g.bias,
            y.ptr,
          ),
          "gptq_gptq_linear",
        );
        if (scratch) mem.give(scratch.ptr, scratch.bytes);
      } else {
        throw new GptqError("CUDA", "linear: the layer was released or is not a CUDA layer");
      }
      return y;
    },
    rmsNorm(x, w, eps) {
      const y = fresh(x.rows, x.cols);
      ck(S.gptq_rms_norm(ct(x).ptr, ct(w).ptr, y.ptr, x.rows, x.cols, eps), "gptq_rms_norm");
      return y;
    },
    layerNorm(x, w, b, eps) {
      const y = fresh(x.rows, x.cols);
      ck(
        S.gptq_layer_norm(ct(x).ptr, ct(w).ptr, b ? ct(b).ptr : 0n, y.ptr, x.rows, x.cols, eps),
        "gptq_layer_norm",
      );
      return y;
    },
    rope(x, heads, headDim, rotaryDim, past, invFreq) {
      ck(
        S.gptq_rope(ct(x).ptr, x.rows, heads, headDim, rotaryDim, past, ct(invFreq).ptr),
        "gptq_rope",
      );
    },
    writeRows(dst: Tensor, src: Tensor, row: number): void {
      if (src.cols !== dst.cols || row < 0 || row + src.rows > dst.rows) {
        throw new GptqError(
          "SHAPE",
          `writeRows: [${src.rows}, ${src.cols}] at row ${row} of [${dst.rows}, ${dst.cols}]`,
        );
      }
      const off = BigInt(row * dst.cols * 4);
      ck(
        S.gptq_memcpy_d2d(ct(dst).ptr + off, ct(src).ptr, BigInt(src.rows * src.cols * 4)),
        "writeRows",
      );
    },
    sliceRows(x: Tensor, start: number, count: number): Tensor {
      if (start < 0 || count < 0 || start + count > x.rows) {
        throw new GptqError("SHAPE", `sliceRows: rows ${start}..${start + count} of ${x.rows}`);
      }
      const y = fresh(count, x.cols);
      const off = BigInt(start * x.cols * 4);
      ck(S.gptq_memcpy_d2d(y.ptr, ct(x).ptr + off, BigInt(count * x.cols * 4)), "sliceRows");
      return y;
    },
    splitQkv(x: Tensor, heads: number, headDim: number, layout: QkvLayout) {
      const hd = heads * headDim;
      const q = fresh(x.rows, hd), k = fresh(x.rows, hd), v = fresh(x.rows, hd);
      ck(
        S.gptq_split_qkv(
          ct(x).ptr,
          x.rows,
          heads,
          headDim,
          layout === "per_head" ? 1 : 0,
          q.ptr,
          k.ptr,
          v.ptr,
        ),
        "gptq_split_qkv",
      );
      return [q, k, v];
    },
    attention(q, Hq, Hkv, D, kc, vc, past) {
      return attention(q, Hq, Hkv, D, kc, vc, past);
    },
    attentionWithSplits(q, Hq, Hkv, D, kc, vc, past, splits) {
      return attention(q, Hq, Hkv, D, kc, vc, past, splits);
    },
    addInPlace(a, b) {
      sameSize(a, b, "addInPlace");
      ck(S.gptq_add(ct(a).ptr, ct(b).ptr, BigInt(a.rows * a.cols)), "gptq_add");
    },
    activate(x, act) {
      ck(S.gptq_activate(ct(x).ptr, BigInt(x.rows * x.cols), actCode(act)), "gptq_activate");
    },
    gatedActivate(g, u, act) {
      sameSize(g, u, "gatedActivate");
      const code = actCode(act);
      ck(
        S.gptq_gated_activate(ct(g).ptr, ct(u).ptr, BigInt(g.rows * g.cols), code),
        "gptq_gated_activate",
      );
    },

    async read(x: Tensor): Promise<Float32Array> {
      const out = new Float32Array(x.rows * x.cols);
      reads++;
      await lib.read(ct(x).ptr, out);
      return out;
    },
    async argmax(x: Tensor): Promise<Int32Array> {
      const out = new Int32Array(x.rows);
      if (x.rows === 0) return out;
      const o = mem.take(x.rows * 4);
      try {
        ck(S.gptq_argmax_rows(ct(x).ptr, x.rows, x.cols, o.ptr), "gptq_argmax_rows");
        reads++;
        await lib.read(o.ptr, out);
      } finally {
        mem.give(o.ptr, o.bytes);
      }
      return out;
    },
    async rowNll(x: Tensor, targets: Int32Array): Promise<Float64Array> {
      const T = targets.length;
      if (T === 0) return new Float64Array(0);
      if (T > x.rows) throw new GptqError("SHAPE", `rowNll: ${T} targets for ${x.rows} rows`);
      const tg = scratchFrom(targets);
      const o = mem.take(T * 4);
      const out = new Float32Array(T);
      try {
        ck(S.gptq_row_nll(ct(x).ptr, T, x.cols, tg.ptr, o.ptr), "gptq_row_nll");
        reads++;
        await lib.read(o.ptr, out);
      } finally {
        mem.give(tg.ptr, tg.bytes);
        mem.give(o.ptr, o.bytes);
      }
      return Float64Array.from(out);
    },

    memoryBytes: () => ({ weights: mem.ownedBytes, pool: mem.pooledBytes }),
    hessianAccumulate(h: Tensor, x: Tensor, alpha: number, beta: number): void {
      if (h.rows !== h.cols || x.cols !== h.cols) {
        throw new GptqError(
          "SHAPE",
          `hessianAccumulate: H [${h.rows}, ${h.cols}] and X [${x.rows}, ${x.cols}]`,
        );
      }
      ck(
        S.gptq_hessian_accumulate(ct(h).ptr, ct(x).ptr, x.rows, x.cols, alpha, beta),
        "gptq_hessian_accumulate",
      );
    },
    sync: () => lib.sync(),
    dispose(): void {
      if (disposed) return;
      disposed = true;
      // The library's stream stays: other backends of this process may share it.
      mem.dispose();
    },
  };

  function attention(
    q: Tensor,
    Hq: number,
    Hkv: number,
    D: number,
    kc: Tensor,
    vc: Tensor,
    past: number,
    force?: number,
  ): Tensor {
    if (D > MAX_HEAD_DIM || Hkv <= 0 || Hq % Hkv !== 0) {
      throw new GptqError(
        "UNSUPPORTED_ARCHITECTURE",
        `attention with Hq=${Hq}, Hkv=${Hkv}, head size ${D} is not supported by the CUDA backend`,
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
    const out = fresh(T, Hq * D);
    if (T === 0) return out;
    const [splits, chunk] = attentionSplits(T, Hq, len, minGroups, force);
    let scratch: { ptr: bigint; bytes: number } | null = null;
    if (splits > 1) {
      scratch = mem.take(Number(S.gptq_attention_scratch_bytes(T, Hq, D, splits)));
    }
    ck(
      S.gptq_attention(
        ct(q).ptr,
        ct(kc).ptr,
        ct(vc).ptr,
        out.ptr,
        T,
        Hq,
        Hkv,
        D,
        past,
        splits,
        chunk,
        scratch?.ptr ?? 0n,
      ),
      "gptq_attention",
    );
    if (scratch) mem.give(scratch.ptr, scratch.bytes);
    return out;
  }

  return backend;
}

/**
 * How many key splits attention uses: enough (split, head, token) blocks to
 * fill the device (`minGroups`), each split a multiple of 64 keys.
 *
 * @example
 * ```ts
 * import { attentionSplits } from "./cuda_backend.ts";
 * console.log(attentionSplits(1, 32, 2048, 528)); // [16, 128]
 * ```
 *
 * @param T New tokens.
 * @param Hq Query heads.
 * @param len Keys (past + T).
 * @param minGroups Blocks wanted.
 * @param force A split count to use instead (tests).
 * @returns `[splits, chunk]`.
 */
export function attentionSplits(
  T: number,
  Hq: number,
  len: number,
  minGroups: number,
  force?: number,
): [number, number] {
  let splits = force ??
    Math.min(Math.ceil(minGroups / (T * Hq)), Math.ceil(len / (2 * KEY_BLOCK)));
  splits = Math.max(1, Math.min(splits, Math.ceil(len / KEY_BLOCK)));
  const chunk = Math.ceil(len / splits / KEY_BLOCK) * KEY_BLOCK;
  return [Math.ceil(len / chunk), chunk];
}
