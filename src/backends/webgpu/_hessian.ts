// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The GPTQ Hessian on the WebGPU device (`wgsl/hessian.wgsl`): AutoGPTQ's
 * `add_batch` running average `H *= n/(n+b); n += b; H += (2/n)·XᵀX` in f32,
 * fed by activations that are already on the device (the forward's linear
 * inputs) or uploaded from the host. Each `add` only encodes one dispatch (no
 * submit, no readback); only tiles on or below the diagonal are accumulated,
 * and the upper triangle is mirrored once, when the Hessian is used.
 *
 * @module
 */

import { GptqError } from "../../errors.ts";
import type { Tensor } from "../backend.ts";
import type { GpuContext } from "./context.ts";
// deno-lint-ignore no-unused-vars
import type { WebGpuSolver } from "./solver.ts";
import { f32, type GpuTensor, params, rowBlocks, span } from "./_common.ts";

/**
 * Checks that a `K×K` f32 matrix fits one storage binding (the solver's
 * `O(K³)` kernels bind the whole Hessian and its factor).
 *
 * @example
 * ```ts ignore
 * checkSquareFits(4096, 128 << 20, "model.layers.0.mlp.down_proj"); // ok: 64 MiB
 * ```
 *
 * @param K Size.
 * @param limit The binding size limit in bytes.
 * @param name The module, for the message.
 * @throws {GptqError} `WEBGPU` when it does not fit.
 */
export function checkSquareFits(K: number, limit: number, name?: string): void {
  if (K * K * 4 > limit) {
    throw new GptqError(
      "WEBGPU",
      `a ${K}×${K} Hessian needs a ${(K * K * 4 / 2 ** 20).toFixed(0)} MiB storage binding; ` +
        `this adapter allows ${(limit / 2 ** 20).toFixed(0)} MiB`,
      {
        ...(name ? { tensor: name } : {}),
        hint: "quantize with --backend wasm (the default), or on a GPU with a larger " +
          "maxStorageBufferBindingSize",
      },
    );
  }
}

/**
 * A Hessian accumulated on the device (from {@linkcode WebGpuSolver.hessian}).
 *
 * @example
 * ```ts ignore
 * const h = solver.hessian(4096, "model.layers.0.self_attn.q_proj");
 * h.addTensor(attnIn, 1, attnIn.rows); // a WebGPU backend tensor: encodes one dispatch
 * const prep = await solver.prepare(h, opts);
 * ```
 */
export class GpuHessian {
  /** Input features. */
  readonly K: number;
  readonly #ctx: GpuContext;
  readonly #limit: number;
  #h: GPUBuffer | null;
  #n = 0;
  #mirrored = true;

