// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The child process of `tests/model_folder_fuzz_test.ts`: runs each model
 * folder named on stdin (one path a line) through `inspectPath`, `loadModel`
 * and a 3-token greedy `generate`, and prints one JSON line before
 * (`{"start": i}`) and after (`{"done": i, ...}`) each case so that the
 * supervising test knows which case was running when it had to kill the
 * process (time or memory limit).
 *
 * Usage: `deno run -A tests/_fuzz_driver.ts < paths.txt`
 *
 * @module
 */

import { GptqError } from "../src/errors.ts";
import { inspectPath } from "../src/inspect.ts";
import { loadModel } from "../src/load_model.ts";

/** What one stage of one case ended with. */
type Outcome = { kind: "ok" } | { kind: "typed"; code: string; message: string } | {
  kind: "untyped";
  message: string;
};

function classify(e: unknown): Outcome {
  if (e instanceof GptqError && !/[\r\n]/.test(e.message)) {
    return { kind: "typed", code: e.code, message: e.message };
  }
  const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return { kind: "untyped", message: msg.slice(0, 2000) };
}

async function runCase(dir: string): Promise<Outcome[]> {
  const out: Outcome[] = [];
  try {
    await inspectPath(dir);
    out.push({ kind: "ok" });
  } catch (e) {
    out.push(classify(e));
  }
  try {
    const model = await loadModel(dir, { backend: "wasm", threads: 1, onWarning: () => {} });
    try {
      for await (const _ of model.generate("Once upon", { max_new_tokens: 3, temperature: 0 })) {
        // drain
      }
    } finally {
      model.close();
    }
    out.push({ kind: "ok" });
  } catch (e) {
    out.push(classify(e));
  }
  return out;
}

const lines = (await new Response(Deno.stdin.readable).text()).split("\n").filter((l) => l);
const enc = new TextEncoder();
const say = (o: unknown) => Deno.stdout.writeSync(enc.encode(JSON.stringify(o) + "\n"));
for (const [i, dir] of lines.entries()) {
  say({ start: i });
  say({ done: i, stages: await runCase(dir) });
}
