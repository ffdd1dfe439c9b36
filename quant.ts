// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The quantization layer: {@linkcode quantizeModel} with its
 * {@linkcode GPTQConfig}, calibration sets (lists of texts, `.txt`/`.jsonl`
 * files, the named Hub datasets `wikitext2`, `c4`, `c4-new`), and the GPTQ
 * solver for one layer (AutoGPTQ's `fasterquant` in WASM) with the
 * Hessian-weighted error it reports.
 *
 * @example Quantize one layer's weight from its Hessian
 * ```ts ignore
 * import { createWasmSolver } from "@gptq/toolkit/quant";
 * const solver = await createWasmSolver();
 * const acc = solver.hessian(K);
 * acc.add(X, rows); // calibration activations [rows, K]
 * const r = solver.quantize(W, N, K, acc, { bits: 4, group_size: 128 });
 * ```
 *
 * @example Calibration samples from a named dataset
 * ```ts ignore
 * import { loadCalibration } from "@gptq/toolkit/quant";
 * const cal = await loadCalibration("wikitext2", tokenizer, { nsamples: 128, seqlen: 2048 });
 * ```
 *
 * @module
 */

export * from "./src/quant/quantize.ts";
export * from "./src/quant/solver.ts";
export * from "./src/quant/calibration.ts";
export {
  datasetCachePath,
  datasetUrl,
  defaultCacheDir,
  downloadDataset,
  fetchDataset,
  type FetchDatasetOptions,
  HUB_DATASETS,
  type HubCalibrationOptions,
  type HubDatasetName,
  type HubDatasetSource,
  loadHubCalibration,
  readJsonlGzText,
  readParquetText,
} from "./src/quant/datasets.ts";
export type * from "./src/backends/backend.ts";
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