  /**
   * A zero `K×K` Hessian on the device.
   *
   * @param ctx The device.
   * @param K Input features.
   * @param limit The binding size limit in bytes.
   * @param name The module it is for (error messages).
   */
  constructor(ctx: GpuContext, K: number, limit: number, name?: string) {
    if (!Number.isSafeInteger(K) || K < 1) {
      throw new GptqError("SHAPE", `a Hessian needs K ≥ 1 input features, got ${K}`);
    }
    checkSquareFits(K, limit, name);
    this.K = K;
    this.#ctx = ctx;
    this.#limit = limit;
    this.#h = ctx.buffer(K * K * 4);
    ctx.clear(this.#h, 0, K * K * 4);
  }

  /** Sequences added so far (AutoGPTQ's `nsamples`). */
  get nsamples(): number {
    return this.#n;
  }

  #buf(): GPUBuffer {
    if (!this.#h) throw new GptqError("INVALID_ARGUMENT", "this Hessian was freed");
    return this.#h;
  }

  /**
   * Encodes adding `nSeq` sequences of `tokens` rows: `x` is `[nSeq·tokens, K]`
   * on this device, a tensor of the WebGPU backend (read when the work is
   * submitted; free it afterwards as usual — later users of its buffer are
   * ordered after this).
   *
   * @param x The activations (a WebGPU backend tensor on this device).
   * @param nSeq Sequences in `x` (AutoGPTQ counts sequences, not tokens).
   * @param tokens Tokens per sequence.
   */
  addTensor(x: Tensor, nSeq: number, tokens: number): void {
    const K = this.K, T = nSeq * tokens;
    const buf = (x as Partial<GpuTensor>).buf;
    if (!buf) {
      throw new GptqError("INVALID_ARGUMENT", "addTensor takes a tensor of the WebGPU backend");
    }
    if (x.cols !== K || x.rows !== T || !(nSeq >= 1) || !Number.isInteger(nSeq)) {
      throw new GptqError(
        "SHAPE",
        `Hessian input is [${x.rows}, ${x.cols}], expected ${nSeq}×${tokens} rows of ${K} ` +
          "features (n_seq ≥ 1)",
      );
    }
    const h = this.#buf();
    const old = this.#n, next = old + nSeq;
    const ratio = Math.fround(old / next), s = Math.fround(Math.sqrt(2 / next));
    const pipe = this.#ctx.pipeline("hessian", "accumulate");
    const tiles = Math.ceil(K / 64);
    // X bands that fit a binding: the first applies the running-average ratio, the rest add.
    rowBlocks(T, K * 4, this.#limit).forEach(([r0, n], i) => {
      this.#ctx.dispatch(
        pipe,
        [span(buf, r0 * K * 4, n * K * 4), h],
        params(n, K, f32(i === 0 ? ratio : 1), f32(s)),
        [tiles, tiles],
      );
    });
    this.#n = next;
    this.#mirrored = false;
  }

  /**
   * Uploads host activations and adds them ({@linkcode addTensor}).
   *
   * @param x `[nSeq·tokens, K]` row-major.
   * @param nSeq Sequences.
   * @param tokens Tokens per sequence.
   */
  add(x: Float32Array, nSeq: number, tokens: number): void {
    if (x.length !== nSeq * tokens * this.K) {
      throw new GptqError(
        "SHAPE",
        `Hessian input has ${x.length} values, expected ${nSeq}×${tokens}×${this.K}`,
      );
    }
    const buf = this.#ctx.upload(x);
    const t: GpuTensor = { rows: nSeq * tokens, cols: this.K, buf };
    this.addTensor(t, nSeq, tokens);
    this.#ctx.discard(buf);
  }

  /**
   * Replaces the accumulated `H` by a given one (e.g. a Hessian accumulated
   * elsewhere), keeping the sample count.
   *
   * @param h `[K, K]`, symmetric.
   */
  setMatrix(h: Float32Array): void {
    if (h.length !== this.K * this.K) {
      throw new GptqError("SHAPE", `H has ${h.length} values, expected K² = ${this.K ** 2}`);
    }
    const up = this.#ctx.upload(h);
    this.#ctx.copy(up, 0, this.#buf(), 0, h.byteLength);
    this.#ctx.discard(up);
    this.#mirrored = true;
  }

  /**
   * The full symmetric `H` on the device (encodes the mirroring of the lower
   * triangle when rows were added since the last call).
   *
   * @returns The buffer (owned by this Hessian).
   */
  buffer(): GPUBuffer {
    const h = this.#buf();
    if (!this.#mirrored) {
      const K = this.K, n = Math.ceil(K / 16);
      this.#ctx.dispatch(this.#ctx.pipeline("hessian", "symmetrize"), [h], params(0, K), [n, n]);
      this.#mirrored = true;
    }
    return h;
  }

  /**
   * Reads `H` back (`K×K`, symmetric).
   *
   * @returns A copy.
   */
  async read(): Promise<Float32Array> {
    const h = this.buffer();
    return new Float32Array(await this.#ctx.read(h, 0, this.K * this.K * 4));
  }

  /** Frees the device memory (pending work that uses it is unaffected). */
  free(): void {
    if (this.#h) this.#ctx.release(this.#h);
    this.#h = null;
  }
}
