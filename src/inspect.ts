// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * `inspect`: what a model folder (plain or GPTQ) or a single safetensors file
 * holds: architecture and sizes, dtypes per tensor group, the quantization as
 * the config declares it and as the stored tensors show it (bits, group size,
 * v1/v2 zero points), which modules are quantized, bytes and parameter counts.
 * The report is plain JSON (`--json` prints it as is).
 *
 * @module
 */

import { findArch, getArch } from "./arch/registry.ts";
import type { ArchSpec } from "./arch/spec.ts";
import { blockLinears, classifyTensor, type TensorRole } from "./arch/tensors.ts";
import { fsError, GptqError } from "./errors.ts";
import { type Bits, isBits } from "./gptq/pack.ts";
import { readQuantizeConfigFromFolder } from "./gptq/quant_config.ts";
import { detectZeroFormat } from "./gptq/zero_format.ts";
import { CheckpointReader } from "./io/checkpoint.ts";
import { type ModelConfig, readModelConfig } from "./io/hf_config.ts";
import { type FolderQuantConfig, ModelFolder } from "./io/model_folder.ts";
import { resolveModel, type ResolveModelOptions } from "./io/hub.ts";

/** Dtypes of one group of tensors, e.g. `{ group: "norms", dtypes: { F16: 5 } }`. */
export interface DtypeGroup {
  /** `embeddings`, `norms`, `lm_head`, `linear weights`, `linear biases`, `qweight`, `qzeros`, `scales`, `g_idx`, `other`. */
  group: string;
  /** Tensor count per dtype. */
  dtypes: Record<string, number>;
}

/** The quantization section of an {@linkcode InspectReport}. */
export interface InspectQuantization {
  /** What the quantization config says, or null when there is none (e.g. a bare .safetensors file). */
  declared: {
    /** The file it was read from. */
    source: string;
    /** Bits per weight. */
    bits: number;
    /** Group size (-1: one group per row). */
    groupSize: number;
    /** Symmetric grid. */
    sym: boolean;
    /** Act-order. */
    descAct: boolean;
    /** Static groups. */
    staticGroups: boolean;
    /** Declared zero-point format (`gptq` = v1, `gptq_v2`, …). */
    checkpointFormat: string;
    /** Warnings from reading it. */
    warnings: string[];
  } | null;
  /** What the stored tensors show. */
  detected: {
    /** Bits per weight from `qweight` rows vs `g_idx` length, or null if inconsistent. */
    bits: number | null;
    /** Group size from `scales` rows, or null. */
    groupSize: number | null;
    /** Whether `g_idx` is monotone `k / groupSize` everywhere sampled (false: act-order layout). */
    trivialGIdx: boolean | null;
    /** Zero-point format the stored `qzeros` are consistent with. */
    zeroFormat: "gptq" | "gptq_v2" | "unknown";
    /** Why. */
    zeroFormatReason: string;
  };
  /** Quantized module paths. */
  quantizedModules: string[];
  /** Linear-like modules stored unquantized (block linears, `lm_head`, embeddings). */
  notQuantized: string[];
}

/** The report `inspect` prints. */
export interface InspectReport {
  /** The inspected path. */
  path: string;
  /** A model folder or a single safetensors file. */
  kind: "folder" | "file";
  /** `model_type`, or null when unknown. */
  modelType: string | null;
  /** The registry family, or null when unsupported / unknown. */
  family: string | null;
  /** The HF class name, or null. */
  architecture: string | null;
  /** Block count. */
  layers: number | null;
  /** Model width. */
  hiddenSize: number | null;
  /** MLP width. */
  intermediateSize: number | null;
  /** Attention heads. */
  heads: number | null;
  /** Key/value heads. */
  kvHeads: number | null;
  /** Per-head dimension. */
  headDim: number | null;
  /** Vocabulary size. */
  vocabSize: number | null;
  /** Context length. */
  maxPositions: number | null;
  /** Whether the head is tied to the embeddings. */
  tiedEmbeddings: boolean | null;
  /** `dtype` / `torch_dtype` from config.json. */
  configDtype: string | null;
  /** Dtypes per tensor group. */
  dtypes: DtypeGroup[];
  /** Quantization, or null for a plain model. */
  quantization: InspectQuantization | null;
  /** The safetensors files. */
  files: { path: string; bytes: number; tensors: number }[];
  /** Sum of file sizes. */
  totalBytes: number;
  /** Tensor count. */
  tensorCount: number;
  /** Parameter counts (a quantized linear counts its K×N logical weights, not packed words). */
  parameters: {
    total: number;
    embeddings: number;
    lmHead: number;
    blockLinears: number;
    quantized: number;
    other: number;
  };
  /** Non-fatal findings. */
  warnings: string[];
}

