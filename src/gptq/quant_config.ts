// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * GPTQ quantization configs as AutoGPTQ (`quantize_config.json`), GPTQModel
 * and transformers/optimum (`config.json["quantization_config"]`) write them
 * (reference §1.8): one normalized {@linkcode QuantizeConfig}, a tolerant
 * parser that accepts every synonym, a folder reader that follows AutoGPTQ's
 * lookup order, and writers that all three tools can load.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { MAX_CONFIG_BYTES, readJsonFile } from "../io/_json_file.ts";
import { isNotFound } from "../io/_files.ts";
import denoConfig from "../../deno.json" with { type: "json" };
import type { Bits } from "./pack.ts";

/** The toolkit's version, written into `meta.quantizer`. */
export const QUANTIZER_ID: string = `gptq-deno:${denoConfig.version}`;

/** Checkpoint formats known to the ecosystem (only `gptq` and `gptq_v2` are read by this toolkit's loaders). */
export type CheckpointFormat = "gptq" | "gptq_v2" | "marlin" | "bitblas" | "ipex" | "qqq";

const FORMATS: readonly CheckpointFormat[] = [
  "gptq",
  "gptq_v2",
  "marlin",
  "bitblas",
  "ipex",
  "qqq",
];

/** Integer widths GPTQModel can pack into. */
export type PackDType = "int8" | "int16" | "int32" | "int64";

const PACK_DTYPES: readonly PackDType[] = ["int8", "int16", "int32", "int64"];

/**
 * A normalized GPTQ quantization config. Field names follow AutoGPTQ and
 * transformers' `GPTQConfig`; optional fields are absent when the source did
 * not set them.
 */
export interface QuantizeConfig {
  /** Bits per weight: 2, 3, 4 or 8. */
  bits: Bits;
  /** Columns per group, or −1 for one group per row. */
  group_size: number;
  /** Hessian dampening as a fraction of the mean diagonal, in (0, 1). */
  damp_percent: number;
  /** Increment of `damp_percent` after a Cholesky failure (GPTQModel), 0 when off. */
  damp_auto_increment: number;
  /** Act-order: quantize columns in descending Hessian-diagonal order. */
  desc_act: boolean;
  /** Precompute groups on the original column order. */
  static_groups: boolean;
  /** Symmetric grid (zero = 2^(b−1)). */
  sym: boolean;
  /** Quantize the modules of a block in sequential groups. */
  true_sequential: boolean;
  /** The zero-point / layout convention of the stored tensors. */
  checkpoint_format: CheckpointFormat;
  /** Always `"gptq"` after normalization (`"marlin"` becomes a format). */
  quant_method: "gptq";
  /** Integer type the values are packed into (GPTQModel). */
  pack_dtype: PackDType;
  /** Whether `lm_head` is quantized too (GPTQModel). */
  lm_head: boolean;
  /** MSE grid-shrink norm (GPTQModel `mse`); 0 when off. */
  mse: number;
  /** Group-aware reordering (optimum HEAD / GPTQModel). */
  act_group_aware?: boolean;
  /** The model the checkpoint was made from. */
  model_name_or_path?: string | null;
  /** Weights file name without extension (AutoGPTQ), e.g. `"model"`. */
  model_file_base_name?: string | null;
  /** Calibration dataset: a name or a list of texts. */
  dataset?: string | string[] | null;
  /** Calibration sequence length (optimum). */
  model_seqlen?: number | null;
  /** Module path of the repeated blocks, e.g. `"model.layers"`. */
  block_name_to_quantize?: string | null;
  /** Modules run before the first block. */
  module_name_preceding_first_block?: string[] | null;
  /** The sequential groups inside a block. */
  modules_in_block_to_quantize?: string[][] | null;
  /** Modules left unquantized. */
  modules_to_not_convert?: string[] | null;
  /** Loading option: use the exllama kernels (from `disable_exllama` too). */
  use_exllama?: boolean | null;
  /** Loading option: exllama settings, e.g. `{ version: 2 }`. */
  exllama_config?: Record<string, unknown> | null;
  /** Loading option (optimum). */
  use_cuda_fp16?: boolean | null;
  /** Loading option: exllama act-order buffer length. */
  max_input_length?: number | null;
  /** Calibration batch size (optimum). */
  batch_size?: number | null;
  /** Padding token for batched calibration (optimum). */
  pad_token_id?: number | null;
  /** Cache block outputs during calibration (optimum). */
  cache_block_outputs?: boolean | null;
  /** Loading backend (GPTQModel / transformers). */
  backend?: string | null;
  /** Tokenizer used for calibration (transformers). */
  tokenizer?: string | null;
  /** Per-module overrides keyed by regex (GPTQModel `dynamic`). */
  dynamic?: Record<string, Record<string, unknown>> | null;
  /** The `meta` entries not promoted to fields (e.g. `quantizer`, `uri`). */
  meta?: Record<string, unknown>;
  /** Keys this parser does not know, kept verbatim. */
  extra: Record<string, unknown>;
  /** Things the parser had to assume or reconcile. */
  warnings: string[];
}

