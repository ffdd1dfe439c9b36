// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The server's side of prompt preparation: templates are rendered and
 * prompts tokenized in a Worker run by a supervisor Worker
 * (`_prep_supervisor.ts`), each job under a time and a memory budget; a
 * job past either answers 400 and its Worker is replaced. The event loop
 * that answers `/health` never renders a template, tokenizes a prompt or
 * starts a Worker (which blocks the starting thread): it only posts
 * messages, apart from starting the supervisor once.
 *
 * @module
 */

import type { PrepInit } from "./_prep_worker.ts";
import type { PrepRequest, PrepResult } from "./_prompt_prep.ts";
import type { PrepBudget, SupervisorIn, SupervisorOut } from "./_prep_supervisor.ts";

export type { PrepBudget };

/** Renders and tokenizes prompts in Workers, under a budget. */
export class PromptPreparer {
  /** Upper bound of input bytes per token (see `maxTokenBytes`). */
  readonly maxTokenBytes: number;
  readonly #sup: Worker;
  readonly #pending = new Map<number, (r: PrepResult) => void>();
  #nextId = 0;
  #dead: string | null = null;
  /** Workers terminated for exceeding a budget (for tests and logs). */
  terminated = 0;

  private constructor(sup: Worker, maxTokenBytes: number) {
    this.#sup = sup;
    this.maxTokenBytes = maxTokenBytes;
    sup.onmessage = (e: MessageEvent<SupervisorOut>) => {
      const m = e.data;
      if (m.type !== "done") return;
      if (m.terminated) this.terminated++;
      this.#pending.get(m.id)?.(m.result);
      this.#pending.delete(m.id);
    };
    sup.onerror = (e) => {
      e.preventDefault();
      this.#fail(`the prompt supervisor failed: ${e.message}`);
    };
  }

  /**
   * Starts the supervisor and waits until its Worker has loaded the tokenizer and template.
   *
   * @param init The tokenizer folder, special ids and template.
   * @param budget Time and memory per job.
   * @returns The preparer.
   */
  static start(init: PrepInit, budget: PrepBudget): Promise<PromptPreparer> {
    const sup = new Worker(new URL("./_prep_supervisor.ts", import.meta.url), { type: "module" });
    return new Promise((resolve, reject) => {
      sup.onmessage = (e: MessageEvent<SupervisorOut>) => {
        const m = e.data;
        if (m.type === "ready") resolve(new PromptPreparer(sup, m.maxTokenBytes));
        else if (m.type === "init-error") {
          sup.terminate();
          reject(new Error(`prompt worker: ${m.message}`));
        }
      };
      sup.onerror = (e) => {
        e.preventDefault();
        sup.terminate();
        reject(new Error(`prompt worker: ${e.message}`));
      };
      sup.postMessage({ type: "start", init, budget } satisfies SupervisorIn);
    });
  }

  #fail(message: string): void {
    this.#dead = message;
    for (const resolve of this.#pending.values()) {
      resolve({ ok: false, status: 500, code: "server_error", message });
    }
    this.#pending.clear();
    this.#sup.terminate();
  }

  /**
   * Renders and tokenizes one prompt, after the jobs before it.
   *
   * @param req The prompt.
   * @returns The ids, or an error (400 when a budget was exceeded).
   */
  prepare(req: PrepRequest): Promise<PrepResult> {
    if (this.#dead) {
      return Promise.resolve({ ok: false, status: 500, code: "server_error", message: this.#dead });
    }
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.#sup.postMessage({ type: "prep", id, req } satisfies SupervisorIn);
    });
  }

  /** Stops the Workers (pending jobs answer 500). */
  close(): void {
    if (this.#dead) return;
    this.#sup.postMessage({ type: "close" } satisfies SupervisorIn);
    const sup = this.#sup;
    Deno.unrefTimer(setTimeout(() => sup.terminate(), 2000));
    this.#dead = "the server is shutting down";
  }
}
