// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * CPU inference next to llama.cpp, in one run, same shapes, same threads:
 *
 * 1. Llama-7B layer shapes (hidden 4096, intermediate 11008, 32 heads) × L
 *    layers (default 6), vocab 4096, random weights: ours as fp16 and GPTQ
 *    4-bit g128 (`bench/_llama7b_model.ts`), llama.cpp on the same fp16
 *    checkpoint converted by its `convert_hf_to_gguf.py` (F16) and quantized
 *    by `llama-quantize` to Q4_0 (and Q4_K_M). Prompt 64 tokens (one forward),
 *    16 decode steps; `llama-bench -p 64 -n 16`.
 * 2. `--smollm2`: SmolLM2-135M-Instruct: ours fp32 (the GGUF dequantized by
 *    `convert gguf`) and GPTQ 4-bit g128 (32 × 512 WikiText-2 calibration
 *    tokens, as `bench/smollm2_quality_bench.ts` samples them; quantized here
 *    and timed, or taken from `--gptq DIR` with the time its
 *    `quantize_report.json` recorded), llama.cpp on the Q4_1 GGUF itself.
 *
 * llama.cpp comes from `tools/setup_llamacpp.sh` (built from the source that
 * the PyPI sdist of llama-cpp-python bundles) in `.tools/llama.cpp`, or
 * `LLAMA_CPP_DIR`; without it the bench prints why and exits 0. Ratios are
 * ours / llama.cpp; on a shared machine only the ratios within one run mean
 * anything.
 *
 * ```sh
 * bash tools/setup_llamacpp.sh                          # once
 * deno run -A bench/cpu_vs_llamacpp.ts                  # Llama-7B shapes ×6
 * deno run -A bench/cpu_vs_llamacpp.ts --layers 2 --smollm2 --gptq .cache/smollm2/quality/4b-g128-gptq-n32
 * deno run -A bench/cpu_vs_llamacpp.ts --no-llama7b --smollm2   # SmolLM2 only (quantizes: slow)
 * deno run -A bench/cpu_vs_llamacpp.ts --layers 2 --act-quant f32,int8  # GPTQ rows per activation precision
 * deno run -A bench/cpu_vs_llamacpp.ts --layers 2 --no-fp16  # GPTQ vs Q4_0/Q4_K_M only (quicker)
 * deno run -A bench/cpu_vs_llamacpp.ts --layers 2 --all   # + 3-bit → Q3_K_M, 8-bit → Q8_0, act-order → Q4_0
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { hostBackend } from "../src/backends/host.ts";
import { createWasmKernels } from "../src/backends/wasm/wasm_kernels.ts";
import { CausalLM } from "../src/runtime/model.ts";
import { TextTokenizer } from "../src/io/tokenizer.ts";
import { quantizeModel } from "../src/quant/quantize.ts";
import { type Variant, writeLlama7bModel } from "./_llama7b_model.ts";
import type { Bits } from "../src/gptq/pack.ts";
import { SMOLLM2_GGUF, SMOLLM2_WORK, smollm2Fp32, WIKITEXT2_TEST } from "./_smollm2.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    layers: { type: "string", default: "6" },
    prompt: { type: "string", default: "64" },
    decode: { type: "string", default: "16" },
    threads: { type: "string", default: "2" },
    smollm2: { type: "boolean", default: false },
    "no-llama7b": { type: "boolean", default: false },
    gptq: { type: "string" },
    nsamples: { type: "string", default: "32" },
    "act-quant": { type: "string", default: "f32,int8" },
    "no-fp16": { type: "boolean", default: false },
    all: { type: "boolean", default: false },
  },
});
const int = (s: string | undefined, name: string): number => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`error: --${name} needs a positive integer`);
    Deno.exit(2);
  }
  return n;
};
const LAYERS = int(args.layers, "layers");
const PROMPT = int(args.prompt, "prompt");
const DECODE = int(args.decode, "decode");
const THREADS = int(args.threads, "threads");
const NSAMPLES = int(args.nsamples, "nsamples");
/** GPTQ activation precisions to time (`--act-quant f32,int8`), one row each. */
const ACT_QUANTS = args["act-quant"].split(",").map((s) => {
  if (s !== "f32" && s !== "int8") {
    console.error(`error: --act-quant takes f32 and/or int8, got '${s}'`);
    Deno.exit(2);
  }
  return s;
});
const VOCAB = 4096;
const ROOT = new URL("..", import.meta.url).pathname;
const LCPP = Deno.env.get("LLAMA_CPP_DIR") ?? `${ROOT}.tools/llama.cpp`;
const BIN = `${LCPP}/build/bin`;
const PY = `${LCPP}/venv/bin/python`;

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function run(cmd: string, cmdArgs: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args: cmdArgs, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-5).join("\n");
    throw new Error(`${cmd} ${cmdArgs.join(" ")} failed (${out.code}):\n${err}`);
  }
  return text;
}

if (!(await exists(`${BIN}/llama-bench`))) {
  console.log(
    `skipped: llama.cpp is absent (${BIN}/llama-bench); build it with ` +
      "`bash tools/setup_llamacpp.sh` (or set LLAMA_CPP_DIR)",
  );
  Deno.exit(0);
}

// ---------------------------------------------------------------- llama.cpp
interface LcppResult {
  prefill: number;
  decode: number;
  model: string;
}

/**
 * Whether llama.cpp's weight repacking (its extra buffer types: AVX-512/AMX
 * layouts) works here. A VM may report AMX in /proc/cpuinfo without letting
 * a process use it: the AMX kernels then die of SIGILL, and the bench falls
 * back to `--repack 0` (plain ggml-cpu kernels), saying so.
 */
let repack = true;

/** `llama-bench` prefill (pp P) and decode (tg D) tokens/s, the mean of 3 repetitions. */
async function llamaBench(gguf: string, p: number, d: number): Promise<LcppResult> {
  const cmd = [
    ...["-m", gguf, "-t", String(THREADS), "-p", String(p), "-n", String(d)],
    ...["-r", "3", "-o", "json"],
  ];
  let json: string;
  try {
    json = await run(`${BIN}/llama-bench`, repack ? cmd : [...cmd, "--repack", "0"]);
  } catch (e) {
    if (!repack || !String(e).includes("failed (132)")) throw e;
    repack = false;
    console.log("  llama-bench died of SIGILL (AMX unusable here): using --repack 0 from now on");
    json = await run(`${BIN}/llama-bench`, [...cmd, "--repack", "0"]);
  }
  const rows = JSON.parse(json) as {
    n_prompt: number;
    n_gen: number;
    avg_ts: number;
    model_type: string;
  }[];
  const pp = rows.find((r) => r.n_prompt === p && r.n_gen === 0);
  const tg = rows.find((r) => r.n_gen === d && r.n_prompt === 0);
  if (!pp || !tg) throw new Error(`llama-bench output lacks pp${p}/tg${d}: ${json.slice(0, 200)}`);
  return { prefill: pp.avg_ts, decode: tg.avg_ts, model: pp.model_type };
}

// ---------------------------------------------------------------- ours
interface OursResult {
  prefill: number;
  decode: number;
}

function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

/** Prefill of P tokens (one forward, best of two) and D greedy decode steps, WASM, THREADS threads. */
async function ours(
  dir: string,
  vocab: number,
  p: number,
  d: number,
  actQuant: "f32" | "int8" = "f32",
): Promise<OursResult> {
  const kernels = await createWasmKernels({ threads: THREADS, actQuant });
  const lm = await CausalLM.load(dir, { backend: hostBackend(kernels) });
  try {
    await lm.forward([5, 6], lm.newCache(2)); // warm-up
    const prompt = Array.from({ length: p }, (_, i) => 3 + ((i * 7919) % (vocab - 3)));
    let prefillS = Infinity, cache = lm.newCache(p + d);
    let logits: Float32Array = new Float32Array();
    for (let rep = 0; rep < 2; rep++) {
      cache = lm.newCache(p + d);
      const t = performance.now();
      logits = await lm.forward(prompt, cache, { lastOnly: true });
      prefillS = Math.min(prefillS, (performance.now() - t) / 1000);
    }
    const t = performance.now();
    for (let i = 0; i < d; i++) logits = await lm.forward([argmax(logits)], cache);
    return { prefill: p / prefillS, decode: d / ((performance.now() - t) / 1000) };
  } finally {
    lm.close();
  }
}

// ---------------------------------------------------------------- table
const f = (v: number, dp = 2) => Number.isFinite(v) ? v.toFixed(dp) : "n/a";
const W = [36, 11, 11, 30, 11, 11, 8, 8];
const line = (c: string[]) =>
  console.log(c.map((s, i) => i === 0 || i === 3 ? s.padEnd(W[i]!) : s.padStart(W[i]!)).join(" "));
function table(rows: [string, OursResult, string, LcppResult][]): void {
  line(["ours", "prefill/s", "decode/s", "llama.cpp", "prefill/s", "decode/s", "pp×", "tg×"]);
  for (const [a, o, b, l] of rows) {
    line([
      a,
      f(o.prefill),
      f(o.decode),
      b,
      f(l.prefill),
      f(l.decode),
      f(o.prefill / l.prefill),
      f(o.decode / l.decode),
    ]);
  }
}

const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
const cpu = /model name\s*:\s*(.+)/.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ?? "?";
const sdist = await Deno.readTextFile(`${LCPP}/src/SDIST`).catch(() => "unknown source");
console.log(`${cpu.trim()}, ${navigator.hardwareConcurrency} cores; load average ${load}`);
console.log(`llama.cpp: ${BIN} (from ${sdist.trim()}); ${THREADS} threads on both sides`);

// ---------------------------------------------------------------- 1. Llama-7B shapes
if (!args["no-llama7b"]) {
  const work = `${ROOT}.cache/llamacpp-bench/llama7b-L${LAYERS}`;
  const hf = `${work}/hf-fp16`, gq = `${work}/gptq`;
  const f16 = `${work}/f16.gguf`;
  await Deno.mkdir(work, { recursive: true });
  if (!(await exists(`${hf}/model.safetensors`))) {
    await Deno.mkdir(hf, { recursive: true });
    await writeLlama7bModel(hf, "fp16", LAYERS, VOCAB);
  }
  /** GPTQ checkpoints timed: [label, folder, variant, bits, llama.cpp type compared with]. */
  const gptqs: [string, string, Variant, Bits, string][] = [
    ["GPTQ 4-bit g128", gq, "gptq", 4, "Q4_0"],
    ["GPTQ 4-bit g128", gq, "gptq", 4, "Q4_K_M"],
    ...(args.all
      ? [
        ["GPTQ 4-bit g128 act-order", `${work}/gptq-act`, "gptq-act", 4, "Q4_0"],
        ["GPTQ 3-bit g128", `${work}/gptq3`, "gptq", 3, "Q3_K_M"],
        ["GPTQ 8-bit g128", `${work}/gptq8`, "gptq", 8, "Q8_0"],
      ] as [string, string, Variant, Bits, string][]
      : []),
  ];
  for (const [, dir, variant, bits] of gptqs) {
    if (!(await exists(`${dir}/model.safetensors`))) {
      await Deno.mkdir(dir, { recursive: true });
      await writeLlama7bModel(dir, variant, LAYERS, VOCAB, bits);
    }
  }
  if (!(await exists(f16))) {
    if (!(await exists(PY))) {
      console.log(`skipped: ${PY} is absent (tools/setup_llamacpp.sh makes the convert venv)`);
      Deno.exit(0);
    }
    await run(PY, [`${ROOT}bench/_sp_vocab.py`, hf, `${ROOT}README.md`]);
    await run(PY, [`${LCPP}/src/convert_hf_to_gguf.py`, hf, "--outtype", "f16", "--outfile", f16]);
  }
  const lcppTypes = [...new Set(gptqs.map((g) => g[4]))];
  const ggufOf = (type: string) => `${work}/${type.toLowerCase()}.gguf`;
  for (const type of lcppTypes) {
    const file = ggufOf(type);
    if (!(await exists(file))) {
      await run(`${BIN}/llama-quantize`, [f16, `${file}.tmp`, type, String(THREADS)]);
      await Deno.rename(`${file}.tmp`, file);
    }
  }
  console.log(
    `\nLlama-7B layer shapes × ${LAYERS} layers, vocab ${VOCAB}, random weights; ` +
      `prompt ${PROMPT} (one forward), ${DECODE} decode steps`,
  );
  const oFp = args["no-fp16"] ? null : await ours(hf, VOCAB, PROMPT, DECODE);
  /** Ours per checkpoint folder and activation precision (each timed once). */
  const oQ = new Map<string, OursResult>();
  for (const [, dir] of gptqs) {
    for (const a of ACT_QUANTS) {
      if (!oQ.has(`${dir}|${a}`)) oQ.set(`${dir}|${a}`, await ours(dir, VOCAB, PROMPT, DECODE, a));
    }
  }
  const lcpp = new Map<string, LcppResult>();
  for (const type of lcppTypes) lcpp.set(type, await llamaBench(ggufOf(type), PROMPT, DECODE));
  const lF16 = oFp ? await llamaBench(f16, PROMPT, DECODE) : null;
  table([
    ...(oFp && lF16
      ? [["fp16", oFp, "F16", lF16] as [string, OursResult, string, LcppResult]]
      : []),
    ...gptqs.flatMap(([label, dir, , , type]) =>
      ACT_QUANTS.map((a): [string, OursResult, string, LcppResult] => [
        `${label}, act ${a}`,
        oQ.get(`${dir}|${a}`)!,
        type,
        lcpp.get(type)!,
      ])
    ),
  ]);
}

// ---------------------------------------------------------------- 2. SmolLM2
if (args.smollm2) {
  const fp32 = await smollm2Fp32();
  if (fp32 === null) Deno.exit(0);
  let gptqDir = args.gptq;
  let quantNote: string;
  if (gptqDir === undefined) {
    gptqDir = `${SMOLLM2_WORK}/speed-4b-g128-n${NSAMPLES}`;
    const tok = await TextTokenizer.fromFolder(fp32);
    const ids = tok.encode(await Deno.readTextFile(WIKITEXT2_TEST), { addSpecialTokens: false });
    const half = Math.floor(ids.length / 2), span = ids.length - half - 512;
    const calib = Array.from({ length: NSAMPLES }, (_, i) => {
      const off = half + (NSAMPLES === 1 ? 0 : Math.floor((i * span) / (NSAMPLES - 1)));
      return ids.slice(off, off + 512);
    });
    const t = performance.now();
    await quantizeModel(fp32, gptqDir, {
      bits: 4,
      group_size: 128,
      dataset: calib,
      nsamples: NSAMPLES,
      model_seqlen: 512,
    }, { force: true, threads: THREADS });
    quantNote = `${NSAMPLES} × 512 calibration tokens, quantized here in ${
      f((performance.now() - t) / 1000, 0)
    } s`;
  } else {
    const rep = JSON.parse(await Deno.readTextFile(`${gptqDir}/quantize_report.json`)) as {
      seconds: number;
      calibration: { samples: number; tokens: number };
    };
    quantNote = `${gptqDir}: ${rep.calibration.samples} samples, ${rep.calibration.tokens} ` +
      `calibration tokens, quantized in ${f(rep.seconds, 0)} s (its quantize_report.json)`;
  }
  console.log(
    `\nSmolLM2-135M-Instruct, GPTQ 4-bit g128 from ${quantNote}; ` +
      `prompt ${PROMPT}, ${DECODE} decode steps`,
  );
  const vocab = 49152;
  const oFp = await ours(fp32, vocab, PROMPT, DECODE);
  const oQ: [string, OursResult][] = [];
  for (const a of ACT_QUANTS) oQ.push([a, await ours(gptqDir, vocab, PROMPT, DECODE, a)]);
  const lQ41 = await llamaBench(SMOLLM2_GGUF, PROMPT, DECODE);
  table([
    ["fp32 (dequantized GGUF)", oFp, "Q4_1 GGUF (shared data)", lQ41],
    ...oQ.map(([a, o]): [string, OursResult, string, LcppResult] => [
      `GPTQ 4-bit g128, act ${a}`,
      o,
      "Q4_1 GGUF (shared data)",
      lQ41,
    ]),
  ]);
}
console.log(
  "pp×/tg×: ours / llama.cpp, prefill and decode tokens/s (this run, this machine)" +
    (repack ? "" : "; llama.cpp ran with --repack 0"),
);