const GROUP_OF: Record<TensorRole | "ignored" | "unknown", string> = {
  embedding: "embeddings",
  position_embedding: "embeddings",
  projection: "embeddings",
  norm: "norms",
  lm_head: "lm_head",
  linear_weight: "linear weights",
  linear_bias: "linear biases",
  qweight: "qweight",
  qzeros: "qzeros",
  scales: "scales",
  g_idx: "g_idx",
  ignored: "other",
  unknown: "other",
};
const GROUP_ORDER = [
  "embeddings",
  "norms",
  "lm_head",
  "linear weights",
  "linear biases",
  "qweight",
  "qzeros",
  "scales",
  "g_idx",
  "other",
];

/** Guesses the family of a bare safetensors file from its embedding tensor's name. */
function guessArch(names: Set<string>): ArchSpec | null {
  for (const t of ["llama", "opt", "gpt2", "gpt_neox"]) {
    const a = getArch(t);
    const emb = a.optionalPrefix ? a.embedding.slice(a.optionalPrefix.length) : a.embedding;
    if (names.has(a.embedding) || names.has(emb)) return a;
  }
  return null;
}

function int32(data: Uint8Array): Int32Array {
  const copy = data.byteOffset % 4 === 0 ? data : data.slice();
  return new Int32Array(copy.buffer, copy.byteOffset, copy.byteLength >> 2);
}

const product = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    throw fsError(e, path);
  }
}

/**
 * Inspects a model folder or a `.safetensors` file, or a Hub model id
 * (`owner/name[@rev]`, downloaded once into the Hugging Face cache; see
 * {@linkcode resolveModel}).
 *
 * @example
 * ```ts ignore
 * import { formatInspectReport, inspectPath } from "./inspect.ts";
 * console.log(formatInspectReport(await inspectPath("./Llama-2-7B-GPTQ")));
 * ```
 *
 * @param path A folder, a safetensors file or a Hub id.
 * @param hub Hub settings, used when `path` is a Hub id.
 * @returns The report.
 */
export async function inspectPath(
  path: string,
  hub: ResolveModelOptions = {},
): Promise<InspectReport> {
  path = await resolveModel(path, hub);
  const folder = await isDirectory(path);
  const warnings: string[] = [];
  let config: ModelConfig | null = null;
  let spec: ArchSpec | null = null;
  let quant: FolderQuantConfig | null = null;
  let reader: CheckpointReader;
  let quantizedSet: Set<string> | null = null;
  if (folder) {
    config = await readModelConfig(path);
    const known = findArch(config.modelType);
    if (known) {
      // Full validation: names and shapes must match config + spec.
      const m = await ModelFolder.open(path);
      spec = m.arch;
      quant = m.quant;
      reader = m.weights;
      quantizedSet = new Set(m.quantizedModules());
      warnings.push(...m.warnings);
    } else {
      warnings.push(
        `model_type '${config.modelType}' is not supported (names and shapes not validated); ` +
          "supported: llama, mistral, qwen2, opt, gpt2, gpt_neox",
      );
      quant = await readQuantizeConfigFromFolder(path);
      if (quant) warnings.push(...quant.warnings);
      reader = await CheckpointReader.open(path);
    }
  } else {
    if (!path.endsWith(".safetensors")) {
      throw new GptqError("INVALID_ARGUMENT", "is neither a folder nor a .safetensors file", {
        file: path,
        hint: "pass a model folder (with config.json) or a .safetensors file",
      });
    }
    reader = await CheckpointReader.open(path);
    spec = guessArch(new Set(reader.names()));
    warnings.push(
      spec
        ? `no config.json: architecture guessed as '${spec.family}' from tensor names`
        : "no config.json and no known tensor names: architecture unknown",
    );
  }
  try {
    return await buildReport(path, folder, reader, config, spec, quant, quantizedSet, warnings);
  } finally {
    reader.close();
  }
}

