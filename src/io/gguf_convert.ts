// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Imports a GGUF model (llama.cpp's format) as a Hugging Face model folder:
 * `config.json`, `generation_config.json`, `model.safetensors`,
 * `tokenizer.json`, `tokenizer_config.json` and `special_tokens_map.json`,
 * which `loadModel`, `generate`, `eval`, `serve` and `quantize` read like any
 * other checkpoint.
 *
 * - Weights are dequantized to float32 (F32, F16, BF16, Q4_0, Q4_1, Q5_0,
 *   Q5_1, Q8_0, Q2_K…Q6_K) and written as F32 (default: the dequantized values
 *   exactly, which is what transformers' GGUF loader computes with), F16 or
 *   BF16 (rounded; half the size).
 * - llama.cpp's converter permutes the rows of Llama's `q_proj`/`k_proj` per
 *   head for its rotary layout
 *   (`w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2)`, with the kv head
 *   count for `k_proj`). It is undone as transformers' `LlamaTensorProcessor`
 *   does (`w.reshape(n_head, rows/n_head/2, 2, cols).swapaxes(1, 2)`): per head,
 *   row `2p + t` goes to `t·head_dim/2 + p`, the same permutation HF's
 *   `convert_llama_weights_to_hf.py` applies, so `permuteRotaryToHf` does it.
 *   Qwen2 files are not permuted.
 * - Tensors are read, dequantized and written one at a time, so memory stays
 *   near a few copies of the largest tensor.
 *
 * @module
 */

import { fsError, GptqError } from "../errors.ts";
import { AtomicOutputDir } from "./atomic_dir.ts";
import { fromFloat32 } from "./dtype.ts";
import { GgufReader } from "./gguf.ts";
import { assertDequantizable } from "./gguf_dequant.ts";
import { buildGgufTokenizer } from "./gguf_tokenizer.ts";
import {
  ggufHfConfig,
  type GgufModelParams,
  ggufModelParams,
  ggufTensorPlan,
} from "./_gguf_model.ts";
import { permuteRotaryToHf } from "./llama2c.ts";
import { type NamedTensor, writeSafetensors } from "./safetensors_writer.ts";

export type { GgufModelParams };

/** Output dtypes of {@linkcode convertGguf}. */
export type GgufOutDType = "F32" | "F16" | "BF16";

const TORCH_DTYPE: Record<GgufOutDType, string> = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
};

/** Options of {@linkcode convertGguf}. */
export interface GgufConvertOptions {
  /** Weight dtype in `model.safetensors` (default `"F32"`: the dequantized values, exactly). */
  dtype?: GgufOutDType;
  /** Replace an existing output folder. */
  force?: boolean;
}

/** What {@linkcode convertGguf} wrote. */
export interface GgufConvertReport {
  /** The output folder. */
  outDir: string;
  /** `general.architecture`. */
  architecture: string;
  /** `general.name`, if any. */
  name: string | null;
  /** GGUF format version. */
  ggufVersion: number;
  /** The weight dtype written. */
  dtype: GgufOutDType;
  /** Number of tensors written. */
  tensors: number;
  /** Number of parameters written. */
  parameters: number;
  /** How many source tensors had each ggml type. */
  sourceTypes: Record<string, number>;
  /** The model's hyper-parameters. */
  params: GgufModelParams;
  /** Files written, relative to `outDir`. */
  files: string[];
  /** Tokenizer facts. */
  tokenizer: { model: string; vocabSize: number; merges: number };
}

/**
 * Converts a GGUF file into a Hugging Face folder. The header, metadata,
 * tensor table and tokenizer are validated before anything is written; the
 * folder appears all at once, and an existing one is only replaced with
 * `force`.
 *
 * @example
 * ```ts ignore
 * import { convertGguf } from "./gguf_convert.ts";
 * const r = await convertGguf("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-hf");
 * console.log(r.parameters, r.sourceTypes); // 134515008 { Q8_0: 1, F32: 61, Q4_1: 210 }
 * ```
 *
 * @param file The `.gguf` file.
 * @param outDir The folder to create.
 * @param opts `dtype` for the weights, `force` to overwrite.
 * @returns What was written.
 */
