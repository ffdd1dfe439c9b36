// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The causal-LM forward pass, driven by the architecture tables in
 * `src/arch/`: one code path for Llama/Mistral/Qwen2, OPT, GPT-2 and
 * GPT-NeoX. Decoder blocks can be loaded, run and released one at a time
 * ({@linkcode loadBlock}, {@linkcode runBlock}), so quantization never holds
 * the whole model; {@linkcode CausalLM} keeps every block resident for
 * inference.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { DTYPE_SIZE, toFloat32 } from "../io/dtype.ts";
import type { RawTensor } from "../io/safetensors.ts";
import { ModelFolder } from "../io/model_folder.ts";
import type { ModelConfig } from "../io/hf_config.ts";
import type { ArchSpec, LinearSpec, NormSpec } from "../arch/spec.ts";
import { isBits, type ZeroFormat } from "../gptq/pack.ts";
import { readQuantLinear } from "../gptq/quant_linear.ts";
import type { Kernels, LinearHandle } from "../backends/host_kernels.ts";
import { resolveZeroFormat, type ZeroFormatDecision } from "./quant_load.ts";
import { ropeInvFreq } from "./rope.ts";
import { createTsKernels } from "../backends/typescript/ts_kernels.ts";

/** Which activation a linear reads (equal values share a GPTQ Hessian). */
export type LinearInput = LinearSpec["input"];

/** Called with every linear input a block computes (for Hessian capture). */
export type LinearInputHook = (input: LinearInput, x: Float32Array, rows: number) => void;

/** A norm's parameters. */
export interface NormWeights {
  /** Scale. */
  weight: Float32Array;
  /** Shift (LayerNorm), or null. */
  bias: Float32Array | null;
}

/** One decoder block's weights, held by a backend. */
export interface BlockWeights {
  /** Block index. */
  layer: number;
  /** Norm before attention (or after it, for post-LN OPT). */
  attnNorm: NormWeights;
  /** Norm before the MLP. */
  mlpNorm: NormWeights;
  /** Linear modules by path relative to the block (e.g. `self_attn.q_proj`). */
  linears: Map<string, LinearHandle>;
}

/** Per-sequence key/value cache. */
export interface KvCache {
  /** Capacity in tokens. */
  readonly maxLen: number;
  /** Tokens already cached. */
  length: number;
  /** Per block: keys `[maxLen, Hkv, D]`. */
  readonly k: Float32Array[];
  /** Per block: values `[maxLen, Hkv, D]`. */
  readonly v: Float32Array[];
}

/** Roles the forward pass needs, derived from the table's module names. */
interface LinearRoles {
  q: string | null;
  k: string | null;
  v: string | null;
  qkv: string | null;
  o: string;
  gate: string | null;
  up: string;
  down: string;
}

function rolesOf(spec: ArchSpec): LinearRoles {
  const by = (input: LinearInput) =>
    spec.linears.filter((l) => l.input === input).map((l) => l.name);
  const attnIn = by("attn_in"), mlpIn = by("mlp_in");
  const pick = (names: string[], re: RegExp) => names.find((n) => re.test(n)) ?? null;
  const fusedQkv = attnIn.length === 1 ? attnIn[0]! : null;
  const roles: LinearRoles = {
    q: fusedQkv ? null : pick(attnIn, /q_proj$/),
    k: fusedQkv ? null : pick(attnIn, /k_proj$/),
    v: fusedQkv ? null : pick(attnIn, /v_proj$/),
    qkv: fusedQkv,
    o: by("attn_out")[0]!,
    gate: spec.gatedMlp ? pick(mlpIn, /gate/) : null,
    up: spec.gatedMlp ? pick(mlpIn, /up/)! : mlpIn[0]!,
    down: by("mlp_mid")[0]!,
  };
  if (!roles.qkv && !(roles.q && roles.k && roles.v)) {
    throw new Error(`bug: cannot find q/k/v projections of ${spec.family}`);
  }
  return roles;
}

/** Static facts a block's forward needs. */
export interface BlockContext {
  /** Backend. */
  kernels: Kernels;
  /** Normalized config. */
  config: ModelConfig;
  /** Architecture table. */
  arch: ArchSpec;
  /** RoPE inverse frequencies, or null for learned positions. */
  invFreq: Float32Array | null;
  /**
   * The zero-point convention of a GPTQ model, decided once by
   * {@linkcode resolveZeroFormat} (by {@linkcode CausalLM.load}, or by the
   * first {@linkcode loadBlock} that meets a quantized layer).
   */
  zeroFormat?: ZeroFormatDecision;
}

