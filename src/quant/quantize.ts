// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * End-to-end GPTQ quantization of a model folder into an AutoGPTQ-compatible
 * checkpoint, block by block (AutoGPTQ's `quantize`, gptq-reference.md §2):
 *
 * 1. embed the calibration samples;
 * 2. for each decoder block: load it alone; for each true-sequential group
 *    run the block over every sample, accumulating one Hessian per distinct
 *    input (q/k/v share one), quantize the group's modules and put their
 *    fake-quantized weights back, so later groups see quantized inputs; then
 *    run the block once more to produce the next block's inputs; release it;
 * 3. write `model.safetensors` (sharded when large), `config.json` with
 *    `quantization_config`, `quantize_config.json`, the tokenizer files and a
 *    report.
 *
 * Where the activations, Hessians and solves live is the engine's business
 * (`./_engine.ts`): on the CPU engine, memory holds one block, the
 * calibration activations and one Hessian, and with the default two solver
 * Workers each Hessian is accumulated, prepared and used for the report's
 * errors on Worker 0, so this thread never holds a `K×K` array; on the device
 * engine (`./_device_engine.ts`, chosen by passing a WebGPU or CUDA/HIP
 * backend) they all stay on the device. Every finished block is journaled in
 * `OUT.gptq-work/` (its packed tensors and the activations after it), so a
 * killed run continues with `resume` and produces the same checkpoint as an
 * uninterrupted one (on the same engine). The output appears atomically.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { fromFloat32, toFloat32 } from "../io/dtype.ts";
import type { ModelConfig } from "../io/hf_config.ts";
import { ModelFolder } from "../io/model_folder.ts";
import { resolveModel } from "../io/hub.ts";
import { AtomicOutputDir } from "../io/atomic_dir.ts";
import { type NamedTensor, ShardedWriter, writeSafetensors } from "../io/safetensors_writer.ts";
import { SafetensorsFile } from "../io/safetensors.ts";
import { type Bits, packQWeight, packQZeros, scalesToF16 } from "../gptq/pack.ts";
import {
  parseQuantizeConfig,
  type QuantizeConfig,
  toQuantizationConfigBlock,
  toQuantizeConfigJson,
} from "../gptq/quant_config.ts";
import type { LinearSpec } from "../arch/spec.ts";
import {
  type BlockContext,
  blockContext,
  type BlockWeights,
  CausalLM,
  type LinearInput,
  loadBlock,
  releaseBlock,
} from "../runtime/model.ts";
import type { Backend } from "../backends/backend.ts";
import { selectBackend } from "../backends/select.ts";
import { transpose } from "../backends/typescript/ts_kernels.ts";
import { calibrationFromTexts, loadCalibration } from "./calibration.ts";
import { checkOutputLocation, removeLeftovers, writeError } from "./_output.ts";
import { createDeviceEngine, deviceEngineKind } from "./_device_engine.ts";
import {
  type Activations,
  createCpuEngine,
  type FinalIntermediates,
  gatherRows,
  type GroupSolver,
  type QuantEngine,
  STOP_BLOCK,
} from "./_engine.ts";
import {
  createWasmSolver,
  type GptqSolveOptions,
  type QuantBackend,
  sampledRows,
} from "./solver.ts";
import { VERSION } from "../version.ts";

/** Settings, named as transformers' `GPTQConfig` (and AutoGPTQ) name them. */
export interface GPTQConfig {
  /** 2, 3, 4 or 8. Default 4. */
  bits?: number;
  /** Columns per group, -1 for per-row. Default 128. */
  group_size?: number;
  /** Act-order. Default false. */
  desc_act?: boolean;
  /** Static groups (act-order accuracy with the fast layout). Default false. */
  static_groups?: boolean;
  /** Symmetric quantization. Default true. */
  sym?: boolean;
  /** Damping fraction. Default 0.01 (AutoGPTQ). */
  damp_percent?: number;
  /** Damping increase on Cholesky failure. Default 0.0025 (GPTQModel). */
  damp_auto_increment?: number;
  /** Quantize AutoGPTQ's sequential groups one after another. Default true. */
  true_sequential?: boolean;
  /** MSE clipping search. Default false. */
  mse?: boolean;
  /**
   * The calibration data, as transformers' `GPTQConfig.dataset`: a list of
   * strings (each tokenized on its own and truncated to `model_seqlen`, all
   * of them used, as optimum does), a named dataset (`"wikitext2"`, `"c4"`,
   * `"c4-new"`: downloaded from the Hub once and cached), a `.txt` file
   * (random windows) or `.jsonl` file (one `text` per line), or pre-tokenized
   * samples (`number[][]`).
   */
  dataset: string | string[] | number[][];
  /** Calibration samples drawn from a named dataset or a file. Default 128. */
  nsamples?: number;
  /** Tokens per calibration sample (optimum's name). Default min(2048, context). */
  model_seqlen?: number;
  /** Calibration sampling seed. Default 0. */
  seed?: number;
  /** `gptq` (v1) or `gptq_v2`. Default: v1 when sym, v2 when asym. */
  checkpoint_format?: "gptq" | "gptq_v2";
  /** GPTQModel's name for {@linkcode GPTQConfig.checkpoint_format}; both must agree when both are given. */
  format?: "gptq" | "gptq_v2";
  /**
   * The modules of each block to quantize, as sequential groups (transformers'
   * name): each inner list is quantized together, after the previous lists'
   * quantized weights are in place, e.g.
   * `[["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"], ["self_attn.o_proj"]]`.
   * Modules of the block that are not listed stay in full precision (and are
   * named in `modules_to_not_convert`). Default: the architecture's
   * sequential groups, every linear quantized.
   */
  modules_in_block_to_quantize?: string[][];
  /**
   * The prefix of the repeated blocks (transformers' name), e.g.
   * `model.layers`. The architecture registry knows it; when given it must
   * match, or the run is refused.
   */
  block_name_to_quantize?: string;
  /**
   * Calibration batch size (transformers' name, default 1). Accepted for
   * compatibility: samples run one at a time here, which gives the same
   * Hessians as any batch size (no padding is ever needed).
   */
  batch_size?: number;
  /** Padding token for batches (transformers' name). Accepted; unused, since nothing is padded. */
  pad_token_id?: number;
  /**
   * Keep each block's outputs for the next block (transformers' name,
   * default true). Always true here: the block outputs are kept (and
   * journaled for resume); `false` is refused.
   */
  cache_block_outputs?: boolean;
  /**
   * transformers' inference-kernel switch (ExLlama). Accepted and ignored:
   * this toolkit's own kernels run GPTQ checkpoints on every backend, and the
   * checkpoint written is the same either way.
   */
  use_exllama?: boolean;
  /** transformers' ExLlama settings (`{ version: 1 | 2 }`). Accepted and ignored, like `use_exllama`. */
  exllama_config?: Record<string, unknown>;
  /** Block-relative module names (e.g. `mlp.down_proj`) to keep unquantized. */
  modules_to_not_convert?: string[];
  /** Largest shard (`"10GB"` like optimum). */
  max_shard_size?: string | number;
}

/** Options of {@linkcode quantizeModel}. */
export interface QuantizeOptions {
  /** Replace an existing output folder. */
  force?: boolean;
  /** Continue a killed run from its journal. */
  resume?: boolean;
  /**
   * The backend the calibration forward runs on, which also decides where
   * the Hessians are accumulated and the GPTQ solve runs: a host backend
   * (WASM or TypeScript) uses the CPU engine (the WASM solver on Workers);
   * a WebGPU or CUDA/HIP backend keeps activations, Hessians and solves on
   * its device.
   * Default: the fastest CPU backend available (WASM SIMD).
   */
  backend?: Backend;
  /**
   * Solver Workers for the GPTQ column loop; default 2. Results are
   * bit-identical for any count; each extra Worker holds one more copy of the
   * Hessian's factor (K² floats), so 1 is the lean choice when memory is tight.
   */
  threads?: number;
  /**
   * Memory (bytes) the CPU engine may use to keep each block's attention
   * outputs (once q/k/v are quantized) and MLP intermediates (once gate/up
   * are) between true-sequential groups, so that later groups and the next
   * block's inputs skip what computes them, for the samples kept (in order,
   * while they fit); default 1 GiB, 0 turns it off. The checkpoint is
   * byte-identical either way.
   */
  intermediateCacheBytes?: number;
  /** An in-process solver for the CPU engine (default: WASM on Workers); not with a GPU backend. */
  solver?: QuantBackend;
  /** Progress: block `done` of `total` finished. */
  onBlock?: (done: number, total: number) => void;
  /** Diagnostics (warnings, skipped modules). */
  onLog?: (line: string) => void;
  /**
   * `gptq` (default) or `rtn`: round-to-nearest with the same quantizer and
   * groups, written in the same format — the baseline GPTQ is compared with.
   */
  method?: "gptq" | "rtn";
  /** Test hook: called after a block is journaled. */
  afterBlock?: (layer: number) => void | Promise<void>;
}

/** What happened to one module. */
export interface ModuleReport {
  /** Full module path. */
  name: string;
  /** Block index. */
  layer: number;
  /** Input/output features. */
  K: number;
  /** Output features. */
  N: number;
  /** Whether it was quantized. */
  quantized: boolean;
  /** Why not, when not. */
  reason?: string;
  /** AutoGPTQ's loss. */
  loss?: number;
  /** `tr((W−Q)H(W−Q)ᵀ)` for GPTQ. */
  gptqError?: number;
  /** The same for round-to-nearest. */
  rtnError?: number;
  /** Damping used. */
  dampUsed?: number;
  /** Dead columns. */
  deadColumns?: number;
  /** Solver seconds. */
  seconds?: number;
}

/** The quantization report (also written as `quantize_report.json`). */
export interface QuantizeReport {
  /** Toolkit version. */
  version: string;
  /** Source model folder. */
  model: string;
  /** Output folder. */
  out: string;
  /** `gptq` or `rtn`. */
  method: "gptq" | "rtn";
  /** The settings used. */
  config: Record<string, unknown>;
  /** Calibration: source, method, samples, tokens. */
  calibration: { source: string; method: string; samples: number; tokens: number };
  /** Per-module results. */
  modules: ModuleReport[];
  /** Seconds per block. */
  blockSeconds: number[];
  /** Total seconds. */
  seconds: number;
  /** Peak resident set size seen (bytes). */
  peakRssBytes: number;
  /** Blocks taken from the journal instead of recomputed. */
  resumedBlocks: number;
  /** Backends. */
  backends: { forward: string; solver: string };
}

/** Order in which a block computes the inputs of its linears. */
const INPUT_ORDER: readonly LinearInput[] = ["attn_in", "attn_out", "mlp_in", "mlp_mid"];

interface Journal {
  fingerprint: string;
  finished: number;
  /** The activations file (in the work folder) entering block `finished`. */
  acts: string;
  modules: ModuleReport[];
  blockSeconds: number[];
  lengths: number[];
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Name of the activations file entering block `finished` (one per generation). */
function actsName(finished: number): string {
  return `acts-${String(finished).padStart(5, "0")}.f32`;
}

/** Name of the journaled packed tensors of block `layer`. */
function layerName(layer: number): string {
  return `layer-${String(layer).padStart(5, "0")}.safetensors`;
}

/** FNV-1a over every calibration token and sample boundary (for the journal's fingerprint). */
function hashSamples(samples: number[][]): string {
  let h = 0x811c9dc5;
  const mix = (v: number) => {
    for (let i = 0; i < 4; i++) {
      h ^= (v >>> (8 * i)) & 0xff;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  };
  for (const s of samples) {
    mix(s.length);
    for (const t of s) mix(t);
  }
  return h.toString(16).padStart(8, "0");
}

/**
 * Frees a typed array's memory at once (detaches its buffer, which must not
 * be used again) instead of whenever the garbage collector runs: the large
 * per-module arrays (W, codes) would otherwise pile up between collections.
 */
function discard(a: Float32Array | Uint8Array): void {
  const b = a.buffer;
  // Only arrays that own their whole buffer (never a view into a larger one).
  if (
    b instanceof ArrayBuffer && !b.detached && a.byteOffset === 0 && a.byteLength === b.byteLength
  ) {
    b.transfer(0);
  }
}

function i32Bytes(a: Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp`;
  try {
    await Deno.writeTextFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {}); // never leave a half-written file (disk full)
    throw e;
  }
}

/** A run's settings, resolved and validated. */
interface RunPlan {
  config: ModelConfig;
  bits: Bits;
  format: "gptq" | "gptq_v2";
  solveOpts: GptqSolveOptions;
  trueSeq: boolean;
  notConvert: Set<string>;
  qcfg: QuantizeConfig;
  method: "gptq" | "rtn";
  cal: { samples: number[][]; source: string; method: string };
  lengths: number[];
  fingerprint: string;
  maxShardSize: string | number;
  /** Sequential groups of block-relative module names. */
  groups: string[][];
  /** Linears of a block left out of `groups` (kept in full precision). */
  skipped: string[];
}

/** Resolves the settings, loads the calibration set and fingerprints the run. */
async function planRun(
  folder: ModelFolder,
  modelDir: string,
  cfg: GPTQConfig,
  opts: QuantizeOptions,
): Promise<RunPlan> {
  if (folder.quant) {
    throw new GptqError("INVALID_ARGUMENT", "the model is already GPTQ-quantized", {
      file: folder.quant.source,
      hint: "quantize the original (fp16/bf16/fp32) model",
    });
  }
  const c = folder.config;
  const bits = cfg.bits ?? 4;
  const sym = cfg.sym ?? true;
  if (cfg.format && cfg.checkpoint_format && cfg.format !== cfg.checkpoint_format) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `format "${cfg.format}" and checkpoint_format "${cfg.checkpoint_format}" disagree`,
      { hint: "give one of them" },
    );
  }
  const format = cfg.checkpoint_format ?? cfg.format ?? (sym ? "gptq" : "gptq_v2");
  const { groups, skipped } = blockGroups(folder, cfg);
  checkCompatKnobs(folder, cfg);
  const solveOpts: GptqSolveOptions = {
    bits,
    group_size: cfg.group_size ?? 128,
    sym,
    desc_act: cfg.desc_act ?? false,
    static_groups: cfg.static_groups ?? false,
    damp_percent: cfg.damp_percent ?? 0.01,
    damp_auto_increment: cfg.damp_auto_increment ?? 0.0025,
    mse: cfg.mse ?? false,
  };
  const seqlen = cfg.model_seqlen ?? Math.min(2048, c.maxPositions);
  if (seqlen > c.maxPositions) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `--seqlen ${seqlen} exceeds the model's ${c.maxPositions} positions`,
      {
        file: c.file,
        hint: `use --seqlen ${c.maxPositions} or less`,
      },
    );
  }
  const trueSeq = cfg.true_sequential ?? true;
  const notConvert = new Set(cfg.modules_to_not_convert ?? []);
  checkNotConvert(folder, notConvert);
  // The normalized config (validated by the same parser loaders use).
  const qcfg: QuantizeConfig = parseQuantizeConfig({
    bits,
    group_size: solveOpts.group_size,
    damp_percent: solveOpts.damp_percent,
    damp_auto_increment: solveOpts.damp_auto_increment,
    desc_act: solveOpts.desc_act,
    static_groups: solveOpts.static_groups,
    sym,
    true_sequential: trueSeq,
    checkpoint_format: format,
    quant_method: "gptq",
    model_file_base_name: "model",
    mse: solveOpts.mse ? 2.4 : 0,
    model_seqlen: seqlen,
  }, "(quantize settings)");

  const tok = await folder.tokenizer();
  const ds = cfg.dataset;
  const cal = typeof ds === "string"
    ? await loadCalibration(ds, tok, {
      nsamples: cfg.nsamples ?? 128,
      seqlen,
      seed: cfg.seed ?? 0,
    })
    : isTextList(ds)
    ? calibrationFromTexts(ds, tok, seqlen)
    : {
      samples: ds.map((s) => s.slice(0, seqlen)).filter((s) => s.length > 0),
      source: "(token ids given by the caller)",
      method: `${ds.length} given samples, truncated to ${seqlen} tokens`,
    };
  if (cal.samples.length === 0) {
    throw new GptqError("DATASET", "the calibration set is empty", {
      hint: "give at least one sample",
    });
  }
  for (const w of ("warnings" in cal ? cal.warnings : undefined) ?? []) {
    opts.onLog?.(`warning: ${w}`);
  }
  const method = opts.method ?? "gptq";
  const fingerprint = JSON.stringify({
    version: VERSION,
    model: await Deno.realPath(modelDir),
    solveOpts,
    trueSeq,
    groups,
    format,
    method,
    notConvert: [...notConvert].sort(),
    samples: cal.samples.map((s) => s.length),
    tokens: hashSamples(cal.samples),
    // A run resumes on the engine it started on (the checkpoint bytes depend on it).
    engine: deviceEngineKind(opts.backend) ?? "cpu",
  });
  return {
    config: c,
    bits: bits as Bits,
    format,
    solveOpts,
    trueSeq,
    notConvert,
    qcfg,
    method,
    cal,
    lengths: cal.samples.map((s) => s.length),
    fingerprint,
    maxShardSize: cfg.max_shard_size ?? "10GB",
    groups,
    skipped,
  };
}

/** Whether a `dataset` array holds texts (rather than token ids). */
function isTextList(ds: string[] | number[][]): ds is string[] {
  return ds.length > 0 && ds.every((d) => typeof d === "string");
}

/**
 * The sequential groups of a block (`modules_in_block_to_quantize`, else the
 * architecture's) and the block's linears left out of them.
 */
function blockGroups(
  folder: ModelFolder,
  cfg: GPTQConfig,
): { groups: string[][]; skipped: string[] } {
  const arch = folder.arch;
  const given = cfg.modules_in_block_to_quantize;
  if (given === undefined) return { groups: arch.sequentialGroups, skipped: [] };
  const known = arch.linears.map((l) => l.name);
  const seen = new Set<string>();
  if (!Array.isArray(given) || given.some((g) => !Array.isArray(g) || g.length === 0)) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      "modules_in_block_to_quantize must be a list of non-empty lists of module names",
      { hint: `e.g. [["${known[0]}"]]; this architecture's modules: ${known.join(", ")}` },
    );
  }
  for (const g of given) {
    for (const name of g) {
      if (!known.includes(name)) {
        throw new GptqError(
          "INVALID_ARGUMENT",
          `modules_in_block_to_quantize names "${name}", which ${arch.family} blocks do not have`,
          { hint: `use block-relative names: ${known.join(", ")}` },
        );
      }
      if (seen.has(name)) {
        throw new GptqError(
          "INVALID_ARGUMENT",
          `modules_in_block_to_quantize names "${name}" twice`,
          { hint: "list each module once" },
        );
      }
      seen.add(name);
    }
  }
  return { groups: given.map((g) => [...g]), skipped: known.filter((n) => !seen.has(n)) };
}

