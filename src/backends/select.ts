// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Chooses the compute backend at run time and says which one and why.
 *
 * `auto` picks WebGPU only for a real GPU adapter (a software adapter such as
 * llvmpipe/lavapipe is slower than WASM), else WASM SIMD, else the TypeScript
 * reference; each fallback is explained in the description. Naming a backend
 * that cannot load is an error.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import type { Backend } from "./backend.ts";
import { hostBackend } from "./host.ts";
import { createTsKernels } from "./typescript/ts_kernels.ts";

/** Backend names a user can ask for. */
export type BackendName = "auto" | "wasm" | "typescript" | "webgpu";

/** The backend names {@linkcode selectBackend} accepts. */
export const BACKEND_NAMES: readonly BackendName[] = ["auto", "wasm", "typescript", "webgpu"];

/** The chosen backend and why. */
export interface BackendChoice {
  /** The backend. */
  backend: Backend;
  /** One line for the user, e.g. "backend: wasm-simd128 ×2 threads (CPU)". */
  description: string;
}

/** Options of {@linkcode selectBackend}. */
export interface SelectOptions {
  /** WASM threads (1 or 2; default: 2 where there are two cores). */
  threads?: number;
  /**
   * Whether a WebGPU backend will be used (quantization needs a host
   * backend for its Hessian capture today): `false` keeps `auto` on the CPU.
   */
  allowGpu?: boolean;
}

function describe(b: Backend, why = ""): string {
  return `backend: ${b.name} (${b.device})${why ? ` — ${why}` : ""}`;
}

async function wasmBackend(threads: number | undefined): Promise<Backend> {
  const { createWasmKernels } = await import("./wasm/wasm_kernels.ts");
  const k = await createWasmKernels(threads !== undefined ? { threads } : {});
  return hostBackend(k, "CPU");
}

async function webgpuBackend(): Promise<Backend> {
  const { createWebGpuBackend } = await import("./webgpu/webgpu_backend.ts");
  return await createWebGpuBackend();
}

async function cpuFallback(
  name: BackendName,
  opts: SelectOptions,
  why: string,
): Promise<BackendChoice> {
  try {
    const b = await wasmBackend(opts.threads);
    return { backend: b, description: describe(b, why) };
  } catch (e) {
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
  if (name === "webgpu") {
    const b = await webgpuBackend(); // its errors name what is missing
    return { backend: b, description: describe(b, "asked for with --backend webgpu") };
  }
  if (name === "wasm") return await cpuFallback(name, opts, "");
  // auto
  if (opts.allowGpu === false) return await cpuFallback(name, opts, "");
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
  return await cpuFallback(name, opts, why);
}
