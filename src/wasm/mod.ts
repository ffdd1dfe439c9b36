// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Typed loader for the toolkit's WebAssembly kernels (Rust `crates/gptq-wasm`,
 * SIMD128), built by `tools/build_wasm.ts`.
 *
 * Two modules are embedded: `baseline` (SIMD128, every engine with wasm SIMD)
 * and `relaxed` (SIMD128 + relaxed SIMD: fused `f32x4.relaxed_madd` in the
 * matmul kernels, which changes the last bits of their results). The loader
 * picks `relaxed` when the engine validates a tiny relaxed-SIMD probe
 * module, else `baseline`; the environment variable `GPTQ_WASM_SIMD`
 * (`baseline`, `relaxed` or `auto`) overrides it in Deno when env access is
 * granted, and {@linkcode LoadWasmOptions.simd} in code.
 *
 * The module is embedded as base64 in `./_generated/gptq_wasm.wasm.js`, so it
 * loads the same way from a local checkout and from a remote (https/JSR)
 * import, with no `--allow-read` or `--allow-net`. {@linkcode loadWasm}
 * compiles and instantiates it once and caches the result;
 * {@linkcode wasmModule} hands out the compiled `WebAssembly.Module` so that
 * Workers can instantiate it without compiling again.
 *
 * Kernels: f16/bf16 ↔ f32 conversions (round to nearest even) and GPTQ bit
 * packing of `qweight` (along K) and `qzeros` (along N) for 2, 3, 4 and 8
 * bits. Bad input throws a {@linkcode GptqError}.
 *
 * @example Pack 4-bit codes into a qweight tensor
 * ```ts
 * import { loadWasm } from "./mod.ts";
 * const wasm = await loadWasm();
 * const codes = new Uint32Array(32 * 2).fill(7); // K = 32, N = 2
 * const qweight = wasm.packRows(codes, 32, 2, 4); // [32*4/32, 2] = [4, 2]
 * console.log(qweight[0].toString(16)); // "77777777"
 * ```
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import * as glue from "./_generated/gptq_wasm.internal.js";
import * as baselineWasm from "./_generated/gptq_wasm.wasm.js";
import * as relaxedWasm from "./_generated/gptq_wasm_relaxed.wasm.js";

/** Bit widths that GPTQ packing supports. */
export type PackBits = 2 | 3 | 4 | 8;

/** Names the tensor (and file) a kernel call works on, for error messages. */
export interface WasmCallContext {
  /** The file the data came from or goes to. */
  file?: string;
  /** The tensor name, e.g. `model.layers.0.self_attn.q_proj.qweight`. */
  tensor?: string;
}

