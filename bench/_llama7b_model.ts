// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Random-weight checkpoints with Llama-7B layer shapes for the inference
 * benchmarks: fp16, GPTQ g128 (2/3/4/8-bit, sym, v1 zeros,
 * `g_idx = k / 128`), and act-order (`g_idx[perm[i]] = floor(i / 128)` for a
 * random permutation). GPTQ codes are uniform random values (speed does not
 * depend on them).
 *
 * @module
 */

import { writeSafetensors } from "../src/io/safetensors_writer.ts";
import type { NamedTensor } from "../src/io/safetensors_writer.ts";
import {
  type Bits,
  gIdxForGroups,
  packQWeight,
  packQZeros,
  scalesToF16,
} from "../src/gptq/pack.ts";
import { LLAMA7B, llama7bConfig } from "./_llama7b.ts";
import { randomF16, rnd } from "./_random.ts";

const { hidden: H, intermediate: I } = LLAMA7B;
const GROUP = 128;

function bytesOf(a: Uint16Array | Int32Array | Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** One layer's linears: [module, N, K]. */
const LINEARS: [string, number, number][] = [
  ["self_attn.q_proj", H, H],
  ["self_attn.k_proj", H, H],
  ["self_attn.v_proj", H, H],
  ["self_attn.o_proj", H, H],
  ["mlp.gate_proj", I, H],
  ["mlp.up_proj", I, H],
  ["mlp.down_proj", H, I],
];

/** Which weights the model holds. */
export type Variant = "fp16" | "gptq" | "gptq-act";

async function writeConfigs(
  dir: string,
  variant: Variant,
  LAYERS: number,
  VOCAB: number,
  bits: Bits,
): Promise<void> {
  const quant = {
    bits,
    group_size: GROUP,
    damp_percent: 0.01,
    desc_act: variant === "gptq-act",
    static_groups: false,
    sym: true,
    true_sequential: true,
    model_name_or_path: null,
    model_file_base_name: "model",
    quant_method: "gptq",
    checkpoint_format: "gptq",
  };
  const config = {
    ...llama7bConfig(LAYERS, VOCAB),
    ...(variant === "fp16" ? {} : { quantization_config: quant }),
  };
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config, null, 2));
  if (variant !== "fp16") {
    await Deno.writeTextFile(`${dir}/quantize_config.json`, JSON.stringify(quant, null, 2));
  }
}

/** Packed tensors for one linear shape, shared by every layer (values do not matter for speed). */
interface PackedShape {
  qweight: Uint8Array;
  qzeros: Uint8Array;
  scales: Uint8Array;
}

function packShape(N: number, K: number, bits: Bits): PackedShape {
  const G = K / GROUP, maxq = (1 << bits) - 1;
  const codes = new Uint8Array(K * N);
  for (let i = 0; i < codes.length; i += 4) {
    const r = rnd();
    codes[i] = r & maxq;
    codes[i + 1] = (r >>> 8) & maxq;
    codes[i + 2] = (r >>> 16) & maxq;
    codes[i + 3] = (r >>> 24) & maxq;
  }
  const scale = new Float32Array(N * G);
  for (let i = 0; i < scale.length; i++) scale[i] = 0.003 * (0.5 + rnd() / 2 ** 32);
  return {
    qweight: bytesOf(packQWeight(codes, K, N, bits)),
    qzeros: bytesOf(packQZeros(new Uint8Array(G * N).fill((maxq + 1) >> 1), G, N, bits, "gptq")),
    scales: bytesOf(scalesToF16(scale, N, G)),
  };
}

/** Act-order g_idx: `g_idx[perm[i]] = floor(i / group)` for a random permutation. */
function actOrderGIdx(K: number): Int32Array {
  const perm = new Int32Array(K).map((_, i) => i);
  for (let i = K - 1; i > 0; i--) {
    const j = rnd() % (i + 1);
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  const g = new Int32Array(K);
  for (let i = 0; i < K; i++) g[perm[i]!] = Math.floor(i / GROUP);
  return g;
}

/**
 * Writes a random-weight model with Llama-7B widths (fp16, or GPTQ g128 with
 * or without act-order; the LM head stays fp16).
 *
 * @example
 * ```ts ignore
 * const bytes = await writeLlama7bModel("/tmp/m", "gptq", 2, 4096);
 * ```
 *
 * @param dir Output folder (must exist).
 * @param variant The weights.
 * @param LAYERS Decoder blocks.
 * @param VOCAB Vocabulary size.
 * @param bits GPTQ bit width (default 4; ignored for fp16).
 * @returns The safetensors file's size in bytes.
 */
export async function writeLlama7bModel(
  dir: string,
  variant: Variant,
  LAYERS: number,
  VOCAB: number,
  bits: Bits = 4,
): Promise<number> {
  await writeConfigs(dir, variant, LAYERS, VOCAB, bits);
  const f16 = (name: string, shape: number[], data: Uint8Array): NamedTensor => ({
    name,
    dtype: "F16",
    shape,
    data,
  });
  // fp16 tensors are windows into one random pool.
  const pool = randomF16(H * I + 4096, 0.02);
  const win = (n: number, off: number) => bytesOf(pool.subarray(off % 4096, (off % 4096) + n));
  const ones = bytesOf(new Uint16Array(H).fill(0x3c00));
  const packed = new Map<string, PackedShape>();
  async function* tensors(): AsyncGenerator<NamedTensor> {
    yield f16("model.embed_tokens.weight", [VOCAB, H], win(VOCAB * H, 0));
    for (let l = 0; l < LAYERS; l++) {
      const p = `model.layers.${l}`;
      yield f16(`${p}.input_layernorm.weight`, [H], ones);
      yield f16(`${p}.post_attention_layernorm.weight`, [H], ones);
      for (const [m, N, K] of LINEARS) {
        if (variant === "fp16") {
          yield f16(`${p}.${m}.weight`, [N, K], win(N * K, 7 * l + m.length));
          continue;
        }
        const key = `${N}x${K}`;
        let s = packed.get(key);
        if (!s) packed.set(key, s = packShape(N, K, bits));
        const G = K / GROUP;
        const gIdx = variant === "gptq-act" ? actOrderGIdx(K) : gIdxForGroups(K, GROUP);
        yield {
          name: `${p}.${m}.qweight`,
          dtype: "I32",
          shape: [(K * bits) / 32, N],
          data: s.qweight,
        };
        yield {
          name: `${p}.${m}.qzeros`,
          dtype: "I32",
          shape: [G, (N * bits) / 32],
          data: s.qzeros,
        };
        yield f16(`${p}.${m}.scales`, [G, N], s.scales);
        yield { name: `${p}.${m}.g_idx`, dtype: "I32", shape: [K], data: bytesOf(gIdx) };
      }
    }
    yield f16("model.norm.weight", [H], ones);
    yield f16("lm_head.weight", [VOCAB, H], win(VOCAB * H, 97));
  }
  const path = `${dir}/model.safetensors`;
  await writeSafetensors(path, tensors(), { format: "pt" });
  return (await Deno.stat(path)).size;
}
