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
import { ModelFolder } from "../io/model_folder.ts";
import type { ModelConfig } from "../io/hf_config.ts";
import type { ArchSpec, LinearSpec, NormSpec } from "../arch/spec.ts";
import { isBits, type ZeroFormat } from "../gptq/pack.ts";
import { readQuantLinear } from "../gptq/quant_linear.ts";
import type { Backend, LinearHandle, TableHandle, Tensor } from "../backends/backend.ts";
import { hostBackend } from "../backends/host.ts";
import { resolveZeroFormat, type ZeroFormatDecision } from "./quant_load.ts";
import { ropeInvFreq } from "./rope.ts";
import { totalMemoryBytes } from "./_memory.ts";
import { createTsKernels } from "../backends/typescript/ts_kernels.ts";

/** Which activation a linear reads (equal values share a GPTQ Hessian). */
export type LinearInput = LinearSpec["input"];

/**
 * Called with every linear input a block computes (for Hessian capture). The
 * tensor belongs to the forward: read it during the call, do not keep it.
 */
export type LinearInputHook = (input: LinearInput, x: Tensor) => void;

/** A norm's parameters, on the backend. */
export interface NormWeights {
  /** Scale `[1, H]`. */
  weight: Tensor;
  /** Shift (LayerNorm), or null. */
  bias: Tensor | null;
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

/** Per-sequence key/value cache, on the backend. */
export interface KvCache {
  /** Capacity in tokens. */
  readonly maxLen: number;
  /** Tokens already cached. */
  length: number;
  /** Per block: keys `[maxLen, Hkv·D]`. */
  readonly k: Tensor[];
  /** Per block: values `[maxLen, Hkv·D]`. */
  readonly v: Tensor[];
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
  backend: Backend;
  /** Normalized config. */
  config: ModelConfig;
  /** Architecture table. */
  arch: ArchSpec;
  /** RoPE inverse frequencies on the backend, or null for learned positions. */
  invFreq: Tensor | null;
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
 * const ctx = blockContext(folder, hostBackend(createTsKernels()));
 * ```
 *
 * @param folder The open model folder.
 * @param backend The backend.
 * @returns The context.
 */
export function blockContext(folder: ModelFolder, backend: Backend): BlockContext {
  const c = folder.config;
  const invFreq = folder.arch.positions.kind === "rope"
    ? backend.constant(ropeInvFreq(c.rotaryDim, c.ropeTheta ?? 10000, c.ropeScaling, c.file))
    : null;
  return { backend, config: c, arch: folder.arch, invFreq };
}

async function readNorm(
  folder: ModelFolder,
  be: Backend,
  name: string,
  spec: NormSpec,
): Promise<NormWeights> {
  const weight = be.constant(await folder.readFloat32(`${name}.weight`));
  const bias = spec.bias ? be.constant(await folder.readFloat32(`${name}.bias`)) : null;
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
  const { arch, config, backend } = ctx;
  const prefix = `${arch.blockPrefix}.${layer}`;
  const attnNorm = await readNorm(
    folder,
    backend,
    `${prefix}.${arch.blockNorms.attn.name}`,
    arch.blockNorms.attn,
  );
  const mlpNorm = await readNorm(
    folder,
    backend,
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
      linears.set(l.name, backend.linearFromGptq({ tensors, format: ctx.zeroFormat.format }));
    } else {
      const w = await folder.read(`${path}.weight`);
      const bias = l.bias(config) ? await folder.readFloat32(`${path}.bias`) : null;
      linears.set(l.name, backend.linearFromDense(w, bias, l.layout === "conv1d"));
    }
  }
  return { layer, attnNorm, mlpNorm, linears };
}

function freeNorm(be: Backend, n: NormWeights): void {
  be.free(n.weight);
  if (n.bias) be.free(n.bias);
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
  for (const h of block.linears.values()) ctx.backend.release(h);
  block.linears.clear();
  freeNorm(ctx.backend, block.attnNorm);
  freeNorm(ctx.backend, block.mlpNorm);
}

function norm(ctx: BlockContext, x: Tensor, w: NormWeights): Tensor {
  const eps = ctx.config.normEps;
  return ctx.arch.norm === "rmsnorm"
    ? ctx.backend.rmsNorm(x, w.weight, eps)
    : ctx.backend.layerNorm(x, w.weight, w.bias, eps);
}

const rolesCache = new WeakMap<ArchSpec, LinearRoles>();

/** The MLP's intermediate (down_proj's input) on its (normed) input. */
function mlpMid(ctx: BlockContext, roles: LinearRoles, block: BlockWeights, inp: Tensor): Tensor {
  const { backend: B, config: c } = ctx;
  const lin = (name: string) => block.linears.get(name)!;
  if (roles.gate) {
    const mid = B.linear(inp, lin(roles.gate));
    const up = B.linear(inp, lin(roles.up));
    B.gatedActivate(mid, up, c.hiddenAct);
    B.free(up);
    return mid;
  }
  const mid = B.linear(inp, lin(roles.up));
  B.activate(mid, c.hiddenAct);
  return mid;
}

/**
 * `w` applied to an intermediate: `reuse.cached`, or `compute()` (handed to
 * `reuse.keep`, freed afterwards); the hook sees it as `input` first.
 */
function linearOfIntermediate(
  B: Backend,
  compute: () => Tensor,
  reuse: Reuse | undefined,
  hook: LinearInputHook | undefined,
  input: LinearInput,
  w: LinearHandle,
): Tensor {
  const t = reuse?.cached ?? compute();
  const own = t !== reuse?.cached;
  if (own) reuse?.keep?.(t);
  try {
    hook?.(input, t);
    return B.linear(t, w);
  } finally {
    if (own) B.free(t);
  }
}

/** The MLP of a block on its (normed) input; frees nothing it was given. */
function runMlp(
  ctx: BlockContext,
  roles: LinearRoles,
  block: BlockWeights,
  inp: Tensor,
  hook?: LinearInputHook,
  reuse?: Reuse,
): Tensor {
  hook?.("mlp_in", inp);
  return linearOfIntermediate(
    ctx.backend,
    () => mlpMid(ctx, roles, block, inp),
    reuse,
    hook,
    "mlp_mid",
    block.linears.get(roles.down)!,
  );
}

/** One intermediate of a block run: a value kept from an earlier run, or where to hand a computed one. */
export interface Reuse {
  /** The value of an earlier run (the modules that compute it are skipped). */
  cached?: Tensor;
  /** Called with the value when it is computed (before the hook that sees it). */
  keep?: (t: Tensor) => void;
}

/**
 * Intermediates of a block that can be reused across runs over the same
 * input and the same weights upstream of them: quantization runs a block
 * several times per sample (once per true-sequential group), and only the
 * modules after those already quantized change between runs.
 */
export interface BlockReuse {
  /** The attention output (o_proj's input, `[T, heads·D]`): skips q/k/v, RoPE, the KV cache and attention. */
  attention?: Reuse;
  /** The MLP's intermediate (down_proj's input, `[T, intermediate]`): skips gate/up and the activation. */
  mlpMid?: Reuse;
}

/** The attention output of a block on its (normed) input, appending to the caches. */
function attentionOutput(
  ctx: BlockContext,
  roles: LinearRoles,
  block: BlockWeights,
  attnIn: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  past: number,
): Tensor {
  const { backend: B, config: c, arch } = ctx;
  const lin = (name: string) => block.linears.get(name)!;
  const Hq = c.numHeads, Hkv = c.numKvHeads, D = c.headDim;
  let q: Tensor, k: Tensor, v: Tensor;
  if (roles.qkv) {
    const fused = B.linear(attnIn, lin(roles.qkv));
    [q, k, v] = B.splitQkv(fused, Hq, D, arch.fused[roles.qkv]?.layout ?? "concat");
    B.free(fused);
  } else {
    q = B.linear(attnIn, lin(roles.q!));
    k = B.linear(attnIn, lin(roles.k!));
    v = B.linear(attnIn, lin(roles.v!));
  }
  if (ctx.invFreq) {
    B.rope(q, Hq, D, c.rotaryDim, past, ctx.invFreq);
    B.rope(k, Hkv, D, c.rotaryDim, past, ctx.invFreq);
  }
  B.writeRows(kCache, k, past);
  B.writeRows(vCache, v, past);
  B.free(k);
  B.free(v);
  const a = B.attention(q, Hq, Hkv, D, kCache, vCache, past);
  B.free(q);
  return a;
}

/** Attention of a block on its (normed) input, appending to the caches; returns o_proj's output. */
function runAttention(
  ctx: BlockContext,
  roles: LinearRoles,
  block: BlockWeights,
  attnIn: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  past: number,
  hook?: LinearInputHook,
  reuse?: Reuse,
): Tensor {
  hook?.("attn_in", attnIn);
  return linearOfIntermediate(
    ctx.backend,
    () => attentionOutput(ctx, roles, block, attnIn, kCache, vCache, past),
    reuse,
    hook,
    "attn_out",
    block.linears.get(roles.o)!,
  );
}

/**
 * Runs one decoder block over T new tokens of one sequence, updating the
 * block's KV cache at positions `past .. past+T`.
 *
 * @example
 * ```ts ignore
 * const y = runBlock(ctx, block, x, cacheK, cacheV, 0);
 * ```
 *
 * @param ctx The block context.
 * @param block The block's weights.
 * @param x Hidden states `[T, hidden]` (not modified, not freed).
 * @param kCache This block's key cache `[maxLen, Hkv·D]`.
 * @param vCache This block's value cache.
 * @param past Tokens already in the cache.
 * @param hook Called with each linear input (for Hessian capture).
 * @param reuse Intermediates to use instead of computing them, or where to hand computed ones.
 * @returns The block's output `[T, hidden]` (a new tensor).
 */
export function runBlock(
  ctx: BlockContext,
  block: BlockWeights,
  x: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  past: number,
  hook?: LinearInputHook,
  reuse?: BlockReuse,
): Tensor {
  const { backend: B, config: c, arch } = ctx;
  let roles = rolesCache.get(arch);
  if (!roles) rolesCache.set(arch, roles = rolesOf(arch));
  const preLN = c.doLayerNormBefore;

  const attnIn = preLN ? norm(ctx, x, block.attnNorm) : x;
  let o: Tensor;
  try {
    o = runAttention(ctx, roles, block, attnIn, kCache, vCache, past, hook, reuse?.attention);
  } finally {
    if (attnIn !== x) B.free(attnIn);
  }

  if (arch.parallelResidual(c)) {
    const mlpIn = norm(ctx, x, block.mlpNorm);
    const m = runMlp(ctx, roles, block, mlpIn, hook, reuse?.mlpMid);
    B.free(mlpIn);
    B.addInPlace(o, x); // x + o
    B.addInPlace(o, m); // (x + o) + m
    B.free(m);
    return o;
  }
  B.addInPlace(o, x); // h = x + o
  let h = o;
  if (!preLN) {
    h = norm(ctx, o, block.attnNorm);
    B.free(o);
  }
  const mlpIn = preLN ? norm(ctx, h, block.mlpNorm) : h;
  const m = runMlp(ctx, roles, block, mlpIn, hook, reuse?.mlpMid);
  if (mlpIn !== h) B.free(mlpIn);
  B.addInPlace(m, h); // y = h + m
  B.free(h);
  if (!preLN) {
    const y = norm(ctx, m, block.mlpNorm);
    B.free(m);
    return y;
  }
  return m;
}

/** Options of {@linkcode CausalLM.load}. */
export interface LoadModelOptions {
  /** The backend; default: the TypeScript reference kernels. */
  backend?: Backend;
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

/** What {@linkcode CausalLM.forward} returns. */
export interface ForwardOptions {
  /** Only the last token's logits (`[1, vocab]`). */
  lastOnly?: boolean;
}

interface OuterWeights {
  embed: TableHandle;
  pos: TableHandle | null;
  posOffset: number;
  projectIn: LinearHandle | null;
  projectOut: LinearHandle | null;
  finalNorm: NormWeights | null;
  lmHead: LinearHandle;
}

/** Largest KV cache (both K and V, all blocks, f32) allocated without question: 64 GiB. */
const MAX_CACHE_BYTES = 64 * 1024 ** 3;

/** Refuses a KV cache the machine cannot hold, before allocating it. */
function checkCacheSize(c: ModelConfig, blocks: number, maxLen: number): void {
  const bytes = 2 * blocks * maxLen * c.numKvHeads * c.headDim * 4;
  // No --allow-sys (or no memory reading): keep the fixed cap.
  const limit = Math.min(MAX_CACHE_BYTES, totalMemoryBytes() ?? Infinity);
  if (bytes > limit) {
    const gib = (n: number) => `${(n / 1024 ** 3).toFixed(1)} GiB`;
    throw new GptqError(
      "INVALID_ARGUMENT",
      `a KV cache of ${maxLen} tokens needs ${gib(bytes)} (${blocks} blocks × ` +
        `${c.numKvHeads} kv heads × head dim ${c.headDim}), more than the ${gib(limit)} available`,
      {
        file: c.file,
        hint: "use a shorter context (--max-new-tokens, --seqlen) or check config.json",
      },
    );
  }
}

/**
 * A causal language model with every block resident on its backend, for
 * inference.
 *
 * @example Logits for a prompt
 * ```ts ignore
 * import { CausalLM } from "./model.ts";
 * const lm = await CausalLM.load("./llama");
 * const ids = (await lm.folder.tokenizer()).encode("Hello");
 * const logits = await lm.forward(ids, lm.newCache(ids.length)); // [T, vocab]
 * ```
 */
export class CausalLM {
  /** The model folder. */
  readonly folder: ModelFolder;
  /** The block context (backend, config, architecture). */
  readonly ctx: BlockContext;
  readonly #blocks: BlockWeights[];
  readonly #outer: OuterWeights;

  private constructor(
    folder: ModelFolder,
    ctx: BlockContext,
    blocks: BlockWeights[],
    outer: OuterWeights,
  ) {
    this.folder = folder;
    this.ctx = ctx;
    this.#blocks = blocks;
    this.#outer = outer;
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
    const backend = opts.backend ?? hostBackend(createTsKernels());
    const ctx = blockContext(folder, backend);
    if (folder.quant && folder.quantizedModules().length > 0) {
      ctx.zeroFormat = await resolveZeroFormat(folder, {
        onWarning: opts.onWarning ?? warnOnStderr,
        ...(opts.zeroFormat ? { force: opts.zeroFormat } : {}),
      });
    }
    const { config } = folder;
    const blocks: BlockWeights[] = [];
    if (opts.blocks !== false) {
      for (let i = 0; i < config.numLayers; i++) blocks.push(await loadBlock(folder, ctx, i));
    }
    return new CausalLM(folder, ctx, blocks, await CausalLM.#loadOuter(folder, backend));
  }

  static async #loadOuter(folder: ModelFolder, backend: Backend): Promise<OuterWeights> {
    const { arch, config } = folder;
    const embedRaw = await folder.read(arch.embedding);
    const embed = backend.tableFrom(embedRaw);
    let pos: TableHandle | null = null, posOffset = 0;
    if (arch.positions.kind === "learned") {
      pos = backend.tableFrom(await folder.read(arch.positions.tensor));
      posOffset = arch.positions.offset;
    }
    const outer = (role: string, suffix: string) =>
      arch.outer.find((o) =>
        o.role === role && o.name.includes(suffix) && (o.present?.(config) ?? true)
      );
    const pin = outer("projection", "project_in"), pout = outer("projection", "project_out");
    // OPT's project_in/out are nn.Linear without bias: weight [out, in].
    const projectIn = pin
      ? backend.linearFromDense(await folder.read(pin.name), null, false)
      : null;
    const projectOut = pout
      ? backend.linearFromDense(await folder.read(pout.name), null, false)
      : null;
    const fn = arch.finalNorm;
    const finalNorm = (fn.present?.(config) ?? true)
      ? await readNorm(folder, backend, fn.name, fn)
      : null;
    const headName = folder.lmHeadName();
    const headRaw = headName === arch.embedding ? embedRaw : await folder.read(headName);
    const lmHead = backend.linearFromDense(headRaw, null, false);
    return { embed, pos, posOffset, projectIn, projectOut, finalNorm, lmHead };
  }

  /** The normalized config. */
  get config(): ModelConfig {
    return this.ctx.config;
  }

  /** The backend the model runs on. */
  get backend(): Backend {
    return this.ctx.backend;
  }

  /**
   * Makes an empty KV cache on the backend.
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
    const cols = c.numKvHeads * c.headDim, B = this.backend;
    checkCacheSize(c, this.#blocks.length, maxLen);
    return {
      maxLen,
      length: 0,
      k: this.#blocks.map(() => B.zeros(maxLen, cols)),
      v: this.#blocks.map(() => B.zeros(maxLen, cols)),
    };
  }

  /**
   * Frees a cache's backend memory (host backends leave it to the GC).
   *
   * @param cache The cache.
   */
  freeCache(cache: KvCache): void {
    for (const t of [...cache.k, ...cache.v]) this.backend.free(t);
  }

  /**
   * Embeds tokens (plus learned positions and OPT's project_in).
   *
   * @param ids Token ids.
   * @param past Position of the first token.
   * @returns `[T, hidden]` on the backend.
   */
  embed(ids: ArrayLike<number>, past: number): Tensor {
    const B = this.backend, o = this.#outer;
    const idx = Int32Array.from(ids as ArrayLike<number>);
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t]!;
      if (!Number.isInteger(id) || id < 0 || id >= o.embed.rows) {
        throw new GptqError(
          "INVALID_ARGUMENT",
          `token id ${String(id)} is outside the vocabulary (0..${o.embed.rows - 1})`,
          {
            file: this.folder.info(this.folder.arch.embedding).file,
            tensor: this.folder.arch.embedding,
            hint: "the tokenizer does not match the model's embedding; check tokenizer.json " +
              "and vocab_size in config.json",
          },
        );
      }
    }
    let x = B.gather(o.embed, idx, 0);
    if (o.projectIn) {
      const y = B.linear(x, o.projectIn);
      B.free(x);
      x = y;
    }
    if (o.pos) {
      const pos = new Int32Array(ids.length);
      for (let t = 0; t < ids.length; t++) pos[t] = past + t;
      const p = B.gather(o.pos, pos, o.posOffset);
      B.addInPlace(x, p);
      B.free(p);
    }
    return x;
  }

  /**
   * Final norm, OPT's project_out and the LM head.
   *
   * @param h Hidden states `[T, hidden]` (not freed).
   * @returns Logits `[T, vocab]` on the backend.
   */
  head(h: Tensor): Tensor {
    const B = this.backend, o = this.#outer;
    let x = h;
    const step = (y: Tensor) => {
      if (x !== h) B.free(x);
      x = y;
    };
    if (o.finalNorm) step(norm(this.ctx, x, o.finalNorm));
    if (o.projectOut) step(B.linear(x, o.projectOut));
    const logits = B.linear(x, o.lmHead);
    if (x !== h) B.free(x);
    return logits;
  }

  /**
   * Encodes new tokens through the model, appending them to the cache, and
   * returns the logits tensor on the backend (the caller frees it).
   *
   * @param ids The new tokens.
   * @param cache The sequence's cache (its `length` advances by `ids.length`).
   * @param opts `lastOnly` keeps only the last token's logits.
   * @returns Logits `[T, vocab]` (or `[1, vocab]` with `lastOnly`).
   */
  logits(ids: ArrayLike<number>, cache: KvCache, opts: ForwardOptions = {}): Tensor {
    const T = ids.length, past = cache.length, B = this.backend;
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
      const y = runBlock(this.ctx, this.#blocks[i]!, x, cache.k[i]!, cache.v[i]!, past);
      B.free(x);
      x = y;
    }
    cache.length = past + T;
    if (opts.lastOnly && T > 1) {
      const last = B.sliceRows(x, T - 1, 1);
      B.free(x);
      x = last;
    }
    const out = this.head(x);
    B.free(x);
    return out;
  }

  /**
   * Runs new tokens through the model, appending them to the cache, and reads
   * the logits back.
   *
   * @param ids The new tokens.
   * @param cache The sequence's cache (its `length` advances by `ids.length`).
   * @param opts `lastOnly` returns only the last token's logits.
   * @returns Logits `[T, vocab]` (or `[1, vocab]` with `lastOnly`).
   */
  async forward(
    ids: ArrayLike<number>,
    cache: KvCache,
    opts: ForwardOptions = {},
  ): Promise<Float32Array> {
    const t = this.logits(ids, cache, opts);
    try {
      return await this.backend.read(t);
    } finally {
      this.backend.free(t);
    }
  }

  /**
   * Runs new tokens and returns the greedy next token (argmax of the last
   * logits row), reading back one integer.
   *
   * @param ids The new tokens.
   * @param cache The sequence's cache.
   * @returns The next token id.
   */
  async greedy(ids: ArrayLike<number>, cache: KvCache): Promise<number> {
    const t = this.logits(ids, cache, { lastOnly: true });
    try {
      return (await this.backend.argmax(t))[0]!;
    } finally {
      this.backend.free(t);
    }
  }

  /**
   * Runs a window from an empty cache and returns `−log p(ids[t+1] | ids[..t])`
   * for each of its first `T − 1` positions (the eval edge: T numbers back).
   *
   * @param ids The window.
   * @returns Per-position negative log-likelihoods.
   */
  async windowNll(ids: ArrayLike<number>): Promise<Float64Array> {
    const cache = this.newCache(ids.length);
    const t = this.logits(ids, cache);
    try {
      return await this.backend.rowNll(t, Int32Array.from(ids as ArrayLike<number>).slice(1));
    } finally {
      this.backend.free(t);
      this.freeCache(cache);
    }
  }

  /** Releases backend memory and closes the folder. */
  close(): void {
    for (const b of this.#blocks) releaseBlock(this.ctx, b);
    const B = this.backend, o = this.#outer;
    for (const h of [o.lmHead, o.projectIn, o.projectOut]) if (h) B.release(h);
    B.release(o.embed);
    if (o.pos) B.release(o.pos);
    if (o.finalNorm) freeNorm(B, o.finalNorm);
    if (this.ctx.invFreq) B.free(this.ctx.invFreq);
    B.dispose?.();
    this.folder.close();
  }
}
