// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Expands an {@linkcode ArchSpec} and a config into concrete tensor names and
 * shapes: what a plain checkpoint must hold, what a GPTQ checkpoint holds in
 * place of each quantized linear, and the block linears in AutoGPTQ's
 * true-sequential order.
 *
 * @module
 */

import type { ModelConfig } from "../io/hf_config.ts";
import type { ArchSpec, LinearSpec, NormSpec } from "./spec.ts";

/** What a tensor is for. */
export type TensorRole =
  | "embedding"
  | "position_embedding"
  | "projection"
  | "norm"
  | "lm_head"
  | "linear_weight"
  | "linear_bias"
  | "qweight"
  | "qzeros"
  | "scales"
  | "g_idx";

/** One tensor a checkpoint is expected to hold. */
export interface ExpectedTensor {
  /** Full tensor name. */
  name: string;
  /** Its shape. */
  shape: number[];
  /** What it is. */
  role: TensorRole;
  /** Block index, or null outside the blocks. */
  layer: number | null;
  /** Full module path for linear tensors (e.g. `model.layers.0.mlp.up_proj`), else null. */
  module: string | null;
}

/** One linear module of one block. */
export interface BlockLinear {
  /** Full module path, e.g. `model.layers.3.self_attn.q_proj`. */
  name: string;
  /** Module path relative to the block, e.g. `self_attn.q_proj`. */
  module: string;
  /** Block index. */
  layer: number;
  /** True-sequential group index inside the block (0-based). */
  group: number;
  /** Input features K. */
  inFeatures: number;
  /** Output features N. */
  outFeatures: number;
  /** Whether it has a bias. */
  bias: boolean;
  /** Weight layout (`conv1d` stores `[in, out]`). */
  layout: LinearSpec["layout"];
  /** Which activation feeds it (equal values share a Hessian). */
  input: LinearSpec["input"];
}

/** How quantized linears are laid out in a GPTQ checkpoint. */
export interface QuantLayout {
  /** Bits per weight (2, 3, 4 or 8). */
  bits: number;
  /** Group size, or -1 for one group per row. */
  groupSize: number;
  /** Which block modules (full paths) are quantized; default: all of them. */
  isQuantized?: (module: string) => boolean;
}

/**
 * The tensors AutoGPTQ stores for one quantized linear of K inputs and N
 * outputs (gptq-reference.md §1.2).
 *
 * @example
 * ```ts
 * import { gptqTensorShapes } from "./tensors.ts";
 * console.log(gptqTensorShapes(4096, 4096, 4, 128).qweight); // [512, 4096]
 * ```
 *
 * @param k Input features.
 * @param n Output features.
 * @param bits Bits per weight.
 * @param groupSize Group size, -1 for none.
 * @returns Shapes of `qweight`, `qzeros`, `scales` and `g_idx`.
 */
export function gptqTensorShapes(
  k: number,
  n: number,
  bits: number,
  groupSize: number,
): { qweight: number[]; qzeros: number[]; scales: number[]; g_idx: number[] } {
  const groups = groupSize === -1 ? 1 : Math.ceil(k / groupSize);
  return {
    qweight: [Math.floor(k / 32) * bits, n],
    qzeros: [groups, Math.floor(n / 32) * bits],
    scales: [groups, n],
    g_idx: [k],
  };
}

/**
 * The stored shape of a linear module's weight.
 *
 * @example
 * ```ts
 * import { linearWeightShape } from "./tensors.ts";
 * console.log(linearWeightShape({ inFeatures: 768, outFeatures: 2304, layout: "conv1d" })); // [768, 2304]
 * ```
 *
 * @param l The module's features and layout.
 * @returns `[out, in]` for `nn.Linear`, `[in, out]` for `Conv1D`.
 */
export function linearWeightShape(
  l: Pick<BlockLinear, "inFeatures" | "outFeatures" | "layout">,
): number[] {
  return l.layout === "conv1d" ? [l.inFeatures, l.outFeatures] : [l.outFeatures, l.inFeatures];
}

