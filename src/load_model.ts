// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The high-level typed API: load a model folder or a Hugging Face Hub model
 * id (plain or GPTQ) with the best available backend, then generate text or
 * measure perplexity.
 *
 * @module
 */

import type { TextTokenizer } from "./io/tokenizer.ts";
import { resolveModel, type ResolveModelOptions } from "./io/hub.ts";
import { type BackendName, selectBackend } from "./backends/select.ts";
import { type GenerateOptions, type GenerateStats, generateText } from "./runtime/generate.ts";
import { CausalLM } from "./runtime/model.ts";
import type { ZeroFormat } from "./gptq/pack.ts";
import { perplexity, type PerplexityOptions, type PerplexityResult } from "./runtime/perplexity.ts";
import {
  type ChatTemplate,
  loadChatTemplate,
  type TemplateMessage,
} from "./serve/chat_template.ts";
import { GptqError } from "./errors.ts";

/**
 * Options of {@linkcode loadModel}. The Hub settings (`revision`, `endpoint`,
 * `cacheDir`, `offline`, `token`, `onProgress`, `onLog`) apply when the model
 * is given as a Hub id.
 */
export interface LoadOptions extends ResolveModelOptions {
  /**
   * `auto` (WebGPU on a real GPU adapter, else WASM SIMD, else TypeScript),
   * `webgpu`, `wasm` or `typescript`.
   */
  backend?: BackendName;
  /**
   * CPU (WASM) inference threads, 1..64 (default: every core,
   * `navigator.hardwareConcurrency`); outputs are bit-identical for any
   * count. GPU backends ignore it.
   */
  threads?: number;
  /**
   * CPU (WASM) activation precision of GPTQ linears: `"f32"` (exact,
   * default) or `"int8"` (activations quantized to int8 per 32 values with
   * integer dot products, like llama.cpp; faster, changes perplexity
   * slightly). GPU backends ignore it.
   */
  actQuant?: "f32" | "int8";
  /**
   * Forces the GPTQ zero-point convention (`gptq` = v1, `gptq_v2`) instead of
   * deciding from the config and the stored zeros.
   */
  zeroFormat?: ZeroFormat;
  /** Receives loading warnings (default: printed on stderr). */
  onWarning?: (message: string) => void;
}

/** A loaded model with its tokenizer. */
export interface Model {
  /** The underlying causal LM (forward pass, KV cache). */
  readonly lm: CausalLM;
  /** Its tokenizer. */
  readonly tokenizer: TextTokenizer;
  /** Which backend runs it, in words (e.g. `webgpu (NVIDIA H200)`). */
  readonly backend: string;
  /** Why it was chosen, one line (what the CLI prints on stderr). */
  readonly backendChoice: string;
  /**
   * Streams generated text pieces after a prompt.
   *
   * @param prompt The prompt.
   * @param opts Sampling (`temperature` 0 = greedy), `max_new_tokens`, `seed`.
   * @param stats Filled with token counts and timings.
   */
  generate(prompt: string, opts?: GenerateOptions, stats?: GenerateStats): AsyncGenerator<string>;
  /**
   * Streams the assistant's answer to a conversation, rendered with the
   * model's chat template (`tokenizer_config.json`, `chat_template.jinja` or
   * `.json`) as transformers' `apply_chat_template(..., add_generation_prompt=True)` does.
   *
   * @param messages The conversation (`{ role, content }`, e.g. system, user).
   * @param opts Sampling (`temperature` 0 = greedy), `max_new_tokens`, `seed`.
   * @param stats Filled with token counts and timings.
   * @throws {GptqError} `TOKENIZER` when the model has no chat template;
   *   `INVALID_ARGUMENT` when the template rejects the conversation.
   */
  chat(
    messages: TemplateMessage[],
    opts?: GenerateOptions,
    stats?: GenerateStats,
  ): AsyncGenerator<string>;
  /**
   * Perplexity of a text as the GPTQ paper computes it.
   *
   * @param text The text (joined as-is, tokenized once).
   * @param opts Window length (`seqlen`) and `maxSamples`.
   */
  perplexity(text: string, opts?: PerplexityOptions): Promise<PerplexityResult>;
  /** Frees the model. */
  close(): void;
}