const FIELD_TYPES = {
  bits: "number",
  group_size: "number",
  damp_percent: "number",
  damp_auto_increment: "number",
  desc_act: "boolean",
  static_groups: "boolean",
  sym: "boolean",
  true_sequential: "boolean",
  lm_head: "boolean",
  act_group_aware: "boolean",
  model_name_or_path: "string?",
  model_file_base_name: "string?",
  model_seqlen: "number?",
  block_name_to_quantize: "string?",
  use_exllama: "boolean?",
  use_cuda_fp16: "boolean?",
  max_input_length: "number?",
  batch_size: "number?",
  pad_token_id: "number?",
  cache_block_outputs: "boolean?",
  backend: "string?",
  tokenizer: "string?",
} as const;

/** Keys GPTQModel moves into `meta`. */
const META_FIELDS = [
  "damp_percent",
  "damp_auto_increment",
  "static_groups",
  "true_sequential",
  "mse",
  "act_group_aware",
  "dataset", // only this toolkit puts it there, when transformers would reject it
] as const;

function fail(file: string, reason: string, hint?: string): GptqError {
  return new GptqError("QUANT_CONFIG", reason, hint === undefined ? { file } : { file, hint });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function isStringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === "string");
}

/**
 * Parses and validates a GPTQ quantization config object (the contents of
 * `quantize_config.json`, `quant_config.json` or `config.json`'s
 * `quantization_config`).
 *
 * Accepted synonyms: `w_bit` → `bits`, `q_group_size` → `group_size`,
 * `format` ↔ `checkpoint_format`, `is_marlin_format: true` and
 * `quant_method: "marlin"` → format `marlin`, `disable_exllama` →
 * `use_exllama`, and GPTQModel's `meta.{damp_percent, damp_auto_increment,
 * static_groups, true_sequential, mse, act_group_aware}`. Missing fields get
 * AutoGPTQ's defaults; a missing `sym` (or `bits`) adds a warning.
 *
 * @example
 * ```ts
 * import { parseQuantizeConfig } from "./quant_config.ts";
 * const cfg = parseQuantizeConfig({ w_bit: 4, q_group_size: 128, sym: true }, "quant_config.json");
 * console.log(cfg.bits, cfg.group_size, cfg.checkpoint_format); // 4 128 "gptq"
 * ```
 *
 * @param obj The parsed JSON.
 * @param file Where it came from, for messages.
 * @returns The normalized config.
 */
