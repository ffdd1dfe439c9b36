// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Chooses the compute backend at run time and says which one and why.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import type { Kernels } from "./host_kernels.ts";
import { createTsKernels } from "./typescript/ts_kernels.ts";

/** Backend names a user can ask for. */
export type BackendName = "auto" | "wasm" | "typescript";

/** The chosen backend and why. */
export interface BackendChoice {
  /** The kernels. */
  kernels: Kernels;
  /** One line for the user, e.g. "backend: wasm-simd128 (2 threads)". */
  description: string;
}

/**
 * Picks a backend: `auto` prefers WASM SIMD and falls back to the TypeScript
 * reference with a reason; naming one that cannot load is an error.
 *
 * @example
 * ```ts
 * import { selectKernels } from "./select.ts";
 * const { description } = await selectKernels("typescript");
 * console.log(description);
 * ```
 *
 * @param name The requested backend.
 * @returns The kernels and a description.
 */
export async function selectKernels(name: BackendName = "auto"): Promise<BackendChoice> {
  if (name === "typescript") {
    return {
      kernels: createTsKernels(),
      description: "backend: typescript (reference kernels, slow)",
    };
  }
  if (name !== "auto" && name !== "wasm") {
    throw new GptqError("INVALID_ARGUMENT", `unknown backend '${name}'`, {
      hint: "use auto, wasm or typescript",
    });
  }
  let reason: string;
  try {
    const { createWasmKernels } = await import("./wasm/wasm_kernels.ts");
    const kernels = await createWasmKernels();
    return { kernels, description: `backend: ${kernels.name}` };
  } catch (e) {
    reason = (e as Error).message;
    if (name === "wasm") {
      throw new GptqError("WASM", `the WASM backend failed to load: ${reason}`, {
        hint: "use --backend typescript",
        cause: e,
      });
    }
  }
  return {
    kernels: createTsKernels(),
    description: `backend: typescript (reference kernels, slow) — WASM unavailable: ${reason}`,
  };
}
