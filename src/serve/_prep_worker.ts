// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The prompt preparation Worker (`node:worker_threads`, started by
 * `_prep_supervisor.ts`): loads the tokenizer and compiles the chat template
 * once, then renders and tokenizes prompts. The supervisor terminates it when
 * a job runs past its time or memory budget (a hostile template); a fresh one
 * replaces it.
 *
 * `workerData` is a {@linkcode PrepInit}. Messages out: `{type: "ready",
 * maxTokenBytes}` or `{type: "init-error", message}`; then, for
 * each `{type: "prep", id, req}` in, `{type: "done", id, result}`.
 *
 * @module
 */

import { parentPort, workerData } from "node:worker_threads";
import { TextTokenizer } from "../io/tokenizer.ts";
import { type ChatTemplate, createChatTemplate } from "./chat_template.ts";
import { maxTokenBytes, preparePrompt, type PrepRequest } from "./_prompt_prep.ts";

/** What the Worker loads. */
export interface PrepInit {
  type: "init";
  tokenizerDir: string;
  ids: { bosTokenId?: number | null; eosTokenIds?: number[] };
  template: { text: string; source: string; bosToken: string; eosToken: string } | null;
}

const init = workerData as PrepInit;
const port = parentPort!;
let loaded: { tok: TextTokenizer; template: ChatTemplate | null } | null = null;
// Listening before the first await: a listener added later got its first message ~500 ms late.
port.on("message", (m: { type: "prep"; id: number; req: PrepRequest }) => {
  const { tok, template } = loaded!;
  port.postMessage({ type: "done", id: m.id, result: preparePrompt(tok, template, m.req) });
});
try {
  const tok = await TextTokenizer.fromFolder(init.tokenizerDir, {
    ...(init.ids.bosTokenId != null ? { bosTokenId: init.ids.bosTokenId } : {}),
    ...(init.ids.eosTokenIds ? { eosTokenIds: init.ids.eosTokenIds } : {}),
  });
  const template = init.template ? createChatTemplate(init.template.text, init.template) : null;
  loaded = { tok, template };
  port.postMessage({ type: "ready", maxTokenBytes: maxTokenBytes(tok) });
} catch (err) {
  port.postMessage({ type: "init-error", message: (err as Error).message });
}
