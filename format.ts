// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The format building blocks: safetensors (read, write, shard), checkpoints
 * spread over shards, GPTQ bit packing and v1/v2 zero points, quantization
 * configs, Hugging Face configs and tokenizers, model folders, architectures
 * as data, and the llama2.c and GGUF importers.
 *
 * @example Read a tensor from a safetensors file
 * ```ts ignore
 * import { SafetensorsFile } from "@gptq/toolkit/format";
 * using f = await SafetensorsFile.open("model.safetensors");
 * const t = await f.read("model.embed_tokens.weight"); // { dtype, shape, data }
 * ```
 *
 * @example Pack and unpack 4-bit codes as AutoGPTQ does
 * ```ts ignore
 * import { packQWeight, unpackQWeight } from "@gptq/toolkit/format";
 * const codes = new Uint8Array(64 * 32).map((_, i) => i % 16); // [K=64, N=32]
 * const qweight = packQWeight(codes, 64, 32, 4);
 * console.log(unpackQWeight(qweight, 64, 32, 4).every((c, i) => c === codes[i]));
 * ```
 *
 * @example Look up an architecture
 * ```ts ignore
 * import { getArch, readModelConfig } from "@gptq/toolkit/format";
 * const config = await readModelConfig("./llama/config.json");
 * console.log(getArch(config).sequentialGroups);
 * ```
 *
 * @module
 */

export { fsError, GptqError, type GptqErrorCode, type GptqErrorDetails } from "./src/errors.ts";
export * from "./src/io/dtype.ts";
export * from "./src/io/safetensors.ts";
export * from "./src/io/safetensors_writer.ts";
export * from "./src/io/atomic_dir.ts";
export * from "./src/io/checkpoint.ts";
export * from "./src/io/hf_config.ts";
export * from "./src/io/tokenizer.ts";
export * from "./src/io/model_folder.ts";
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
export type {
  ZeroFormatDecision,
  ZeroFormatEvidence,
  ZeroFormatSource,
} from "./src/runtime/quant_load.ts";
