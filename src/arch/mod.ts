// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Supported architectures, described as data, and helpers that expand them
 * into tensor names, shapes and quantization order.
 *
 * @example
 * ```ts
 * import { getArch } from "./mod.ts";
 * const spec = getArch("llama");
 * console.log(spec.sequentialGroups.flat().length); // 7
 * ```
 *
 * @module
 */

export * from "./spec.ts";
export * from "./registry.ts";
export * from "./tensors.ts";
export { LLAMA, MISTRAL } from "./llama.ts";
export { QWEN2 } from "./qwen2.ts";
export { OPT } from "./opt.ts";
export { GPT2 } from "./gpt2.ts";
export { GPT_NEOX } from "./gpt_neox.ts";