async function buildReport(
  path: string,
  folder: boolean,
  reader: CheckpointReader,
  config: ModelConfig | null,
  spec: ArchSpec | null,
  quant: FolderQuantConfig | null,
  quantizedSet: Set<string> | null,
  warnings: string[],
): Promise<InspectReport> {
  const names = reader.names();
  const groups = new Map<string, Record<string, number>>();
  const params = { total: 0, embeddings: 0, lmHead: 0, blockLinears: 0, quantized: 0, other: 0 };
  let maxLayer = -1;
  let embShape: number[] | undefined;
  const qModules = new Map<string, { qweight?: number[]; scales?: number[]; gIdx?: number[] }>();
  const plainLinears = new Set<string>();
  for (const n of names) {
    const info = reader.info(n);
    const cls: {
      role: TensorRole | "ignored" | "unknown";
      layer: number | null;
      module: string | null;
    } = spec ? classifyTensor(spec, n) : { role: "unknown", layer: null, module: null };
    let role = cls.role;
    if (cls.layer !== null && cls.layer > maxLayer) maxLayer = cls.layer;
    if (role === "embedding") embShape = info.shape;
    // Without a spec, still recognize GPTQ tensors by their suffix.
    const suffix = n.slice(n.lastIndexOf(".") + 1);
    const module = cls.module ??
      (["qweight", "qzeros", "scales", "g_idx"].includes(suffix)
        ? n.slice(0, n.lastIndexOf("."))
        : null);
    if (role === "unknown" && module && suffix !== "weight") role = suffix as TensorRole;
    const g = GROUP_OF[role];
    const rec = groups.get(g) ?? {};
    rec[info.dtype] = (rec[info.dtype] ?? 0) + 1;
    groups.set(g, rec);
    if (role === "qweight" || role === "scales" || role === "g_idx") {
      const q = qModules.get(module!) ?? {};
      if (role === "qweight") q.qweight = info.shape;
      if (role === "scales") q.scales = info.shape;
      if (role === "g_idx") q.gIdx = info.shape;
      qModules.set(module!, q);
      continue;
    }
    if (role === "qzeros") continue;
    if (role === "linear_weight" && module) plainLinears.add(module);
    const count = product(info.shape);
    params.total += count;
    if (role === "embedding" || role === "position_embedding" || role === "projection") {
      params.embeddings += count;
    } else if (role === "lm_head") params.lmHead += count;
    else if (role === "linear_weight" || role === "linear_bias") params.blockLinears += count;
    else params.other += count;
  }

  // Quantized modules: logical K×N weights.
  const linearByName = spec && config
    ? new Map(blockLinears(spec, config).map((l) => [l.name, l]))
    : null;
  let detectedBits: number | null = null;
  let bitsConsistent = true;
  let detectedGroup: number | null = null;
  for (const [m, q] of qModules) {
    const l = linearByName?.get(m);
    const k = l?.inFeatures ?? q.gIdx?.[0] ?? null;
    const n = l?.outFeatures ?? q.scales?.[1] ?? q.qweight?.[1] ?? null;
    if (k !== null && n !== null) {
      params.total += k * n;
      params.quantized += k * n;
      params.blockLinears += k * n;
    }
    if (k !== null && q.qweight) {
      const b = (q.qweight[0]! * 32) / k;
      if (detectedBits === null) detectedBits = b;
      else if (detectedBits !== b) bitsConsistent = false;
    }
    if (k !== null && q.scales && detectedGroup === null) {
      const groupCount = q.scales[0]!;
      detectedGroup = groupCount === 1 ? -1 : Math.ceil(k / groupCount);
    }
  }
  // ceil(K/g) groups fit a range of g (64 columns in 2 groups: g = 32…63), so
  // the group count alone cannot tell; every group of g_idx but the last has g columns.
  const withGIdx = [...qModules.keys()].find((m) => reader.has(`${m}.g_idx`));
  if (detectedGroup !== null && detectedGroup !== -1 && withGIdx) {
    const t = await reader.read(`${withGIdx}.g_idx`);
    const words = int32(t.data);
    const stride = t.dtype === "I64" ? 2 : 1; // little-endian: the low word first
    let zeros = 0;
    for (let i = 0; i < words.length; i += stride) if (words[i] === 0) zeros++;
    if (zeros > 0) detectedGroup = zeros;
  }
  if (!bitsConsistent) {
    warnings.push("qweight shapes imply different bit widths across modules");
    detectedBits = null;
  }

  let quantization: InspectQuantization | null = null;
  if (qModules.size > 0 || quant) {
    const quantized = [...qModules.keys()];
    const order = linearByName ? [...linearByName.keys()] : [];
    const rank = new Map(order.map((n, i) => [n, i]));
    quantized.sort((a, b) => {
      const ia = rank.get(a) ?? -1, ib = rank.get(b) ?? -1;
      return ia === -1 || ib === -1 ? a.localeCompare(b) : ia - ib;
    });
    const notQuantized: string[] = [];
    for (const name of order) if (!qModules.has(name)) notQuantized.push(name);
    if (!linearByName) {
      for (const name of plainLinears) if (!qModules.has(name)) notQuantized.push(name);
    }
    if (spec) {
      const has = (t: string) =>
        reader.has(t) ||
        (spec.optionalPrefix !== null && reader.has(t.slice(spec.optionalPrefix.length)));
      if (has(spec.lmHead)) notQuantized.push(spec.lmHead.replace(/\.weight$/, ""));
      notQuantized.push(spec.embedding.replace(/\.weight$/, ""));
    }
    // Zero-point format from the stored qzeros of up to 8 modules.
    const bits = quant?.config.bits ?? detectedBits;
    let zero: { format: "gptq" | "gptq_v2" | "unknown"; reason: string } = {
      format: "unknown",
      reason: "no qzeros to examine",
    };
    let trivialGIdx: boolean | null = null;
    if (bits !== null && isBits(bits) && quantized.length > 0) {
      const samples: Int32Array[] = [];
      for (const m of quantized.slice(0, 8)) {
        const name = reader.has(`${m}.qzeros`) ? `${m}.qzeros` : null;
        if (name) samples.push(int32((await reader.read(name)).data));
      }
      if (samples.length > 0) zero = detectZeroFormat(samples, bits as Bits, quant?.config.sym);
      const g = quant?.config.group_size ?? detectedGroup;
      const gIdxName = quantized.map((m) => `${m}.g_idx`).find((n) => reader.has(n));
      if (g !== null && gIdxName) {
        const gi = int32((await reader.read(gIdxName)).data);
        trivialGIdx = true;
        for (let k = 0; k < gi.length; k++) {
          if (gi[k] !== (g === -1 ? 0 : Math.floor(k / g))) {
            trivialGIdx = false;
            break;
          }
        }
      }
    } else if (bits !== null) {
      zero = { format: "unknown", reason: `bits ${bits} is not 2, 3, 4 or 8` };
    }
    if (quant && detectedBits !== null && detectedBits !== quant.config.bits) {
      warnings.push(
        `config declares ${quant.config.bits} bits but qweight shapes imply ${detectedBits}`,
      );
    }
    if (quant && zero.format !== "unknown" && zero.format !== quant.config.checkpoint_format) {
      warnings.push(
        `config declares checkpoint_format '${quant.config.checkpoint_format}' but the stored qzeros look like '${zero.format}'`,
      );
    }
    quantization = {
      declared: quant
        ? {
          source: quant.source,
          bits: quant.config.bits,
          groupSize: quant.config.group_size,
          sym: quant.config.sym,
          descAct: quant.config.desc_act,
          staticGroups: quant.config.static_groups,
          checkpointFormat: quant.config.checkpoint_format,
          warnings: [...quant.warnings],
        }
        : null,
      detected: {
        bits: detectedBits,
        groupSize: detectedGroup,
        trivialGIdx,
        zeroFormat: zero.format,
        zeroFormatReason: zero.reason,
      },
      quantizedModules: quantized,
      notQuantized,
    };
    if (quantizedSet && quantizedSet.size !== quantized.length) {
      warnings.push("some qweight tensors belong to modules the architecture does not list");
    }
  }

  const files = reader.files().map((f) => ({ path: f.path, bytes: f.size, tensors: f.tensors }));
  const dtypes: DtypeGroup[] = GROUP_ORDER.filter((g) => groups.has(g)).map((g) => ({
    group: g,
    dtypes: groups.get(g)!,
  }));
  return {
    path,
    kind: folder ? "folder" : "file",
    modelType: config?.modelType ?? null,
    family: config?.family ?? spec?.family ?? null,
    architecture: config?.arch ?? null,
    layers: config?.numLayers ?? (maxLayer >= 0 ? maxLayer + 1 : null),
    hiddenSize: config?.hiddenSize ?? embShape?.[1] ?? null,
    intermediateSize: config?.intermediateSize ?? null,
    heads: config?.numHeads ?? null,
    kvHeads: config?.numKvHeads ?? null,
    headDim: config?.headDim ?? null,
    vocabSize: config?.vocabSize ?? embShape?.[0] ?? null,
    maxPositions: config?.maxPositions ?? null,
    tiedEmbeddings: config?.tieWordEmbeddings ?? null,
    configDtype: config?.dtype ?? null,
    dtypes,
    quantization,
    files,
    totalBytes: files.reduce((a, f) => a + f.bytes, 0),
    tensorCount: names.length,
    parameters: params,
    warnings,
  };
}

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}

