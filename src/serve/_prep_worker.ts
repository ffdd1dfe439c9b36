// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The prompt preparation Worker: loads the tokenizer and compiles the chat
 * template once, then renders and tokenizes prompts off the server's event
 * loop. The server terminates it when a job runs past its time or memory
 * budget (a hostile template) and starts a fresh one.
 *
 * Messages in: `{type: "init", tokenizerDir, ids, template}`, then
 * `{type: "prep", id, req}`. Out: `{type: "ready", maxTokenBytes}` or
 * `{type: "init-error", message}`, then `{type: "done", id, result}`.
 *
 * @module
 */

import { TextTokenizer } from "../io/tokenizer.ts";
import { type ChatTemplate, createChatTemplate } from "./chat_template.ts";
import { maxTokenBytes, preparePrompt, type PrepRequest } from "./_prompt_prep.ts";

/** The first message. */
export interface PrepInit {
  type: "init";
  tokenizerDir: string;
  ids: { bosTokenId?: number | null; eosTokenIds?: number[] };
  template: { text: string; source: string; bosToken: string; eosToken: string } | null;
}

// deno-lint-ignore no-explicit-any
const scope = self as any;
let tok: TextTokenizer | null = null;
let template: ChatTemplate | null = null;

scope.onmessage = async (
  e: MessageEvent<PrepInit | { type: "prep"; id: number; req: PrepRequest }>,
) => {
  const m = e.data;
  if (m.type === "init") {
    try {
      tok = await TextTokenizer.fromFolder(m.tokenizerDir, {
        ...(m.ids.bosTokenId != null ? { bosTokenId: m.ids.bosTokenId } : {}),
        ...(m.ids.eosTokenIds ? { eosTokenIds: m.ids.eosTokenIds } : {}),
      });
      template = m.template ? createChatTemplate(m.template.text, m.template) : null;
      scope.postMessage({ type: "ready", maxTokenBytes: maxTokenBytes(tok) });
    } catch (err) {
      scope.postMessage({ type: "init-error", message: (err as Error).message });
    }
    return;
  }
  scope.postMessage({ type: "done", id: m.id, result: preparePrompt(tok!, template, m.req) });
};