/**
 * Refuses `modules_to_not_convert` names that match no module: a typo would
 * otherwise quantize the module the user meant to keep.
 */
function checkNotConvert(folder: ModelFolder, names: ReadonlySet<string>): void {
  const arch = folder.arch, n = folder.config.numLayers;
  const known = arch.linears.map((l) => l.name);
  for (const name of names) {
    if (known.includes(name)) continue;
    const rest = name.startsWith(`${arch.blockPrefix}.`)
      ? name.slice(arch.blockPrefix.length + 1)
      : "";
    const dot = rest.indexOf(".");
    const layer = rest.slice(0, dot), mod = rest.slice(dot + 1);
    if (dot > 0 && /^\d+$/.test(layer) && Number(layer) < n && known.includes(mod)) continue;
    throw new GptqError(
      "INVALID_ARGUMENT",
      `modules_to_not_convert names "${name}", which is no module of this ${arch.family} model`,
      {
        file: folder.config.file,
        hint: `use block-relative names (${known.join(", ")}) or full paths such as ` +
          `${arch.blockPrefix}.0.${known[0]}`,
      },
    );
  }
}

/** Validates transformers' knobs that have no effect here (see {@linkcode GPTQConfig}). */
function checkCompatKnobs(folder: ModelFolder, cfg: GPTQConfig): void {
  const prefix = folder.arch.blockPrefix;
  if (cfg.block_name_to_quantize !== undefined && cfg.block_name_to_quantize !== prefix) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `block_name_to_quantize "${cfg.block_name_to_quantize}" is not this model's block prefix`,
      { file: folder.config.file, hint: `leave it out, or give "${prefix}"` },
    );
  }
  if (
    cfg.batch_size !== undefined && (!Number.isInteger(cfg.batch_size) || cfg.batch_size < 1)
  ) {
    throw new GptqError("INVALID_ARGUMENT", `batch_size must be a positive integer`, {
      hint: "leave it out (samples run one at a time; any batch size gives the same result)",
    });
  }
  if (cfg.cache_block_outputs === false) {
    throw new GptqError("INVALID_ARGUMENT", "cache_block_outputs: false is not supported", {
      hint: "leave it out: block outputs are always kept (and journaled for resume)",
    });
  }
}

