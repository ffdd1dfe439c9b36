// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Quantized CPU inference benchmark: prefill and decode tokens/s of a model
 * with Llama-7B layer shapes (hidden 4096, intermediate 11008, 32 heads, 32
 * KV heads) and random weights, stored three ways:
 *
 * - fp16 weights;
 * - GPTQ 4-bit, group 128, sym, v1 zeros, no act-order (`g_idx = k / 128`);
 * - the same with act-order: `g_idx[perm[i]] = floor(i / 128)` for a random
 *   permutation per linear, `desc_act: true` in the config, run twice: rows
 *   reordered at load (ExLlama's way, the default) and per-group gather.
 *
 * The vocabulary is 4096 (Llama's is 32000) so that the untied `lm_head`
 * (4096×4096, 4 % of a layer) does not dominate a model of few layers; it
 * stays fp16 in every variant, as GPTQ checkpoints keep it. GPTQ codes are
 * uniform random 4-bit values packed with `src/gptq/pack.ts` (no solver:
 * speed does not depend on the values); scales are random fp16 around 0.003.
 *
 * Each model is loaded with the default backend (`selectBackend("auto")`,
 * what `loadModel` uses), timed on a prompt (prefill, one forward of P
 * tokens, best of two) and D decode steps of one token each (greedy). "Bytes/token" is
 * what the backend holds for the linears (sum of `LinearHandle.bytes`, LM
 * head included): a batch-1 decode step reads all of it once, so
 * bytes/token × tokens/s is the achieved weight bandwidth. It is compared
 * with the machine's copy bandwidth, measured in the same run by copying a
 * 1 GiB typed array with `TypedArray.set` on one thread (best of several; a
 * copy moves 2 bytes per byte copied, read + write), the practical ceiling
 * of memory traffic and so of batch-1 decode.
 *
 * ```sh
 * deno run -A bench/quant_inference_bench.ts              # layers: enough for 4-bit > 1.25 × L3
 * deno run -A bench/quant_inference_bench.ts --layers 4   # fixed depth
 * deno run -A bench/quant_inference_bench.ts --only gptq  # one variant (fp16, gptq, gptq-act): clean RSS
 * deno run -A bench/quant_inference_bench.ts --quick      # 2 layers, fewer tokens
 * ```
 *
 * @module
 */

import { hostBackend } from "../src/backends/host.ts";
import type { RawTensor } from "../src/io/safetensors.ts";
import { createWasmKernels } from "../src/backends/wasm/wasm_kernels.ts";
import type { LinearHandle, QuantLinearSource } from "../src/backends/backend.ts";
import type { Kernels } from "../src/backends/host_kernels.ts";
import { CausalLM } from "../src/runtime/model.ts";
import { LLAMA7B } from "./_llama7b.ts";
import { type Variant, writeLlama7bModel } from "./_llama7b_model.ts";

const t0Total = performance.now();
const QUICK = Deno.args.includes("--quick");
const { hidden: H, intermediate: I, heads: HEADS } = LLAMA7B;
const VOCAB = 4096, GROUP = 128;
const PROMPT = QUICK ? 16 : 64;
const DECODE = QUICK ? 4 : 16;

// ---------------------------------------------------------------- machine
function readText(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}
function cpuModel(): string {
  const m = /model name\s*:\s*(.+)/.exec(readText("/proc/cpuinfo") ?? "");
  return m ? m[1]!.trim() : "unknown CPU";
}
/** The last-level cache size in bytes from sysfs, or NaN. */
function l3Bytes(): number {
  const s = readText("/sys/devices/system/cpu/cpu0/cache/index3/size")?.trim();
  const m = s ? /^(\d+)([KMG]?)$/.exec(s) : null;
  if (!m) return NaN;
  return Number(m[1]) * ({ "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[m[2]!] ?? 1);
}
function rssBytes(): number {
  return Deno.memoryUsage().rss;
}

const fmt = (v: number, d = 1): string => Number.isFinite(v) ? v.toFixed(d) : "n/a";
const gb = (b: number, d = 2): string => fmt(b / 1e9, d);
function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => {
    const s = String(c);
    return i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!);
  }).join("  ");
}

// ---------------------------------------------------------------- layers
/** 4-bit g128 bytes of one layer: codes + fp16 scales + zeros + g_idx. */
const LAYER_PARAMS = 4 * H * H + 3 * H * I;
const Q4_LAYER_BYTES = LAYER_PARAMS / 2 + (LAYER_PARAMS / GROUP) * (2 + 0.5) +
  4 * (4 * H + 2 * H + I);
const L3 = l3Bytes();
function chooseLayers(): { layers: number; why: string } {
  const li = Deno.args.indexOf("--layers");
  if (li >= 0) {
    const n = Number(Deno.args[li + 1]);
    if (!Number.isInteger(n) || n < 1) {
      console.error("error: --layers needs a positive integer");
      Deno.exit(2);
    }
    return { layers: n, why: "--layers" };
  }
  if (QUICK) return { layers: 2, why: "--quick" };
  if (!Number.isFinite(L3)) return { layers: 4, why: "L3 size unknown; default 4" };
  const n = Math.min(8, Math.max(2, Math.ceil((1.25 * L3) / Q4_LAYER_BYTES)));
  return {
    layers: n,
    why: `4-bit weights ≥ 1.25 × L3 (${gb(L3)} GB) so decode streams from DRAM, capped at 8`,
  };
}
const { layers: LAYERS, why: LAYERS_WHY } = chooseLayers();

// ---------------------------------------------------------------- copy bandwidth
/** Best single-threaded `TypedArray.set` copy rate of 1 GiB, in bytes copied per second. */
function copyBandwidth(): number {
  const n = 2 ** 30;
  const src = new Uint8Array(n), dst = new Uint8Array(n);
  for (let i = 0; i < n; i += 4096) src[i] = i & 255;
  dst.set(src); // fault the pages in
  let best = Infinity;
  for (let r = 0; r < (QUICK ? 3 : 5); r++) {
    const t = performance.now();
    dst.set(src);
    best = Math.min(best, performance.now() - t);
  }
  return n / (best / 1000);
}

// ---------------------------------------------------------------- measurement
interface Result {
  label: string;
  fileBytes: number;
  heldBytes: number;
  gptqLinears: number;
  loadS: number;
  rss: number;
  prefillTps: number;
  decodeTps: number;
  backend: string;
}

function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

async function measure(
  dir: string,
  label: string,
  fileBytes: number,
  actOrder?: "gather",
): Promise<Result> {
  const choice = actOrder
    ? {
      kernels: await createWasmKernels({ actOrder }),
      description: "wasm-simd128 ×2 threads, act-order by per-group gather",
    }
    : await (async () => {
      const k = await createWasmKernels();
      return { kernels: k, description: k.name };
    })();
  const base = choice.kernels;
  let heldBytes = 0, gptqLinears = 0;
  // Count what the backend holds per linear (each is read once per decoded token).
  const kernels: Kernels = {
    ...base,
    linearFromDense(w: RawTensor, bias: Float32Array | null, transposed: boolean): LinearHandle {
      const h = base.linearFromDense(w, bias, transposed);
      heldBytes += h.bytes;
      return h;
    },
    linearFromGptq(q: QuantLinearSource): LinearHandle {
      const h = base.linearFromGptq(q);
      heldBytes += h.bytes;
      gptqLinears++;
      return h;
    },
  };
  let t = performance.now();
  const lm = await CausalLM.load(dir, { backend: hostBackend(kernels) });
  const loadS = (performance.now() - t) / 1000;
  const rss = rssBytes();
  try {
    await lm.forward([5, 6], lm.newCache(2)); // warm-up
    const prompt = Array.from({ length: PROMPT }, (_, i) => 3 + ((i * 7919) % (VOCAB - 3)));
    // Prefill: best of two (one under --quick) fresh forwards; the last cache goes on to decode.
    let prefillS = Infinity;
    let cache = lm.newCache(PROMPT + DECODE);
    let logits: Float32Array = new Float32Array();
    for (let rep = 0; rep < (QUICK ? 1 : 2); rep++) {
      cache = lm.newCache(PROMPT + DECODE);
      t = performance.now();
      logits = await lm.forward(prompt, cache, { lastOnly: true });
      prefillS = Math.min(prefillS, (performance.now() - t) / 1000);
    }
    t = performance.now();
    for (let i = 0; i < DECODE; i++) logits = await lm.forward([argmax(logits)], cache);
    const decodeS = (performance.now() - t) / 1000;
    return {
      label,
      fileBytes,
      heldBytes,
      gptqLinears,
      loadS,
      rss,
      prefillTps: PROMPT / prefillS,
      decodeTps: DECODE / decodeS,
      backend: choice.description,
    };
  } finally {
    lm.close();
  }
}

// ---------------------------------------------------------------- main
const load = readText("/proc/loadavg")?.split(" ").slice(0, 3).join(" ") ?? "n/a";
console.log(`load average before the run: ${load} (other processes skew the timings)`);
console.log(
  `${cpuModel()}, ${navigator.hardwareConcurrency} cores, L3 ${gb(L3)} GB (sysfs)${
    QUICK ? " [--quick]" : ""
  }`,
);
console.log(
  `model: Llama-7B layer shapes (hidden ${H}, intermediate ${I}, ${HEADS} heads), ${LAYERS} layers ` +
    `(${LAYERS_WHY}), vocab ${VOCAB} (small, so lm_head stays ${
      fmt((100 * VOCAB * H) / LAYER_PARAMS, 0)
    }% of a layer; fp16 in every variant), random weights`,
);
const copy = copyBandwidth();
console.log(
  `copy bandwidth (1 thread, TypedArray.set of 1 GiB, best of ${QUICK ? 3 : 5}): ` +
    `${gb(copy)} GB/s copied = ${gb(2 * copy)} GB/s of read + write traffic`,
);
console.log(`prompt ${PROMPT} tokens (one forward), then ${DECODE} greedy decode steps`);

const variants: [Variant, string][] = [
  ["fp16", "fp16 weights"],
  ["gptq", "GPTQ 4-bit g128"],
  ["gptq-act", "GPTQ 4-bit g128 act-order"],
];
// `--only gptq` (or fp16, gptq-act) measures one variant: its RSS is then not
// mixed with an earlier variant's (wasm memory never shrinks).
const only = Deno.args.includes("--only") ? Deno.args[Deno.args.indexOf("--only") + 1] : null;
if (only) variants.splice(0, variants.length, ...variants.filter(([v]) => v === only));
const results: Result[] = [];
const tmp = await Deno.makeTempDir({ prefix: "gptq-quant-bench-" });
try {
  for (const [variant, label] of variants) {
    const dir = `${tmp}/${variant}`;
    await Deno.mkdir(dir);
    const t = performance.now();
    const fileBytes = await writeLlama7bModel(dir, variant, LAYERS, VOCAB);
    console.log(
      `  wrote ${label}: ${gb(fileBytes)} GB in ${fmt((performance.now() - t) / 1000)} s`,
    );
    // Act-order is measured twice: rows reordered at load (the default) and gathered per group.
    const modes: ("gather" | undefined)[] = variant === "gptq-act" ? [undefined, "gather"] : [
      undefined,
    ];
    for (const mode of modes) {
      const r = await measure(dir, mode ? `${label} (gather)` : label, fileBytes, mode);
      console.log(
        `  measured ${r.label}: ${r.backend}; ${r.gptqLinears} GPTQ linears; loaded in ${
          fmt(r.loadS)
        } s, RSS ${gb(r.rss)} GB`,
      );
      results.push(r);
    }
    await Deno.remove(dir, { recursive: true });
  }
} finally {
  await Deno.remove(tmp, { recursive: true });
}

console.log("");
const W = [36, 8, 9, 10, 10, 9, 9, 8];
console.log(
  row([
    "model",
    "file GB",
    "held GB",
    "prefill/s",
    "decode/s",
    "GB/token",
    "GB/s",
    "%copy",
  ], W),
);
for (const r of results) {
  const bw = r.heldBytes * r.decodeTps;
  console.log(row([
    r.label,
    gb(r.fileBytes),
    gb(r.heldBytes),
    fmt(r.prefillTps, 2),
    fmt(r.decodeTps, 2),
    gb(r.heldBytes),
    gb(bw),
    fmt((100 * bw) / (2 * copy)),
  ], W));
}
const [fp, q, qa, qg] = results as [Result, Result, Result, Result];
if (!only) {
  console.log(
    `prefill/decode: tokens/s. held: bytes the backend keeps for all linears incl. lm_head ` +
      `(= weight bytes streamed per decoded token). GB/s = GB/token × decode tokens/s; ` +
      `%copy: of the copy's read + write traffic (${gb(2 * copy)} GB/s).`,
  );
  console.log(
    `4-bit vs fp16 decode: g128 ×${fmt(q.decodeTps / fp.decodeTps, 2)}, act-order ×${
      fmt(qa.decodeTps / fp.decodeTps, 2)
    } (ideal from bytes: ×${
      fmt(fp.heldBytes / (q.fileBytes - (fp.fileBytes - fp.heldBytes)), 2)
    }); ` +
      `prefill: g128 ×${fmt(q.prefillTps / fp.prefillTps, 2)}, act-order ×${
        fmt(qa.prefillTps / fp.prefillTps, 2)
      }`,
  );
  console.log(
    `act-order, reorder at load vs gather per group: decode ×${
      fmt(qa.decodeTps / qg.decodeTps, 2)
    }, prefill ×${fmt(qa.prefillTps / qg.prefillTps, 2)}`,
  );
  if (q.heldBytes > 1.5 * (q.fileBytes - (fp.fileBytes - fp.heldBytes))) {
    console.log(
      `note: the backend holds the GPTQ linears as ${gb(q.heldBytes)} GB, ×${
        fmt(q.heldBytes / fp.heldBytes, 2)
      } the fp16 model's ${gb(fp.heldBytes)} GB: it dequantizes at load, so decode streams ` +
        `wider weights than fp16 and any gain over fp16 comes from a faster kernel, not from 4-bit.`,
    );
  }
}
console.log(`total ${fmt((performance.now() - t0Total) / 1000)} s`);
