// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The backends: one device-resident interface ({@linkcode Backend}) with
 * implementations on WASM SIMD (Rust), WebGPU (WGSL), CUDA/HIP (Deno FFI) and
 * plain TypeScript, and {@linkcode selectBackend}, which picks the fastest one
 * available and says why.
 *
 * @example Pick a backend and load a model on it
 * ```ts ignore
 * import { selectBackend } from "@gptq/toolkit/backends";
 * import { CausalLM } from "@gptq/toolkit/runtime";
 * const choice = await selectBackend("auto");
 * console.error(choice.line); // e.g. "backend: wasm-simd128 ×2 threads (CPU) — auto: …"
 * const lm = await CausalLM.load("./llama-gptq", { backend: choice.backend });
 * ```
 *
 * @example Is there a WebGPU adapter?
 * ```ts ignore
 * import { probeWebGpu } from "@gptq/toolkit/backends";
 * console.log(await probeWebGpu());
 * ```
 *
 * @module
 */

export * from "./src/backends/backend.ts";
export * from "./src/backends/host.ts";
export * from "./src/backends/host_kernels.ts";
export * from "./src/backends/select.ts";
export { createTsKernels } from "./src/backends/typescript/ts_kernels.ts";
export {
  type ActQuant,
  createWasmKernels,
  type WasmKernelsOptions,
} from "./src/backends/wasm/wasm_kernels.ts";
export {
  type AdapterFacts,
  type Binding,
  createWebGpuBackend,
  GpuContext,
  type GpuContextOptions,
  type GpuTensor,
  probeWebGpu,
  type WebGpuBackend,
  type WebGpuBackendOptions,
  type WebGpuProbe,
} from "./src/backends/webgpu/webgpu_backend.ts";
// CUDA/HIP backends come from `selectBackend("cuda")` / `selectBackend("hip")`.
export {
  type CudaProbe,
  type CudaUnavailableReason,
  describeDevice,
  type GpuDeviceInfo,
  type GpuLibraryKind,
  probeCuda,
} from "./src/backends/cuda/cuda_backend.ts";
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
export type { ProbeOptions } from "./src/backends/cuda/probe.ts";
export {
  type GptqWasm,
  loadWasm,
  type LoadWasmOptions,
  type PackBits,
  relaxedSimdSupported,
  WASM_SHA256,
  type WasmCallContext,
  wasmModule,
  type WasmSimd,
  wasmSimd,
} from "./src/wasm/mod.ts";