/** The unfinished run's journal to resume, or null; refuses a work folder it may not use. */
async function openJournal(
  workDir: string,
  fingerprint: string,
  opts: QuantizeOptions,
): Promise<Journal | null> {
  if (!(await exists(workDir))) return null;
  if (opts.resume) {
    let journal: Journal | null;
    try {
      journal = JSON.parse(await Deno.readTextFile(`${workDir}/journal.json`)) as Journal;
    } catch {
      journal = null;
    }
    // A journal without an activations file name predates this layout: start over.
    if (journal && typeof journal.acts !== "string") journal = null;
    if (journal && journal.fingerprint !== fingerprint) {
      throw new GptqError(
        "INVALID_ARGUMENT",
        "the unfinished run used other settings or data",
        {
          file: workDir,
          hint: "run without --resume and with --force to start over",
        },
      );
    }
    return journal;
  }
  if (opts.force) {
    await Deno.remove(workDir, { recursive: true });
    return null;
  }
  throw new GptqError("OUTPUT_EXISTS", "an unfinished run left its work folder", {
    file: workDir,
    hint: "pass --resume to continue it, or --force to start over",
  });
}

/** The engine for the forward backend: the device engine for a GPU backend, else the CPU's. */
async function createEngine(
  kernels: Backend,
  ctx: BlockContext,
  opts: QuantizeOptions,
  maxLen: number,
): Promise<QuantEngine> {
  const device = deviceEngineKind(kernels);
  if (device) {
    const name = device === "webgpu" ? "WebGPU" : device.toUpperCase();
    if (opts.solver) {
      throw new GptqError(
        "INVALID_ARGUMENT",
        `a custom solver runs on the CPU engine, not with the ${name} backend`,
        { hint: `leave out either the solver or the ${name} backend` },
      );
    }
    return await createDeviceEngine(kernels, ctx, maxLen);
  }
  return await createCpuEngine({
    backend: kernels,
    ctx,
    threads: opts.threads,
    ...(opts.intermediateCacheBytes !== undefined
      ? { intermediateCacheBytes: opts.intermediateCacheBytes }
      : {}),
    ...(opts.solver ? { solver: opts.solver } : {}),
    wasm: opts.solver ?? await createWasmSolver(),
    maxLen,
  });
}

