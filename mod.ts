// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The GPTQ toolkit for Deno: read and write GPTQ checkpoints that AutoGPTQ,
 * transformers/optimum, GPTQModel and vLLM load; inspect models; import
 * llama2.c checkpoints; and the building blocks (safetensors, bit packing,
 * v1/v2 zero points, configs, tokenizers, architectures as data) that
 * quantization and inference stand on.
 *
 * @example Inspect a quantized checkpoint
 * ```ts ignore
 * import { formatInspectReport, inspectPath } from "@gptq/toolkit";
 * const report = await inspectPath("./Llama-2-7B-GPTQ");
 * console.log(formatInspectReport(report));
 * ```
 *
 * @example Quantize, then generate
 * ```ts ignore
 * import { loadModel, quantizeModel } from "@gptq/toolkit";
 * await quantizeModel("./llama", "./llama-gptq", { bits: 4, group_size: 128, dataset: "calib.txt" });
 * const model = await loadModel("./llama-gptq");
 * for await (const piece of model.generate("Hello", { max_new_tokens: 32 })) console.log(piece);
 * ```
 *
 * @example Unpack a quantized layer's 4-bit codes
 * ```ts ignore
 * import { CheckpointReader, readQuantLinear, dequantizeLinear } from "@gptq/toolkit";
 * using ckpt = await CheckpointReader.open("./Llama-2-7B-GPTQ");
 * const q = await readQuantLinear(ckpt, "model.layers.0.self_attn.q_proj", 4, "model.safetensors");
 * const w = dequantizeLinear(q, "gptq"); // [N, K] float32
 * ```
 *
 * @module
 */

export * from "./src/errors.ts";
export * from "./src/version.ts";
export * from "./src/io/dtype.ts";
export * from "./src/io/safetensors.ts";
export * from "./src/io/safetensors_writer.ts";
export * from "./src/io/atomic_dir.ts";
export * from "./src/io/checkpoint.ts";
export * from "./src/io/hf_config.ts";
export * from "./src/io/tokenizer.ts";
export * from "./src/io/model_folder.ts";
export * from "./src/io/hub.ts";
export * from "./src/io/llama2c.ts";
export * from "./src/io/llama2c_tokenizer.ts";
export * from "./src/io/gguf.ts";
export * from "./src/io/gguf_dequant.ts";
export * from "./src/io/gguf_tokenizer.ts";
export * from "./src/io/gguf_convert.ts";
export * from "./src/arch/mod.ts";
export * from "./src/gptq/pack.ts";
export * from "./src/gptq/zero_format.ts";
export * from "./src/gptq/quant_config.ts";
export * from "./src/gptq/quant_linear.ts";
export * from "./src/inspect.ts";
export * from "./src/load_model.ts";
export * from "./src/runtime/model.ts";
export * from "./src/runtime/quant_load.ts";
export * from "./src/backends/backend.ts";
export * from "./src/backends/host.ts";
export * from "./src/backends/host_kernels.ts";
export * from "./src/backends/select.ts";
export {
  type AdapterFacts,
  type Binding,
  createWebGpuBackend,
  GpuContext,
  type GpuContextOptions,
  probeWebGpu,
  type WebGpuBackend,
  type WebGpuBackendOptions,
  type WebGpuProbe,
} from "./src/backends/webgpu/webgpu_backend.ts";
export {
  createWebGpuSolver,
  GpuHessian,
  type GpuPreparedHessian,
  type GpuQuantizeOptions,
  type WebGpuSolver,
  type WebGpuSolverOptions,
} from "./src/backends/webgpu/solver.ts";
export * from "./src/runtime/generate.ts";
export * from "./src/runtime/sample.ts";
export * from "./src/runtime/perplexity.ts";
export * from "./src/serve/server.ts";
export * from "./src/serve/chat_template.ts";
export * from "./src/quant/quantize.ts";
export * from "./src/quant/solver.ts";
export * from "./src/quant/calibration.ts";
export * from "./src/quant/datasets.ts";
export {
  createParallelGptq,
  type ParallelGptq,
  type ParallelGptqResult,
  type ParallelGptqTimings,
  type PooledHessian,
  type PreparedLayer,
  type QuantizeRowsOptions,
} from "./src/quant/_solver_pool.ts";
export {
  type GptqWasm,
  loadWasm,
  type LoadWasmOptions,
  type PackBits,
  WASM_SHA256,
  type WasmCallContext,
  wasmModule,
} from "./src/wasm/mod.ts";
