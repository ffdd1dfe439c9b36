// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Quality on a real model: SmolLM2-135M-Instruct (the GGUF of
 * `../shared/data/smollm2/`, dequantized to f32 by `convert gguf`), WikiText-2
 * test perplexity (the first W windows of 512 tokens, default 24, as `eval`
 * computes it) of the fp model and of RTN and GPTQ at 4-bit g128, 3-bit g128
 * and 4-bit g128 act-order, next to AutoGPTQ's own algorithm run on the same
 * calibration tokens (`tests/interop/autogptq_smollm2.py`).
 *
 * Calibration: N samples (default 32) of 512 tokens at evenly spaced offsets
 * in the second half of the tokenized WikiText-2 test file (the evaluation
 * windows come from its start, so the two never overlap). RTN does not use
 * the calibration (same quantizer and groups, round to nearest), so its runs
 * get 2 samples only, to keep the forward passes cheap.
 *
 * The tokens are written to `.cache/smollm2/quality/tokens.safetensors`
 * (`eval_ids` [W,512], `calib_ids` [N,512], I32) for the Python script; each
 * finished row is cached in `results.json` beside it (keyed by the settings and
 * a hash of the tokens), so an interrupted run continues where it stopped.
 *
 * ```sh
 * deno run -A bench/smollm2_quality_bench.ts                 # everything (hours on 2 busy cores)
 * deno run -A bench/smollm2_quality_bench.ts --tokens-only   # just write tokens.safetensors
 * deno run -A bench/smollm2_quality_bench.ts --configs 4b-g128 --windows 8 --nsamples 16
 * tests/interop/autogptq_smollm2.py ...                       # AutoGPTQ's figures (see its header)
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadModel } from "../src/load_model.ts";
import { TextTokenizer } from "../src/io/tokenizer.ts";
import { perplexity } from "../src/runtime/perplexity.ts";
import { type GPTQConfig, quantizeModel } from "../src/quant/quantize.ts";
import { writeSafetensors } from "../src/io/safetensors_writer.ts";
import { SMOLLM2_WORK, smollm2Fp32, WIKITEXT2_TEST } from "./_smollm2.ts";

const SEQLEN = 512;

/** The quantization settings compared. */
export const QUALITY_CONFIGS: Record<string, Pick<GPTQConfig, "bits" | "group_size" | "desc_act">> =
  {
    "4b-g128": { bits: 4, group_size: 128, desc_act: false },
    "3b-g128": { bits: 3, group_size: 128, desc_act: false },
    "4b-g128-act": { bits: 4, group_size: 128, desc_act: true },
  };

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    windows: { type: "string", default: "24" },
    nsamples: { type: "string", default: "32" },
    "rtn-nsamples": { type: "string", default: "2" },
    configs: { type: "string", default: Object.keys(QUALITY_CONFIGS).join(",") },
    methods: { type: "string", default: "fp,rtn,gptq" },
    "tokens-only": { type: "boolean", default: false },
    autogptq: { type: "string" },
  },
});
const posInt = (s: string | undefined, name: string): number => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`error: --${name} needs a positive integer`);
    Deno.exit(2);
  }
  return n;
};
const WINDOWS = posInt(args.windows, "windows");
const NSAMPLES = posInt(args.nsamples, "nsamples");
const RTN_NSAMPLES = posInt(args["rtn-nsamples"], "rtn-nsamples");
const CONFIGS = args.configs!.split(",").filter((c) => c);
for (const c of CONFIGS) {
  if (!Object.hasOwn(QUALITY_CONFIGS, c)) {
    console.error(`error: unknown config ${c}; use ${Object.keys(QUALITY_CONFIGS).join(",")}`);
    Deno.exit(2);
  }
}
const METHODS = new Set(args.methods!.split(","));

const WORK = `${SMOLLM2_WORK}/quality`;
const RESULTS = `${WORK}/results.json`;
const AUTOGPTQ = args.autogptq ?? `${WORK}/autogptq.json`;

/** One cached measurement. */
interface Row {
  ppl: number;
  windows: number;
  evalSeconds: number;
  quantizeSeconds?: number;
  nsamples?: number;
}

function fnv(ids: ArrayLike<number>, h = 0x811c9dc5): number {
  for (let i = 0; i < ids.length; i++) {
    h ^= ids[i]!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

async function writeJsonAtomic(path: string, v: unknown): Promise<void> {
  await Deno.writeTextFile(`${path}.tmp`, JSON.stringify(v, null, 2) + "\n");
  await Deno.rename(`${path}.tmp`, path);
}

function i32(rows: number[][]): Uint8Array {
  const a = new Int32Array(rows.flat());
  return new Uint8Array(a.buffer);
}

// ---------------------------------------------------------------- tokens
const fp32Dir = await smollm2Fp32();
if (fp32Dir === null) Deno.exit(0);
const fp32: string = fp32Dir;
await Deno.mkdir(WORK, { recursive: true });
const load = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
console.log(`load average before the run: ${load} (timings are skewed by other processes)`);
const tok = await TextTokenizer.fromFolder(fp32);
const ids = tok.encode(await Deno.readTextFile(WIKITEXT2_TEST), { addSpecialTokens: false });
if (ids.length < (WINDOWS + 2) * SEQLEN * 2) {
  console.error(`error: WikiText-2 gave ${ids.length} tokens, too few for ${WINDOWS} windows`);
  Deno.exit(1);
}
const evalIds = ids.slice(0, WINDOWS * SEQLEN);
const half = Math.floor(ids.length / 2);
const span = ids.length - half - SEQLEN;
const calib = (n: number): number[][] =>
  Array.from({ length: n }, (_, i) => {
    const off = half + (n === 1 ? 0 : Math.floor((i * span) / (n - 1)));
    return ids.slice(off, off + SEQLEN);
  });
const calibIds = calib(NSAMPLES);
const tokenKey = [fnv(evalIds), fnv(calibIds.flat())].map((h) => h.toString(16)).join("-");
console.log(
  `WikiText-2 test: ${ids.length} tokens; eval ${WINDOWS} × ${SEQLEN} from the start; ` +
    `calibration ${NSAMPLES} × ${SEQLEN} evenly spaced from token ${half} (tokens ${tokenKey})`,
);
await writeSafetensors(`${WORK}/tokens.safetensors`, [
  { name: "eval_ids", dtype: "I32", shape: [WINDOWS, SEQLEN], data: i32([evalIds]) },
  { name: "calib_ids", dtype: "I32", shape: [NSAMPLES, SEQLEN], data: i32(calibIds) },
], { token_key: tokenKey });
console.log(`wrote ${WORK}/tokens.safetensors`);
if (args["tokens-only"]) Deno.exit(0);

// ---------------------------------------------------------------- runs
const cache: Record<string, Row> = (await readJson<Record<string, Row>>(RESULTS)) ?? {};

async function evaluate(dir: string): Promise<{ ppl: number; seconds: number }> {
  const m = await loadModel(dir, { onWarning: (w) => console.log(`  warning: ${w}`) });
  try {
    const t = performance.now();
    const r = await perplexity(m.lm, evalIds, { seqlen: SEQLEN, maxSamples: WINDOWS });
    return { ppl: r.ppl, seconds: (performance.now() - t) / 1000 };
  } finally {
    m.close();
  }
}

async function row(key: string, make: () => Promise<Row>): Promise<Row> {
  const full = `${key}|w${WINDOWS}|${tokenKey}`;
  const hit = cache[full];
  if (hit) {
    console.log(`  ${key}: ppl ${hit.ppl.toFixed(4)} (cached in ${RESULTS})`);
    return hit;
  }
  const r = await make();
  cache[full] = r;
  await writeJsonAtomic(RESULTS, cache);
  console.log(
    `  ${key}: ppl ${r.ppl.toFixed(4)}` +
      (r.quantizeSeconds === undefined ? "" : `, quantized in ${r.quantizeSeconds.toFixed(0)} s`) +
      `, eval ${r.evalSeconds.toFixed(0)} s`,
  );
  return r;
}

async function quantized(config: string, method: "rtn" | "gptq"): Promise<Row> {
  const n = method === "rtn" ? Math.min(RTN_NSAMPLES, NSAMPLES) : NSAMPLES;
  // RTN ignores the calibration and the column order: act-order shares the plain config's row.
  const { bits, group_size } = QUALITY_CONFIGS[config]!;
  const key = method === "gptq" ? `${config}-gptq-n${n}` : `${bits}b-g${group_size}-rtn`;
  return await row(key, async () => {
    const out = `${WORK}/${key}`;
    const t = performance.now();
    await quantizeModel(fp32, out, {
      ...QUALITY_CONFIGS[config]!,
      sym: true,
      damp_percent: 0.01,
      true_sequential: true,
      dataset: calibIds.slice(0, n),
      nsamples: n,
      model_seqlen: SEQLEN,
    }, {
      force: true,
      // A killed bench continues the unfinished quantization from its journal.
      resume: true,
      method,
      onBlock: (d, total) => {
        if (d % 5 === 0 || d === total) {
          console.log(`    ${config} ${method}: block ${d}/${total}`);
        }
      },
    });
    const quantizeSeconds = (performance.now() - t) / 1000;
    const e = await evaluate(out);
    return { ppl: e.ppl, windows: WINDOWS, evalSeconds: e.seconds, quantizeSeconds, nsamples: n };
  });
}

const results: Record<string, Row> = {};
if (METHODS.has("fp")) {
  results.fp = await row("fp", async () => {
    const e = await evaluate(fp32);
    return { ppl: e.ppl, windows: WINDOWS, evalSeconds: e.seconds };
  });
}
for (const c of CONFIGS) {
  for (const method of ["gptq", "rtn"] as const) {
    if (METHODS.has(method)) results[`${c}-${method}`] = await quantized(c, method);
  }
}

// ---------------------------------------------------------------- table
interface AutoGptqFile {
  token_key: string;
  windows: number;
  nsamples: number;
  fp?: number;
  results: Record<string, { gptq?: number; rtn?: number; seconds?: number }>;
  what: string;
}
const ag = await readJson<AutoGptqFile>(AUTOGPTQ);
const agOk = ag !== null && ag.token_key === tokenKey && ag.windows === WINDOWS &&
  ag.nsamples === NSAMPLES;
if (ag === null) {
  console.log(`\nno AutoGPTQ figures (${AUTOGPTQ} absent: run tests/interop/autogptq_smollm2.py)`);
} else if (!agOk) {
  console.log(
    `\nAutoGPTQ figures in ${AUTOGPTQ} are for other tokens/windows/samples ` +
      `(${ag.token_key}, ${ag.windows} windows, ${ag.nsamples} samples): not compared`,
  );
} else console.log(`\nAutoGPTQ: ${ag.what}`);

const f = (v: number | undefined, d = 3) => v === undefined ? "—" : v.toFixed(d);
const W = [14, 9, 9, 11, 12, 10, 8];
const line = (cells: string[]) =>
  console.log(cells.map((c, i) => i === 0 ? c.padEnd(W[i]!) : c.padStart(W[i]!)).join("  "));
console.log(
  `\nSmolLM2-135M-Instruct, WikiText-2 test perplexity, ${WINDOWS} windows × ${SEQLEN}; ` +
    `GPTQ calibrated on ${NSAMPLES} × ${SEQLEN} tokens (sym, damp 0.01, true-sequential)`,
);
line(["config", "RTN", "GPTQ", "AutoGPTQ", "GPTQ/AG−1", "GPTQ/RTN", "quant s"]);
const fpAg = agOk ? ag!.fp : undefined;
if (results.fp) {
  line([
    "fp (f32)",
    "",
    f(results.fp.ppl),
    f(fpAg),
    fpAg ? `${(100 * (results.fp.ppl / fpAg - 1)).toFixed(2)}%` : "—",
    "",
    "",
  ]);
}
let fails = 0;
for (const c of CONFIGS) {
  const g = results[`${c}-gptq`], r = results[`${c}-rtn`];
  const a = agOk ? ag!.results[c]?.gptq : undefined;
  const rel = g && a ? g.ppl / a - 1 : undefined;
  if (rel !== undefined && rel > 0.01) fails++;
  if (g && r && g.ppl >= r.ppl) fails++;
  line([
    c,
    f(r?.ppl),
    f(g?.ppl),
    f(a),
    rel === undefined ? "—" : `${(100 * rel).toFixed(2)}%`,
    g && r ? (g.ppl / r.ppl).toFixed(3) : "—",
    f(g?.quantizeSeconds, 0),
  ]);
}
console.log(
  "GPTQ/AG−1: ours vs AutoGPTQ's fasterquant on the same calibration tokens (must be ≤ +1%); " +
    "GPTQ/RTN < 1 means GPTQ beats round-to-nearest.",
);
console.log(fails === 0 ? "all checks pass" : `${fails} check(s) FAILED`);
if (fails > 0) Deno.exitCode = 1;