/** What one block's quantization needs besides the block itself. */
interface BlockJob {
  folder: ModelFolder;
  plan: RunPlan;
  engine: QuantEngine;
  kernels: Backend;
  acts: Activations;
  layer: number;
  log: (line: string) => void;
  sampleRss: () => number;
}

/**
 * Quantizes one true-sequential group of a block: captures the Hessians of
 * its inputs over every sample, then solves, reports and packs each module,
 * putting its quantized weight back into `block`.
 */
async function quantizeGroup(
  job: BlockJob,
  block: BlockWeights,
  linSpecs: LinearSpec[],
  modules: ModuleReport[],
  packed: NamedTensor[],
  final: FinalIntermediates,
): Promise<void> {
  const { folder, plan, layer } = job;
  const c = plan.config;
  const inputs = new Map<LinearInput, number>();
  for (const l of linSpecs) inputs.set(l.input, l.inFeatures(c));
  // A bad Hessian input (NaN/Inf) is reported against the modules it feeds.
  const inputError = (e: unknown, input: LinearInput, s: number) => {
    if (!(e instanceof GptqError) || e.tensor) return e;
    const fed = linSpecs.filter((l) => l.input === input).map((l) =>
      `${folder.arch.blockPrefix}.${layer}.${l.name}`
    );
    return new GptqError(
      e.code,
      `${e.reason} (input of ${fed.join(", ")}, calibration sample ${s})`,
      {
        tensor: fed[0]!,
        hint: `check the weights of ${folder.arch.blockPrefix}.${layer} ` +
          "(e.g. its norms) and the calibration data for NaN/Inf",
        cause: e,
      },
    );
  };
  const gs = job.engine.group(inputs, inputError);
  try {
    // The block only needs to run until the last input this group reads
    // (inputs appear in the order attn_in, attn_out, mlp_in, mlp_mid).
    const last = INPUT_ORDER.filter((i) => inputs.has(i)).at(-1)!;
    for (let s = 0; s < plan.lengths.length && !gs.failed; s++) {
      job.acts.capture(block, s, (input, t) => {
        if (!inputs.has(input)) return;
        gs.add(input, t, s);
        if (input === last) throw STOP_BLOCK;
      }, final);
      await gs.drain();
    }
    await gs.finish();
    for (const l of linSpecs) {
      const path = `${folder.arch.blockPrefix}.${layer}.${l.name}`;
      const K = l.inFeatures(c), N = l.outFeatures(c);
      const rep: ModuleReport = { name: path, layer, K, N, quantized: false };
      if (plan.notConvert.has(l.name) || plan.notConvert.has(path)) {
        rep.reason = "listed in modules_to_not_convert";
      } else if (K % 32 !== 0 || N % 32 !== 0) {
        rep.reason = `in/out features ${K}/${N} are not multiples of 32, which GPTQ packing needs`;
      }
      if (rep.reason) {
        job.log(`keeping ${path} in full precision: ${rep.reason}`);
        modules.push(rep);
        continue;
      }
      await quantizeModule(job, gs, block, l, rep, packed);
      modules.push(rep);
      job.sampleRss();
    }
  } finally {
    // Free this group's Hessians (and the prepared factor) before the next group's.
    await gs.free();
  }
}

