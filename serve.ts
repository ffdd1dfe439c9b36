// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The OpenAI-compatible server (`/v1/completions`, `/v1/chat/completions`
 * with SSE streaming, `/v1/models`, `/health`), its request parsing and
 * response bodies, and chat templates rendered with `@huggingface/jinja`.
 *
 * @example Serve a model on a free port
 * ```ts ignore
 * import { loadModel } from "@gptq/toolkit";
 * import { serve } from "@gptq/toolkit/serve";
 * const model = await loadModel("./llama-gptq");
 * const srv = serve({ model, modelId: "llama-gptq", port: 0, onListen: ({ port }) => console.log(port) });
 * await srv.finished;
 * ```
 *
 * @example A request handler to mount in your own server
 * ```ts ignore
 * import { createServer } from "@gptq/toolkit/serve";
 * const api = createServer({ model, modelId: "llama-gptq" });
 * Deno.serve((req) => api.handle(req));
 * ```
 *
 * @module
 */

export * from "./src/serve/server.ts";
export * from "./src/serve/chat_template.ts";
export * from "./src/serve/openai.ts";
export type {
  BlockContext,
  BlockWeights,
  CausalLM,
  ForwardOptions,
  KvCache,
  LinearInput,
  LinearInputHook,
  LoadModelOptions,
  NormWeights,
} from "./src/runtime/model.ts";
export type * from "./src/backends/backend.ts";
export type { GenerateOptions, GenerateStats } from "./src/runtime/generate.ts";
export type { SamplingOptions } from "./src/runtime/sample.ts";
export type {
  ZeroFormatDecision,
  ZeroFormatEvidence,
  ZeroFormatSource,
} from "./src/runtime/quant_load.ts";
export type { ZeroFormatGuess } from "./src/gptq/zero_format.ts";
export type * from "./src/io/tokenizer.ts";
export type * from "./src/io/model_folder.ts";
export type * from "./src/io/hf_config.ts";
export type * from "./src/io/checkpoint.ts";
export type { RawTensor, TensorInfo } from "./src/io/safetensors.ts";
export type { DType } from "./src/io/dtype.ts";
export type * from "./src/arch/spec.ts";
export type { BlockLinear } from "./src/arch/tensors.ts";
export type { Bits, ZeroFormat } from "./src/gptq/pack.ts";
export type { QuantLinearTensors, TensorSource } from "./src/gptq/quant_linear.ts";
export type { CheckpointFormat, PackDType, QuantizeConfig } from "./src/gptq/quant_config.ts";
