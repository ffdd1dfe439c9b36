// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * A model folder as one object: its normalized config, its architecture
 * spec, its GPTQ quantization config (if any), its weights (single file,
 * shards or AutoGPTQ naming) and its tokenizer. Opening validates that the
 * stored tensors are exactly what config + spec predict, so later stages can
 * trust names and shapes.
 *
 * @module
 */

import { getArch } from "../arch/registry.ts";
import type { ArchSpec } from "../arch/spec.ts";
import {
  type BlockLinear,
  blockLinears,
  classifyTensor,
  expectedTensors,
  type TensorRole,
} from "../arch/tensors.ts";
import { GptqError } from "../errors.ts";
import { type QuantizeConfig, readQuantizeConfigFromFolder } from "../gptq/quant_config.ts";
import { CheckpointReader, type CheckpointTensorInfo } from "./checkpoint.ts";
import { type ModelConfig, readModelConfig } from "./hf_config.ts";
import type { DType } from "./dtype.ts";
import type { RawTensor } from "./safetensors.ts";
import { TextTokenizer } from "./tokenizer.ts";

const FLOAT_DTYPES: readonly DType[] = ["F32", "F16", "BF16", "F64"];

/** The dtypes each kind of tensor may be stored in (integers are never read as float weights). */
const ALLOWED_DTYPES: Readonly<Record<TensorRole, readonly DType[]>> = {
  embedding: FLOAT_DTYPES,
  position_embedding: FLOAT_DTYPES,
  projection: FLOAT_DTYPES,
  norm: FLOAT_DTYPES,
  lm_head: FLOAT_DTYPES,
  linear_weight: FLOAT_DTYPES,
  linear_bias: FLOAT_DTYPES,
  scales: FLOAT_DTYPES,
  qweight: ["I32"],
  qzeros: ["I32"],
  g_idx: ["I32", "I64"],
};

/**
 * Fails when config.json declares more blocks than the weights hold, before
 * any per-layer work (a config with 2³¹ layers must not expand into 2³¹
 * expected tensors).
 */
function checkLayerCount(
  arch: ArchSpec,
  config: ModelConfig,
  names: ReadonlySet<string>,
  file: string,
): void {
  const present = new Set<number>();
  let max = -1;
  for (const n of names) {
    const c = classifyTensor(arch, n);
    if (c.layer === null || c.role === "unknown" || c.role === "ignored") continue;
    present.add(c.layer);
    if (c.layer > max) max = c.layer;
  }
  if (config.numLayers <= max + 1) return;
  let missing = 0;
  while (present.has(missing)) missing++;
  throw new GptqError(
    "SAFETENSORS_MISSING_TENSOR",
    `config.json declares ${config.numLayers} layers but the weights hold ` +
      `${present.size === 0 ? "no blocks" : `blocks up to ${max}`}; block ${missing} is missing`,
    {
      file,
      hint: `fix num_hidden_layers in ${config.file} or use the complete checkpoint`,
    },
  );
}

/** What `readQuantizeConfigFromFolder` returns: the quant config, where it came from, and warnings. */
export interface FolderQuantConfig {
  /** The normalized quantization config. */
  config: QuantizeConfig;
  /** The file it was read from. */
  source: string;
  /** Non-fatal findings while reading it. */
  warnings: string[];
}

/**
 * An open model folder.
 *
 * @example
 * ```ts ignore
 * import { ModelFolder } from "./model_folder.ts";
 * using m = await ModelFolder.open("./Llama-2-7B-GPTQ");
 * console.log(m.arch.family, m.config.numLayers, m.quant?.config.bits);
 * const tok = await m.tokenizer();
 * ```
 */
export class ModelFolder implements Disposable {
  /** The folder's path. */
  readonly dir: string;
  /** The normalized `config.json`. */
  readonly config: ModelConfig;
  /** The architecture. */
  readonly arch: ArchSpec;
  /** The GPTQ quantization config, or null for a plain model. */
  readonly quant: FolderQuantConfig | null;
  /** The weights. */
  readonly weights: CheckpointReader;
  /** Non-fatal findings (unknown tensors, tied head stored anyway, …). */
  readonly warnings: string[];
  readonly #quantized: ReadonlySet<string>;
  readonly #prefixed: boolean;
  #tokenizer: Promise<TextTokenizer> | null = null;