/** Reads a module's weight as f32 `[N, K]`, refusing NaN/Inf. */
async function readWeight(
  folder: ModelFolder,
  path: string,
  l: LinearSpec,
  N: number,
  K: number,
): Promise<Float32Array> {
  // Read and convert here rather than with readFloat32, so the stored
  // bytes (half of W's size for f16) are freed at once.
  const stored = await folder.read(`${path}.weight`);
  let W = toFloat32(stored.data, stored.dtype);
  discard(stored.data);
  if (l.layout === "conv1d") {
    const raw = W;
    W = transpose(raw, K, N);
    discard(raw);
  }
  for (let i = 0; i < W.length; i++) {
    if (!Number.isFinite(W[i]!)) {
      throw new GptqError(
        "HESSIAN",
        `weight has a non-finite value (${W[i]}) at row ${Math.floor(i / K)}, column ${i % K}`,
        {
          file: folder.weights.info(`${path}.weight`).file,
          tensor: path,
          hint: "the checkpoint is corrupt or was saved after a diverged training step",
        },
      );
    }
  }
  return W;
}

/**
 * Solves one module, fills its report (loss, Hessian-weighted errors of GPTQ
 * and RTN on sampled rows), packs it and puts the packed weight back into
 * `block` (later groups and the next block see it as the checkpoint will
 * hold it: fp16 scales, codes kept packed).
 */
