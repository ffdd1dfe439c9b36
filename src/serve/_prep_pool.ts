// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The server's side of the prompt preparation Worker (`_prep_worker.ts`):
 * jobs run one at a time in arrival order, each with a time budget and a
 * memory budget (growth of the process's resident memory while it runs,
 * sampled every 20 ms). A job past either budget has its Worker terminated
 * and answers 400; the next job gets a fresh Worker. The event loop that
 * answers `/health` never renders a template or tokenizes a prompt.
 *
 * @module
 */

import type { PrepInit } from "./_prep_worker.ts";
import type { PrepRequest, PrepResult } from "./_prompt_prep.ts";

/** Budgets of one preparation (template rendering plus tokenization). */
export interface PrepBudget {
  /** Wall-clock budget in milliseconds. */
  timeoutMs: number;
  /** Largest growth of the process's resident memory while it runs, in bytes. */
  memoryBytes: number;
}

type Reply =
  | { type: "ready"; maxTokenBytes: number }
  | { type: "init-error"; message: string }
  | { type: "done"; id: number; result: PrepResult };

const RSS_POLL_MS = 20;

/** A Worker that renders and tokenizes prompts under a budget. */
export class PromptPreparer {
  /** Upper bound of input bytes per token (see `maxTokenBytes`). */
  readonly maxTokenBytes: number;
  readonly #init: PrepInit;
  readonly #budget: PrepBudget;
  #worker: Worker | null;
  #spawning: Promise<Worker> | null = null;
  #tail: Promise<unknown> = Promise.resolve();
  #nextId = 0;
  #onReply: ((r: Reply) => void) | null = null;
  #closed = false;
  /** Workers terminated for exceeding a budget (for tests and logs). */
  terminated = 0;

  private constructor(init: PrepInit, budget: PrepBudget, worker: Worker, maxBytes: number) {
    this.#init = init;
    this.#budget = budget;
    this.#worker = worker;
    this.maxTokenBytes = maxBytes;
    this.#listen(worker);
  }

  /**
   * Starts the Worker and waits until it has loaded the tokenizer and template.
   *
   * @param init The tokenizer folder, special ids and template.
   * @param budget Time and memory per job.
   * @returns The preparer.
   */
  static async start(init: PrepInit, budget: PrepBudget): Promise<PromptPreparer> {
    const { worker, maxTokenBytes } = await PromptPreparer.#spawn(init);
    return new PromptPreparer(init, budget, worker, maxTokenBytes);
  }

  static #spawn(init: PrepInit): Promise<{ worker: Worker; maxTokenBytes: number }> {
    const worker = new Worker(new URL("./_prep_worker.ts", import.meta.url), { type: "module" });
    return new Promise((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<Reply>) => {
        const r = e.data;
        if (r.type === "ready") resolve({ worker, maxTokenBytes: r.maxTokenBytes });
        else if (r.type === "init-error") {
          worker.terminate();
          reject(new Error(`prompt worker: ${r.message}`));
        }
      };
      worker.onerror = (e) => {
        e.preventDefault();
        worker.terminate();
        reject(new Error(`prompt worker: ${e.message}`));
      };
      worker.postMessage(init);
    });
  }

  #listen(worker: Worker): void {
    worker.onmessage = (e: MessageEvent<Reply>) => this.#onReply?.(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      this.#onReply?.({
        type: "done",
        id: -1,
        result: { ok: false, status: 500, code: "server_error", message: e.message },
      });
      this.#kill();
    };
  }

  #kill(): void {
    this.#worker?.terminate();
    this.#worker = null;
  }

  #ensureWorker(): Promise<Worker> {
    if (this.#worker) return Promise.resolve(this.#worker);
    this.#spawning ??= PromptPreparer.#spawn(this.#init).then(({ worker }) => {
      if (this.#closed) {
        worker.terminate();
        throw new Error("the server is shutting down");
      }
      this.#worker = worker;
      this.#listen(worker);
      return worker;
    }).finally(() => (this.#spawning = null));
    return this.#spawning;
  }

  /**
   * Renders and tokenizes one prompt, after the jobs before it.
   *
   * @param req The prompt.
   * @returns The ids, or an error (400 when a budget was exceeded).
   */
  prepare(req: PrepRequest): Promise<PrepResult> {
    const job = this.#tail.then(() => this.#run(req));
    this.#tail = job.catch(() => {});
    return job;
  }

  async #run(req: PrepRequest): Promise<PrepResult> {
    let worker: Worker;
    try {
      worker = await this.#ensureWorker();
    } catch (e) {
      return { ok: false, status: 500, code: "server_error", message: (e as Error).message };
    }
    const id = this.#nextId++;
    const { timeoutMs, memoryBytes } = this.#budget;
    const base = Deno.memoryUsage().rss;
    return await new Promise<PrepResult>((resolve) => {
      const finish = (r: PrepResult) => {
        clearTimeout(timer);
        clearInterval(poll);
        this.#onReply = null;
        resolve(r);
      };
      const exceeded = (what: string) => {
        this.#kill();
        this.terminated++;
        // Start the replacement now, so the next request does not wait for it.
        this.#ensureWorker().catch(() => {});
        finish({
          ok: false,
          status: 400,
          code: "prompt_budget_exceeded",
          message: `rendering the chat template and tokenizing the prompt ${what}: the ` +
            "template (or the prompt) is too expensive for this server",
        });
      };
      this.#onReply = (r) => {
        if (r.type === "done" && (r.id === id || r.id === -1)) finish(r.result);
      };
      const timer = setTimeout(() => exceeded(`took more than ${timeoutMs} ms`), timeoutMs);
      const poll = setInterval(() => {
        const grown = Deno.memoryUsage().rss - base;
        if (grown > memoryBytes) {
          exceeded(`used more than ${Math.round(memoryBytes / 2 ** 20)} MiB of memory`);
        }
      }, RSS_POLL_MS);
      worker.postMessage({ type: "prep", id, req });
    });
  }

  /** Terminates the Worker. */
  close(): void {
    this.#closed = true;
    this.#kill();
  }
}
