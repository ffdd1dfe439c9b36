// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Chooses the compute backend at run time and says which one and why.
 *
 * `auto` picks a working CUDA device (the committed `ffi/lib/libgptq_cuda.so`
 * and an NVIDIA driver), else a HIP device (when `ffi/build/libgptq_hip.so`
 * was built), else WebGPU on a real GPU adapter (a software adapter such as
 * llvmpipe/lavapipe is slower than WASM), else WASM SIMD, else the TypeScript
 * reference; each fallback is explained in the description. The CUDA/HIP
 * probes are cheap and quiet when there is no driver. Naming a backend that
 * cannot load is an error.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import type { Backend } from "./backend.ts";
import { hostBackend } from "./host.ts";
import { createTsKernels } from "./typescript/ts_kernels.ts";

/** Backend names a user can ask for. */
export type BackendName = "auto" | "wasm" | "typescript" | "webgpu" | "cuda" | "hip";

/** The backend names {@linkcode selectBackend} accepts. */
export const BACKEND_NAMES: readonly BackendName[] = [
  "auto",
  "wasm",
  "typescript",
  "webgpu",
  "cuda",
  "hip",
];

/** The chosen backend and why. */
export interface BackendChoice {
  /** The backend. */
  backend: Backend;
  /**
   * One line for the user, e.g. "backend: wasm-simd128 ×2 threads (CPU) —
   * auto: no WebGPU GPU (…); 2 threads = all cores (default)".
   */
  description: string;
}

/** Options of {@linkcode selectBackend}. */
export interface SelectOptions {
  /**
   * WASM threads, 1..64 (default: every core, `navigator.hardwareConcurrency`;
   * outputs are bit-identical for any count). Other backends ignore it.
   */
  threads?: number;
  /**
   * WASM activation precision of GPTQ linears: `"f32"` (exact, default) or
   * `"int8"` (per-32 int8 activations, integer dot products; faster, changes
   * the numerics slightly). Other backends ignore it.
   */
  actQuant?: "f32" | "int8";
  /**
   * Whether `auto` may pick a WebGPU GPU (default true); `false` keeps it on
   * the CPU (`quantize` does, so that a default run writes the same
   * checkpoint on every machine).
   */
  allowGpu?: boolean;
}

function describe(b: Backend, why = ""): string {
  return `backend: ${b.name} (${b.device})${why ? ` — ${why}` : ""}`;
}

/** The WASM backend and why it runs that many threads. */
async function wasmBackend(
  requested: number | undefined,
  actQuant: "f32" | "int8" | undefined,
): Promise<{ backend: Backend; threads: string }> {
  const { createWasmKernels, wasmThreads } = await import("./wasm/wasm_kernels.ts");
  const { threads, why } = wasmThreads(requested);
  const k = await createWasmKernels({ threads, ...(actQuant ? { actQuant } : {}) });
  return { backend: hostBackend(k, "CPU"), threads: why };
}

async function webgpuBackend(): Promise<Backend> {
  const { createWebGpuBackend } = await import("./webgpu/webgpu_backend.ts");
  return await createWebGpuBackend();
}

/** A CUDA/HIP backend when a device works, else the one-line reason (undefined: skip quietly). */
async function cudaOrReason(
  kind: "cuda" | "hip",
): Promise<{ backend: Backend } | { why: string } | undefined> {
  const { probeCuda, createCudaBackend } = await import("./cuda/cuda_backend.ts");
  const probe = probeCuda({ kind });
  if (probe.ok) return { backend: createCudaBackend({ kind }) };
  // HIP is built only where ROCm is: say nothing when its library is absent.
  if (kind === "hip" && probe.reason === "library-missing") return undefined;
  return { why: `no ${kind === "cuda" ? "CUDA" : "HIP"} device (${probe.message})` };
}

async function cpuFallback(
  name: BackendName,
  opts: SelectOptions,
  why: string,
): Promise<BackendChoice> {
  try {
    const { backend: b, threads } = await wasmBackend(opts.threads, opts.actQuant);
    return { backend: b, description: describe(b, [why, threads].filter(Boolean).join("; ")) };
  } catch (e) {
    // A bad thread count is the caller's error, not a reason to fall back.
    if (e instanceof GptqError && e.code === "INVALID_ARGUMENT") throw e;
    const reason = (e as Error).message;
    if (name === "wasm") {
      throw new GptqError("WASM", `the WASM backend failed to load: ${reason}`, {
        hint: "use --backend typescript",
        cause: e,
      });
    }
    const b = hostBackend(createTsKernels(), "CPU");
    const all = [why, `WASM unavailable: ${reason}`].filter(Boolean).join("; ");
    return { backend: b, description: describe(b, `reference kernels, slow; ${all}`) };
  }
}

/**
 * Picks a backend and explains the choice in one line.
 *
 * @example
 * ```ts
 * import { selectBackend } from "./select.ts";
 * const { description } = await selectBackend("typescript");
 * console.log(description); // backend: typescript (CPU) — reference kernels, slow
 * ```
 *
 * @param name The requested backend.
 * @param opts Threads and whether a GPU may be chosen.
 * @returns The backend and a description.
 */
export async function selectBackend(
  name: BackendName = "auto",
  opts: SelectOptions = {},
): Promise<BackendChoice> {
  if (!BACKEND_NAMES.includes(name)) {
    throw new GptqError("INVALID_ARGUMENT", `unknown backend '${name}'`, {
      hint: `use one of ${BACKEND_NAMES.join(", ")}`,
    });
  }
  if (name === "typescript") {
    const b = hostBackend(createTsKernels(), "CPU");
    return { backend: b, description: describe(b, "reference kernels, slow") };
  }
  if (name === "cuda" || name === "hip") {
    const { createCudaBackend } = await import("./cuda/cuda_backend.ts");
    const b = createCudaBackend({ kind: name }); // a CUDA_UNAVAILABLE error says why not
    return { backend: b, description: describe(b, `asked for with --backend ${name}`) };
  }
  if (name === "webgpu") {
    const b = await webgpuBackend(); // its errors name what is missing
    return { backend: b, description: describe(b, "asked for with --backend webgpu") };
  }
  if (name === "wasm") return await cpuFallback(name, opts, "");
  // auto
  if (opts.allowGpu === false) return await cpuFallback(name, opts, "");
  const reasons: string[] = [];
  for (const kind of ["cuda", "hip"] as const) {
    try {
      const r = await cudaOrReason(kind);
      if (r && "backend" in r) {
        return { backend: r.backend, description: describe(r.backend, `auto: a ${kind} device`) };
      }
      if (r) reasons.push(r.why);
    } catch (e) {
      reasons.push(`${kind} failed (${(e as Error).message})`);
    }
  }
  let why: string;
  try {
    const { probeWebGpu } = await import("./webgpu/webgpu_backend.ts");
    const probe = await probeWebGpu();
    if (probe.ok && !probe.isFallback) {
      const b = await webgpuBackend();
      return { backend: b, description: describe(b, "auto: a GPU adapter was found") };
    }
    why = probe.ok
      ? `auto: WebGPU adapter '${probe.description}' is a CPU fallback, WASM is faster`
      : `auto: no WebGPU GPU (${probe.reason})`;
  } catch (e) {
    why = `auto: WebGPU failed (${(e as Error).message})`;
  }
  // The WebGPU reason first (it says "auto: …"), then why no CUDA/HIP device.
  return await cpuFallback(name, opts, [why, ...reasons].join("; "));
}
