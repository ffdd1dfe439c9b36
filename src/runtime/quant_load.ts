// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Decides, once per model, which zero-point convention (v1 `"gptq"`: stored
 * `zero − 1`; v2 `"gptq_v2"`: stored `zero`) a GPTQ checkpoint really uses
 * (reference §1.4).
 *
 * Two sources of evidence:
 * - the config's hint: `checkpoint_format` (or `format`) in
 *   `quantize_config.json` or `config.json`'s `quantization_config`; when no
 *   file names a format, AutoGPTQ's default v1 is assumed;
 * - the stored `qzeros` of the first quantized layers, read by
 *   {@linkcode detectZeroFormat}.
 *
 * Which wins when they disagree:
 * - **Symmetric constants are proof.** When every stored zero is `2^(b−1)`
 *   (or every one is `2^(b−1) − 1`), only one convention gives the symmetric
 *   zero `2^(b−1)` that `sym=true` quantization always uses, so the weights
 *   win over the config. This is the classic AutoGPTQ/GPTQModel mix-up: a
 *   config saying `"gptq"` over zeros that GPTQModel stored as v2 (all 8s at
 *   4 bits); trusting the config there shifts every weight by one step.
 * - **Asymmetric zeros are only statistics.** A shift of one in zeros that
 *   spread over `0..2^b−1` cannot be proven, so a format that a file states
 *   explicitly wins, with a warning naming the evidence and how to override
 *   it. When no file states a format, the detected one is used (the v1
 *   default is only a default).
 * - Undecidable zeros leave the config's format in place (a warning is given
 *   when the config says `sym=true` but the zeros are not constant).
 *
 * @module
 */

import { MAX_CONFIG_BYTES, readJsonFile } from "../io/_json_file.ts";
import { GptqError } from "../errors.ts";
import type { ModelFolder } from "../io/model_folder.ts";
import { isBits, type ZeroFormat } from "../gptq/pack.ts";
import { detectZeroFormat, type ZeroFormatGuess } from "../gptq/zero_format.ts";

/** How {@linkcode resolveZeroFormat} chose. */
export type ZeroFormatSource = "config" | "detected" | "forced";

/** The decision for one model. */
export interface ZeroFormatDecision {
  /** The convention used to decode every quantized layer. */
  format: ZeroFormat;
  /** Whether the config, the stored zeros or the caller decided. */
  source: ZeroFormatSource;
  /** The config's format (`"gptq"` when no file names one). */
  configFormat: ZeroFormat;
  /** Whether a file names the format explicitly. */
  configExplicit: boolean;
  /** What the stored zeros say. */
  detected: ZeroFormatGuess;
  /** Whether the detection is certain (every stored zero is a symmetric constant). */
  certain: boolean;
  /** The warning given, or null when config and weights agree. */
  warning: string | null;
}

/** Options of {@linkcode resolveZeroFormat}. */
export interface ResolveZeroFormatOptions {
  /** Use this convention whatever the config and weights say (no detection warning). */
  force?: ZeroFormat;
  /** Receives the disagreement warning, at most once. */
  onWarning?: (message: string) => void;
  /** Stop reading `qzeros` once this many zero points are sampled (default 8192). */
  sampleFields?: number;
}

/** The evidence {@linkcode decideZeroFormat} weighs. */
export interface ZeroFormatEvidence {
  /** The config's format. */
  configFormat: ZeroFormat;
  /** Whether a file names it (false: the v1 default was assumed). */
  configExplicit: boolean;
  /** {@linkcode detectZeroFormat} on the samples with the config's `sym`. */
  detected: ZeroFormatGuess;
  /** Whether every sampled zero is one symmetric constant. */
  certain: boolean;
  /** The config's `sym`. */
  sym: boolean;
  /** Where the config came from, for messages. */
  source: string;
}

const FORMAT_KEYS = ["checkpoint_format", "format", "is_marlin_format"];

/**
 * Weighs the config's format against what the stored zeros say (the rules
 * in this module's documentation). Pure; {@linkcode resolveZeroFormat}
 * gathers the evidence.
 *
 * @example
 * ```ts
 * import { decideZeroFormat } from "./quant_load.ts";
 * const d = decideZeroFormat({
 *   configFormat: "gptq",
 *   configExplicit: true,
 *   detected: { format: "gptq_v2", reason: "all 512 stored zeros are 8" },
 *   certain: true,
 *   sym: true,
 *   source: "quantize_config.json",
 * });
 * console.log(d.format, d.source); // "gptq_v2" "detected"
 * ```
 *
 * @param e The evidence.
 * @returns The decision (with its warning, if any).
 */