async function quantizeModule(
  job: BlockJob,
  gs: GroupSolver,
  block: BlockWeights,
  l: LinearSpec,
  rep: ModuleReport,
  packed: NamedTensor[],
): Promise<void> {
  const { folder, plan, kernels } = job;
  const { name: path, K, N } = rep;
  const { bits, format } = plan;
  const W = await readWeight(folder, path, l, N, K);
  // The report's errors use at most 256 evenly spaced rows; only those rows
  // of W, Q and the RTN baseline are kept for it.
  const pick = sampledRows(N);
  const wRows = gatherRows(W, pick, K);
  const ts = performance.now();
  const { r, qRows, rtnRows } = await gs.solve(
    { path, input: l.input, W, N, K },
    plan.solveOpts,
    plan.method,
    pick,
    wRows,
  );
  discard(W); // not needed any more: free its N·K floats now, not at some GC
  rep.seconds = (performance.now() - ts) / 1000;
  // [W−Q; W−RTN] on the sampled rows, one GEMM against H.
  const M = 2 * pick.length;
  const d = new Float32Array(M * K);
  for (let i = 0; i < pick.length * K; i++) {
    d[i] = wRows[i]! - qRows[i]!;
    d[pick.length * K + i] = wRows[i]! - rtnRows[i]!;
  }
  const sums = await gs.errorSums(l.input, d, M, 2);
  const errs = sums.map((t) => (t * N) / pick.length);
  Object.assign(rep, {
    quantized: true,
    loss: r.loss,
    gptqError: errs[0],
    rtnError: errs[1],
    dampUsed: r.dampUsed,
    deadColumns: r.deadColumns,
  });
  const bias = l.bias(plan.config) ? await folder.readFloat32(`${path}.bias`) : null;
  // Pack: codes [N,K] → [K,N]; zeros [N,G] → [G,N].
  const G = r.G;
  const zeros = Uint32Array.from(transpose(r.zero, N, G));
  const codesKN = transpose(r.codes, N, K);
  discard(r.codes);
  const qweight = packQWeight(codesKN, K, N, bits);
  discard(codesKN);
  const qzeros = packQZeros(zeros, G, N, bits, format, {
    allowOverflow: format === "gptq",
  });
  const scales = scalesToF16(r.scale, N, G);
  packed.push(
    { name: `${path}.qweight`, dtype: "I32", shape: [(K * bits) / 32, N], data: i32Bytes(qweight) },
    { name: `${path}.qzeros`, dtype: "I32", shape: [G, (N * bits) / 32], data: i32Bytes(qzeros) },
    { name: `${path}.scales`, dtype: "F16", shape: [G, N], data: new Uint8Array(scales.buffer) },
    { name: `${path}.g_idx`, dtype: "I32", shape: [K], data: i32Bytes(r.gIdx) },
  );
  // Later groups (and the next block) see the quantized weight, as the
  // checkpoint will hold it (fp16 scales), kept packed: an f32 copy
  // of Q would cost 8× the memory (0.8 GB per Llama-7B block).
  kernels.release(block.linears.get(l.name)!);
  block.linears.set(
    l.name,
    kernels.linearFromGptq({
      tensors: { qweight, qzeros, scales, gIdx: r.gIdx, bias, K, N, G, bits },
      format,
    }),
  );
  if (bias) {
    packed.push({ name: `${path}.bias`, dtype: "F16", shape: [N], data: fromFloat32(bias, "F16") });
  }
}

/** The run's state after the last block. */
interface BlocksDone {
  modules: ModuleReport[];
  blockSeconds: number[];
  resumed: number;
}

/**
 * Quantizes the blocks from the journal's position on, journaling each
 * finished block (packed tensors, the activations after it, then the journal
 * itself: the commit point).
 */
