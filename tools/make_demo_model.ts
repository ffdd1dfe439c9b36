// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Writes the quick start's demo model: a tiny Llama (2 layers, hidden 64)
 * with seeded random weights and a byte-level tokenizer, so that the README's
 * first command runs end to end on a machine with no network and no data.
 * Its weights are random, so its text is gibberish: it demonstrates the
 * pipeline, not quality (use `convert llama2c` or any HF Llama for that).
 *
 * Usage: `deno run -A tools/make_demo_model.ts OUT_DIR [--force]`
 *
 * @module
 */

import { AtomicOutputDir } from "../src/io/atomic_dir.ts";
import { type NamedTensor, writeSafetensors } from "../src/io/safetensors_writer.ts";
import { fromFloat32 } from "../src/io/dtype.ts";
import { mulberry32 } from "../src/runtime/sample.ts";

/** Shape of the demo model. */
export const DEMO_CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 64,
  intermediate_size: 192,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  vocab_size: 257,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  hidden_act: "silu",
  tie_word_embeddings: false,
  bos_token_id: 256,
  eos_token_id: 256,
  torch_dtype: "float16",
};

function randn(n: number, std: number, rand: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rand(), 1e-12), v = rand();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** GPT-2's byte-to-unicode table, so every byte is one visible vocab entry. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const table: string[] = new Array(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i]!)));
  return table;
}

/**
 * Builds the demo model's tensors (f16) in HF Llama naming.
 *
 * @param seed PRNG seed.
 * @returns The tensors.
 */
export function demoTensors(seed = 0): NamedTensor[] {
  const c = DEMO_CONFIG;
  const rand = mulberry32(seed);
  const h = c.hidden_size, f = c.intermediate_size, hd = c.head_dim;
  const kv = c.num_key_value_heads * hd, q = c.num_attention_heads * hd;
  const t = (name: string, shape: number[], std: number, ones = false): NamedTensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = ones ? new Float32Array(n).fill(1) : randn(n, std, rand);
    return { name, dtype: "F16", shape, data: fromFloat32(v, "F16") };
  };
  const out: NamedTensor[] = [t("model.embed_tokens.weight", [c.vocab_size, h], 0.5)];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    out.push(
      t(`${p}.input_layernorm.weight`, [h], 0, true),
      t(`${p}.self_attn.q_proj.weight`, [q, h], 0.1),
      t(`${p}.self_attn.k_proj.weight`, [kv, h], 0.1),
      t(`${p}.self_attn.v_proj.weight`, [kv, h], 0.1),
      t(`${p}.self_attn.o_proj.weight`, [h, q], 0.1),
      t(`${p}.post_attention_layernorm.weight`, [h], 0, true),
      t(`${p}.mlp.gate_proj.weight`, [f, h], 0.1),
      t(`${p}.mlp.up_proj.weight`, [f, h], 0.1),
      t(`${p}.mlp.down_proj.weight`, [h, f], 0.1),
    );
  }
  out.push(t("model.norm.weight", [h], 0, true), t("lm_head.weight", [c.vocab_size, h], 0.05));
  return out;
}

/**
 * A byte-level BPE tokenizer.json with no merges: each byte is one token,
 * plus `<|endoftext|>` (id 256) as BOS/EOS.
 *
 * @returns The tokenizer.json object.
 */
export function demoTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  bytesToUnicode().forEach((ch, i) => (vocab[ch] = i));
  vocab["<|endoftext|>"] = 256;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [{
      id: 256,
      content: "<|endoftext|>",
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    }],
    normalizer: null,
    pre_tokenizer: {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: true,
      use_regex: true,
    },
    post_processor: {
      type: "ByteLevel",
      add_prefix_space: true,
      trim_offsets: false,
      use_regex: true,
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/**
 * Writes the demo model folder atomically.
 *
 * @param outDir Where to write it.
 * @param force Replace an existing folder.
 */
export async function writeDemoModel(outDir: string, force = false): Promise<void> {
  const dir = await AtomicOutputDir.create(outDir, { force });
  try {
    await writeSafetensors(dir.path("model.safetensors"), demoTensors(0), { format: "pt" });
    const json = (o: unknown) => JSON.stringify(o, null, 2) + "\n";
    await Deno.writeTextFile(dir.path("config.json"), json(DEMO_CONFIG));
    await Deno.writeTextFile(dir.path("tokenizer.json"), json(demoTokenizerJson()));
    await Deno.writeTextFile(
      dir.path("tokenizer_config.json"),
      json({
        tokenizer_class: "PreTrainedTokenizerFast",
        bos_token: "<|endoftext|>",
        eos_token: "<|endoftext|>",
        model_max_length: DEMO_CONFIG.max_position_embeddings,
        clean_up_tokenization_spaces: false,
      }),
    );
    await Deno.writeTextFile(
      dir.path("generation_config.json"),
      json({ bos_token_id: 256, eos_token_id: 256 }),
    );
    await dir.commit();
  } catch (e) {
    await dir.abort();
    throw e;
  }
}

if (import.meta.main) {
  const out = Deno.args.find((a) => !a.startsWith("--"));
  if (!out) {
    console.error("usage: deno run -A tools/make_demo_model.ts OUT_DIR [--force]");
    Deno.exit(2);
  }
  await writeDemoModel(out, Deno.args.includes("--force"));
  console.error(`wrote demo model to ${out}`);
}
