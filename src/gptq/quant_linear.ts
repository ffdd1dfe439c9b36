// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Loading one GPTQ quantized Linear (`qweight`, `qzeros`, `scales`, `g_idx`,
 * `bias`) from a checkpoint with full shape and dtype validation, and the slow
 * exact dequantization that every fast kernel is checked against
 * (reference §1.2–§1.5).
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { type DType, f16BitsToF32, f32ToF16Bits, toFloat32 } from "../io/dtype.ts";
import {
  type Bits,
  isBits,
  unpackQWeight,
  unpackQZeros,
  type V1ZeroMode,
  type ZeroFormat,
} from "./pack.ts";

/** The tensors of one quantized Linear, validated. */
export interface QuantLinearTensors {
  /** Packed codes, `[K·bits/32, N]` row-major. */
  qweight: Int32Array;
  /** Packed zero points, `[G, N·bits/32]` row-major. */
  qzeros: Int32Array;
  /** Scales as fp16 bit patterns, `[G, N]` row-major. */
  scales: Uint16Array;
  /** Group of each input row, `[K]`; `null` when the checkpoint has none (then `g = K/G`). */
  gIdx: Int32Array | null;
  /** Bias, `[N]`, or `null`. */
  bias: Float32Array | null;
  /** Input features. */
  K: number;
  /** Output features. */
  N: number;
  /** Number of groups. */
  G: number;
  /** Bit width. */
  bits: Bits;
}

/** The minimal tensor source that {@linkcode readQuantLinear} needs (a `SafetensorsFile` fits). */
export interface TensorSource {
  /** The dtype (a safetensors dtype name such as `"I32"`) and shape of a tensor. */
  info(name: string): { dtype: string; shape: number[] };
  /** Reads a tensor's bytes. */
  read(name: string): Promise<{ dtype: string; shape: number[]; data: Uint8Array }>;
  /** Whether the tensor exists. */
  has(name: string): boolean;
}

/** Options of {@linkcode readQuantLinear}. */
export interface ReadQuantLinearOptions {
  /**
   * The config's `group_size`. Used to synthesize `g_idx = k // group_size`
   * when the checkpoint has none, and to check G = ceil(K / group_size).
   */
  groupSize?: number;
}

function shapeError(file: string, tensor: string, reason: string, hint?: string): GptqError {
  return new GptqError("SHAPE", reason, hint ? { file, tensor, hint } : { file, tensor });
}

function formatError(file: string, tensor: string, reason: string, hint?: string): GptqError {
  return new GptqError("GPTQ_FORMAT", reason, hint ? { file, tensor, hint } : { file, tensor });
}

function int32View(data: Uint8Array): Int32Array {
  const a = data.byteOffset % 4 === 0 ? data : data.slice();
  return new Int32Array(a.buffer, a.byteOffset, a.byteLength / 4);
}

const BITS_HINT = "check 'bits' in quantize_config.json against the checkpoint";

/**
 * Reads and validates the tensors of one quantized Linear.
 *
 * Checks: `qweight` I32 `[K·bits/32, N]`, `qzeros` I32 `[G, N·bits/32]`,
 * `scales` F16 `[G, N]` (F32/BF16 are accepted and rounded to fp16), `g_idx`
 * I32/I64 `[K]` with values in `0..G−1`, optional `bias` `[N]`; K and N must be
 * multiples of 32.
 *
 * @example
 * ```ts ignore
 * import { SafetensorsFile } from "../io/safetensors.ts";
 * import { readQuantLinear } from "./quant_linear.ts";
 * using f = await SafetensorsFile.open("model.safetensors");
 * const t = await readQuantLinear(f, "model.layers.0.self_attn.q_proj", 4, f.path);
 * console.log(t.K, t.N, t.G);
 * ```
 *
 * @param src Where to read tensors from.
 * @param prefix The module path, e.g. `"model.layers.0.self_attn.q_proj"`.
 * @param bits The config's bit width.
 * @param file The file's path, for messages.
 * @param opts The config's group size, if known.
 * @returns The validated tensors.
 */
