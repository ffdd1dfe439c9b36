// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The registry of supported architectures: `model_type` → {@linkcode ArchSpec}.
 * Supporting a new family means writing its spec and adding it to
 * {@linkcode ARCHS}.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { GPT2 } from "./gpt2.ts";
import { GPT_NEOX } from "./gpt_neox.ts";
import { LLAMA, MISTRAL } from "./llama.ts";
import { OPT } from "./opt.ts";
import { QWEN2 } from "./qwen2.ts";
import type { ArchSpec } from "./spec.ts";

/**
 * Every supported family.
 *
 * @example
 * ```ts
 * import { ARCHS } from "./registry.ts";
 * console.log(ARCHS.map((a) => a.family));
 * ```
 */
export const ARCHS: readonly ArchSpec[] = [LLAMA, MISTRAL, QWEN2, OPT, GPT2, GPT_NEOX];

/**
 * The supported `model_type` values, in registry order.
 *
 * @example
 * ```ts
 * import { SUPPORTED_MODEL_TYPES } from "./registry.ts";
 * console.log(SUPPORTED_MODEL_TYPES.join(", ")); // "llama, mistral, qwen2, opt, gpt2, gpt_neox"
 * ```
 */
export const SUPPORTED_MODEL_TYPES: readonly string[] = ARCHS.flatMap((a) => a.modelTypes);

const BY_MODEL_TYPE: ReadonlyMap<string, ArchSpec> = new Map(
  ARCHS.flatMap((a) => a.modelTypes.map((t) => [t, a] as const)),
);

/**
 * Finds the spec for a `model_type`, or `undefined` when unsupported.
 *
 * @example
 * ```ts
 * import { findArch } from "./registry.ts";
 * console.log(findArch("qwen2")?.family, findArch("phi")); // "qwen2" undefined
 * ```
 *
 * @param modelType The config's `model_type`.
 * @returns The spec, or `undefined`.
 */
export function findArch(modelType: string): ArchSpec | undefined {
  return BY_MODEL_TYPE.get(modelType);
}

/**
 * Finds the spec for a `model_type`, failing with a typed error when
 * unsupported.
 *
 * @example
 * ```ts
 * import { getArch } from "./registry.ts";
 * console.log(getArch("llama").blockPrefix); // "model.layers"
 * ```
 *
 * @param modelType The config's `model_type`.
 * @param file The config file, for the error message.
 * @returns The spec.
 */
export function getArch(modelType: string, file?: string): ArchSpec {
  const spec = BY_MODEL_TYPE.get(modelType);
  if (!spec) {
    throw new GptqError("UNSUPPORTED_ARCHITECTURE", `model_type '${modelType}' is not supported`, {
      ...(file === undefined ? {} : { file }),
      hint: `supported: ${SUPPORTED_MODEL_TYPES.join(", ")}`,
    });
  }
  return spec;
}