/** The instantiated kernels. All inputs are copied in and outputs are new arrays. */
export interface GptqWasm {
  /** Which embedded module runs: `relaxed` (relaxed SIMD) or `baseline` (SIMD128). */
  readonly simd: WasmSimd;
  /**
   * Widens f16 bit patterns to f32 (exact).
   *
   * @param src f16 bit patterns.
   * @returns The values.
   */
  f16ToF32(src: Uint16Array): Float32Array;
  /**
   * Widens bf16 bit patterns to f32 (exact).
   *
   * @param src bf16 bit patterns.
   * @returns The values.
   */
  bf16ToF32(src: Uint16Array): Float32Array;
  /**
   * Narrows f32 to f16 bit patterns, rounding to nearest even (overflow gives ±Inf).
   *
   * @param src The values.
   * @returns f16 bit patterns.
   */
  f32ToF16(src: Float32Array): Uint16Array;
  /**
   * Narrows f32 to bf16 bit patterns, rounding to nearest even.
   *
   * @param src The values.
   * @returns bf16 bit patterns.
   */
  f32ToBf16(src: Float32Array): Uint16Array;
  /**
   * Packs codes `[k, n]` (row-major) along K into `qweight [k*bits/32, n]`.
   *
   * @param codes Unsigned codes below `2^bits` (an Int32Array is read as unsigned).
   * @param k Rows (input features); a multiple of 32.
   * @param n Columns (output features).
   * @param bits 2, 3, 4 or 8.
   * @param ctx The tensor, for error messages.
   * @returns The packed words.
   */
  packRows(
    codes: Uint32Array | Int32Array,
    k: number,
    n: number,
    bits: PackBits,
    ctx?: WasmCallContext,
  ): Int32Array;
  /**
   * Unpacks `qweight [k*bits/32, n]` into codes `[k, n]`.
   *
   * @param qweight The packed words.
   * @param k Rows of the unpacked codes; a multiple of 32.
   * @param n Columns.
   * @param bits 2, 3, 4 or 8.
   * @param ctx The tensor, for error messages.
   * @returns The codes.
   */
  unpackRows(
    qweight: Int32Array,
    k: number,
    n: number,
    bits: PackBits,
    ctx?: WasmCallContext,
  ): Uint32Array;
  /**
   * Packs codes `[g, n]` along N into `qzeros [g, n*bits/32]`.
   *
   * @param codes Unsigned codes below `2^bits` (for v1 checkpoints: zero − 1).
   * @param g Rows (groups).
   * @param n Columns (output features); a multiple of 32.
   * @param bits 2, 3, 4 or 8.
   * @param ctx The tensor, for error messages.
   * @returns The packed words.
   */
  packCols(
    codes: Uint32Array | Int32Array,
    g: number,
    n: number,
    bits: PackBits,
    ctx?: WasmCallContext,
  ): Int32Array;
  /**
   * Unpacks `qzeros [g, n*bits/32]` into codes `[g, n]`.
   *
   * @param qzeros The packed words.
   * @param g Rows (groups).
   * @param n Columns of the unpacked codes; a multiple of 32.
   * @param bits 2, 3, 4 or 8.
   * @param ctx The tensor, for error messages.
   * @returns The codes.
   */
  unpackCols(
    qzeros: Int32Array,
    g: number,
    n: number,
    bits: PackBits,
    ctx?: WasmCallContext,
  ): Uint32Array;
}

/** The two embedded modules: SIMD128 only, or SIMD128 plus relaxed SIMD. */
export type WasmSimd = "baseline" | "relaxed";

/** Options of {@linkcode loadWasm}. */
export interface LoadWasmOptions {
  /**
   * An already compiled module (e.g. one a Worker received from
   * {@linkcode wasmModule} via `postMessage`); skips compilation.
   */
  module?: WebAssembly.Module;
  /** Which embedded module to compile when `module` is not given (default {@linkcode wasmSimd}). */
  simd?: WasmSimd;
}

/** sha256 (hex) of the embedded baseline (SIMD128) wasm module, as recorded at build time. */
export const WASM_SHA256: string = baselineWasm.wasmSha256;

const EMBEDDED = { baseline: baselineWasm, relaxed: relaxedWasm } as const;
const modulePromises: Partial<Record<WasmSimd, Promise<WebAssembly.Module>>> = {};
let instancePromise: Promise<GptqWasm> | undefined;
let loadedSimd: WasmSimd = "baseline";

/** `(func (result v128) i32x4.splat(0) ×3 f32x4.relaxed_madd)`: valid only with relaxed SIMD. */
const RELAXED_PROBE = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00, // magic, version
  0x01,
  0x05,
  0x01,
  0x60,
  0x00,
  0x01,
  0x7b, // type: () -> v128
  0x03,
  0x02,
  0x01,
  0x00, // one function of type 0
  0x0a,
  0x13,
  0x01,
  0x11,
  0x00, // code: one body of 17 bytes, no locals
  0x41,
  0x00,
  0xfd,
  0x11,
  0x41,
  0x00,
  0xfd,
  0x11,
  0x41,
  0x00,
  0xfd,
  0x11, // 3× i32x4.splat(0)
  0xfd,
  0x85,
  0x02,
  0x0b, // f32x4.relaxed_madd, end
]);

/**
 * Whether this engine supports relaxed SIMD (it validates a tiny module
 * that uses `f32x4.relaxed_madd`).
 *
 * @example
 * ```ts
 * import { relaxedSimdSupported } from "./mod.ts";
 * console.log(relaxedSimdSupported()); // true in Deno 2 and Chrome 114+
 * ```
 *
 * @returns `true` when the relaxed module can be compiled here.
 */