/**
 * Every block linear of the model, block by block, each block in
 * true-sequential group order (AutoGPTQ's `inside_layer_modules`).
 *
 * @example
 * ```ts ignore
 * import { blockLinears, getArch } from "./mod.ts";
 * const ls = blockLinears(getArch(config.modelType), config);
 * console.log(ls[0]?.name); // "model.layers.0.self_attn.k_proj"
 * ```
 *
 * @param spec The architecture.
 * @param config The model's config.
 * @returns The linears with their concrete sizes.
 */
export function blockLinears(spec: ArchSpec, config: ModelConfig): BlockLinear[] {
  const out: BlockLinear[] = [];
  const byName = new Map(spec.linears.map((l) => [l.name, l]));
  for (let layer = 0; layer < config.numLayers; layer++) {
    spec.sequentialGroups.forEach((group, g) => {
      for (const m of group) {
        const l = byName.get(m);
        if (!l) throw new Error(`bug: ${spec.family} group names unknown linear '${m}'`);
        out.push({
          name: `${spec.blockPrefix}.${layer}.${m}`,
          module: m,
          layer,
          group: g,
          inFeatures: l.inFeatures(config),
          outFeatures: l.outFeatures(config),
          bias: l.bias(config),
          layout: l.layout,
          input: l.input,
        });
      }
    });
  }
  return out;
}

function present(x: { present?: (c: ModelConfig) => boolean }, c: ModelConfig): boolean {
  return x.present === undefined || x.present(c);
}

function pushNorm(
  out: ExpectedTensor[],
  n: NormSpec,
  c: ModelConfig,
  name: string,
  layer: number | null,
): void {
  if (!present(n, c)) return;
  out.push({ name: `${name}.weight`, shape: [c.hiddenSize], role: "norm", layer, module: null });
  if (n.bias) {
    out.push({ name: `${name}.bias`, shape: [c.hiddenSize], role: "norm", layer, module: null });
  }
}

/**
 * The tensors a checkpoint of this architecture and config holds, with their
 * shapes. With `quant`, quantized linears appear as `qweight`/`qzeros`/
 * `scales`/`g_idx` (plus `bias`) instead of `weight`. The tied head is left
 * out when `tieWordEmbeddings` is set.
 *
 * @example
 * ```ts ignore
 * import { expectedTensors, getArch } from "./mod.ts";
 * for (const t of expectedTensors(getArch("llama"), config)) console.log(t.name, t.shape);
 * ```
 *
 * @param spec The architecture.
 * @param config The model's config.
 * @param opts `quant`: the GPTQ layout, if the checkpoint is quantized.
 * @returns The expected tensors, outer tensors first, then block by block.
 */
export function expectedTensors(
  spec: ArchSpec,
  config: ModelConfig,
  opts: { quant?: QuantLayout } = {},
): ExpectedTensor[] {
  const c = config;
  const out: ExpectedTensor[] = [];
  out.push({
    name: spec.embedding,
    shape: [c.vocabSize, c.wordEmbedProjDim],
    role: "embedding",
    layer: null,
    module: null,
  });
  for (const t of spec.outer) {
    if (present(t, c)) {
      out.push({ name: t.name, shape: t.shape(c), role: t.role, layer: null, module: null });
    }
  }
  pushNorm(out, spec.finalNorm, c, spec.finalNorm.name, null);
  if (!c.tieWordEmbeddings) {
    out.push({
      name: spec.lmHead,
      shape: [c.vocabSize, c.wordEmbedProjDim],
      role: "lm_head",
      layer: null,
      module: null,
    });
  }
  // blockLinears lists the linears block by block: walk it once (linear in the layer count).
  const linears = blockLinears(spec, c);
  const quant = opts.quant;
  let next = 0;
  for (let layer = 0; layer < c.numLayers; layer++) {
    const p = `${spec.blockPrefix}.${layer}`;
    pushNorm(out, spec.blockNorms.attn, c, `${p}.${spec.blockNorms.attn.name}`, layer);
    pushNorm(out, spec.blockNorms.mlp, c, `${p}.${spec.blockNorms.mlp.name}`, layer);
    for (; next < linears.length && linears[next]!.layer === layer; next++) {
      const l = linears[next]!;
      const m = l.name;
      if (quant && (quant.isQuantized === undefined || quant.isQuantized(m))) {
        const s = gptqTensorShapes(l.inFeatures, l.outFeatures, quant.bits, quant.groupSize);
        out.push({ name: `${m}.qweight`, shape: s.qweight, role: "qweight", layer, module: m });
        out.push({ name: `${m}.qzeros`, shape: s.qzeros, role: "qzeros", layer, module: m });
        out.push({ name: `${m}.scales`, shape: s.scales, role: "scales", layer, module: m });
        out.push({ name: `${m}.g_idx`, shape: s.g_idx, role: "g_idx", layer, module: m });
      } else {
        out.push({
          name: `${m}.weight`,
          shape: linearWeightShape(l),
          role: "linear_weight",
          layer,
          module: m,
        });
      }
      if (l.bias) {
        out.push({
          name: `${m}.bias`,
          shape: [l.outFeatures],
          role: "linear_bias",
          layer,
          module: m,
        });
      }
    }
  }
  return out;
}

