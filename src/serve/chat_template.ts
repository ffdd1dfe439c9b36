// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Chat templates: the Jinja template a model folder ships (in
 * `tokenizer_config.json` as a string or a list of named templates, or in
 * `chat_template.jinja` / `chat_template.json` as newer transformers save it),
 * rendered with `@huggingface/jinja` exactly as `apply_chat_template` does,
 * with `messages`, `bos_token`, `eos_token` and `add_generation_prompt`.
 *
 * @module
 */

import { Template } from "npm:@huggingface/jinja@0.5.11";
import { fsError, GptqError } from "../errors.ts";

/** A message as the template sees it. */
export interface TemplateMessage {
  /** The speaker. */
  role: string;
  /** The text. */
  content: string;
  /** Any other fields. */
  [extra: string]: unknown;
}

/** Options of {@linkcode ChatTemplate.render}. */
export interface RenderOptions {
  /** End with the assistant turn's opening. Default true. */
  addGenerationPrompt?: boolean;
}

/** A parsed chat template with the special tokens it refers to. */
export interface ChatTemplate {
  /** Where the template came from (for messages). */
  readonly source: string;
  /** The template text. */
  readonly text: string;
  /** `bos_token` as the template sees it ("" when the model has none). */
  readonly bosToken: string;
  /** `eos_token` as the template sees it. */
  readonly eosToken: string;
  /**
   * Renders a conversation.
   *
   * @param messages The conversation.
   * @param opts Whether to add the generation prompt.
   * @returns The prompt text (tokenize it without adding special tokens).
   * @throws {GptqError} `INVALID_ARGUMENT` when the template rejects the conversation
   *   (`raise_exception`, e.g. roles that do not alternate).
   */
  render(messages: TemplateMessage[], opts?: RenderOptions): string;
}

type Json = Record<string, unknown>;

function obj(v: unknown): Json | null {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? v as Json : null;
}

function tokenContent(v: unknown): string {
  if (typeof v === "string") return v;
  const o = obj(v);
  return o && typeof o["content"] === "string" ? o["content"] : "";
}

/**
 * Picks the template text out of a `chat_template` value: a string, or a
 * list of `{name, template}` (the one named `default`, else the only one).
 *
 * @example
 * ```ts
 * import { selectTemplate } from "./chat_template.ts";
 * console.log(selectTemplate([{ name: "default", template: "A" }, { name: "tool_use", template: "B" }], "x")); // A
 * ```
 *
 * @param value The `chat_template` field.
 * @param file The file it came from (for messages).
 * @param name Which named template to use (default `default`).
 * @returns The template text, or null when the value is absent.
 */
export function selectTemplate(value: unknown, file: string, name = "default"): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = new Map<string, string>();
    for (const t of value) {
      const o = obj(t);
      if (!o || typeof o["name"] !== "string" || typeof o["template"] !== "string") {
        throw new GptqError("TOKENIZER", "chat_template list entries must be {name, template}", {
          file,
          hint: "fix the chat_template field or pass --chat-template FILE",
        });
      }
      named.set(o["name"], o["template"]);
    }
    const t = named.get(name) ?? (named.size === 1 ? [...named.values()][0]! : undefined);
    if (t === undefined) {
      throw new GptqError(
        "TOKENIZER",
        `chat_template has no template named '${name}' (has: ${[...named.keys()].join(", ")})`,
        { file, hint: "pass --chat-template FILE to choose one" },
      );
    }
    return t;
  }
  throw new GptqError("TOKENIZER", "chat_template must be a string or a list of named templates", {
    file,
    hint: "fix the chat_template field or pass --chat-template FILE",
  });
}

/**
 * Compiles a template.
 *
 * @example ChatML
 * ```ts
 * import { createChatTemplate } from "./chat_template.ts";
 * const t = createChatTemplate(
 *   "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" +
 *     "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
 *   { source: "inline" },
 * );
 * console.log(JSON.stringify(t.render([{ role: "user", content: "Hi" }])));
 * // "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
 * ```
 *
 * @param text The Jinja source.
 * @param opts Where it came from and the special tokens' text.
 * @returns The template.
 * @throws {GptqError} `TOKENIZER` when the template does not parse.
 */