/**
 * Loads a Hugging Face model folder (Llama/Mistral/Qwen2, OPT, GPT-2,
 * GPT-NeoX; plain or GPTQ-quantized), or a Hub model id (`owner/name`,
 * `owner/name@revision`) downloaded once into the Hugging Face cache (see
 * {@linkcode resolveModel}); a local path that exists always wins.
 *
 * @example Generate and evaluate
 * ```ts ignore
 * import { loadModel } from "./load_model.ts";
 * const model = await loadModel("./stories260K-hf");
 * for await (const piece of model.generate("Once upon a time", { temperature: 0, max_new_tokens: 50 })) {
 *   Deno.stdout.writeSync(new TextEncoder().encode(piece));
 * }
 * console.log((await model.perplexity(await Deno.readTextFile("valid.txt"), { seqlen: 512 })).ppl);
 * model.close();
 * ```
 *
 * @example Chat (with the model's chat template)
 * ```ts ignore
 * import { loadModel } from "./load_model.ts";
 * const model = await loadModel("./SmolLM2-135M-Instruct");
 * const messages = [{ role: "user", content: "What is the capital of France?" }];
 * for await (const piece of model.chat(messages, { temperature: 0, max_new_tokens: 40 })) {
 *   Deno.stdout.writeSync(new TextEncoder().encode(piece));
 * }
 * ```
 *
 * @example From the Hub
 * ```ts ignore
 * import { loadModel } from "./load_model.ts";
 * const model = await loadModel("HuggingFaceTB/SmolLM2-135M-Instruct", { revision: "main" });
 * ```
 *
 * @param dirOrId The model folder, or a Hub id.
 * @param opts Backend choice and Hub settings.
 * @returns The model.
 */
export async function loadModel(dirOrId: string, opts: LoadOptions = {}): Promise<Model> {
  const dir = await resolveModel(dirOrId, opts);
  const choice = await selectBackend(
    opts.backend ?? "auto",
    {
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
      ...(opts.actQuant !== undefined ? { actQuant: opts.actQuant } : {}),
    },
  );
  const lm = await CausalLM.load(dir, {
    backend: choice.backend,
    ...(opts.zeroFormat ? { zeroFormat: opts.zeroFormat } : {}),
    ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
  });
  const tokenizer = await lm.folder.tokenizer();
  let template: Promise<ChatTemplate | null> | undefined;
  async function* chat(
    messages: TemplateMessage[],
    g: GenerateOptions = {},
    stats?: GenerateStats,
  ) {
    const t = await (template ??= loadChatTemplate(dir));
    if (t === null) {
      throw new GptqError("TOKENIZER", "the model has no chat template", {
        file: `${dir}/tokenizer_config.json`,
        hint: "use generate() with a plain prompt, or add a chat_template to tokenizer_config.json",
      });
    }
    const text = t.render(messages, { addGenerationPrompt: true });
    // The template writes the special tokens itself, as apply_chat_template does.
    yield* generateText(
      lm,
      tokenizer,
      tokenizer.encode(text, { addSpecialTokens: false }),
      g,
      stats,
    );
  }
  return {
    lm,
    tokenizer,
    backend: `${choice.backend.name} (${choice.backend.device})`,
    backendChoice: choice.description,
    generate: (prompt, g = {}, stats) => generateText(lm, tokenizer, prompt, g, stats),
    chat,
    perplexity: (text, p = {}) =>
      perplexity(lm, tokenizer.encode(text, { addSpecialTokens: false }), p),
    close: () => lm.close(),
  };
}