export async function readQuantLinear(
  src: TensorSource,
  prefix: string,
  bits: Bits,
  file: string,
  opts: ReadQuantLinearOptions = {},
): Promise<QuantLinearTensors> {
  if (!isBits(bits)) {
    throw new GptqError("QUANT_CONFIG", `bits must be 2, 3, 4 or 8, got ${bits}`, { file });
  }
  const name = (s: string) => `${prefix}.${s}`;
  for (const t of ["qweight", "qzeros", "scales"]) {
    if (!src.has(name(t))) {
      throw new GptqError("SAFETENSORS_MISSING_TENSOR", "not found", {
        file,
        tensor: name(t),
        hint:
          `'${prefix}' is not a GPTQ-quantized layer in this file (or the checkpoint is sharded)`,
      });
    }
  }
  const expectDType = (t: string, allowed: DType[]): DType => {
    const info = src.info(name(t));
    if (!(allowed as string[]).includes(info.dtype)) {
      throw formatError(
        file,
        name(t),
        `dtype is ${info.dtype}, expected ${allowed.join(" or ")}`,
        t === "qweight" || t === "qzeros"
          ? "only int32 packing (pack_dtype int32) is supported"
          : undefined,
      );
    }
    return info.dtype as DType;
  };
  const shape2 = (t: string): [number, number] => {
    const s = src.info(name(t)).shape;
    if (s.length !== 2) {
      throw shapeError(file, name(t), `has ${s.length} dimensions [${s}], expected 2`);
    }
    return s as [number, number];
  };

  expectDType("qweight", ["I32"]);
  expectDType("qzeros", ["I32"]);
  const scalesDType = expectDType("scales", ["F16", "F32", "BF16"]);
  const [qRows, N] = shape2("qweight");
  const [G, zCols] = shape2("qzeros");
  const [sRows, sCols] = shape2("scales");

  // K: from g_idx when present, else from qweight.
  let K: number;
  const hasGIdx = src.has(name("g_idx"));
  if (hasGIdx) {
    expectDType("g_idx", ["I32", "I64"]);
    const s = src.info(name("g_idx")).shape;
    if (s.length !== 1) throw shapeError(file, name("g_idx"), `shape [${s}] is not 1-D`);
    K = s[0]!;
    if (K % 32 !== 0) {
      throw shapeError(
        file,
        name("g_idx"),
        `in_features K = ${K} is not a multiple of 32, which GPTQ packing requires`,
      );
    }
    if (qRows !== (K / 32) * bits) {
      throw shapeError(
        file,
        name("qweight"),
        `qweight has ${qRows} rows, expected K*bits/32 = ${K}*${bits}/32 = ${(K / 32) * bits}`,
        BITS_HINT,
      );
    }
  } else {
    if ((qRows * 32) % bits !== 0 || ((qRows * 32) / bits) % 32 !== 0) {
      throw shapeError(
        file,
        name("qweight"),
        `qweight has ${qRows} rows, which is not K*${bits}/32 for any K that is a multiple of 32`,
        BITS_HINT,
      );
    }
    K = (qRows * 32) / bits;
  }
  if (N % 32 !== 0) {
    throw shapeError(
      file,
      name("qweight"),
      `out_features N = ${N} is not a multiple of 32, which GPTQ packing requires`,
    );
  }
  if (zCols !== (N / 32) * bits) {
    throw shapeError(
      file,
      name("qzeros"),
      `qzeros has ${zCols} columns, expected N*bits/32 = ${N}*${bits}/32 = ${(N / 32) * bits}`,
      BITS_HINT,
    );
  }
  if (sRows !== G || sCols !== N) {
    throw shapeError(
      file,
      name("scales"),
      `scales is [${sRows}, ${sCols}], expected [G, N] = [${G}, ${N}] (G from qzeros)`,
    );
  }
  if (G < 1 || G > K) {
    throw shapeError(file, name("qzeros"), `qzeros has ${G} groups for K = ${K} input features`);
  }
  const gs = opts.groupSize;
  if (gs !== undefined) {
    const expectG = gs === -1 ? 1 : Math.ceil(K / gs);
    if (G !== expectG) {
      throw shapeError(
        file,
        name("qzeros"),
        `qzeros has ${G} groups, expected ceil(K/group_size) = ceil(${K}/${gs}) = ${expectG}`,
        "check 'group_size' in quantize_config.json",
      );
    }
  }

  const qweight = int32View((await src.read(name("qweight"))).data);
  const qzeros = int32View((await src.read(name("qzeros"))).data);
  const sRaw = await src.read(name("scales"));
  let scales: Uint16Array;
  if (scalesDType === "F16") {
    const d = sRaw.data.byteOffset % 2 === 0 ? sRaw.data : sRaw.data.slice();
    scales = new Uint16Array(d.buffer, d.byteOffset, d.byteLength / 2);
  } else {
    const f = toFloat32(sRaw.data, scalesDType);
    scales = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) scales[i] = f32ToF16Bits(f[i]!);
  }
  for (let i = 0; i < scales.length; i++) {
    if ((scales[i]! & 0x7c00) === 0x7c00) {
      throw formatError(
        file,
        name("scales"),
        `scale [${Math.floor(i / N)}, ${i % N}] is not finite in fp16`,
        "the checkpoint is corrupt",
      );
    }
  }

  let gIdx: Int32Array | null = null;
  if (hasGIdx) {
    const g = await src.read(name("g_idx"));
    if (g.dtype === "I64") {
      const v = new BigInt64Array(g.data.slice().buffer);
      gIdx = new Int32Array(K);
      for (let k = 0; k < K; k++) {
        const x = v[k]!;
        gIdx[k] = x > 2147483647n || x < -2147483648n ? -1 : Number(x);
      }
    } else {
      gIdx = int32View(g.data);
    }
    for (let k = 0; k < K; k++) {
      const x = gIdx[k]!;
      if (x < 0 || x >= G) {
        throw formatError(file, name("g_idx"), `g_idx[${k}] = ${x} is outside 0..${G - 1}`);
      }
    }
  } else if (gs !== undefined) {
    const g = gs === -1 ? K : gs;
    gIdx = new Int32Array(K);
    for (let k = 0; k < K; k++) gIdx[k] = Math.floor(k / g);
  } else if (K % G !== 0) {
    throw formatError(
      file,
      name("g_idx"),
      `g_idx is missing and K = ${K} is not a multiple of G = ${G}, so the group size is unknown`,
      "pass the config's group_size",
    );
  }

  let bias: Float32Array | null = null;
  if (src.has(name("bias"))) {
    const info = src.info(name("bias"));
    if (!["F16", "F32", "BF16"].includes(info.dtype)) {
      throw formatError(file, name("bias"), `dtype is ${info.dtype}, expected a float type`);
    }
    if (info.shape.length !== 1 || info.shape[0] !== N) {
      throw shapeError(file, name("bias"), `bias is [${info.shape}], expected [N] = [${N}]`);
    }
    const b = await src.read(name("bias"));
    bias = toFloat32(b.data, b.dtype as DType);
  }
  return { qweight, qzeros, scales, gIdx, bias, K, N, G, bits };
}