function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** Abbreviates module lists: `model.layers.{0..1}.self_attn.q_proj` style summaries. */
function summarizeModules(mods: string[]): string[] {
  const byLeaf = new Map<string, number[]>();
  const loose: string[] = [];
  for (const m of mods) {
    const r = /^(.*?)\.(\d+)\.(.+)$/.exec(m);
    if (!r) {
      loose.push(m);
      continue;
    }
    const key = `${r[1]}.*.${r[3]}`;
    const arr = byLeaf.get(key) ?? [];
    arr.push(Number(r[2]));
    byLeaf.set(key, arr);
  }
  const out: string[] = [];
  for (const [k, layers] of byLeaf) out.push(`${k.split(".*.")[1]} ×${layers.length}`);
  return [...out, ...loose];
}

/**
 * Formats a report for people: aligned `key  value` lines.
 *
 * @example
 * ```ts ignore
 * import { formatInspectReport, inspectPath } from "./inspect.ts";
 * console.log(formatInspectReport(await inspectPath("./opt-125m")));
 * ```
 *
 * @param r The report.
 * @returns Multi-line text without a trailing newline.
 */
export function formatInspectReport(r: InspectReport): string {
  const rows: [string, string][] = [];
  const add = (k: string, v: string | null | undefined): void => {
    if (v !== null && v !== undefined && v !== "") rows.push([k, v]);
  };
  add("path", `${r.path} (${r.kind})`);
  const arch = [r.family ?? r.modelType ?? "unknown", r.architecture ? `(${r.architecture})` : ""]
    .join(" ").trim();
  add("architecture", arch);
  if (r.layers !== null && r.heads === null) {
    add("layers", String(r.layers));
    add("hidden / vocab", `${r.hiddenSize} / ${r.vocabSize} (from the embedding's shape)`);
  }
  if (r.heads !== null) {
    add("layers", String(r.layers));
    add("hidden / intermediate", `${r.hiddenSize} / ${r.intermediateSize}`);
    add(
      "heads / kv heads",
      `${r.heads} / ${r.kvHeads} (head dim ${r.headDim})`,
    );
    add("vocab / context", `${r.vocabSize} / ${r.maxPositions}`);
    add("tied embeddings", r.tiedEmbeddings ? "yes" : "no");
    add("config dtype", r.configDtype);
  }
  for (const g of r.dtypes) {
    add(
      `dtype ${g.group}`,
      Object.entries(g.dtypes).map(([d, c]) => `${d}×${c}`).join(", "),
    );
  }
  const q = r.quantization;
  if (!q) add("quantization", "none");
  else {
    const d = q.declared;
    if (d) {
      add(
        "quantization",
        `GPTQ ${d.bits}-bit, group ${d.groupSize === -1 ? "none" : d.groupSize}, ${
          d.sym ? "sym" : "asym"
        }, ` +
          `act-order ${d.descAct ? "yes" : "no"}, static groups ${
            d.staticGroups ? "yes" : "no"
          } (${d.source})`,
      );
    } else add("quantization", "GPTQ tensors, no quantization config");
    const det = q.detected;
    add(
      "detected",
      `${det.bits ?? "?"}-bit, group ${det.groupSize === -1 ? "none" : det.groupSize ?? "?"}` +
        (det.trivialGIdx === null
          ? ""
          : `, g_idx ${det.trivialGIdx ? "sequential" : "act-order (permuted)"}`),
    );
    add(
      "zero points",
      `declared ${d ? (d.checkpointFormat === "gptq" ? "gptq (v1)" : d.checkpointFormat) : "?"}, ` +
        `detected ${det.zeroFormat === "gptq" ? "gptq (v1)" : det.zeroFormat}`,
    );
    add(
      "quantized",
      `${q.quantizedModules.length}: ${summarizeModules(q.quantizedModules).join(", ")}`,
    );
    add("not quantized", summarizeModules(q.notQuantized).join(", ") || "none");
  }
  const p = r.parameters;
  add(
    "parameters",
    `${count(p.total)} (embeddings ${count(p.embeddings)}, lm_head ${count(p.lmHead)}, ` +
      `block linears ${count(p.blockLinears)}` +
      (p.quantized ? `, of which quantized ${count(p.quantized)}` : "") +
      `, other ${count(p.other)})`,
  );
  add("tensors", String(r.tensorCount));
  add("size", bytes(r.totalBytes));
  if (r.files.length > 1) {
    for (const f of r.files) {
      add("  shard", `${f.path.split("/").pop()}  ${bytes(f.bytes)}  (${f.tensors} tensors)`);
    }
  } else if (r.files[0]) add("file", r.files[0].path.split("/").pop());
  for (const w of r.warnings) add("warning", w);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
}