async function quantizeBlocks(
  folder: ModelFolder,
  plan: RunPlan,
  engine: QuantEngine,
  kernels: Backend,
  lm: CausalLM,
  ctx: BlockContext,
  journal: Journal | null,
  workDir: string,
  opts: QuantizeOptions,
  sampleRss: () => number,
): Promise<BlocksDone> {
  const c = plan.config;
  const log = opts.onLog ?? (() => {});
  const { lengths } = plan;
  const modules: ModuleReport[] = journal?.modules ?? [];
  const blockSeconds: number[] = journal?.blockSeconds ?? [];
  let start = 0;
  let acts: Activations;
  if (journal && journal.finished > 0) {
    const all = toFloat32(await Deno.readFile(`${workDir}/${journal.acts}`), "F32");
    acts = engine.restore(all, lengths);
    start = journal.finished;
    log(`resuming after block ${start - 1} of ${c.numLayers}`);
  } else {
    acts = engine.embed(plan.cal.samples.map((s) => lm.embed(s, 0)), lengths);
  }
  try {
    sampleRss();
    const groups = plan.trueSeq ? plan.groups : [plan.groups.flat()];
    for (let layer = start; layer < c.numLayers; layer++) {
      const tb = performance.now();
      const block = await loadBlock(folder, ctx, layer);
      const packed: NamedTensor[] = [];
      const job: BlockJob = { folder, plan, engine, kernels, acts, layer, log, sampleRss };
      const specs = groups.map((group) =>
        group.map((name) => folder.arch.linears.find((l) => l.name === name)!)
      );
      for (const [gi, linSpecs] of specs.entries()) {
        // An intermediate is final (the engine may keep it) once no module
        // upstream of it is in this group or a later one: the attention
        // output after q/k/v, the MLP's intermediate after q/k/v, o and gate/up.
        const later = specs.slice(gi).flat().map((l) => l.input);
        const final: FinalIntermediates = {
          attention: !later.includes("attn_in"),
          mlpMid: !later.some((i) => i === "attn_in" || i === "attn_out" || i === "mlp_in"),
        };
        await quantizeGroup(job, block, linSpecs, modules, packed, final);
      }
      for (const name of plan.skipped) {
        const l = folder.arch.linears.find((x) => x.name === name)!;
        const path = `${folder.arch.blockPrefix}.${layer}.${name}`;
        const reason = "not listed in modules_in_block_to_quantize";
        log(`keeping ${path} in full precision: ${reason}`);
        modules.push({
          name: path,
          layer,
          K: l.inFeatures(c),
          N: l.outFeatures(c),
          quantized: false,
          reason,
        });
      }
      // Next block's inputs: the block with all its quantized weights.
      await acts.advance(block);
      releaseBlock(ctx, block);
      sampleRss();
      blockSeconds.push((performance.now() - tb) / 1000);
      // Journal: packed tensors, activations, then the journal itself (the commit point).
      await writeSafetensors(`${workDir}/${layerName(layer)}`, packed);
      // A new file per generation: the journal (written next) must never point at
      // activations newer than its own `finished`, whenever the process dies.
      const actsFile = actsName(layer + 1);
      try {
        await acts.save(`${workDir}/${actsFile}.tmp`);
        await Deno.rename(`${workDir}/${actsFile}.tmp`, `${workDir}/${actsFile}`);
      } catch (e) {
        await Deno.remove(`${workDir}/${actsFile}.tmp`).catch(() => {});
        throw e;
      }
      const j: Journal = {
        fingerprint: plan.fingerprint,
        finished: layer + 1,
        acts: actsFile,
        modules,
        blockSeconds,
        lengths,
      };
      await writeFileAtomic(`${workDir}/journal.json`, JSON.stringify(j));
      await Deno.remove(`${workDir}/${actsName(layer)}`).catch(() => {});
      opts.onBlock?.(layer + 1, c.numLayers);
      await opts.afterBlock?.(layer);
    }
  } finally {
    acts.free();
  }
  return { modules, blockSeconds, resumed: start };
}

/** Writes the checkpoint atomically from the journaled blocks and the unquantized tensors. */
async function writeCheckpoint(
  folder: ModelFolder,
  plan: RunPlan,
  done: BlocksDone,
  engine: QuantEngine,
  modelDir: string,
  outDir: string,
  workDir: string,
  opts: QuantizeOptions,
  t0: number,
  sampleRss: () => number,
): Promise<QuantizeReport> {
  const { modules, blockSeconds, resumed } = done;
  const { qcfg, solveOpts, bits, format, cal, lengths } = plan;
  const quantizedPaths = new Set(modules.filter((m) => m.quantized).map((m) => m.name));
  const unquantized = modules.filter((m) => !m.quantized).map((m) =>
    m.name.split(".").slice(-2).join(".")
  );
  if (unquantized.length) qcfg.modules_to_not_convert = [...new Set(unquantized)];
  const out = await AtomicOutputDir.create(outDir, { force: opts.force ?? false });
  try {
    const writer = new ShardedWriter(out.tmpPath, {
      maxShardSize: plan.maxShardSize,
      metadata: {
        format: "pt",
        quantizer: `gptq-deno:${VERSION}`,
        gptq_bits: String(bits),
        gptq_group_size: String(solveOpts.group_size),
        gptq_desc_act: String(solveOpts.desc_act),
        gptq_damp_percent: String(solveOpts.damp_percent),
        gptq_checkpoint_format: format,
        gptq_quant_method: "gptq",
      },
    });
    const layerFiles = new Map<number, SafetensorsFile>();
    try {
      for (const name of folder.weights.names()) {
        const m = /^(.*)\.(weight|bias)$/.exec(name);
        const modulePath = m?.[1];
        if (modulePath && quantizedPaths.has(modulePath)) {
          if (m![2] === "bias") continue; // written with the packed tensors
          const layer = Number(
            modulePath.slice(folder.arch.blockPrefix.length + 1).split(".")[0],
          );
          let f = layerFiles.get(layer);
          if (!f) {
            f = await SafetensorsFile.open(`${workDir}/${layerName(layer)}`);
            layerFiles.set(layer, f);
          }
          for (const suffix of ["qweight", "qzeros", "scales", "g_idx", "bias"]) {
            const tn = `${modulePath}.${suffix}`;
            if (f.has(tn)) {
              const t = await f.read(tn);
              await writer.add({ name: tn, ...t });
            }
          }
        } else {
          const t = await folder.weights.read(name);
          await writer.add({ name, ...t });
        }
      }
      await writer.finish();
    } finally {
      for (const f of layerFiles.values()) f.close();
    }
    const json = (o: unknown) => JSON.stringify(o, null, 2) + "\n";
    const config = { ...plan.config.raw, quantization_config: toQuantizationConfigBlock(qcfg) };
    await Deno.writeTextFile(out.path("config.json"), json(config));
    await Deno.writeTextFile(out.path("quantize_config.json"), json(toQuantizeConfigJson(qcfg)));
    for (
      const f of [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
      ]
    ) {
      if (await exists(`${folder.dir}/${f}`)) {
        await Deno.copyFile(`${folder.dir}/${f}`, out.path(f));
      }
    }
    const report: QuantizeReport = {
      version: VERSION,
      method: plan.method,
      model: modelDir,
      out: outDir,
      config: toQuantizeConfigJson(qcfg),
      calibration: {
        source: cal.source,
        method: cal.method,
        samples: cal.samples.length,
        tokens: lengths.reduce((a, b) => a + b, 0),
      },
      modules,
      blockSeconds,
      seconds: (performance.now() - t0) / 1000,
      peakRssBytes: sampleRss(),
      resumedBlocks: resumed,
      backends: { forward: engine.forwardName, solver: engine.solverName },
    };
    await Deno.writeTextFile(out.path("quantize_report.json"), json(report));
    // Tells the next run, should this one die between the rename and the work
    // folder's removal, that the work folder is finished (see removeLeftovers).
    await writeFileAtomic(`${workDir}/commit.json`, JSON.stringify({ partial: out.tmpPath }));
    await out.commit();
    await Deno.remove(workDir, { recursive: true });
    await removeLeftovers(outDir, () => {});
    return report;
  } catch (e) {
    await out.abort();
    throw e;
  }
}