/** Options of {@linkcode dequantizeLinear}. */
export interface DequantizeOptions {
  /** How to decode v1 zeros; default `"autogptq"` (`(field & maxq) + 1`). */
  v1Zero?: V1ZeroMode;
  /**
   * Round each weight to fp16, as AutoGPTQ's torch path (fp16 scales times
   * int codes) produces it. Default `false`: the exact value in f32.
   */
  roundToF16?: boolean;
}

/**
 * Dequantizes a quantized Linear to its float weight `[N, K]` (the layout of
 * `nn.Linear.weight`): `W[n, k] = scale[g, n] · (q[k, n] − z[g, n])` with
 * `g = g_idx[k]`. The product of an fp16 scale and a small integer is exact in
 * f32, so this is the exact reference. v1 zeros are decoded as AutoGPTQ's
 * torch path does, `z = (stored & maxq) + 1`; v2 zeros as stored.
 *
 * @example
 * ```ts
 * import { packQWeight, packQZeros } from "./pack.ts";
 * import { dequantizeLinear } from "./quant_linear.ts";
 * const K = 32, N = 32;
 * const qweight = packQWeight(new Uint8Array(K * N).fill(9), K, N, 4);
 * const qzeros = packQZeros(new Uint8Array(N).fill(8), 1, N, 4, "gptq");
 * const scales = new Uint16Array(N).fill(0x3800); // 0.5
 * const W = dequantizeLinear({ qweight, qzeros, scales, gIdx: null, bias: null, K, N, G: 1, bits: 4 }, "gptq");
 * console.log(W[0]); // 0.5
 * ```
 *
 * @param t The layer's tensors.
 * @param format The zero-point convention, `"gptq"` (v1) or `"gptq_v2"`.
 * @param opts v1 zero decoding and fp16 rounding.
 * @returns The weight, `[N, K]` row-major.
 */
export function dequantizeLinear(
  t: QuantLinearTensors,
  format: ZeroFormat,
  opts: DequantizeOptions = {},
): Float32Array {
  const { K, N, G, bits } = t;
  const codes = unpackQWeight(t.qweight, K, N, bits);
  const zeros = unpackQZeros(t.qzeros, G, N, bits, format, { v1Zero: opts.v1Zero ?? "autogptq" });
  if (t.scales.length !== G * N) {
    throw new GptqError("SHAPE", `scales has ${t.scales.length} elements, expected G*N = ${G * N}`);
  }
  let gIdx = t.gIdx;
  if (gIdx === null) {
    if (K % G !== 0) {
      throw new GptqError("GPTQ_FORMAT", `no g_idx and K = ${K} is not a multiple of G = ${G}`);
    }
    const g = K / G;
    gIdx = new Int32Array(K);
    for (let k = 0; k < K; k++) gIdx[k] = Math.floor(k / g);
  } else if (gIdx.length !== K) {
    throw new GptqError("SHAPE", `g_idx has ${gIdx.length} elements, expected K = ${K}`);
  }
  const scales = new Float32Array(G * N);
  for (let i = 0; i < scales.length; i++) scales[i] = f16BitsToF32(t.scales[i]!);
  const W = new Float32Array(N * K);
  for (let k = 0; k < K; k++) {
    const g = gIdx[k]!;
    if (g < 0 || g >= G) {
      throw new GptqError("GPTQ_FORMAT", `g_idx[${k}] = ${g} is outside 0..${G - 1}`, {
        tensor: "g_idx",
      });
    }
    const row = k * N;
    const grow = g * N;
    for (let n = 0; n < N; n++) {
      W[n * K + k] = scales[grow + n]! * (codes[row + n]! - zeros[grow + n]!);
    }
  }
  if (opts.roundToF16) {
    for (let i = 0; i < W.length; i++) W[i] = f16BitsToF32(f32ToF16Bits(W[i]!));
  }
  return W;
}