/** Prints a loading warning on stderr (the default `onWarning`). */
function warnOnStderr(message: string): void {
  console.warn(`warning: ${message}`);
}

/**
 * Makes the static context for running blocks of a model.
 *
 * @example
 * ```ts ignore
 * const ctx = blockContext(folder, createTsKernels());
 * ```
 *
 * @param folder The open model folder.
 * @param kernels The backend.
 * @returns The context.
 */
export function blockContext(folder: ModelFolder, kernels: Kernels): BlockContext {
  const c = folder.config;
  const invFreq = folder.arch.positions.kind === "rope"
    ? ropeInvFreq(c.rotaryDim, c.ropeTheta ?? 10000, c.ropeScaling, c.file)
    : null;
  return { kernels, config: c, arch: folder.arch, invFreq };
}

async function readNorm(folder: ModelFolder, name: string, spec: NormSpec): Promise<NormWeights> {
  const weight = await folder.readFloat32(`${name}.weight`);
  const bias = spec.bias ? await folder.readFloat32(`${name}.bias`) : null;
  return { weight, bias };
}

/**
 * Loads one decoder block's weights into the backend (dense or GPTQ).
 *
 * @example
 * ```ts ignore
 * const block = await loadBlock(folder, ctx, 0);
 * ```
 *
 * @param folder The open model folder.
 * @param ctx The block context.
 * @param layer Block index.
 * @returns The block's weights.
 */
export async function loadBlock(
  folder: ModelFolder,
  ctx: BlockContext,
  layer: number,
): Promise<BlockWeights> {
  const { arch, config, kernels } = ctx;
  const prefix = `${arch.blockPrefix}.${layer}`;
  const attnNorm = await readNorm(
    folder,
    `${prefix}.${arch.blockNorms.attn.name}`,
    arch.blockNorms.attn,
  );
  const mlpNorm = await readNorm(
    folder,
    `${prefix}.${arch.blockNorms.mlp.name}`,
    arch.blockNorms.mlp,
  );
  const linears = new Map<string, LinearHandle>();
  for (const l of arch.linears) {
    const path = `${prefix}.${l.name}`;
    if (folder.isQuantized(path)) {
      const q = folder.quant!.config;
      if (!isBits(q.bits)) {
        throw new GptqError("QUANT_CONFIG", `bits ${q.bits} is not supported`, {
          file: folder.quant!.source,
        });
      }
      ctx.zeroFormat ??= await resolveZeroFormat(folder, { onWarning: warnOnStderr });
      const tensors = await readQuantLinear(
        folder,
        folder.storedName(path),
        q.bits,
        folder.info(`${path}.qweight`).file,
        { groupSize: q.group_size },
      );
      linears.set(l.name, kernels.linearFromGptq({ tensors, format: ctx.zeroFormat.format }));
    } else {
      const w = await folder.read(`${path}.weight`);
      const bias = l.bias(config) ? await folder.readFloat32(`${path}.bias`) : null;
      linears.set(l.name, kernels.linearFromDense(w, bias, l.layout === "conv1d"));
    }
  }
  return { layer, attnNorm, mlpNorm, linears };
}

/**
 * Releases a block's backend memory.
 *
 * @example
 * ```ts ignore
 * releaseBlock(ctx, block);
 * ```
 *
 * @param ctx The block context.
 * @param block The block.
 */
export function releaseBlock(ctx: BlockContext, block: BlockWeights): void {
  for (const h of block.linears.values()) ctx.kernels.release(h);
  block.linears.clear();
}

function norm(ctx: BlockContext, x: Float32Array, T: number, w: NormWeights): Float32Array {
  const H = ctx.config.hiddenSize, eps = ctx.config.normEps;
  return ctx.arch.norm === "rmsnorm"
    ? ctx.kernels.rmsNorm(x, T, H, w.weight, eps)
    : ctx.kernels.layerNorm(x, T, H, w.weight, w.bias, eps);
}

function addInto(a: Float32Array, b: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = a[i]! + b[i]!;
  return a;
}

/** Splits a fused qkv output `[T, 3·H·D]` into q, k, v `[T, H·D]`. */
function splitQkv(
  out: Float32Array,
  T: number,
  heads: number,
  D: number,
  layout: "concat" | "per_head",
): [Float32Array, Float32Array, Float32Array] {
  const HD = heads * D;
  const q = new Float32Array(T * HD), k = new Float32Array(T * HD), v = new Float32Array(T * HD);
  for (let t = 0; t < T; t++) {
    const row = out.subarray(t * 3 * HD, (t + 1) * 3 * HD);
    if (layout === "concat") {
      q.set(row.subarray(0, HD), t * HD);
      k.set(row.subarray(HD, 2 * HD), t * HD);
      v.set(row.subarray(2 * HD, 3 * HD), t * HD);
    } else {
      for (let h = 0; h < heads; h++) {
        const o = h * 3 * D;
        q.set(row.subarray(o, o + D), t * HD + h * D);
        k.set(row.subarray(o + D, o + 2 * D), t * HD + h * D);
        v.set(row.subarray(o + 2 * D, o + 3 * D), t * HD + h * D);
      }
    }
  }
  return [q, k, v];
}