  private constructor(
    dir: string,
    config: ModelConfig,
    arch: ArchSpec,
    quant: FolderQuantConfig | null,
    weights: CheckpointReader,
    quantized: Set<string>,
    prefixed: boolean,
    warnings: string[],
  ) {
    this.dir = dir;
    this.config = config;
    this.arch = arch;
    this.quant = quant;
    this.weights = weights;
    this.#quantized = quantized;
    this.#prefixed = prefixed;
    this.warnings = warnings;
  }

  /**
   * Opens a folder: reads `config.json`, resolves the architecture, reads the
   * quantization config, opens the weights and checks every expected tensor's
   * presence and shape.
   *
   * @example
   * ```ts ignore
   * import { ModelFolder } from "./model_folder.ts";
   * const m = await ModelFolder.open("./opt-125m");
   * m.close();
   * ```
   *
   * @param dir The model folder.
   * @returns The open folder.
   */
  static async open(dir: string): Promise<ModelFolder> {
    const base = dir.replace(/\/+$/, "") || "/";
    const config = await readModelConfig(base);
    const arch = getArch(config.modelType, config.file);
    const quant = await readQuantizeConfigFromFolder(base);
    const weights = await CheckpointReader.open(base);
    try {
      const names = new Set(weights.names());
      // GPT-2 hub checkpoints store `h.0…`/`wte.weight` without `transformer.`.
      const prefixed = arch.optionalPrefix !== null && !names.has(arch.embedding) &&
        names.has(arch.embedding.slice(arch.optionalPrefix.length));
      const stored = (n: string): string =>
        prefixed && arch.optionalPrefix && n.startsWith(arch.optionalPrefix)
          ? n.slice(arch.optionalPrefix.length)
          : n;
      checkLayerCount(arch, config, names, weights.files()[0]?.path ?? base);
      const quantized = new Set<string>();
      for (const l of blockLinears(arch, config)) {
        if (names.has(stored(`${l.name}.qweight`))) quantized.add(l.name);
      }
      if (quantized.size > 0 && !quant) {
        throw new GptqError(
          "QUANT_CONFIG",
          "the weights hold GPTQ qweight tensors but no quantization config was found",
          {
            file: base,
            hint: "add the model's quantize_config.json (or quantization_config in config.json)",
          },
        );
      }
      const warnings: string[] = [...(quant?.warnings ?? [])];
      const expected = expectedTensors(arch, config, {
        ...(quant
          ? {
            quant: {
              bits: quant.config.bits,
              groupSize: quant.config.group_size,
              isQuantized: (m: string) => quantized.has(m),
            },
          }
          : {}),
      });
      const seen = new Set<string>();
      for (const t of expected) {
        const name = stored(t.name);
        seen.add(name);
        if (!names.has(name)) {
          if (t.role === "g_idx") {
            warnings.push(`${t.name} is missing; assuming g_idx[k] = k / group_size`);
            continue;
          }
          throw new GptqError("SAFETENSORS_MISSING_TENSOR", "not found in the weights", {
            file: weights.files()[0]?.path ?? base,
            tensor: t.name,
            hint: `config.json describes a ${arch.family} model with ${config.numLayers} layers; ` +
              "the weights do not match it",
          });
        }
        const info = weights.info(name);
        const dtypes = ALLOWED_DTYPES[t.role];
        if (!dtypes.includes(info.dtype)) {
          throw new GptqError(
            "SAFETENSORS_TENSOR",
            `dtype ${info.dtype} is not valid for a ${t.role.replace("_", " ")} tensor ` +
              `(expected ${dtypes.join(", ")})`,
            {
              file: info.file,
              tensor: t.name,
              hint: "the checkpoint is corrupt or was written by an unsupported tool; re-export it",
            },
          );
        }
        if (info.shape.join(",") !== t.shape.join(",")) {
          throw new GptqError(
            "SHAPE",
            `shape [${info.shape}] does not match [${t.shape}] expected from config.json`,
            {
              file: info.file,
              tensor: t.name,
              hint: t.role === "qweight" || t.role === "qzeros" || t.role === "scales"
                ? `check bits (${quant?.config.bits}) and group_size (${quant?.config.group_size}) in the quantization config`
                : "config.json does not describe these weights",
            },
          );
        }
      }
      const unknown: string[] = [];
      for (const n of names) {
        if (seen.has(n)) continue;
        const role = classifyTensor(arch, n).role;
        if (role === "ignored") continue;
        if (role === "lm_head" && config.tieWordEmbeddings) {
          warnings.push(
            `${n} is stored although tie_word_embeddings is true; it is used as the head`,
          );
          continue;
        }
        unknown.push(n);
      }
      if (unknown.length > 0) {
        warnings.push(
          `${unknown.length} tensor(s) not described by the ${arch.family} spec are ignored: ` +
            unknown.slice(0, 5).join(", ") + (unknown.length > 5 ? ", …" : ""),
        );
      }
      return new ModelFolder(base, config, arch, quant, weights, quantized, prefixed, warnings);
    } catch (e) {
      weights.close();
      throw e;
    }
  }

