// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The C ABI of `ffi/include/gptq_ffi.h` through `Deno.dlopen`: the symbol
 * table, the library locations, and {@linkcode GpuLibrary}, which turns every
 * non-zero status into a typed {@linkcode GptqError} carrying the library's
 * last-error string.
 *
 * Pointer lifetimes: device pointers are `bigint`s owned by the caller
 * (`gptq_malloc` → `gptq_free`). Host buffers passed as `buffer` parameters
 * are read or written only during the call (Deno keeps them alive for it, also
 * for `nonblocking` calls); the one host resource that outlives a call is a
 * read ticket, which {@linkcode GpuLibrary.read} always ends. A library is
 * opened once per path and never closed (a closed library under a
 * nonblocking call would crash the process).
 *
 * Needs `--allow-ffi` (and `--allow-read` to find the library).
 *
 * @module
 */

import { GptqError } from "../../errors.ts";

/** The ABI version this module speaks (`GPTQ_ABI_VERSION` in `gptq_ffi.h`). */
export const ABI_VERSION = 2;

/** Which build of the kernels: NVIDIA (nvcc), AMD (hipcc) or the CPU emulation used in tests. */
export type GpuLibraryKind = "cuda" | "hip" | "hip-cpu";

/** `gptq_status_kind()` results (`GPTQ_KIND_*`). */
export const STATUS_KIND = {
  ok: 0,
  noDriver: 1,
  noDevice: 2,
  noKernelImage: 3,
  outOfMemory: 4,
  invalid: 5,
  other: 6,
} as const;

/** Element types of tables and dense weights (`GPTQ_DTYPE_*`). */
export const DTYPE = { F32: 0, F16: 1, BF16: 2 } as const;

/** Activation codes (`GPTQ_ACT_*`) by Hugging Face name. */
export const ACTIVATIONS: Readonly<Record<string, number>> = {
  silu: 0,
  relu: 1,
  gelu_new: 2,
  gelu_tanh: 2,
  gelu_pytorch_tanh: 2,
  gelu: 3,
};

/** Rows up to which the dense linear runs its GEMV (`GPTQ_DENSE_GEMV_MAX_ROWS`). */
export const DENSE_GEMV_MAX_ROWS = 4;
/** Rows up to which the GPTQ linear runs its GEMV (`GPTQ_GPTQ_GEMV_MAX_ROWS`). */
export const GPTQ_GEMV_MAX_ROWS = 8;
/** Largest head size of the attention kernel (`GPTQ_MAX_HEAD_DIM`). */
export const MAX_HEAD_DIM = 256;
/** Largest blocksize of the GPTQ column loop (`GPTQ_SOLVE_MAX_BLOCK`). */
export const SOLVE_MAX_BLOCK = 128;