const rolesCache = new WeakMap<ArchSpec, LinearRoles>();

/**
 * Runs one decoder block over T new tokens of one sequence, updating the
 * block's KV cache at positions `past .. past+T`.
 *
 * @example
 * ```ts ignore
 * const y = runBlock(ctx, block, x, T, cacheK, cacheV, 0);
 * ```
 *
 * @param ctx The block context.
 * @param block The block's weights.
 * @param x Hidden states `[T, hidden]` (not modified).
 * @param T Number of new tokens.
 * @param kCache This block's key cache `[maxLen, Hkv, D]`.
 * @param vCache This block's value cache.
 * @param past Tokens already in the cache.
 * @param hook Called with each linear input (for Hessian capture).
 * @returns The block's output `[T, hidden]`.
 */
export function runBlock(
  ctx: BlockContext,
  block: BlockWeights,
  x: Float32Array,
  T: number,
  kCache: Float32Array,
  vCache: Float32Array,
  past: number,
  hook?: LinearInputHook,
): Float32Array {
  const { kernels: K, config: c, arch } = ctx;
  let roles = rolesCache.get(arch);
  if (!roles) rolesCache.set(arch, roles = rolesOf(arch));
  const lin = (name: string) => block.linears.get(name)!;
  const Hq = c.numHeads, Hkv = c.numKvHeads, D = c.headDim;
  const preLN = c.doLayerNormBefore;

  const attnIn = preLN ? norm(ctx, x, T, block.attnNorm) : x;
  hook?.("attn_in", attnIn, T);
  let q: Float32Array, k: Float32Array, v: Float32Array;
  if (roles.qkv) {
    const fused = arch.fused[roles.qkv];
    [q, k, v] = splitQkv(K.linear(attnIn, T, lin(roles.qkv)), T, Hq, D, fused?.layout ?? "concat");
  } else {
    q = K.linear(attnIn, T, lin(roles.q!));
    k = K.linear(attnIn, T, lin(roles.k!));
    v = K.linear(attnIn, T, lin(roles.v!));
  }
  if (ctx.invFreq) {
    const pos = new Int32Array(T);
    for (let t = 0; t < T; t++) pos[t] = past + t;
    K.rope(q, T, Hq, D, c.rotaryDim, pos, ctx.invFreq);
    K.rope(k, T, Hkv, D, c.rotaryDim, pos, ctx.invFreq);
  }
  kCache.set(k, past * Hkv * D);
  vCache.set(v, past * Hkv * D);
  const a = K.attention(q, T, Hq, Hkv, D, kCache, vCache, past);
  hook?.("attn_out", a, T);
  const o = K.linear(a, T, lin(roles.o));

  const mlp = (inp: Float32Array): Float32Array => {
    hook?.("mlp_in", inp, T);
    let mid: Float32Array;
    if (roles.gate) {
      mid = K.linear(inp, T, lin(roles.gate));
      K.gatedActivate(mid, K.linear(inp, T, lin(roles.up)), c.hiddenAct);
    } else {
      mid = K.linear(inp, T, lin(roles.up));
      K.activate(mid, c.hiddenAct);
    }
    hook?.("mlp_mid", mid, T);
    return K.linear(mid, T, lin(roles.down));
  };

  if (arch.parallelResidual(c)) {
    const m = mlp(norm(ctx, x, T, block.mlpNorm));
    const y = addInto(addInto(x.slice(), o), m);
    return y;
  }
  let h = addInto(x.slice(), o);
  if (!preLN) h = norm(ctx, h, T, block.attnNorm);
  const m = mlp(preLN ? norm(ctx, h, T, block.mlpNorm) : h);
  let y = addInto(h, m);
  if (!preLN) y = norm(ctx, y, T, block.mlpNorm);
  return y;
}