  /**
   * The name a canonical tensor name is stored under.
   *
   * @param name A canonical name (as the spec spells it).
   * @returns The stored name.
   */
  storedName(name: string): string {
    const p = this.arch.optionalPrefix;
    return this.#prefixed && p && name.startsWith(p) ? name.slice(p.length) : name;
  }

  /**
   * Whether the weights hold a tensor.
   *
   * @param name A canonical tensor name.
   * @returns Whether the weights hold it.
   */
  has(name: string): boolean {
    return this.weights.has(this.storedName(name));
  }

  /**
   * Where a tensor lives.
   *
   * @param name A canonical tensor name.
   * @returns Its dtype, shape and file.
   */
  info(name: string): CheckpointTensorInfo {
    return this.weights.info(this.storedName(name));
  }

  /**
   * Reads a tensor's raw bytes.
   *
   * @param name A canonical tensor name.
   * @returns Its raw bytes.
   */
  read(name: string): Promise<RawTensor> {
    return this.weights.read(this.storedName(name));
  }

  /**
   * Reads a tensor as float32.
   *
   * @param name A canonical tensor name.
   * @returns Its values as float32.
   */
  readFloat32(name: string): Promise<Float32Array> {
    return this.weights.readFloat32(this.storedName(name));
  }

  /**
   * The output head's weight.
   *
   * @returns `lmHead` when stored, else the (tied) embedding.
   */
  lmHeadName(): string {
    return this.has(this.arch.lmHead) ? this.arch.lmHead : this.arch.embedding;
  }

  /**
   * Every block linear with its concrete sizes.
   *
   * @returns The linears, block by block, in true-sequential order.
   */
  linears(): BlockLinear[] {
    return blockLinears(this.arch, this.config);
  }

  /**
   * Whether a block linear is stored quantized.
   *
   * @param module A full module path, e.g. `model.layers.0.mlp.up_proj`.
   * @returns Whether it is stored GPTQ-quantized.
   */
  isQuantized(module: string): boolean {
    return this.#quantized.has(module);
  }

  /**
   * The quantized modules.
   *
   * @returns Their full paths, in true-sequential order.
   */
  quantizedModules(): string[] {
    return this.linears().filter((l) => this.#quantized.has(l.name)).map((l) => l.name);
  }

  /**
   * The folder's tokenizer (loaded once), with BOS/EOS from config.json.
   *
   * @returns The tokenizer.
   */
  tokenizer(): Promise<TextTokenizer> {
    this.#tokenizer ??= TextTokenizer.fromFolder(this.dir, {
      bosTokenId: this.config.bosTokenId,
      eosTokenIds: this.config.eosTokenIds,
    });
    return this.#tokenizer;
  }

  /** Closes the weight files. */
  close(): void {
    this.weights.close();
  }

  /** Closes the weight files (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}
