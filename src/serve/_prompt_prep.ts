// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Turning a request's prompt into token ids (chat template, then tokenizer),
 * and the bound that lets the server refuse a prompt that cannot fit the
 * context before tokenizing it. Used by the preparation Worker
 * (`_prep_worker.ts`) and, when there is no Worker, inline.
 *
 * @module
 */

import type { TextTokenizer } from "../io/tokenizer.ts";
import type { ChatTemplate, TemplateMessage } from "./chat_template.ts";
import { GptqError } from "../errors.ts";

/** What to prepare. */
export type PrepRequest =
  | { kind: "chat"; messages: TemplateMessage[] }
  | { kind: "completion"; prompt: string };

/** The outcome: ids, or an error for the client (400) or the server (500). */
export type PrepResult =
  | { ok: true; ids: number[] }
  | { ok: false; status: 400 | 500; code: string; message: string };

/** Slack added to the longest token's decoded length (decoders drop a leading space, …). */
const SLACK_BYTES = 4;

/**
 * The most input bytes one token can stand for, bounded from above by the
 * longest decoded token (UTF-8 bytes) plus a little slack: a text of `B`
 * bytes is at least `B / maxTokenBytes` tokens, so a prompt whose bytes
 * exceed `maxPrompt × maxTokenBytes` cannot fit and is refused before
 * tokenizing.
 *
 * @param tok The tokenizer.
 * @returns Bytes per token, an upper bound.
 */
export function maxTokenBytes(tok: TextTokenizer): number {
  const enc = new TextEncoder();
  let max = 1;
  for (let id = 0; id < tok.vocabSize; id++) {
    let s: string;
    try {
      s = tok.decode([id], { skipSpecialTokens: false });
    } catch {
      continue; // a hole in the id space
    }
    const n = s.length * 3 <= max ? 0 : enc.encode(s).length;
    if (n > max) max = n;
  }
  return max + SLACK_BYTES;
}

/**
 * Renders (chat) and tokenizes a prompt.
 *
 * @param tok The tokenizer.
 * @param template The chat template (chat requests only).
 * @param req What to prepare.
 * @returns The ids, or an error.
 */
export function preparePrompt(
  tok: TextTokenizer,
  template: ChatTemplate | null,
  req: PrepRequest,
): PrepResult {
  try {
    if (req.kind === "completion") return { ok: true, ids: tok.encode(req.prompt) };
    if (!template) {
      return { ok: false, status: 500, code: "no_chat_template", message: "no chat template" };
    }
    const text = template.render(req.messages, { addGenerationPrompt: true });
    // The template writes the special tokens itself, as apply_chat_template does.
    return { ok: true, ids: tok.encode(text, { addSpecialTokens: false }) };
  } catch (e) {
    if (e instanceof GptqError) {
      return { ok: false, status: 400, code: "invalid_messages", message: e.reason };
    }
    return { ok: false, status: 500, code: "server_error", message: (e as Error).message };
  }
}