const P = "u64" as const; // a device pointer or a ticket/event handle
/** The symbols of `gptq_ffi.h`. Long waits are `nonblocking` (they run off the main thread). */
export const SYMBOLS = {
  gptq_last_error: { parameters: [], result: "pointer" },
  gptq_status_kind: { parameters: ["i32"], result: "i32" },
  gptq_abi_version: { parameters: [], result: "i32" },
  gptq_backend_name: { parameters: [], result: "pointer" },
  gptq_device_count: { parameters: ["buffer"], result: "i32" },
  gptq_versions: { parameters: ["buffer", "buffer"], result: "i32" },
  gptq_device_info: {
    parameters: ["i32", "buffer", "i32", "buffer", "i32", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  gptq_check_kernel_image: { parameters: ["i32"], result: "i32" },
  gptq_init: { parameters: ["i32"], result: "i32" },
  gptq_shutdown: { parameters: [], result: "i32" },
  gptq_mem_info: { parameters: ["buffer", "buffer"], result: "i32" },
  gptq_malloc: { parameters: ["u64", "buffer"], result: "i32" },
  gptq_free: { parameters: [P], result: "i32" },
  gptq_memcpy_h2d: { parameters: [P, "buffer", "u64"], result: "i32" },
  gptq_memcpy_d2h: { parameters: ["buffer", P, "u64"], result: "i32", nonblocking: true },
  gptq_memcpy_d2d: { parameters: [P, P, "u64"], result: "i32" },
  gptq_memset: { parameters: [P, "i32", "u64"], result: "i32" },
  gptq_sync: { parameters: [], result: "i32", nonblocking: true },
  gptq_read_begin: { parameters: [P, "u64", "buffer"], result: "i32" },
  gptq_read_wait: { parameters: [P], result: "i32", nonblocking: true },
  gptq_read_end: { parameters: [P, "buffer", "u64"], result: "i32" },
  gptq_event_create: { parameters: ["buffer"], result: "i32" },
  gptq_event_record: { parameters: [P], result: "i32" },
  gptq_event_elapsed: { parameters: [P, P, "buffer"], result: "i32", nonblocking: true },
  gptq_event_destroy: { parameters: [P], result: "i32" },
  gptq_gather: { parameters: [P, "i32", "i32", P, "i32", "i32", P], result: "i32" },
  gptq_rms_norm: { parameters: [P, P, P, "i32", "i32", "f32"], result: "i32" },
  gptq_layer_norm: { parameters: [P, P, P, P, "i32", "i32", "f32"], result: "i32" },
  gptq_rope: { parameters: [P, "i32", "i32", "i32", "i32", "i32", P], result: "i32" },
  gptq_split_qkv: { parameters: [P, "i32", "i32", "i32", "i32", P, P, P], result: "i32" },
  gptq_attention_scratch_bytes: { parameters: ["i32", "i32", "i32", "i32"], result: "u64" },
  gptq_attention: {
    parameters: [P, P, P, P, "i32", "i32", "i32", "i32", "i32", "i32", "i32", P],
    result: "i32",
  },
  gptq_add: { parameters: [P, P, "u64"], result: "i32" },
  gptq_activate: { parameters: [P, "u64", "i32"], result: "i32" },
  gptq_gated_activate: { parameters: [P, P, "u64", "i32"], result: "i32" },
  gptq_argmax_rows: { parameters: [P, "i32", "i32", P], result: "i32" },
  gptq_row_nll: { parameters: [P, "i32", "i32", P, P], result: "i32" },
  gptq_dense_linear: {
    parameters: [P, "i32", "i32", P, "i32", "i32", P, "i32", P],
    result: "i32",
  },
  gptq_gptq_repack: { parameters: [P, "i32", "i32", "i32", P, P], result: "i32" },
  gptq_gather_cols: { parameters: [P, "i32", "i32", P, P], result: "i32" },
  gptq_gptq_linear: {
    parameters: [P, "i32", "i32", "i32", "i32", P, P, "i32", P, P, P],
    result: "i32",
  },
  gptq_hessian_accumulate: { parameters: [P, P, "i32", "i32", "f32", "f32"], result: "i32" },
  gptq_solve_check: { parameters: [P, "i32", P], result: "i32" },
  gptq_solve_factor_scratch_bytes: { parameters: ["i32"], result: "u64" },
  gptq_solve_factor: { parameters: [P, "i32", P, P, "f32", P, P, P], result: "i32" },
  gptq_solve_columns_scratch_bytes: { parameters: ["i32", "i32", "i32"], result: "u64" },
  gptq_solve_columns: {
    parameters: [
      P,
      "i32",
      "i32",
      P,
      P,
      P,
      P,
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      P,
      P,
      P,
      P,
      P,
    ],
    result: "i32",
  },
  gptq_solve_error_sums: { parameters: [P, "i32", P, "i32", P, P], result: "i32" },
} as const;

/** The raw symbols (every call returns a status; see {@linkcode GpuLibrary.check}). */
export type GpuSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Library file names under the repository root, by kind. */
export const LIBRARY_FILES: Readonly<Record<GpuLibraryKind, string>> = {
  cuda: "ffi/lib/libgptq_cuda.so",
  hip: "ffi/build/libgptq_hip.so",
  "hip-cpu": "ffi/build/libgptq_hipcpu.so",
};

/**
 * Where the library of a kind lives: `GPTQ_CUDA_LIB` / `GPTQ_HIP_LIB` when
 * set, else the file beside this checkout (`LIBRARY_FILES`). Returns a reason
 * instead when the module was imported from a URL that is not a local file.
 *
 * @example
 * ```ts
 * import { libraryPath } from "./ffi.ts";
 * const p = libraryPath("cuda");
 * console.log("path" in p ? p.path : p.reason);
 * ```
 *
 * @param kind The build.
 * @returns `{ path }` or `{ reason }`.
 */
export function libraryPath(kind: GpuLibraryKind): { path: string } | { reason: string } {
  const env = kind === "cuda" ? "GPTQ_CUDA_LIB" : kind === "hip" ? "GPTQ_HIP_LIB" : null;
  try {
    const v = env ? Deno.env.get(env) : undefined;
    if (v) return { path: v };
  } catch { /* no --allow-env: use the default */ }
  const url = new URL(`../../../${LIBRARY_FILES[kind]}`, import.meta.url);
  if (url.protocol !== "file:") {
    return {
      reason: `the toolkit was imported from ${url.origin}; native libraries load only from a ` +
        "local checkout",
    };
  }
  return { path: decodeURIComponent(url.pathname) };
}

const cache = new Map<string, GpuLibrary>();

/** A device as {@linkcode GpuLibrary.deviceInfo} reports it. */
export interface GpuDeviceInfo {
  /** Index (as CUDA_VISIBLE_DEVICES renumbers them). */
  index: number;
  /** Marketing name, e.g. "NVIDIA H200". */
  name: string;
  /** Architecture: `sm_90` (CUDA) or `gfx90a` (HIP). */
  arch: string;
  /** Total memory in bytes. */
  totalBytes: number;
  /** Compute capability, major. */
  major: number;
  /** Compute capability, minor. */
  minor: number;
  /** Streaming multiprocessors / compute units. */
  multiprocessors: number;
}

/** An opened kernel library with checked calls. */
export class GpuLibrary {
  /** The raw symbols. */
  readonly symbols: GpuSymbols;
  /** The file it was opened from. */
  readonly path: string;
  /** The build: "cuda", "hip" or "hip-cpu" (from the library itself). */
  readonly kind: GpuLibraryKind;

  private constructor(lib: Deno.DynamicLibrary<typeof SYMBOLS>, path: string) {
    this.symbols = lib.symbols;
    this.path = path;
    this.kind = this.#cstring(this.symbols.gptq_backend_name()) as GpuLibraryKind;
  }

  /**
   * Opens (once per path) the library at `path`.
   *
   * @param path The `.so` file.
   * @returns The library.
   * @throws {Error} Deno's error when the file or one of its dependencies cannot be loaded.
   */
  static open(path: string): GpuLibrary {
    let lib = cache.get(path);
    if (!lib) {
      lib = new GpuLibrary(Deno.dlopen(path, SYMBOLS), path);
      cache.set(path, lib);
    }
    return lib;
  }

  #cstring(p: Deno.PointerValue): string {
    return p === null ? "" : Deno.UnsafePointerView.getCString(p);
  }

  /** The library's last error message. */
  lastError(): string {
    return this.#cstring(this.symbols.gptq_last_error());
  }

  /**
   * Throws a `CUDA` {@linkcode GptqError} with the last-error string when a
   * status is not 0.
   *
   * @param status The status a symbol returned.
   * @param what The operation, for the message.
   */
  check(status: number, what: string): void {
    if (status === 0) return;
    const kind = this.symbols.gptq_status_kind(status);
    const msg = this.lastError() || `status ${status}`;
    const hint = kind === STATUS_KIND.outOfMemory
      ? "the GPU is out of memory: use a smaller model or context, or --backend wasm"
      : kind === STATUS_KIND.noKernelImage
      ? "this GPU's architecture is not in the library: rebuild it (deno task build:cuda)"
      : undefined;
    throw new GptqError("CUDA", `${what} failed: ${msg}`, hint ? { hint } : {});
  }

  /** Device count (throws on no driver / no device; see `probeCuda` for the typed reasons). */
  deviceCount(): number {
    const c = new Int32Array(1);
    this.check(this.symbols.gptq_device_count(c), "gptq_device_count");
    return c[0]!;
  }

  /**
   * The facts of one device.
   *
   * @param dev The device index.
   * @returns Its name, architecture, memory and compute capability.
   */
  deviceInfo(dev: number): GpuDeviceInfo {
    const name = new Uint8Array(256), arch = new Uint8Array(64);
    const total = new BigUint64Array(1), i32 = new Int32Array(3);
    this.check(
      this.symbols.gptq_device_info(
        dev,
        name,
        name.length,
        arch,
        arch.length,
        total,
        i32.subarray(0, 1),
        i32.subarray(1, 2),
        i32.subarray(2, 3),
      ),
      "gptq_device_info",
    );
    const text = (b: Uint8Array) => new TextDecoder().decode(b.subarray(0, b.indexOf(0)));
    return {
      index: dev,
      name: text(name),
      arch: text(arch),
      totalBytes: Number(total[0]!),
      major: i32[0]!,
      minor: i32[1]!,
      multiprocessors: i32[2]!,
    };
  }

  /**
   * Allocates device memory.
   *
   * @param bytes Bytes (> 0).
   * @returns The device pointer.
   */
  malloc(bytes: number): bigint {
    const out = new BigUint64Array(1);
    this.check(this.symbols.gptq_malloc(BigInt(bytes), out), `allocating ${bytes} bytes`);
    return out[0]!;
  }

  /**
   * Copies a host array to the device (the array may be reused when this returns).
   *
   * @param dst Device pointer.
   * @param src Host data.
   */
  upload(dst: bigint, src: ArrayBufferView): void {
    if (src.byteLength === 0) return;
    const bytes = src instanceof Uint8Array
      ? src
      : new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    this.check(
      this.symbols.gptq_memcpy_h2d(dst, bytes as Uint8Array<ArrayBuffer>, BigInt(bytes.length)),
      "copying to the device",
    );
  }

  /**
   * Reads `dst.byteLength` bytes from the device after everything enqueued
   * before this call: the copy is enqueued now (stream order), the wait runs
   * off the main thread, then the bytes land in `dst`.
   *
   * @param src Device pointer.
   * @param dst Host destination.
   */
  async read(src: bigint, dst: ArrayBufferView): Promise<void> {
    const n = dst.byteLength;
    if (n === 0) return;
    const ticket = new BigUint64Array(1);
    this.check(this.symbols.gptq_read_begin(src, BigInt(n), ticket), "reading from the device");
    const t = ticket[0]!;
    const waited = await this.symbols.gptq_read_wait(t);
    const out = new Uint8Array(dst.buffer, dst.byteOffset, n) as Uint8Array<ArrayBuffer>;
    const ended = this.symbols.gptq_read_end(t, waited === 0 ? out : null, BigInt(n));
    this.check(waited || ended, "reading from the device");
  }

  /** Waits for everything enqueued (off the main thread). */
  async sync(): Promise<void> {
    this.check(await this.symbols.gptq_sync(), "gptq_sync");
  }
}
