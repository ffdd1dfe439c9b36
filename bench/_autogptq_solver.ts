// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Runs `tests/interop/autogptq_solver_bench.py` (AutoGPTQ's `fasterquant` on
 * torch CPU) for bench/solver_bench.ts, or says why it cannot.
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url).pathname;
const SCRIPT = `${ROOT}tests/interop/autogptq_solver_bench.py`;

/** A usable Python + AutoGPTQ wheel, or why not. */
export type Autogptq =
  | { ok: true; py: string; wheel: string; what: string }
  | { ok: false; why: string };

async function output(cmd: string, args: string[]): Promise<{ ok: boolean; text: string }> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const dec = new TextDecoder();
    return { ok: o.success, text: (dec.decode(o.stdout) + dec.decode(o.stderr)).trim() };
  } catch (e) {
    return { ok: false, text: e instanceof Error ? e.message : String(e) };
  }
}

async function findWheel(): Promise<string | undefined> {
  const env = Deno.env.get("AUTOGPTQ_WHEEL");
  if (env) return env;
  try {
    for await (const e of Deno.readDir(`${ROOT}.cache/autogptq`)) {
      if (e.name.startsWith("auto_gptq-0.7.1") && e.name.endsWith(".whl")) {
        return `${ROOT}.cache/autogptq/${e.name}`;
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return undefined;
}

/**
 * Looks for Python with torch and safetensors (`$AUTOGPTQ_PY`, else
 * `.tools/llama.cpp/venv/bin/python`) and the auto-gptq 0.7.1 wheel
 * (`$AUTOGPTQ_WHEEL`, else `.cache/autogptq/`).
 *
 * @returns What was found, or why the comparison is skipped.
 */
export async function autogptqAvailable(): Promise<Autogptq> {
  const py = Deno.env.get("AUTOGPTQ_PY") ?? `${ROOT}.tools/llama.cpp/venv/bin/python`;
  const probe = await output(py, [
    "-c",
    "import torch, safetensors; print(torch.__version__)",
  ]);
  if (!probe.ok) {
    return { ok: false, why: `no Python with torch + safetensors at ${py} (set AUTOGPTQ_PY)` };
  }
  const wheel = await findWheel();
  if (!wheel) {
    return {
      ok: false,
      why: "no auto_gptq-0.7.1 wheel in .cache/autogptq/ (set AUTOGPTQ_WHEEL; " +
        "pip download --no-deps --only-binary :all: auto-gptq==0.7.1)",
    };
  }
  const v = probe.text.split("\n").at(-1);
  return { ok: true, py, wheel, what: `${wheel.split("/").at(-1)}, torch ${v} CPU, ${py}` };
}

/** AutoGPTQ's seconds and loss for one layer. */
export interface AutogptqTiming {
  /** `fasterquant` wall time. */
  seconds: number;
  /** Its prepare (damping + three torch calls) timed alone. */
  prepare: number;
  /** `Losses.sum()`. */
  loss: number;
}

/**
 * Runs `fasterquant` once on the layer `spec` (`name:NxK`, tensors
 * `H<K>`/`W<N>x<K>` in `file`) with `threads` torch threads.
 *
 * @param ag From {@linkcode autogptqAvailable}.
 * @param file The inputs (safetensors).
 * @param tmp A folder for the answer.
 * @param spec `name:NxK`.
 * @param threads torch threads.
 * @returns The timing.
 */
export async function runAutogptq(
  ag: Extract<Autogptq, { ok: true }>,
  file: string,
  tmp: string,
  spec: string,
  threads: number,
): Promise<AutogptqTiming> {
  const out = `${tmp}/autogptq.json`;
  const r = await output(ag.py, [
    SCRIPT,
    file,
    out,
    "--layers",
    spec,
    "--threads",
    String(threads),
    "--autogptq-wheel",
    ag.wheel,
  ]);
  if (!r.ok) throw new Error(`${SCRIPT} failed:\n${r.text.split("\n").slice(-8).join("\n")}`);
  const j = JSON.parse(await Deno.readTextFile(out));
  const l = Object.values(j.layers)[0] as { seconds: number[]; prepare: number[]; loss: number };
  return { seconds: l.seconds[0]!, prepare: l.prepare[0]!, loss: l.loss };
}