/** Options of {@linkcode CausalLM.load}. */
export interface LoadModelOptions {
  /** The backend; default: the TypeScript reference kernels. */
  kernels?: Kernels;
  /** Load the decoder blocks (default true); false gives embeddings only, for streaming work. */
  blocks?: boolean;
  /**
   * GPTQ zero-point convention to use whatever the config and the stored
   * zeros say; default: decided by {@linkcode resolveZeroFormat}.
   */
  zeroFormat?: ZeroFormat;
  /** Receives loading warnings (config/weights disagreements); default: `warning: …` on stderr. */
  onWarning?: (message: string) => void;
}

/** A table whose rows are converted to float32 on lookup (embeddings). */
class RowTable {
  readonly #raw: RawTensor;
  constructor(raw: RawTensor) {
    this.#raw = raw;
  }
  get rows(): number {
    return this.#raw.shape[0]!;
  }
  get cols(): number {
    return this.#raw.shape[1]!;
  }
  row(i: number): Float32Array {
    const bytes = this.cols * DTYPE_SIZE[this.#raw.dtype];
    return toFloat32(this.#raw.data.subarray(i * bytes, (i + 1) * bytes), this.#raw.dtype);
  }
}

/**
 * A causal language model with every block resident, for inference.
 *
 * @example Logits for a prompt
 * ```ts ignore
 * import { CausalLM } from "./model.ts";
 * const lm = await CausalLM.load("./llama");
 * const ids = (await lm.folder.tokenizer()).encode("Hello");
 * const logits = lm.forward(ids, lm.newCache(ids.length)); // [T, vocab]
 * ```
 */
export class CausalLM {
  /** The model folder. */
  readonly folder: ModelFolder;
  /** The block context (backend, config, architecture). */
  readonly ctx: BlockContext;
  readonly #blocks: BlockWeights[];
  readonly #embed: RowTable;
  readonly #pos: RowTable | null;
  readonly #posOffset: number;
  readonly #projectIn: LinearHandle | null;
  readonly #projectOut: LinearHandle | null;
  readonly #finalNorm: NormWeights | null;
  readonly #lmHead: LinearHandle;

  private constructor(
    folder: ModelFolder,
    ctx: BlockContext,
    blocks: BlockWeights[],
    parts: {
      embed: RowTable;
      pos: RowTable | null;
      posOffset: number;
      projectIn: LinearHandle | null;
      projectOut: LinearHandle | null;
      finalNorm: NormWeights | null;
      lmHead: LinearHandle;
    },
  ) {
    this.folder = folder;
    this.ctx = ctx;
    this.#blocks = blocks;
    this.#embed = parts.embed;
    this.#pos = parts.pos;
    this.#posOffset = parts.posOffset;
    this.#projectIn = parts.projectIn;
    this.#projectOut = parts.projectOut;
    this.#finalNorm = parts.finalNorm;
    this.#lmHead = parts.lmHead;
  }

  /**
   * Loads a model folder (plain or GPTQ).
   *
   * @param dirOrFolder A folder path or an open {@linkcode ModelFolder}.
   * @param opts Backend choice.
   * @returns The model.
   */
  static async load(
    dirOrFolder: string | ModelFolder,
    opts: LoadModelOptions = {},
  ): Promise<CausalLM> {
    const folder = typeof dirOrFolder === "string"
      ? await ModelFolder.open(dirOrFolder)
      : dirOrFolder;
    const kernels = opts.kernels ?? createTsKernels();
    const ctx = blockContext(folder, kernels);
    if (folder.quant && folder.quantizedModules().length > 0) {
      ctx.zeroFormat = await resolveZeroFormat(folder, {
        onWarning: opts.onWarning ?? warnOnStderr,
        ...(opts.zeroFormat ? { force: opts.zeroFormat } : {}),
      });
    }
    const { arch, config } = folder;
    const blocks: BlockWeights[] = [];
    if (opts.blocks !== false) {
      for (let i = 0; i < config.numLayers; i++) blocks.push(await loadBlock(folder, ctx, i));
    }
    const embedRaw = await folder.read(arch.embedding);
    const embed = new RowTable(embedRaw);
    let pos: RowTable | null = null, posOffset = 0;
    if (arch.positions.kind === "learned") {
      pos = new RowTable(await folder.read(arch.positions.tensor));
      posOffset = arch.positions.offset;
    }
    const outer = (role: string, suffix: string) =>
      arch.outer.find((o) =>
        o.role === role && o.name.includes(suffix) && (o.present?.(config) ?? true)
      );
    const pin = outer("projection", "project_in"), pout = outer("projection", "project_out");
    // OPT's project_in/out are nn.Linear without bias: weight [out, in].
    const projectIn = pin
      ? kernels.linearFromDense(await folder.read(pin.name), null, false)
      : null;
    const projectOut = pout
      ? kernels.linearFromDense(await folder.read(pout.name), null, false)
      : null;
    const fn = arch.finalNorm;
    const finalNorm = (fn.present?.(config) ?? true) ? await readNorm(folder, fn.name, fn) : null;
    const headName = folder.lmHeadName();
    const headRaw = headName === arch.embedding ? embedRaw : await folder.read(headName);
    const lmHead = kernels.linearFromDense(headRaw, null, false);
    return new CausalLM(folder, ctx, blocks, {
      embed,
      pos,
      posOffset,
      projectIn,
      projectOut,
      finalNorm,
      lmHead,
    });
  }

  /** The normalized config. */
  get config(): ModelConfig {
    return this.ctx.config;
  }

  /**
   * Makes an empty KV cache.
   *
   * @param maxLen Capacity in tokens (default: the model's context length).
   * @returns The cache.
   */
  newCache(maxLen: number = this.config.maxPositions): KvCache {
    const c = this.config;
    if (maxLen > c.maxPositions) {
      throw new GptqError(
        "INVALID_ARGUMENT",
        `sequence length ${maxLen} exceeds the model's ${c.maxPositions} positions`,
        {
          file: c.file,
        },
      );
    }
    const n = maxLen * c.numKvHeads * c.headDim;
    return {
      maxLen,
      length: 0,
      k: this.#blocks.map(() => new Float32Array(n)),
      v: this.#blocks.map(() => new Float32Array(n)),
    };
  }

  /**
   * Embeds tokens (plus learned positions and OPT's project_in).
   *
   * @param ids Token ids.
   * @param past Position of the first token.
   * @returns `[T, hidden]`.
   */
  embed(ids: ArrayLike<number>, past: number): Float32Array {
    const T = ids.length, c = this.config;
    const E = this.#embed.cols;
    let x: Float32Array = new Float32Array(T * E);
    for (let t = 0; t < T; t++) {
      const id = ids[t]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.#embed.rows) {
        throw new GptqError(
          "INVALID_ARGUMENT",
          `token id ${id} is outside the vocabulary (${this.#embed.rows})`,
        );
      }
      x.set(this.#embed.row(id), t * E);
    }
    if (this.#projectIn) x = this.ctx.kernels.linear(x, T, this.#projectIn);
    if (this.#pos) {
      const H = c.hiddenSize;
      for (let t = 0; t < T; t++) {
        const p = this.#pos.row(past + t + this.#posOffset);
        for (let i = 0; i < H; i++) x[t * H + i] = x[t * H + i]! + p[i]!;
      }
    }
    return x;
  }

  /**
   * Final norm, OPT's project_out and the LM head.
   *
   * @param h Hidden states `[T, hidden]`.
   * @param T Rows.
   * @returns Logits `[T, vocab]`.
   */
  head(h: Float32Array, T: number): Float32Array {
    let x = h;
    if (this.#finalNorm) x = norm(this.ctx, x, T, this.#finalNorm);
    if (this.#projectOut) x = this.ctx.kernels.linear(x, T, this.#projectOut);
    return this.ctx.kernels.linear(x, T, this.#lmHead);
  }

  /**
   * Runs new tokens through the model, appending them to the cache.
   *
   * @param ids The new tokens.
   * @param cache The sequence's cache (its `length` advances by `ids.length`).
   * @param opts `lastOnly` returns only the last token's logits.
   * @returns Logits `[T, vocab]` (or `[1, vocab]` with `lastOnly`).
   */
  forward(ids: ArrayLike<number>, cache: KvCache, opts: { lastOnly?: boolean } = {}): Float32Array {
    const T = ids.length, past = cache.length;
    if (past + T > cache.maxLen) {
      throw new GptqError(
        "INVALID_ARGUMENT",
        `sequence of ${past + T} tokens exceeds the cache (${cache.maxLen})`,
        {
          hint: "use a shorter prompt or fewer new tokens",
        },
      );
    }
    let x = this.embed(ids, past);
    for (let i = 0; i < this.#blocks.length; i++) {
      x = runBlock(this.ctx, this.#blocks[i]!, x, T, cache.k[i]!, cache.v[i]!, past);
    }
    cache.length = past + T;
    if (opts.lastOnly && T > 1) {
      const H = this.config.hiddenSize;
      return this.head(x.slice((T - 1) * H), 1);
    }
    return this.head(x, T);
  }

  /** Releases backend memory and closes the folder. */
  close(): void {
    for (const b of this.#blocks) releaseBlock(this.ctx, b);
    const k = this.ctx.kernels;
    for (const h of [this.#lmHead, this.#projectIn, this.#projectOut]) if (h) k.release(h);
    k.dispose?.();
    this.folder.close();
  }
}