export function createChatTemplate(
  text: string,
  opts: { source: string; bosToken?: string; eosToken?: string },
): ChatTemplate {
  let tpl: Template;
  try {
    tpl = new Template(text);
  } catch (e) {
    throw new GptqError("TOKENIZER", `chat template does not parse (${(e as Error).message})`, {
      file: opts.source,
      hint: "fix the template or pass another with --chat-template FILE",
      cause: e,
    });
  }
  const bosToken = opts.bosToken ?? "";
  const eosToken = opts.eosToken ?? "";
  return {
    source: opts.source,
    text,
    bosToken,
    eosToken,
    render(messages, r = {}) {
      try {
        return tpl.render({
          messages,
          bos_token: bosToken,
          eos_token: eosToken,
          add_generation_prompt: r.addGenerationPrompt ?? true,
        });
      } catch (e) {
        throw new GptqError(
          "INVALID_ARGUMENT",
          `the model's chat template rejected the messages: ${(e as Error).message}`,
          { file: opts.source, cause: e },
        );
      }
    },
  };
}

async function readJson(file: string): Promise<Json | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw fsError(e, file);
  }
  try {
    return obj(JSON.parse(text)) ?? {};
  } catch (e) {
    throw new GptqError("TOKENIZER", `is not valid JSON (${(e as Error).message})`, {
      file,
      hint: "fix or re-download the file",
    });
  }
}

/**
 * Loads a model folder's chat template: `chat_template` in
 * `tokenizer_config.json`, else `chat_template.jinja`, else
 * `chat_template.json`. `bos_token`/`eos_token` come from
 * `tokenizer_config.json`.
 *
 * @example
 * ```ts ignore
 * import { loadChatTemplate } from "./chat_template.ts";
 * const t = await loadChatTemplate("./Qwen2-0.5B-Instruct-GPTQ");
 * console.log(t?.render([{ role: "user", content: "Hi" }]));
 * ```
 *
 * @param dir The model folder.
 * @param override A template file to use instead (`.jinja` text, or JSON with `chat_template`).
 * @returns The template, or null when the model has none.
 */
export async function loadChatTemplate(
  dir: string,
  override?: string,
): Promise<ChatTemplate | null> {
  const base = dir.replace(/\/+$/, "");
  const cfgFile = `${base}/tokenizer_config.json`;
  const cfg = await readJson(cfgFile) ?? {};
  const specials = {
    bosToken: tokenContent(cfg["bos_token"]),
    eosToken: tokenContent(cfg["eos_token"]),
  };
  if (override !== undefined) {
    let text: string;
    try {
      text = await Deno.readTextFile(override);
    } catch (e) {
      throw fsError(e, override);
    }
    if (override.endsWith(".json")) {
      const t = selectTemplate((await readJson(override))?.["chat_template"], override);
      if (t === null) {
        throw new GptqError("TOKENIZER", "has no chat_template field", {
          file: override,
          hint: "pass a .jinja file or a JSON file with a chat_template field",
        });
      }
      text = t;
    }
    return createChatTemplate(text, { source: override, ...specials });
  }
  const fromCfg = selectTemplate(cfg["chat_template"], cfgFile);
  if (fromCfg !== null) return createChatTemplate(fromCfg, { source: cfgFile, ...specials });
  const jinja = `${base}/chat_template.jinja`;
  try {
    return createChatTemplate(await Deno.readTextFile(jinja), { source: jinja, ...specials });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e instanceof GptqError ? e : fsError(e, jinja);
  }
  const jsonFile = `${base}/chat_template.json`;
  const t = selectTemplate((await readJson(jsonFile))?.["chat_template"], jsonFile);
  return t === null ? null : createChatTemplate(t, { source: jsonFile, ...specials });
}
