// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The runtime layer: the causal LM over a backend (forward pass, KV cache),
 * token-level generation, sampling, perplexity, and how a GPTQ checkpoint's
 * zero-point convention is decided at load.
 *
 * @example Greedy token ids from a loaded causal LM
 * ```ts ignore
 * import { CausalLM, generateTokens } from "@gptq/toolkit/runtime";
 * const lm = await CausalLM.load("./stories260K-hf");
 * for await (const id of generateTokens(lm, [1], { max_new_tokens: 16, temperature: 0 })) console.log(id);
 * lm.close();
 * ```
 *
 * @example Perplexity over token ids
 * ```ts ignore
 * import { CausalLM, perplexity } from "@gptq/toolkit/runtime";
 * const lm = await CausalLM.load("./llama-gptq");
 * const ids = (await lm.folder.tokenizer()).encode(await Deno.readTextFile("test.txt"));
 * console.log((await perplexity(lm, ids, { seqlen: 2048 })).ppl);
 * ```
 *
 * @module
 */

export { loadModel, type LoadOptions, type Model } from "./src/load_model.ts";
export {
  type BlockContext,
  type BlockWeights,
  CausalLM,
  type ForwardOptions,
  type KvCache,
  type LinearInput,
  type LinearInputHook,
  type LoadModelOptions,
  type NormWeights,
} from "./src/runtime/model.ts";
export * from "./src/runtime/quant_load.ts";
export * from "./src/runtime/generate.ts";
export * from "./src/runtime/sample.ts";
export * from "./src/runtime/perplexity.ts";
export * from "./src/runtime/rope.ts";
export type * from "./src/backends/backend.ts";
export type { BackendName } from "./src/backends/select.ts";
export type * from "./src/io/tokenizer.ts";
export type * from "./src/io/model_folder.ts";
export type * from "./src/io/hf_config.ts";
export type * from "./src/io/checkpoint.ts";
export type { RawTensor, TensorInfo } from "./src/io/safetensors.ts";
export type { DType } from "./src/io/dtype.ts";
export type * from "./src/arch/spec.ts";
export type { BlockLinear } from "./src/arch/tensors.ts";
export type { Bits, ZeroFormat } from "./src/gptq/pack.ts";
export type { ZeroFormatGuess } from "./src/gptq/zero_format.ts";
export type { QuantLinearTensors, TensorSource } from "./src/gptq/quant_linear.ts";
export type { CheckpointFormat, PackDType, QuantizeConfig } from "./src/gptq/quant_config.ts";
export type { HubDownloadProgress, ResolveModelOptions } from "./src/io/hub.ts";
