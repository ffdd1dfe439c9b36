// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The `config.json` of a Llama-7B-shaped model (hidden 4096, intermediate
 * 11008, 32 heads) with a chosen depth and vocabulary, shared by the
 * benchmarks that build random-weight models.
 *
 * @module
 */

/** Llama-7B widths. */
export const LLAMA7B = { hidden: 4096, intermediate: 11008, heads: 32 } as const;

/**
 * A Llama `config.json` object with Llama-7B widths.
 *
 * @param layers Decoder blocks.
 * @param vocab Vocabulary size.
 * @returns The config, ready for `JSON.stringify`.
 */
export function llama7bConfig(layers: number, vocab: number): Record<string, unknown> {
  const { hidden, intermediate, heads } = LLAMA7B;
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_attention_heads: heads,
    num_key_value_heads: heads,
    head_dim: hidden / heads,
    num_hidden_layers: layers,
    vocab_size: vocab,
    max_position_embeddings: 2048,
    hidden_act: "silu",
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    bos_token_id: 1,
    eos_token_id: 2,
    tie_word_embeddings: false,
    attention_bias: false,
    mlp_bias: false,
    dtype: "float16",
  };
}