export async function convertGguf(
  file: string,
  outDir: string,
  opts: GgufConvertOptions = {},
): Promise<GgufConvertReport> {
  const dtype = opts.dtype ?? "F32";
  if (!Object.hasOwn(TORCH_DTYPE, dtype)) {
    throw new GptqError("INVALID_ARGUMENT", `unsupported dtype ${JSON.stringify(dtype)}`, {
      hint: "use F32, F16 or BF16",
    });
  }
  using reader = await GgufReader.open(file);
  const h = reader.header;
  const ropeFreqs = reader.tensor("rope_freqs.weight");
  const params = ggufModelParams(h, ropeFreqs ? await reader.readTensor(ropeFreqs) : null);
  const plan = ggufTensorPlan(h, params);
  for (const t of plan) assertDequantizable(t.src.type, { file, tensor: t.src.name });
  const tok = buildGgufTokenizer(h, params.context);
  if (tok.vocabSize !== params.vocab) {
    throw new GptqError(
      "TOKENIZER",
      `has ${tok.vocabSize} tokens but the model's vocabulary is ${params.vocab}`,
      { file, hint: "the tokenizer and embedding disagree; re-convert the model" },
    );
  }
  const sourceTypes: Record<string, number> = {};
  for (const t of h.tensors) sourceTypes[t.typeName] = (sourceTypes[t.typeName] ?? 0) + 1;

  const out = await AtomicOutputDir.create(outDir, { force: opts.force ?? false });
  try {
    let parameters = 0;
    const tensors = async function* (): AsyncGenerator<NamedTensor> {
      for (const t of plan) {
        let w = await reader.readTensor(t.src);
        if (t.permuteHeads > 0) {
          w = permuteRotaryToHf(w, t.permuteHeads, t.src.shape[0]!, t.src.shape[1] ?? 1);
        }
        parameters += w.length;
        const data = dtype === "F32"
          ? new Uint8Array(w.buffer, w.byteOffset, w.byteLength) // no copy
          : fromFloat32(w, dtype);
        yield { name: t.name, dtype, shape: t.src.shape, data };
      }
    };
    await writeSafetensors(out.path("model.safetensors"), tensors(), { format: "pt" });
    const json = (o: unknown): string => JSON.stringify(o, null, 2) + "\n";
    const cfg = tok.tokenizerConfig;
    const special: Record<string, unknown> = {};
    for (const k of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
      if (typeof cfg[k] === "string") special[k] = cfg[k];
    }
    const generation: Record<string, unknown> = {};
    if (params.bosId !== null) generation.bos_token_id = params.bosId;
    if (params.eosId !== null) generation.eos_token_id = params.eosId;
    if (params.padId !== null) generation.pad_token_id = params.padId;
    const files: [string, string][] = [
      ["config.json", json(ggufHfConfig(params, TORCH_DTYPE[dtype]))],
      ["generation_config.json", json(generation)],
      ["tokenizer.json", JSON.stringify(tok.tokenizerJson) + "\n"],
      ["tokenizer_config.json", json(cfg)],
      ["special_tokens_map.json", json(special)],
    ];
    for (const [name, text] of files) {
      const p = out.path(name);
      try {
        await Deno.writeTextFile(p, text);
      } catch (e) {
        throw fsError(e, p);
      }
    }
    await out.commit();
    const name = h.metadata.get("general.name");
    return {
      outDir: out.outDir,
      architecture: params.arch,
      name: typeof name === "string" ? name : null,
      ggufVersion: h.version,
      dtype,
      tensors: plan.length,
      parameters,
      sourceTypes,
      params,
      files: ["model.safetensors", ...files.map(([n]) => n)],
      tokenizer: { model: tok.model, vocabSize: tok.vocabSize, merges: tok.merges },
    };
  } catch (e) {
    await out.abort();
    throw e;
  }
}