/**
 * Classifies a stored tensor name by the spec alone (no config needed): used
 * by `inspect` to group dtypes and by readers to skip known buffers.
 *
 * @example
 * ```ts
 * import { classifyTensor } from "./tensors.ts";
 * import { LLAMA } from "./llama.ts";
 * console.log(classifyTensor(LLAMA, "model.layers.0.self_attn.q_proj.qweight"));
 * // { role: "qweight", layer: 0, module: "model.layers.0.self_attn.q_proj" }
 * ```
 *
 * @param spec The architecture.
 * @param name A tensor name as stored.
 * @returns Its role, block and module, `ignored` for known non-weight buffers, or `unknown`.
 */
export function classifyTensor(
  spec: ArchSpec,
  name: string,
): { role: TensorRole | "ignored" | "unknown"; layer: number | null; module: string | null } {
  if (name === spec.lmHead) return { role: "lm_head", layer: null, module: null };
  let n = name;
  if (spec.optionalPrefix && !n.startsWith(spec.optionalPrefix)) n = spec.optionalPrefix + n;
  if (spec.ignoredSuffixes.some((s) => n.endsWith(`.${s}`))) {
    return { role: "ignored", layer: null, module: null };
  }
  if (n === spec.embedding) return { role: "embedding", layer: null, module: null };
  const outer = spec.outer.find((t) => t.name === n);
  if (outer) return { role: outer.role, layer: null, module: null };
  if (n === `${spec.finalNorm.name}.weight` || n === `${spec.finalNorm.name}.bias`) {
    return { role: "norm", layer: null, module: null };
  }
  const pre = `${spec.blockPrefix}.`;
  if (!n.startsWith(pre)) return { role: "unknown", layer: null, module: null };
  const rest = n.slice(pre.length);
  const dot = rest.indexOf(".");
  const layer = Number(rest.slice(0, dot));
  if (dot < 0 || !Number.isInteger(layer)) return { role: "unknown", layer: null, module: null };
  const inner = rest.slice(dot + 1);
  const lastDot = inner.lastIndexOf(".");
  const mod = inner.slice(0, lastDot);
  const leaf = inner.slice(lastDot + 1);
  if (mod === spec.blockNorms.attn.name || mod === spec.blockNorms.mlp.name) {
    return { role: "norm", layer, module: null };
  }
  if (spec.linears.some((l) => l.name === mod)) {
    const full = `${spec.blockPrefix}.${layer}.${mod}`;
    const roles: Record<string, TensorRole> = {
      weight: "linear_weight",
      bias: "linear_bias",
      qweight: "qweight",
      qzeros: "qzeros",
      scales: "scales",
      g_idx: "g_idx",
    };
    const role = roles[leaf];
    if (role) return { role, layer, module: full };
  }
  return { role: "unknown", layer, module: null };
}