export function parseQuantizeConfig(obj: unknown, file: string): QuantizeConfig {
  if (!isObject(obj)) throw fail(file, "quantization config is not a JSON object");
  const warnings: string[] = [];
  const src: Record<string, unknown> = {};
  const extra: Record<string, unknown> = {};
  let meta: Record<string, unknown> | undefined;

  // 1. Synonyms and case: later keys never silently override earlier ones.
  const put = (key: string, value: unknown, from: string) => {
    if (Object.hasOwn(src, key) && JSON.stringify(src[key]) !== JSON.stringify(value)) {
      warnings.push(
        `both '${key}' and its synonym '${from}' are set (${JSON.stringify(src[key])} vs ${
          JSON.stringify(value)
        }); using '${key}'`,
      );
      return;
    }
    if (!Object.hasOwn(src, key)) src[key] = value;
  };
  const entries = Object.entries(obj);
  // Canonical names first so that synonyms lose.
  entries.sort(([a], [b]) => Number(SYNONYMS.has(a)) - Number(SYNONYMS.has(b)));
  for (const [rawKey, value] of entries) {
    const key = rawKey.toLowerCase();
    const canon = SYNONYMS.get(key) ?? key;
    if (canon === "meta") {
      if (value === null) continue;
      if (!isObject(value)) throw fail(file, "'meta' is not an object");
      meta = { ...value };
      continue;
    }
    put(canon, value, rawKey);
  }

  // 2. GPTQModel's meta: promote known fields.
  if (meta) {
    for (const k of META_FIELDS) {
      if (!Object.hasOwn(meta, k)) continue;
      const v = meta[k];
      delete meta[k];
      if (Object.hasOwn(src, k)) {
        if (JSON.stringify(src[k]) !== JSON.stringify(v)) {
          warnings.push(
            `'${k}' is ${JSON.stringify(src[k])} at top level but ${
              JSON.stringify(v)
            } in 'meta'; using the top-level value`,
          );
        }
      } else {
        src[k] = v;
      }
    }
  }

  // 3. quant_method / format.
  let format: string | undefined;
  const qm = src.quant_method;
  delete src.quant_method;
  if (qm !== undefined && qm !== null) {
    if (typeof qm !== "string") {
      throw fail(file, `quant_method ${JSON.stringify(qm)} is not a string`);
    }
    const m = qm.toLowerCase();
    if (m === "marlin") format = "marlin";
    else if (m !== "gptq") {
      throw fail(
        file,
        `quant_method is "${qm}", not "gptq"`,
        "this toolkit reads GPTQ checkpoints only",
      );
    }
  }
  if (src.is_marlin_format !== undefined) {
    const v = src.is_marlin_format;
    delete src.is_marlin_format;
    if (typeof v !== "boolean") throw fail(file, "is_marlin_format is not a boolean");
    if (v) format = "marlin";
  }
  for (const key of ["checkpoint_format", "format"]) {
    const v = src[key];
    delete src[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== "string") throw fail(file, `${key} ${JSON.stringify(v)} is not a string`);
    const f = v.toLowerCase();
    if (format !== undefined && format !== f) {
      warnings.push(`${key} is "${v}" but the format was already "${format}"; using "${format}"`);
      continue;
    }
    format = f;
  }
  if (format === undefined) format = "gptq";
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw fail(
      file,
      `checkpoint_format "${format}" is unknown`,
      `expected one of ${FORMATS.join(", ")}`,
    );
  }
  if (
    src.version !== undefined && typeof src.version === "string" && /^gem[mv]/i.test(src.version)
  ) {
    throw fail(file, `'version: ${src.version}' marks an AWQ config, not GPTQ`);
  }

  // 4. disable_exllama → use_exllama.
  if (src.disable_exllama !== undefined) {
    const d = src.disable_exllama;
    delete src.disable_exllama;
    if (d !== null) {
      if (typeof d !== "boolean") throw fail(file, "disable_exllama is not a boolean");
      if (src.use_exllama === undefined || src.use_exllama === null) src.use_exllama = !d;
      else if (src.use_exllama === d) {
        warnings.push(
          `disable_exllama=${d} contradicts use_exllama=${src.use_exllama}; using use_exllama`,
        );
      }
    }
  }

  // 5. Types.
  for (const [k, t] of Object.entries(FIELD_TYPES)) {
    if (!Object.hasOwn(src, k)) continue;
    const v = src[k];
    const nullable = t.endsWith("?");
    if (v === null && nullable) continue;
    if (v === null) {
      delete src[k];
      continue;
    }
    const want = t.replace("?", "");
    const ok = want === "number"
      ? typeof v === "number"
      : want === "boolean"
      ? typeof v === "boolean"
      : typeof v === "string";
    if (!ok) {
      throw fail(file, `${k} must be a ${t.replace("?", "")}, got ${JSON.stringify(v)}`);
    }
  }

  // 6. Values and defaults (AutoGPTQ's).
  if (src.bits === undefined) warnings.push("'bits' is missing; assuming 4");
  const bits = (src.bits ?? 4) as number;
  if (![2, 3, 4, 8].includes(bits)) {
    throw fail(file, `bits is ${bits}; GPTQ supports 2, 3, 4 or 8`);
  }
  const groupSize = (src.group_size ?? -1) as number;
  if (!Number.isSafeInteger(groupSize) || !(groupSize === -1 || groupSize > 0)) {
    throw fail(file, `group_size is ${groupSize}; it must be -1 or a positive integer`);
  }
  const damp = (src.damp_percent ?? 0.01) as number;
  if (!(damp > 0 && damp < 1)) throw fail(file, `damp_percent is ${damp}; it must be in (0, 1)`);
  const dampInc = (src.damp_auto_increment ?? 0) as number;
  if (!(dampInc >= 0 && dampInc < 1)) {
    throw fail(file, `damp_auto_increment is ${dampInc}; it must be in [0, 1)`);
  }
  if (src.sym === undefined) {
    warnings.push("'sym' is missing; assuming sym=true as AutoGPTQ does");
  }
  let mse = 0;
  if (src.mse !== undefined && src.mse !== null) {
    if (typeof src.mse === "boolean") mse = src.mse ? 2.4 : 0;
    else if (typeof src.mse === "number" && src.mse >= 0) mse = src.mse;
    else throw fail(file, `mse must be a non-negative number, got ${JSON.stringify(src.mse)}`);
  }
  let packDtype: PackDType = "int32";
  if (src.pack_dtype !== undefined && src.pack_dtype !== null) {
    const p = String(src.pack_dtype).replace(/^torch\./, "");
    if (!(PACK_DTYPES as readonly string[]).includes(p)) {
      throw fail(
        file,
        `pack_dtype ${JSON.stringify(src.pack_dtype)} is not int8/int16/int32/int64`,
      );
    }
    packDtype = p as PackDType;
    if (p !== "int32") warnings.push(`pack_dtype is ${p}; this toolkit reads int32 packing only`);
  }

  const cfg: QuantizeConfig = {
    bits: bits as Bits,
    group_size: groupSize,
    damp_percent: damp,
    damp_auto_increment: dampInc,
    desc_act: (src.desc_act ?? true) as boolean,
    static_groups: (src.static_groups ?? false) as boolean,
    sym: (src.sym ?? true) as boolean,
    true_sequential: (src.true_sequential ?? true) as boolean,
    checkpoint_format: format as CheckpointFormat,
    quant_method: "gptq",
    pack_dtype: packDtype,
    lm_head: (src.lm_head ?? false) as boolean,
    mse,
    extra,
    warnings,
  };
  const done = new Set([
    "bits",
    "group_size",
    "damp_percent",
    "damp_auto_increment",
    "desc_act",
    "static_groups",
    "sym",
    "true_sequential",
    "pack_dtype",
    "lm_head",
    "mse",
  ]);
  const out = cfg as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(src)) {
    if (done.has(k)) continue;
    if (Object.hasOwn(FIELD_TYPES, k)) {
      out[k] = v;
    } else if (k === "dataset") {
      if (v !== null && typeof v !== "string" && !isStringList(v)) {
        throw fail(file, "dataset must be a name or a list of strings");
      }
      cfg.dataset = v as string | string[] | null;
    } else if (k === "module_name_preceding_first_block" || k === "modules_to_not_convert") {
      if (v !== null && !isStringList(v)) throw fail(file, `${k} must be a list of strings`);
      out[k] = v;
    } else if (k === "modules_in_block_to_quantize") {
      if (v !== null && !(Array.isArray(v) && v.every(isStringList))) {
        throw fail(file, `${k} must be a list of lists of module names`);
      }
      cfg.modules_in_block_to_quantize = v as string[][] | null;
    } else if (k === "exllama_config") {
      if (v !== null && !isObject(v)) throw fail(file, "exllama_config must be an object");
      cfg.exllama_config = v as Record<string, unknown> | null;
    } else if (k === "dynamic") {
      if (v !== null && !(isObject(v) && Object.values(v).every(isObject))) {
        throw fail(file, "dynamic must map module patterns to objects of overrides");
      }
      cfg.dynamic = v as Record<string, Record<string, unknown>> | null;
    } else {
      extra[k] = v;
    }
  }
  if (meta !== undefined) cfg.meta = meta;
  return cfg;
}