/**
 * Quantizes a model folder with GPTQ and writes an AutoGPTQ-compatible
 * checkpoint.
 *
 * @example
 * ```ts ignore
 * import { quantizeModel } from "./quantize.ts";
 * const report = await quantizeModel("./llama", "./llama-gptq", {
 *   bits: 4, group_size: 128, dataset: "calib.txt", nsamples: 128, model_seqlen: 2048,
 * });
 * ```
 *
 * @example On the GPU (activations, Hessians and solves on the device)
 * ```ts ignore
 * import { quantizeModel } from "./quantize.ts";
 * import { selectBackend } from "../backends/select.ts";
 * const { backend } = await selectBackend("webgpu");
 * await quantizeModel("./llama", "./llama-gptq", { dataset: "calib.txt" }, { backend });
 * ```
 *
 * @param modelDir The source model folder (not quantized), or a Hub id (`owner/name[@rev]`).
 * @param outDir The output folder (must not exist unless `force`).
 * @param cfg Settings named as GPTQConfig names them.
 * @param opts Force, resume, backends, progress.
 * @returns The report.
 */
export async function quantizeModel(
  modelDir: string,
  outDir: string,
  cfg: GPTQConfig,
  opts: QuantizeOptions = {},
): Promise<QuantizeReport> {
  try {
    return await quantizeModelUnchecked(modelDir, outDir, cfg, opts);
  } catch (e) {
    // Disk full, read-only, permission, a path under a file: one line naming the path.
    throw writeError(e, await exists(`${outDir}.gptq-work/journal.json`).catch(() => false)) ?? e;
  }
}

async function quantizeModelUnchecked(
  modelDir: string,
  outDir: string,
  cfg: GPTQConfig,
  opts: QuantizeOptions,
): Promise<QuantizeReport> {
  modelDir = await resolveModel(modelDir, opts.onLog ? { onLog: opts.onLog } : {});
  const t0 = performance.now();
  let peakRss = Deno.memoryUsage().rss;
  const sampleRss = () => (peakRss = Math.max(peakRss, Deno.memoryUsage().rss));
  const log = opts.onLog ?? (() => {});
  await checkOutputLocation(modelDir, outDir);
  await removeLeftovers(outDir, log);
  if ((await exists(outDir)) && !opts.force) {
    throw new GptqError("OUTPUT_EXISTS", "output folder already exists", {
      file: outDir,
      hint: "pass --force to overwrite it, or choose another --out",
    });
  }
  const workDir = `${outDir}.gptq-work`;
  const folder = await ModelFolder.open(modelDir);
  let engine: QuantEngine | null = null;
  try {
    const plan = await planRun(folder, modelDir, cfg, opts);
    const journal = await openJournal(workDir, plan.fingerprint, opts);
    await Deno.mkdir(workDir, { recursive: true });
    try {
      const kernels = opts.backend ?? (await selectBackend("auto", { allowGpu: false })).backend;
      const lm = await CausalLM.load(folder, { backend: kernels, blocks: false });
      const ctx = blockContext(folder, kernels);
      engine = await createEngine(kernels, ctx, opts, Math.max(...plan.lengths));
      log(`backends: forward ${engine.forwardName}, solver ${engine.solverName}`);
      const done = await quantizeBlocks(
        folder,
        plan,
        engine,
        kernels,
        lm,
        ctx,
        journal,
        workDir,
        opts,
        sampleRss,
      );
      return await writeCheckpoint(
        folder,
        plan,
        done,
        engine,
        modelDir,
        outDir,
        workDir,
        opts,
        t0,
        sampleRss,
      );
    } catch (e) {
      // Nothing resumable yet (no block journaled): leave no work folder behind,
      // or the next run would stop at "an unfinished run left its work folder".
      if (!(await exists(`${workDir}/journal.json`))) {
        await Deno.remove(workDir, { recursive: true }).catch(() => {});
      }
      throw e;
    }
  } finally {
    engine?.close();
    folder.close();
  }
}
