// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The GPTQ toolkit for Deno: quantize language models with GPTQ into
 * checkpoints that AutoGPTQ, transformers/optimum, GPTQModel and vLLM load,
 * run plain and GPTQ models (WASM SIMD, WebGPU, CUDA/HIP), measure
 * perplexity, serve an OpenAI-compatible API, inspect and convert models.
 *
 * This entry point is the curated API. The layers beneath it have their own
 * entry points: `@gptq/toolkit/format` (safetensors, GPTQ packing, configs,
 * tokenizers, GGUF, llama2.c, architectures), `@gptq/toolkit/runtime` (the
 * causal LM, generation, sampling, perplexity), `@gptq/toolkit/quant`
 * (calibration, named datasets, the GPTQ solver), `@gptq/toolkit/serve` (the
 * OpenAI server and chat templates) and `@gptq/toolkit/backends` (the
 * device-resident backend interface, WASM, WebGPU, CUDA/HIP).
 *
 * Import it by JSR name, by relative path, by `file://` URL or by `http(s)://`
 * URL: the toolkit's dependencies are `npm:` specifiers with versions, so no
 * import map is needed.
 *
 * @example Load a model and generate (greedy)
 * ```ts ignore
 * import { loadModel } from "@gptq/toolkit";
 * const model = await loadModel("./stories260K-hf"); // a folder or a Hub id
 * for await (const piece of model.generate("Once upon a time", { max_new_tokens: 32, temperature: 0 })) {
 *   Deno.stdout.writeSync(new TextEncoder().encode(piece));
 * }
 * model.close();
 * ```
 *
 * @example Perplexity as the GPTQ paper computes it
 * ```ts ignore
 * import { loadModel } from "@gptq/toolkit";
 * const model = await loadModel("./llama-gptq");
 * const { ppl } = await model.perplexity(await Deno.readTextFile("wikitext2_test.txt"), { seqlen: 2048 });
 * console.log(ppl);
 * ```
 *
 * @example Quantize with a GPTQConfig (transformers' names)
 * ```ts ignore
 * import { type GPTQConfig, quantizeModel } from "@gptq/toolkit";
 * const cfg: GPTQConfig = {
 *   bits: 4,
 *   group_size: 128,
 *   desc_act: false,
 *   dataset: ["auto-gptq is an easy-to-use model quantization library with user-friendly apis, based on GPTQ algorithm."],
 * };
 * const report = await quantizeModel("./llama", "./llama-gptq", cfg); // or dataset: "wikitext2", "c4", "calib.txt"
 * console.log(report.seconds);
 * ```
 *
 * @example Inspect a quantized checkpoint
 * ```ts ignore
 * import { formatInspectReport, inspectPath } from "@gptq/toolkit";
 * console.log(formatInspectReport(await inspectPath("./Llama-2-7B-GPTQ")));
 * ```
 *
 * @example Convert llama2.c and GGUF models into Hugging Face folders
 * ```ts ignore
 * import { convertGguf, convertLlama2c } from "@gptq/toolkit";
 * await convertLlama2c("stories260K.bin", "tok512.bin", "./stories260K-hf");
 * await convertGguf("SmolLM2-135M-Instruct.Q4_1.gguf", "./smollm2-hf");
 * ```
 *
 * @example Serve an OpenAI-compatible API
 * ```ts ignore
 * import { loadModel, serve } from "@gptq/toolkit";
 * const model = await loadModel("./llama-gptq");
 * const server = serve({ model, modelId: "llama-gptq", port: 8080 });
 * await server.finished;
 * ```
 *
 * @example The format building blocks: unpack a quantized layer
 * ```ts ignore
 * import { CheckpointReader, dequantizeLinear, readQuantLinear } from "@gptq/toolkit";
 * using ckpt = await CheckpointReader.open("./Llama-2-7B-GPTQ");
 * const q = await readQuantLinear(ckpt, "model.layers.0.self_attn.q_proj", 4, "model.safetensors");
 * const w = dequantizeLinear(q, "gptq"); // [N, K] float32
 * ```
 *
 * @module
 */

// Errors and version.
export { fsError, GptqError, type GptqErrorCode, type GptqErrorDetails } from "./src/errors.ts";
export { VERSION } from "./src/version.ts";

// Load, generate, perplexity.
export { loadModel, type LoadOptions, type Model } from "./src/load_model.ts";
export type * from "./src/io/tokenizer.ts";
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
export type * from "./src/io/model_folder.ts";
export type { ModelConfig, RopeScaling } from "./src/io/hf_config.ts";
export type * from "./src/arch/spec.ts";
export type { BlockLinear } from "./src/arch/tensors.ts";
export type {
  ZeroFormatDecision,
  ZeroFormatEvidence,
  ZeroFormatSource,
} from "./src/runtime/quant_load.ts";
export type { GenerateOptions, GenerateStats } from "./src/runtime/generate.ts";
export type { SamplingOptions } from "./src/runtime/sample.ts";
export type { PerplexityOptions, PerplexityResult } from "./src/runtime/perplexity.ts";
export { BACKEND_NAMES, type BackendName } from "./src/backends/select.ts";
export type * from "./src/backends/backend.ts";
export type {
  GptqLayerResult,
  GptqSolveOptions,
  HessianAccumulator,
  QuantBackend,
} from "./src/quant/solver.ts";

// Quantize.
export {
  type GPTQConfig,
  type ModuleReport,
  quantizeModel,
  type QuantizeOptions,
  type QuantizeReport,
} from "./src/quant/quantize.ts";

// Inspect and convert.
export {
  type DtypeGroup,
  formatInspectReport,
  inspectPath,
  type InspectQuantization,
  type InspectReport,
} from "./src/inspect.ts";
export {
  convertLlama2c,
  type Llama2cConfig,
  type Llama2cConvertOptions,
  type Llama2cConvertReport,
  type Llama2cDType,
} from "./src/io/llama2c.ts";
export {
  convertGguf,
  type GgufConvertOptions,
  type GgufConvertReport,
  type GgufModelParams,
  type GgufOutDType,
} from "./src/io/gguf_convert.ts";

// Hugging Face Hub.
export {
  downloadHubModel,
  hubCacheDir,
  type HubDownloadProgress,
  type HubModelId,
  type HubSnapshot,
  parseHubId,
  resolveModel,
  type ResolveModelOptions,
} from "./src/io/hub.ts";

// Serve.
export type { ChatTemplate, RenderOptions, TemplateMessage } from "./src/serve/chat_template.ts";
export {
  type RunningServer,
  serve,
  type ServedModel,
  type ServeOptions,
  type ServerOptions,
} from "./src/serve/server.ts";

// Format building blocks (all of them: `@gptq/toolkit/format`).
export type { DType } from "./src/io/dtype.ts";
export {
  type RawTensor,
  SafetensorsFile,
  type SafetensorsHeader,
  type TensorInfo,
} from "./src/io/safetensors.ts";
export {
  type NamedTensor,
  ShardedWriter,
  type ShardedWriteResult,
  type ShardedWriterOptions,
  writeSafetensors,
} from "./src/io/safetensors_writer.ts";
export * from "./src/io/checkpoint.ts";
export {
  type Bits,
  type PackOptions,
  packQWeight,
  packQZeros,
  unpackQWeight,
  unpackQZeros,
  type UnpackZerosOptions,
  type V1ZeroMode,
  type ZeroFormat,
} from "./src/gptq/pack.ts";
export * from "./src/gptq/zero_format.ts";
export * from "./src/gptq/quant_config.ts";
export * from "./src/gptq/quant_linear.ts";