const SYNONYMS: Map<string, string> = new Map([
  ["w_bit", "bits"],
  ["q_group_size", "group_size"],
]);

async function readJson(path: string): Promise<unknown | undefined> {
  try {
    return await readJsonFile(path, {
      code: "QUANT_CONFIG",
      maxBytes: MAX_CONFIG_BYTES,
      hint: "fix or delete the file",
    });
  } catch (e) {
    if (isNotFound(e)) return undefined;
    if (e instanceof GptqError) throw e;
    throw new GptqError("QUANT_CONFIG", `cannot read: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
}

/** Fields compared between `quantize_config.json` and `config.json`. */
const COMPARED: readonly (keyof QuantizeConfig)[] = [
  "bits",
  "group_size",
  "damp_percent",
  "desc_act",
  "static_groups",
  "sym",
  "true_sequential",
  "checkpoint_format",
  "model_file_base_name",
  "use_exllama",
  "lm_head",
];

/**
 * Reads a checkpoint folder's quantization config the way AutoGPTQ looks for
 * it: `quantize_config.json`, then `quant_config.json`, then
 * `config.json["quantization_config"]`. When both `quantize_config.json` (or
 * `quant_config.json`) and `config.json` carry a config, fields that both set
 * and that disagree produce a warning (the first file wins).
 *
 * @example
 * ```ts ignore
 * import { readQuantizeConfigFromFolder } from "./quant_config.ts";
 * const r = await readQuantizeConfigFromFolder("./my-gptq-model");
 * if (r) console.log(r.source, r.config.bits, r.warnings);
 * ```
 *
 * @param dir The checkpoint folder.
 * @returns The config, the file it came from and all warnings; `null` when there is none.
 */
export async function readQuantizeConfigFromFolder(
  dir: string,
): Promise<{ config: QuantizeConfig; source: string; warnings: string[] } | null> {
  const join = (name: string) => `${dir.replace(/\/+$/, "")}/${name}`;
  let primary: { cfg: QuantizeConfig; raw: Record<string, unknown>; source: string } | undefined;
  for (const name of ["quantize_config.json", "quant_config.json"]) {
    const path = join(name);
    const raw = await readJson(path);
    if (raw === undefined) continue;
    primary = {
      cfg: parseQuantizeConfig(raw, path),
      raw: raw as Record<string, unknown>,
      source: path,
    };
    break;
  }
  const configPath = join("config.json");
  let block: unknown;
  let configWarning: string | undefined;
  try {
    const config = await readJson(configPath);
    if (config !== undefined) {
      if (!isObject(config)) throw fail(configPath, "config.json is not a JSON object");
      block = config.quantization_config;
    }
  } catch (e) {
    if (!primary) throw e;
    configWarning = `${configPath} was not read: ${(e as Error).message}`;
  }
  if (!primary) {
    if (block === undefined || block === null) return null;
    const cfg = parseQuantizeConfig(block, `${configPath} (quantization_config)`);
    return { config: cfg, source: configPath, warnings: [...cfg.warnings] };
  }
  const warnings = [...primary.cfg.warnings];
  if (configWarning) warnings.push(configWarning);
  if (isObject(block)) {
    // Both are checked: an invalid block is an error even though the first file wins.
    const other = parseQuantizeConfig(block, `${configPath} (quantization_config)`);
    {
      const rawA = primary.raw;
      const rawB = block;
      const present = (raw: Record<string, unknown>, k: string) => {
        const keys = Object.keys(raw).map((x) => SYNONYMS.get(x.toLowerCase()) ?? x.toLowerCase());
        if (k === "checkpoint_format") {
          return keys.some((x) => ["checkpoint_format", "format", "is_marlin_format"].includes(x));
        }
        if (k === "use_exllama") {
          return keys.includes("use_exllama") || keys.includes("disable_exllama");
        }
        return keys.includes(k) || (isObject(raw.meta) && Object.hasOwn(raw.meta, k));
      };
      for (const k of COMPARED) {
        if (!present(rawA, k) || !present(rawB, k)) continue;
        const a = primary.cfg[k];
        const b = other[k];
        if (JSON.stringify(a) !== JSON.stringify(b)) {
          warnings.push(
            `${primary.source} and ${configPath} disagree on ${k} (${JSON.stringify(a)} vs ${
              JSON.stringify(b)
            }); using ${JSON.stringify(a)} from ${primary.source}`,
          );
        }
      }
    }
  }
  primary.cfg.warnings = warnings;
  return { config: primary.cfg, source: primary.source, warnings };
}

/** Options of the writers. */
export interface WriteConfigOptions {
  /** The `meta.quantizer` entry; default {@linkcode QUANTIZER_ID}. */
  quantizer?: string;
}

function quantizerList(cfg: QuantizeConfig, id: string): string[] {
  const prev = cfg.meta?.quantizer;
  const list = isStringList(prev) ? prev : typeof prev === "string" ? [prev] : [];
  return [...list.filter((q) => !q.startsWith("gptq-deno:")), id];
}

function metaBlock(cfg: QuantizeConfig, id: string): Record<string, unknown> {
  const meta: Record<string, unknown> = { ...(cfg.meta ?? {}) };
  meta.quantizer = quantizerList(cfg, id);
  meta.damp_percent = cfg.damp_percent;
  meta.damp_auto_increment = cfg.damp_auto_increment;
  meta.static_groups = cfg.static_groups;
  meta.true_sequential = cfg.true_sequential;
  meta.mse = cfg.mse;
  if (cfg.act_group_aware !== undefined) meta.act_group_aware = cfg.act_group_aware;
  return meta;
}

const OPTIONAL_KEYS = [
  "act_group_aware",
  "model_seqlen",
  "block_name_to_quantize",
  "module_name_preceding_first_block",
  "modules_in_block_to_quantize",
  "modules_to_not_convert",
  "use_exllama",
  "exllama_config",
  "use_cuda_fp16",
  "max_input_length",
  "batch_size",
  "pad_token_id",
  "cache_block_outputs",
  "backend",
  "tokenizer",
  "dynamic",
] as const;

/**
 * Writes a config as `quantize_config.json` content: AutoGPTQ's keys (bits,
 * group_size, damp_percent, desc_act, static_groups, sym, true_sequential,
 * model_name_or_path, model_file_base_name, quant_method, checkpoint_format),
 * GPTQModel's (pack_dtype, lm_head, meta with `quantizer`), and every other
 * field that is set. {@linkcode parseQuantizeConfig} reads it back losslessly.
 *
 * @example
 * ```ts
 * import { parseQuantizeConfig, toQuantizeConfigJson } from "./quant_config.ts";
 * const cfg = parseQuantizeConfig({ bits: 4, group_size: 128, sym: true, desc_act: false }, "x");
 * const json = toQuantizeConfigJson(cfg);
 * console.log(json.checkpoint_format, (json.meta as { quantizer: string[] }).quantizer.length); // "gptq" 1
 * ```
 *
 * @param cfg The config.
 * @param opts The quantizer id to record.
 * @returns A JSON-ready object.
 */
export function toQuantizeConfigJson(
  cfg: QuantizeConfig,
  opts: WriteConfigOptions = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = {
    bits: cfg.bits,
    group_size: cfg.group_size,
    damp_percent: cfg.damp_percent,
    desc_act: cfg.desc_act,
    static_groups: cfg.static_groups,
    sym: cfg.sym,
    true_sequential: cfg.true_sequential,
    model_name_or_path: cfg.model_name_or_path ?? null,
    model_file_base_name: cfg.model_file_base_name ?? null,
    quant_method: "gptq",
    checkpoint_format: cfg.checkpoint_format,
    pack_dtype: cfg.pack_dtype,
    lm_head: cfg.lm_head,
  };
  if (cfg.dataset !== undefined) out.dataset = cfg.dataset;
  for (const k of OPTIONAL_KEYS) if (cfg[k] !== undefined) out[k] = cfg[k];
  for (const [k, v] of Object.entries(cfg.extra)) if (!Object.hasOwn(out, k)) out[k] = v;
  out.meta = metaBlock(cfg, opts.quantizer ?? QUANTIZER_ID);
  return out;
}

const TRANSFORMERS_DATASETS = ["wikitext2", "c4", "c4-new"];

/**
 * Writes a config as the `quantization_config` block of `config.json`, which
 * transformers/optimum (`GPTQConfig`), AutoGPTQ and GPTQModel all read: the
 * AutoGPTQ keys plus both `checkpoint_format` and `format` (optimum HEAD's
 * name), `pack_dtype`, `lm_head` and `meta`. `dataset` is written only when
 * transformers would accept it (a list of texts, or `wikitext2`/`c4`/`c4-new`);
 * otherwise it goes to `meta.dataset`, because `GPTQConfig` raises on other
 * names at load time. Unknown `extra` keys are left out.
 *
 * @example
 * ```ts
 * import { parseQuantizeConfig, toQuantizationConfigBlock } from "./quant_config.ts";
 * const cfg = parseQuantizeConfig({ bits: 4, group_size: 32, sym: true, dataset: "tinystories" }, "x");
 * const block = toQuantizationConfigBlock(cfg);
 * console.log(block.quant_method, block.format, "dataset" in block); // "gptq" "gptq" false
 * ```
 *
 * @param cfg The config.
 * @param opts The quantizer id to record.
 * @returns A JSON-ready object.
 */
export function toQuantizationConfigBlock(
  cfg: QuantizeConfig,
  opts: WriteConfigOptions = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = {
    quant_method: "gptq",
    bits: cfg.bits,
    group_size: cfg.group_size,
    damp_percent: cfg.damp_percent,
    desc_act: cfg.desc_act,
    static_groups: cfg.static_groups,
    sym: cfg.sym,
    true_sequential: cfg.true_sequential,
    checkpoint_format: cfg.checkpoint_format,
    format: cfg.checkpoint_format,
    model_name_or_path: cfg.model_name_or_path ?? null,
    model_file_base_name: cfg.model_file_base_name ?? null,
    pack_dtype: cfg.pack_dtype,
    lm_head: cfg.lm_head,
  };
  const meta = metaBlock(cfg, opts.quantizer ?? QUANTIZER_ID);
  if (cfg.dataset !== undefined && cfg.dataset !== null) {
    const ok = Array.isArray(cfg.dataset) || TRANSFORMERS_DATASETS.includes(cfg.dataset);
    if (ok) out.dataset = cfg.dataset;
    else meta.dataset = cfg.dataset;
  }
  for (const k of OPTIONAL_KEYS) if (cfg[k] !== undefined) out[k] = cfg[k];
  out.meta = meta;
  return out;
}