export function relaxedSimdSupported(): boolean {
  try {
    return WebAssembly.validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}

/** `GPTQ_WASM_SIMD` when Deno grants reading it (never prompts), else `undefined`. */
function simdFromEnv(): string | undefined {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  try {
    const name = "GPTQ_WASM_SIMD";
    if (deno?.permissions?.querySync?.({ name: "env", variable: name }).state !== "granted") {
      return undefined;
    }
    return deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * The module {@linkcode loadWasm} picks by default: `GPTQ_WASM_SIMD`
 * (`baseline`, `relaxed` or `auto`, read in Deno when env access is
 * granted), else `relaxed` where {@linkcode relaxedSimdSupported}, else
 * `baseline`.
 *
 * @example
 * ```ts
 * import { wasmSimd } from "./mod.ts";
 * console.log(wasmSimd()); // "relaxed" in Deno 2, "baseline" with GPTQ_WASM_SIMD=baseline
 * ```
 *
 * @returns The default module.
 * @throws {GptqError} When `GPTQ_WASM_SIMD` has another value, or asks for `relaxed` on an engine without it.
 */
export function wasmSimd(): WasmSimd {
  const env = simdFromEnv()?.trim().toLowerCase();
  if (env === "baseline") return "baseline";
  if (env !== undefined && env !== "" && env !== "auto" && env !== "relaxed") {
    throw new GptqError("INVALID_ARGUMENT", `GPTQ_WASM_SIMD=${env} is not a wasm module`, {
      hint: "use baseline, relaxed or auto",
    });
  }
  if (relaxedSimdSupported()) return "relaxed";
  if (env === "relaxed") {
    throw wasmError("GPTQ_WASM_SIMD=relaxed, but this engine does not support relaxed SIMD");
  }
  return "baseline";
}

function wasmError(reason: string, cause?: unknown): GptqError {
  return new GptqError("WASM", reason, {
    hint:
      "the embedded module is part of the package; reinstall it, or run 'deno task build:wasm' " +
      "in a checkout",
    cause,
  });
}

/**
 * Compiles an embedded module once and returns it. A `WebAssembly.Module`
 * can be sent to Workers with `postMessage` and passed to
 * {@linkcode loadWasm} there.
 *
 * @example Hand the module to a Worker
 * ```ts ignore
 * import { wasmModule } from "./mod.ts";
 * const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
 * worker.postMessage({ module: await wasmModule() });
 * // in worker.ts: const wasm = await loadWasm({ module: e.data.module });
 * ```
 *
 * @param simd Which module (default {@linkcode wasmSimd}).
 * @returns The compiled module (cached per `simd`).
 */
export function wasmModule(simd: WasmSimd = wasmSimd()): Promise<WebAssembly.Module> {
  modulePromises[simd] ??= WebAssembly.compile(EMBEDDED[simd].wasmBytes()).catch((e) => {
    modulePromises[simd] = undefined;
    throw wasmError(
      `cannot compile the gptq wasm module (${simd}): ${e instanceof Error ? e.message : e}`,
      e,
    );
  });
  return modulePromises[simd]!;
}

/**
 * Instantiates the kernels once (later calls return the same object).
 *
 * @example Convert f16 bits to f32
 * ```ts
 * import { loadWasm } from "./mod.ts";
 * const wasm = await loadWasm();
 * console.log(wasm.f16ToF32(new Uint16Array([0x3c00, 0xc000]))); // Float32Array [1, -2]
 * ```
 *
 * @param options A precompiled module to use instead of compiling, or which embedded one.
 * The first call decides; later calls return the same kernels.
 * @returns The typed kernels.
 */
export function loadWasm(options: LoadWasmOptions = {}): Promise<GptqWasm> {
  instancePromise ??= (async () => {
    const module = options.module ?? await wasmModule(options.simd ?? wasmSimd());
    try {
      glue.initSync({ module });
      loadedSimd = glue.simd_variant() === "relaxed-simd" ? "relaxed" : "baseline";
    } catch (e) {
      throw wasmError(
        `cannot instantiate the gptq wasm module: ${e instanceof Error ? e.message : e}`,
        e,
      );
    }
    return KERNELS;
  })().catch((e) => {
    instancePromise = undefined;
    throw e;
  });
  return instancePromise;
}

function checkInt(what: string, v: number, ctx: WasmCallContext | undefined): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new GptqError(
      "INVALID_ARGUMENT",
      `${what} must be a non-negative integer, got ${v}`,
      ctx,
    );
  }
}

function checkPackArgs(
  op: string,
  len: number,
  expected: number,
  what: string,
  packedAxis: string,
  axisLen: number,
  dims: [number, number],
  bits: number,
  ctx: WasmCallContext | undefined,
): void {
  checkInt("rows", dims[0], ctx);
  checkInt("columns", dims[1], ctx);
  if (bits !== 2 && bits !== 3 && bits !== 4 && bits !== 8) {
    throw new GptqError("INVALID_ARGUMENT", `${op}: unsupported bit width ${bits}`, {
      ...ctx,
      hint: "GPTQ packing supports 2, 3, 4 or 8 bits",
    });
  }
  if (axisLen % 32 !== 0) {
    throw new GptqError(
      "SHAPE",
      `${op}: ${packedAxis} = ${axisLen} is not a multiple of 32, so ${bits}-bit codes cannot be packed into 32-bit words`,
      {
        ...ctx,
        hint:
          "keep this layer unquantized, or quantize it to a layout whose packed axis is a multiple of 32",
      },
    );
  }
  if (len !== expected) {
    throw new GptqError(
      "SHAPE",
      `${op}: ${what} has ${len} elements but shape [${
        dims.join(", ")
      }] at ${bits} bits needs ${expected}`,
      { ...ctx, hint: "check the tensor's shape against the layer's in/out features" },
    );
  }
}

const CODE_HINT = "codes must be unsigned integers below 2^bits";
const ZERO_HINT =
  "qzeros codes must be below 2^bits; v1 checkpoints store zero-1, so a zero of 0 " +
  "cannot be stored: use checkpoint_format gptq_v2 or sym=true";

function callPacker<T>(
  op: string,
  ctx: WasmCallContext | undefined,
  hint: string,
  f: () => T,
): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof GptqError) throw e;
    if (e instanceof Error && !(e instanceof WebAssembly.RuntimeError)) {
      throw new GptqError("INVALID_ARGUMENT", `${op}: ${e.message}`, {
        ...ctx,
        hint,
        cause: e,
      });
    }
    throw wasmError(`${op}: the wasm kernel trapped: ${e instanceof Error ? e.message : e}`, e);
  }
}