export function decideZeroFormat(e: ZeroFormatEvidence): ZeroFormatDecision {
  const base = {
    configFormat: e.configFormat,
    configExplicit: e.configExplicit,
    detected: e.detected,
    certain: e.certain,
  };
  const said = e.configExplicit
    ? `${e.source} says checkpoint_format "${e.configFormat}"`
    : `no checkpoint_format is given (AutoGPTQ's default is "gptq")`;
  const d = e.detected.format;
  if (d === e.configFormat) {
    return { ...base, format: d, source: "config", warning: null };
  }
  if (d === "unknown") {
    const warning = e.sym
      ? `${said}, but ${e.detected.reason}; decoding zeros as "${e.configFormat}"`
      : null;
    return { ...base, format: e.configFormat, source: "config", warning };
  }
  if (e.certain) {
    return {
      ...base,
      format: d,
      source: "detected",
      warning: `${said}, but ${e.detected.reason}; using "${d}" because symmetric zeros prove ` +
        `the convention (a "gptq" config over v2 zeros is the usual AutoGPTQ/GPTQModel mix-up); ` +
        `set "checkpoint_format": "${d}" in ${e.source} to silence this`,
    };
  }
  if (!e.configExplicit) {
    return {
      ...base,
      format: d,
      source: "detected",
      warning: `${said}, and the stored zeros look like "${d}": ${e.detected.reason}; ` +
        `using "${d}"; add "checkpoint_format" to ${e.source} to make it explicit`,
    };
  }
  return {
    ...base,
    format: e.configFormat,
    source: "config",
    warning: `${said}, but the stored zeros look like "${d}": ${e.detected.reason}; ` +
      `keeping the config's "${e.configFormat}" because asymmetric zeros cannot prove a shift of one; ` +
      `if the output is garbage, set "checkpoint_format": "${d}" in ${e.source}`,
  };
}

async function readJsonObject(path: string): Promise<Record<string, unknown> | null> {
  try {
    const v = await readJsonFile(path, {
      code: "QUANT_CONFIG",
      maxBytes: MAX_CONFIG_BYTES,
      hint: "fix or delete the file",
    });
    return v !== null && typeof v === "object" && !Array.isArray(v)
      ? v as Record<string, unknown>
      : null;
  } catch {
    return null;
  }
}

function namesFormat(obj: unknown): boolean {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return false;
  return Object.entries(obj).some(([k, v]) =>
    FORMAT_KEYS.includes(k.toLowerCase()) && v !== null && v !== undefined
  );
}

/** Whether `quantize_config.json`, `quant_config.json` or config.json's block names a format. */
async function formatIsExplicit(dir: string): Promise<boolean> {
  for (const name of ["quantize_config.json", "quant_config.json"]) {
    if (namesFormat(await readJsonObject(`${dir}/${name}`))) return true;
  }
  const cfg = await readJsonObject(`${dir}/config.json`);
  return namesFormat(cfg?.quantization_config);
}

/**
 * Decides the zero-point convention of a GPTQ model folder from its config
 * and the `qzeros` of its first quantized layers (up to
 * `opts.sampleFields` zero points), warning once through `opts.onWarning`
 * when they disagree.
 *
 * @example
 * ```ts ignore
 * import { ModelFolder } from "../io/model_folder.ts";
 * import { resolveZeroFormat } from "./quant_load.ts";
 * const folder = await ModelFolder.open("./llama-gptq");
 * const d = await resolveZeroFormat(folder, { onWarning: (m) => console.warn(`warning: ${m}`) });
 * console.log(d.format, d.source);
 * ```
 *
 * @param folder An open folder with a GPTQ config.
 * @param opts Forced format, warning sink, sample size.
 * @returns The decision.
 * @throws {GptqError} `QUANT_CONFIG` when the folder is not GPTQ or uses a
 * layout other than `gptq`/`gptq_v2` (Marlin, BitBLAS, …).
 */
export async function resolveZeroFormat(
  folder: ModelFolder,
  opts: ResolveZeroFormatOptions = {},
): Promise<ZeroFormatDecision> {
  const q = folder.quant;
  if (!q) {
    throw new GptqError("QUANT_CONFIG", "the model has no GPTQ quantization config", {
      file: folder.dir,
    });
  }
  const fmt = q.config.checkpoint_format;
  if (fmt !== "gptq" && fmt !== "gptq_v2") {
    throw new GptqError(
      "QUANT_CONFIG",
      `checkpoint_format "${fmt}" stores weights in a layout this toolkit cannot read`,
      {
        file: q.source,
        hint: `re-save the model in "gptq" or "gptq_v2" format (GPTQModel: format="gptq")`,
      },
    );
  }
  const bits = q.config.bits;
  if (!isBits(bits)) {
    throw new GptqError("QUANT_CONFIG", `bits ${bits} is not supported`, {
      file: q.source,
      hint: "GPTQ checkpoints use 2, 3, 4 or 8 bits",
    });
  }
  const limit = opts.sampleFields ?? 8192;
  const samples: Int32Array[] = [];
  let fields = 0;
  for (const m of folder.quantizedModules()) {
    if (fields >= limit) break;
    const raw = await folder.read(`${m}.qzeros`);
    const d = raw.data.byteOffset % 4 === 0 ? raw.data : raw.data.slice();
    const z = new Int32Array(d.buffer, d.byteOffset, d.byteLength >>> 2);
    samples.push(z);
    fields += Math.floor((z.length * 32) / bits);
  }
  const sym = q.config.sym;
  const detected = detectZeroFormat(samples, bits, sym);
  // With sym=true the detector only answers when every zero is a symmetric constant.
  const certain = detectZeroFormat(samples, bits, true).format !== "unknown";
  const decision = decideZeroFormat({
    configFormat: fmt,
    configExplicit: await formatIsExplicit(folder.dir),
    detected,
    certain,
    sym,
    source: q.source,
  });
  if (opts.force) {
    return { ...decision, format: opts.force, source: "forced", warning: null };
  }
  if (decision.warning) opts.onWarning?.(decision.warning);
  return decision;
}
