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
 * Memory holds one block, the calibration activations and one Hessian: with
 * the default two solver Workers, each Hessian is accumulated, prepared and
 * used for the report's errors on Worker 0 (the activations are posted
 * there), only its factor is copied to Worker 1, this thread never holds a
 * `K×K` array, and each weight's memory is handed to the Workers and freed
 * as soon as it is used. Every finished block is journaled in
 * `OUT.gptq-work/` (its packed tensors and the activations after it), so a
 * killed run continues with `resume` and produces the same checkpoint as an
 * uninterrupted one. The output appears atomically.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { fromFloat32, toFloat32 } from "../io/dtype.ts";
import { ModelFolder } from "../io/model_folder.ts";
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
import {
  blockContext,
  type BlockWeights,
  CausalLM,
  type LinearInput,
  loadBlock,
  releaseBlock,
  runBlock,
} from "../runtime/model.ts";
import type { Backend, Tensor } from "../backends/backend.ts";
import { selectBackend } from "../backends/select.ts";
import { transpose } from "../backends/typescript/ts_kernels.ts";
import { loadCalibration } from "./calibration.ts";
import {
  createParallelGptq,
  type ParallelGptq,
  type PooledHessian,
  type PreparedLayer,
} from "./_solver_pool.ts";
import {
  createWasmSolver,
  type GptqLayerResult,
  type GptqSolveOptions,
  type HessianAccumulator,
  hessianErrorSums,
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
  /** A `.txt` or `.jsonl` calibration file, or pre-tokenized samples. */
  dataset: string | number[][];
  /** Calibration samples. Default 128. */
  nsamples?: number;
  /** Tokens per calibration sample (optimum's name). Default min(2048, context). */
  model_seqlen?: number;
  /** Calibration sampling seed. Default 0. */
  seed?: number;
  /** `gptq` (v1) or `gptq_v2`. Default: v1 when sym, v2 when asym. */
  checkpoint_format?: "gptq" | "gptq_v2";
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
   * Forward-pass backend: a host backend (WASM or TypeScript; the Hessian
   * capture reads activations synchronously). Default: the fastest CPU
   * backend available (WASM SIMD).
   */
  backend?: Backend;
  /**
   * Solver Workers for the GPTQ column loop; default 2. Results are
   * bit-identical for any count; each extra Worker holds one more copy of the
   * Hessian's factor (K² floats), so 1 is the lean choice when memory is tight.
   */
  threads?: number;
  /** Solver (default: WASM). */
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

/** Thrown by the Hessian hook to stop a block's forward once a group has its inputs. */
const STOP_BLOCK = Symbol("stop block");

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

/** Rows `pick` of a row-major `[·, K]` matrix, as `[pick.length, K]`. */
function gatherRows(a: Float32Array, pick: readonly number[], K: number): Float32Array {
  const out = new Float32Array(pick.length * K);
  pick.forEach((n, i) => out.set(a.subarray(n * K, (n + 1) * K), i * K));
  return out;
}

function i32Bytes(a: Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp`;
  if (typeof data === "string") await Deno.writeTextFile(tmp, data);
  else await Deno.writeFile(tmp, data);
  await Deno.rename(tmp, path);
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
 * @param modelDir The source model folder (not quantized).
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
  const t0 = performance.now();
  let peakRss = Deno.memoryUsage().rss;
  const sampleRss = () => (peakRss = Math.max(peakRss, Deno.memoryUsage().rss));
  const log = opts.onLog ?? (() => {});
  if ((await exists(outDir)) && !opts.force) {
    throw new GptqError("OUTPUT_EXISTS", "output folder already exists", {
      file: outDir,
      hint: "pass --force to overwrite it, or choose another --out",
    });
  }
  const workDir = `${outDir}.gptq-work`;
  const folder = await ModelFolder.open(modelDir);
  let pool: ParallelGptq | null = null;
  try {
    if (folder.quant) {
      throw new GptqError("INVALID_ARGUMENT", "the model is already GPTQ-quantized", {
        file: folder.quant.source,
        hint: "quantize the original (fp16/bf16/fp32) model",
      });
    }
    const c = folder.config;
    const bits = cfg.bits ?? 4;
    const sym = cfg.sym ?? true;
    const format = cfg.checkpoint_format ?? (sym ? "gptq" : "gptq_v2");
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
    const cal = typeof cfg.dataset === "string"
      ? await loadCalibration(cfg.dataset, tok, {
        nsamples: cfg.nsamples ?? 128,
        seqlen,
        seed: cfg.seed ?? 0,
      })
      : {
        samples: cfg.dataset.map((s) => s.slice(0, seqlen)).filter((s) => s.length > 0),
        source: "(token ids given by the caller)",
        method: `${cfg.dataset.length} given samples, truncated to ${seqlen} tokens`,
      };
    if (cal.samples.length === 0) {
      throw new GptqError("DATASET", "the calibration set is empty", {
        hint: "give at least one sample",
      });
    }
    const fingerprint = JSON.stringify({
      version: VERSION,
      model: await Deno.realPath(modelDir),
      solveOpts,
      trueSeq,
      format,
      method: opts.method ?? "gptq",
      notConvert: [...notConvert].sort(),
      samples: cal.samples.map((s) => s.length),
      tokens: hashSamples(cal.samples),
    });

    // --- journal / resume -------------------------------------------------
    let journal: Journal | null = null;
    if (await exists(workDir)) {
      if (opts.resume) {
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
      } else if (opts.force) {
        await Deno.remove(workDir, { recursive: true });
      } else {
        throw new GptqError("OUTPUT_EXISTS", "an unfinished run left its work folder", {
          file: workDir,
          hint: "pass --resume to continue it, or --force to start over",
        });
      }
    }
    await Deno.mkdir(workDir, { recursive: true });
    try {
      const kernels = opts.backend ?? (await selectBackend("auto", { allowGpu: false })).backend;
      if (!kernels.readSync) {
        throw new GptqError(
          "INVALID_ARGUMENT",
          `quantization on the ${kernels.name} backend is not supported yet`,
          { hint: "quantize with --backend wasm (the default)" },
        );
      }
      const readSync = kernels.readSync.bind(kernels);
      const solver = opts.solver ?? await createWasmSolver();
      const threads = opts.solver ? 1 : Math.max(1, opts.threads ?? 2);
      // The solver always runs on Workers (one is enough): Worker 0 holds the
      // Hessian and its factor, so the main thread never holds a K×K array.
      // A caller-supplied `solver` runs in-process instead.
      pool = opts.solver ? null : await createParallelGptq(threads);
      log(`backends: forward ${kernels.name}, solver ${solver.name}`);
      const lm = await CausalLM.load(folder, { backend: kernels, blocks: false });
      const ctx = blockContext(folder, kernels);
      const H = c.hiddenSize;
      const lengths = cal.samples.map((s) => s.length);

      // Activations entering the next block, one array per sample.
      let xs: Float32Array[];
      let start = 0;
      const modules: ModuleReport[] = journal?.modules ?? [];
      const blockSeconds: number[] = journal?.blockSeconds ?? [];
      if (journal && journal.finished > 0) {
        const all = toFloat32(await Deno.readFile(`${workDir}/${journal.acts}`), "F32");
        xs = [];
        let o = 0;
        for (const L of lengths) {
          xs.push(all.slice(o, o + L * H));
          o += L * H;
        }
        start = journal.finished;
        log(`resuming after block ${start - 1} of ${c.numLayers}`);
      } else {
        xs = cal.samples.map((s) => readSync(lm.embed(s, 0)));
      }
      sampleRss();
      const resumed = start;
      const groups = trueSeq ? folder.arch.sequentialGroups : [folder.arch.sequentialGroups.flat()];
      const maxLen = Math.max(...lengths);
      const kvCols = c.numKvHeads * c.headDim;
      const kCache = kernels.zeros(maxLen, kvCols), vCache = kernels.zeros(maxLen, kvCols);
      // One block over one sample's host activations; the output comes back to the host.
      const blockForward = (
        block: BlockWeights,
        x: Float32Array,
        rows: number,
        hook?: (input: LinearInput, t: Tensor) => void,
      ): Float32Array => {
        const xt = kernels.upload(x, rows, H);
        const y = runBlock(ctx, block, xt, kCache, vCache, 0, hook);
        const out = readSync(y);
        kernels.free(xt);
        kernels.free(y);
        return out;
      };

      for (let layer = start; layer < c.numLayers; layer++) {
        const tb = performance.now();
        const block = await loadBlock(folder, ctx, layer);
        const packed: NamedTensor[] = [];
        for (const group of groups) {
          const linSpecs = group.map((name) => folder.arch.linears.find((l) => l.name === name)!);
          const inputs = new Set<LinearInput>(linSpecs.map((l) => l.input));
          // One Hessian per distinct input: on Worker 0 of the pool (the
          // activations are posted there; no K×K array on this thread), or
          // in this thread's wasm with a given solver / one thread.
          const pooled = new Map<LinearInput, PooledHessian>();
          const local = new Map<LinearInput, HessianAccumulator>();
          const hs = new Map<LinearInput, Float32Array>();
          let prepared = null as { input: LinearInput; layer: PreparedLayer } | null;
          try {
            for (const l of linSpecs) {
              if (pooled.has(l.input) || local.has(l.input)) continue;
              if (pool) pooled.set(l.input, pool.hessian(l.inFeatures(c)));
              else local.set(l.input, solver.hessian(l.inFeatures(c)));
            }
            // A bad Hessian input (NaN/Inf) is reported against the modules it feeds.
            const inputError = (e: unknown, input: LinearInput, layer: number, s: number) => {
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
            // The block only needs to run until the last input this group reads
            // (inputs appear in the order attn_in, attn_out, mlp_in, mlp_mid).
            const last = INPUT_ORDER.filter((i) => inputs.has(i)).at(-1)!;
            // Adds posted to Worker 0 and not yet done; the first failure (in
            // posting order, as Worker 0 answers in order) is the one reported.
            const inFlight: Promise<void>[] = [];
            let failure: unknown = null;
            for (let s = 0; s < xs.length && failure === null; s++) {
              try {
                blockForward(block, xs[s]!, lengths[s]!, (input, t) => {
                  if (!inputs.has(input)) return;
                  const x = readSync(t), rows = t.rows;
                  const pa = pooled.get(input);
                  if (pa) {
                    inFlight.push(
                      pa.add(x, 1, rows).catch((e) => {
                        failure ??= inputError(e, input, layer, s);
                      }),
                    );
                  } else {
                    try {
                      local.get(input)!.add(x, 1, rows);
                    } catch (e) {
                      throw inputError(e, input, layer, s);
                    }
                  }
                  if (input === last) throw STOP_BLOCK;
                });
              } catch (e) {
                if (e !== STOP_BLOCK) throw e;
              }
              // At most two samples' activations wait on Worker 0 (bounded memory).
              while (inFlight.length > 2 * pooled.size) await inFlight.shift();
            }
            await Promise.all(inFlight);
            if (failure !== null) throw failure;
            for (const [k, a] of local) {
              hs.set(k, a.h());
              a.free();
            }
            local.clear();
            for (const l of linSpecs) {
              const path = `${folder.arch.blockPrefix}.${layer}.${l.name}`;
              const K = l.inFeatures(c), N = l.outFeatures(c);
              const rep: ModuleReport = { name: path, layer, K, N, quantized: false };
              if (notConvert.has(l.name) || notConvert.has(path)) {
                rep.reason = "listed in modules_to_not_convert";
              } else if (K % 32 !== 0 || N % 32 !== 0) {
                rep.reason =
                  `in/out features ${K}/${N} are not multiples of 32, which GPTQ packing needs`;
              }
              if (rep.reason) {
                log(`keeping ${path} in full precision: ${rep.reason}`);
                modules.push(rep);
                continue;
              }
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
                    `weight has a non-finite value (${W[i]}) at row ${Math.floor(i / K)}, column ${
                      i % K
                    }`,
                    {
                      file: folder.weights.info(`${path}.weight`).file,
                      tensor: path,
                      hint: "the checkpoint is corrupt or was saved after a diverged training step",
                    },
                  );
                }
              }
              // The report's errors use at most 256 evenly spaced rows; only
              // those rows of W, Q and the RTN baseline are kept for it.
              const pick = sampledRows(N);
              const wRows = gatherRows(W, pick, K);
              const ts = performance.now();
              let r: GptqLayerResult, qRows: Float32Array, rtnRows: Float32Array;
              if (opts.method === "rtn") {
                r = solver.rtn(W, N, K, solveOpts);
                qRows = rtnRows = gatherRows(r.q, pick, K);
              } else {
                // RTN is row by row, so its sampled rows equal those of a full run.
                rtnRows = solver.rtn(wRows, pick.length, K, solveOpts).q;
                const pa = pooled.get(l.input);
                if (pool && pa) {
                  // Modules that read the same input (q/k/v, up/gate) share one prepared Hessian.
                  if (prepared?.input !== l.input) {
                    prepared = { input: l.input, layer: await pa.prepare(solveOpts, path) };
                  }
                  // W's memory moves to the Workers (no copy left here).
                  r = await pool.quantize(prepared.layer, W, N, {
                    name: path,
                    qRows: pick,
                    transferW: true,
                  });
                  qRows = r.q;
                } else {
                  r = solver.gptq(W, N, K, hs.get(l.input)!, solveOpts, path);
                  qRows = gatherRows(r.q, pick, K);
                }
              }
              discard(W); // not needed any more: free its N·K floats now, not at some GC
              rep.seconds = (performance.now() - ts) / 1000;
              // [W−Q; W−RTN] on the sampled rows, one GEMM against H.
              const M = 2 * pick.length;
              const d = new Float32Array(M * K);
              for (let i = 0; i < pick.length * K; i++) {
                d[i] = wRows[i]! - qRows[i]!;
                d[pick.length * K + i] = wRows[i]! - rtnRows[i]!;
              }
              const pa = pooled.get(l.input);
              const sums = pa
                ? Array.from(await pa.errorSums(d, M, 2))
                : await hessianErrorSums(d, M, hs.get(l.input)!, K, 2);
              const errs = sums.map((t) => (t * N) / pick.length);
              Object.assign(rep, {
                quantized: true,
                loss: r.loss,
                gptqError: errs[0],
                rtnError: errs[1],
                dampUsed: r.dampUsed,
                deadColumns: r.deadColumns,
              });
              modules.push(rep);
              const bias = l.bias(c) ? await folder.readFloat32(`${path}.bias`) : null;
              // Pack: codes [N,K] → [K,N]; zeros [N,G] → [G,N].
              const G = r.G;
              const zeros = Uint32Array.from(transpose(r.zero, N, G));
              const codesKN = transpose(r.codes, N, K);
              discard(r.codes);
              const qweight = packQWeight(codesKN, K, N, bits as Bits);
              discard(codesKN);
              const qzeros = packQZeros(zeros, G, N, bits as Bits, format, {
                allowOverflow: format === "gptq",
              });
              const scales = scalesToF16(r.scale, N, G);
              packed.push(
                {
                  name: `${path}.qweight`,
                  dtype: "I32",
                  shape: [(K * bits) / 32, N],
                  data: i32Bytes(qweight),
                },
                {
                  name: `${path}.qzeros`,
                  dtype: "I32",
                  shape: [G, (N * bits) / 32],
                  data: i32Bytes(qzeros),
                },
                {
                  name: `${path}.scales`,
                  dtype: "F16",
                  shape: [G, N],
                  data: new Uint8Array(scales.buffer),
                },
                { name: `${path}.g_idx`, dtype: "I32", shape: [K], data: i32Bytes(r.gIdx) },
              );
              // Later groups (and the next block) see the quantized weight, as the
              // checkpoint will hold it (fp16 scales), kept packed: an f32 copy
              // of Q would cost 8× the memory (0.8 GB per Llama-7B block).
              kernels.release(block.linears.get(l.name)!);
              block.linears.set(
                l.name,
                kernels.linearFromGptq({
                  tensors: {
                    qweight,
                    qzeros,
                    scales,
                    gIdx: r.gIdx,
                    bias,
                    K,
                    N,
                    G,
                    bits: bits as Bits,
                  },
                  format,
                }),
              );
              if (bias) {
                packed.push({
                  name: `${path}.bias`,
                  dtype: "F16",
                  shape: [N],
                  data: fromFloat32(bias, "F16"),
                });
              }
              sampleRss();
            }
          } finally {
            // Free this group's Hessians (and the prepared factor) before the next group's.
            // (A failure here means a dead Worker, reported by the next call.)
            for (const a of local.values()) a.free();
            await Promise.all([...pooled.values()].map((a) => a.free().catch(() => {})));
            if (pool && pooled.size) await pool.release().catch(() => {});
          }
        }
        // Next block's inputs: the block with all its quantized weights.
        xs = xs.map((x, s) => blockForward(block, x, lengths[s]!));
        releaseBlock(ctx, block);
        sampleRss();
        blockSeconds.push((performance.now() - tb) / 1000);
        // Journal: packed tensors, activations, then the journal itself (the commit point).
        await writeSafetensors(
          `${workDir}/layer-${String(layer).padStart(5, "0")}.safetensors`,
          packed,
        );
        const acts = new Float32Array(xs.reduce((a, x) => a + x.length, 0));
        let o = 0;
        for (const x of xs) {
          acts.set(x, o);
          o += x.length;
        }
        // A new file per generation: the journal (written next) must never point at
        // activations newer than its own `finished`, whenever the process dies.
        const actsFile = actsName(layer + 1);
        await writeFileAtomic(`${workDir}/${actsFile}`, new Uint8Array(acts.buffer));
        const j: Journal = {
          fingerprint,
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

      // --- assemble the checkpoint ------------------------------------------
      const quantizedPaths = new Set(modules.filter((m) => m.quantized).map((m) => m.name));
      const unquantized = modules.filter((m) => !m.quantized).map((m) =>
        m.name.split(".").slice(-2).join(".")
      );
      if (unquantized.length) qcfg.modules_to_not_convert = [...new Set(unquantized)];
      const out = await AtomicOutputDir.create(outDir, { force: opts.force ?? false });
      try {
        const writer = new ShardedWriter(out.tmpPath, {
          maxShardSize: cfg.max_shard_size ?? "10GB",
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
                f = await SafetensorsFile.open(
                  `${workDir}/layer-${String(layer).padStart(5, "0")}.safetensors`,
                );
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
        const config = { ...c.raw, quantization_config: toQuantizationConfigBlock(qcfg) };
        await Deno.writeTextFile(out.path("config.json"), json(config));
        await Deno.writeTextFile(
          out.path("quantize_config.json"),
          json(toQuantizeConfigJson(qcfg)),
        );
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
          method: opts.method ?? "gptq",
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
          backends: { forward: kernels.name, solver: solver.name },
        };
        await Deno.writeTextFile(out.path("quantize_report.json"), json(report));
        await out.commit();
        await Deno.remove(workDir, { recursive: true });
        return report;
      } catch (e) {
        await out.abort();
        throw e;
      }
    } catch (e) {
      // Nothing resumable yet (no block journaled): leave no work folder behind,
      // or the next run would stop at "an unfinished run left its work folder".
      if (!(await exists(`${workDir}/journal.json`))) {
        await Deno.remove(workDir, { recursive: true }).catch(() => {});
      }
      throw e;
    }
  } finally {
    pool?.close();
    folder.close();
  }
}