const KERNELS: GptqWasm = {
  get simd(): WasmSimd {
    return loadedSimd;
  },
  f16ToF32: (src) => glue.f16_to_f32(src),
  bf16ToF32: (src) => glue.bf16_to_f32(src),
  f32ToF16: (src) => glue.f32_to_f16(src),
  f32ToBf16: (src) => glue.f32_to_bf16(src),
  packRows(codes, k, n, bits, ctx) {
    checkPackArgs("packRows", codes.length, k * n, "codes", "K", k, [k, n], bits, ctx);
    return callPacker("packRows", ctx, CODE_HINT, () => glue.pack_rows(asU32(codes), k, n, bits));
  },
  unpackRows(qweight, k, n, bits, ctx) {
    const expected = (k / 32) * bits * n;
    checkPackArgs("unpackRows", qweight.length, expected, "qweight", "K", k, [k, n], bits, ctx);
    return callPacker("unpackRows", ctx, CODE_HINT, () => glue.unpack_rows(qweight, k, n, bits));
  },
  packCols(codes, g, n, bits, ctx) {
    checkPackArgs("packCols", codes.length, g * n, "codes", "N", n, [g, n], bits, ctx);
    return callPacker("packCols", ctx, ZERO_HINT, () => glue.pack_cols(asU32(codes), g, n, bits));
  },
  unpackCols(qzeros, g, n, bits, ctx) {
    const expected = g * (n / 32) * bits;
    checkPackArgs("unpackCols", qzeros.length, expected, "qzeros", "N", n, [g, n], bits, ctx);
    return callPacker("unpackCols", ctx, CODE_HINT, () => glue.unpack_cols(qzeros, g, n, bits));
  },
};

function asU32(a: Uint32Array | Int32Array): Uint32Array {
  return a instanceof Uint32Array ? a : new Uint32Array(a.buffer, a.byteOffset, a.length);
}
