// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The supervisor of the prompt preparation Worker, itself a Worker: it
 * starts the preparation Worker (`_prep_worker.ts`), runs jobs on it one at
 * a time under a time and a memory budget, terminates it when a job runs
 * past either budget, and starts the
 * replacement ahead of the next job. Starting a Worker blocks the thread
 * that starts it for tens of milliseconds (more on a busy machine), which is
 * why this is not done on the server's event loop.
 *
 * The memory budget is growth of the process's resident memory while a job
 * runs, sampled every 20 ms here. (Not a V8 heap limit on the Worker,
 * `resourceLimits`: one allocation larger than what is left under such a
 * limit aborts the whole process, "Fatal JavaScript out of memory", as a
 * template doubling a string 28 times did with a 64 MiB budget.)
 *
 * Messages in: `{type: "start", init, budget}`, then `{type: "prep", id,
 * req}` and `{type: "close"}`. Out: `{type: "ready", maxTokenBytes}` or
 * `{type: "init-error", message}`, then `{type: "done", id, result,
 * terminated}` per job.
 *
 * @module
 */

import { Worker as NodeWorker } from "node:worker_threads";
import type { PrepInit } from "./_prep_worker.ts";
import type { PrepRequest, PrepResult } from "./_prompt_prep.ts";
import { lowerThreadPriority } from "./_nice.ts";

/** Budgets of one preparation (template rendering plus tokenization). */
export interface PrepBudget {
  /** Wall-clock budget in milliseconds. */
  timeoutMs: number;
  /** Largest growth of the process's resident memory while a job runs, in bytes. */
  memoryBytes: number;
}

/** Messages to the supervisor. */
export type SupervisorIn =
  | { type: "start"; init: PrepInit; budget: PrepBudget }
  | { type: "prep"; id: number; req: PrepRequest }
  | { type: "close" };

/** Messages from the supervisor. */
export type SupervisorOut =
  | { type: "ready"; maxTokenBytes: number }
  | { type: "init-error"; message: string }
  | { type: "done"; id: number; result: PrepResult; terminated: boolean };

type WorkerReply =
  | { type: "ready"; maxTokenBytes: number }
  | { type: "init-error"; message: string }
  | { type: "done"; id: number; result: PrepResult };

interface Live {
  worker: NodeWorker;
  maxTokenBytes: number;
  onDone: ((id: number, r: PrepResult) => void) | null;
  onEnd: ((e: Error) => void) | null;
}

const MIB = 2 ** 20;
const WARM_UP = -1;
const RSS_POLL_MS = 20;
const PREP_NICE = 10;
const WORKER_URL = new URL("./_prep_worker.ts", import.meta.url);
// deno-lint-ignore no-explicit-any
const scope = self as any;
const post = (m: SupervisorOut) => scope.postMessage(m);
let init: PrepInit;
let budget: PrepBudget;
let next: Promise<Live> | null = null;
let chain: Promise<void> = Promise.resolve();

function spawn(): Promise<Live> {
  const worker = new NodeWorker(WORKER_URL, { workerData: init });
  return new Promise((resolve, reject) => {
    const live: Live = { worker, maxTokenBytes: 0, onDone: null, onEnd: null };
    worker.on("message", (m: WorkerReply) => {
      if (m.type === "ready") {
        live.maxTokenBytes = m.maxTokenBytes;
        // The first message to a Worker started from a Worker arrives ~500 ms late (Deno
        // 2.9): send it now, and hand the Worker out once it has answered.
        worker.postMessage({ type: "prep", id: WARM_UP, req: { kind: "completion", prompt: "" } });
      } else if (m.type === "init-error") {
        worker.terminate();
        reject(new Error(m.message));
      } else if (m.id === WARM_UP) resolve(live);
      else live.onDone?.(m.id, m.result);
    });
    worker.on("error", (e: Error) => {
      reject(e);
      live.onEnd?.(e);
    });
    worker.on("exit", (code: number) => {
      const e = new Error(`the preparation Worker exited (code ${code})`);
      reject(e);
      live.onEnd?.(e);
    });
  });
}

/** Terminates a Worker and starts its replacement. */
function replace(live: Live): void {
  live.onEnd = null;
  live.worker.terminate();
  next = spawn();
  next.catch(() => {}); // reported by the job that uses it
}

function exceeded(what: string): PrepResult {
  return {
    ok: false,
    status: 400,
    code: "prompt_budget_exceeded",
    message: `rendering the chat template and tokenizing the prompt ${what}: the template ` +
      "(or the prompt) is too expensive for this server",
  };
}

async function run(id: number, req: PrepRequest): Promise<void> {
  let live: Live;
  try {
    live = await next!;
  } catch (e) {
    next = spawn();
    next.catch(() => {});
    const message = `the preparation Worker failed to start: ${(e as Error).message}`;
    post({
      type: "done",
      id,
      result: { ok: false, status: 500, code: "server_error", message },
      terminated: false,
    });
    return;
  }
  const base = Deno.memoryUsage().rss;
  const done = await new Promise<{ result: PrepResult; terminated: boolean }>((resolve) => {
    const finish = (result: PrepResult, terminated: boolean) => {
      clearTimeout(timer);
      clearInterval(poll);
      live.onDone = null;
      if (terminated) replace(live);
      resolve({ result, terminated });
    };
    const timer = setTimeout(
      () => finish(exceeded(`took more than ${budget.timeoutMs} ms`), true),
      budget.timeoutMs,
    );
    const poll = setInterval(() => {
      if (Deno.memoryUsage().rss - base > budget.memoryBytes) {
        finish(
          exceeded(`used more than ${Math.round(budget.memoryBytes / MIB)} MiB of memory`),
          true,
        );
      }
    }, RSS_POLL_MS);
    live.onDone = (rid, result) => rid === id && finish(result, false);
    live.onEnd = (e) =>
      finish({ ok: false, status: 500, code: "server_error", message: e.message }, true);
    live.worker.postMessage({ type: "prep", id, req });
  });
  post({ type: "done", id, ...done });
}

async function start(m: Extract<SupervisorIn, { type: "start" }>): Promise<void> {
  // Hostile templates burn CPU until their budget ends: well below the HTTP loop (the
  // preparation Workers inherit it).
  lowerThreadPriority(PREP_NICE);
  init = m.init;
  budget = m.budget;
  try {
    next = spawn();
    post({ type: "ready", maxTokenBytes: (await next).maxTokenBytes });
  } catch (e) {
    post({ type: "init-error", message: (e as Error).message });
  }
}

scope.onmessage = (e: MessageEvent<SupervisorIn>) => {
  const m = e.data;
  if (m.type === "start") chain = chain.then(() => start(m));
  else if (m.type === "prep") chain = chain.then(() => run(m.id, m.req));
  else {
    chain.then(async () => {
      const live = await next?.catch(() => null);
      if (live) {
        live.onEnd = null;
        await live.worker.terminate();
      }
      scope.close();
    });
  }
};
