// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * End-to-end `quantizeModel` benchmark on a Llama-shaped model with random
 * f16 weights (2 decoder blocks), 4-bit, group 128, sym, true-sequential:
 *
 * ```sh
 * deno run -A bench/quantize_bench.ts            # hidden 1024, intermediate 2752 (Llama-7B ÷ 4), 8×512 tokens
 * deno run -A bench/quantize_bench.ts --quick    # hidden 512, intermediate 1376 (÷ 8), 4×256 tokens
 * deno run -A bench/quantize_bench.ts --llama7b  # hidden 4096, intermediate 11008: hours today (see below)
 * deno run -A bench/quantize_bench.ts --threads 1    # one solver Worker (least memory)
 * deno run -A bench/quantize_bench.ts --split        # in-process solver, timed: Hessian/GPTQ/RTN split
 * deno run -A bench/quantize_bench.ts --hidden 2048 --intermediate 5504 --nsamples 8 --seqlen 512 --layers 2
 * deno run -A bench/quantize_bench.ts --backend webgpu --llama7b   # on a GPU: forward/Hessian/solve split
 * deno run -A bench/quantize_bench.ts --backend webgpu --tiny      # lavapipe smoke run (hidden 128)
 * ```
 *
 * With `--backend webgpu` the whole run is on the device (the WebGPU engine)
 * and the split is GPU time per phase from timestamp queries (every compute
 * pass timed): forward (calibration forwards, block outputs), Hessian
 * (accumulation from the forward's inputs), solve (dead columns, damping,
 * Cholesky/inverse, column loop, lazy updates) and report (the sampled-row
 * Hessian errors), per block; "host" is block wall time minus GPU time
 * (readback waits, RTN, packing, journal I/O). Llama-7B shapes need a
 * binding of K² floats for down_proj's Hessian (485 MB), more than lavapipe's
 * 128 MiB, so on lavapipe only `--tiny`/`--quick` sizes run.
 *
 * The vocabulary is 1024 (the golden models' byte-level BPE from
 * `../shared/data/golden/models/llama/tokenizer.json`), so the embeddings are
 * small; the calibration text is the first 2 MB of WikiText-2 test.
 *
 * Timing split: the forward kernels are always wrapped (all kernel calls);
 * the solver's time is the modules' solver seconds from the report (GPTQ +
 * RTN on the Workers). With `--split` the solver runs in-process, wrapped, so
 * Hessian accumulation, GPTQ and RTN are timed separately (that path keeps K×K
 * arrays on the main thread, so its memory is not the CLI's). "Other" is block
 * time minus those: the report's sampled-row Hessian errors, packing and the
 * journal's I/O. Peak RSS is sampled by `quantizeModel` (all threads of the
 * process).
 *
 * @module
 */

import { quantizeModel } from "../src/quant/quantize.ts";
import { createWasmSolver, type QuantBackend } from "../src/quant/solver.ts";
import { createWasmKernels } from "../src/backends/wasm/wasm_kernels.ts";
import { hostBackend } from "../src/backends/host.ts";
import type { Kernels } from "../src/backends/host_kernels.ts";
import { type NamedTensor, writeSafetensors } from "../src/io/safetensors_writer.ts";
import { fromFloat32 } from "../src/io/dtype.ts";

const args = Deno.args;
const flag = (n: string): boolean => args.includes(n);
const num = (n: string, d: number): number => {
  const i = args.indexOf(n);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const quick = flag("--quick"), full7b = flag("--llama7b"), tiny = flag("--tiny");
const hidden = num("--hidden", full7b ? 4096 : tiny ? 128 : quick ? 512 : 1024);
const inter = num("--intermediate", full7b ? 11008 : tiny ? 352 : quick ? 1376 : 2752);
const heads = num("--heads", Math.max(1, hidden / 128));
const layers = num("--layers", 2);
const nsamples = num("--nsamples", tiny || quick ? 4 : 8);
const seqlen = num("--seqlen", tiny ? 64 : quick ? 256 : 512);
const backendArg = args.includes("--backend") ? args[args.indexOf("--backend") + 1] : "wasm";
if (backendArg !== "wasm" && backendArg !== "webgpu") {
  throw new Error(`--backend must be wasm or webgpu, got ${backendArg}`);
}
const webgpu = backendArg === "webgpu";
const vocab = 1024;
/** Solver Workers: 2 is the CLI's default; 1 holds one copy of the Hessian's factor fewer. */
const threads = num("--threads", 2);
/** In-process solver wrapped with timers (the fine time split; not the CLI's memory profile). */
const split = flag("--split");

const dataDir = new URL("../../shared/data/", import.meta.url);
const tmp = await Deno.makeTempDir({ prefix: "gptq-qbench-" });
const modelDir = `${tmp}/model`, outDir = `${tmp}/out`;
await Deno.mkdir(modelDir);

// --- the model ------------------------------------------------------------
let seed = 0x9e3779b9;
/** Uniform in ±a (xorshift32), written straight into a reused f32 buffer. */
function randomF16(n: number, a: number): Uint8Array {
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    f[i] = ((seed >>> 0) / 4294967296 * 2 - 1) * a;
  }
  return fromFloat32(f, "F16");
}
function ones(n: number): Uint8Array {
  return fromFloat32(new Float32Array(n).fill(1), "F16");
}
async function* tensors(): AsyncGenerator<NamedTensor> {
  const t = (name: string, shape: number[], data: Uint8Array): NamedTensor => ({
    name,
    dtype: "F16",
    shape,
    data,
  });
  yield t("model.embed_tokens.weight", [vocab, hidden], randomF16(vocab * hidden, 0.05));
  const a = 1 / Math.sqrt(hidden), b = 1 / Math.sqrt(inter);
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    yield t(`${p}.input_layernorm.weight`, [hidden], ones(hidden));
    yield t(`${p}.post_attention_layernorm.weight`, [hidden], ones(hidden));
    for (const m of ["q_proj", "k_proj", "v_proj", "o_proj"]) {
      yield t(`${p}.self_attn.${m}.weight`, [hidden, hidden], randomF16(hidden * hidden, a));
    }
    yield t(`${p}.mlp.gate_proj.weight`, [inter, hidden], randomF16(inter * hidden, a));
    yield t(`${p}.mlp.up_proj.weight`, [inter, hidden], randomF16(inter * hidden, a));
    yield t(`${p}.mlp.down_proj.weight`, [hidden, inter], randomF16(hidden * inter, b));
  }
  yield t("model.norm.weight", [hidden], ones(hidden));
  yield t("lm_head.weight", [vocab, hidden], randomF16(vocab * hidden, a));
}
await writeSafetensors(`${modelDir}/model.safetensors`, tensors(), { format: "pt" });
const modelBytes = (await Deno.stat(`${modelDir}/model.safetensors`)).size;
await Deno.writeTextFile(
  `${modelDir}/config.json`,
  JSON.stringify({
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: hidden,
    intermediate_size: inter,
    num_attention_heads: heads,
    num_key_value_heads: heads,
    num_hidden_layers: layers,
    max_position_embeddings: Math.max(2048, seqlen),
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: "silu",
    vocab_size: vocab,
    tie_word_embeddings: false,
    torch_dtype: "float16",
    bos_token_id: 0,
    eos_token_id: 0,
  }),
);
for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
  await Deno.copyFile(new URL(`golden/models/llama/${f}`, dataDir), `${modelDir}/${f}`);
}
const text = await Deno.readTextFile(new URL("text/wikitext2_test.txt", dataDir));
const calib = `${tmp}/calibration.txt`;
await Deno.writeTextFile(calib, text.slice(0, 2_000_000));

// --- timing wrappers -----------------------------------------------------
const time = { forward: 0, hessianAdd: 0, gptq: 0, rtn: 0 };
const inner = await createWasmKernels();
const description = `backend: ${inner.name}`;
const timedKernels = new Proxy(inner, {
  get(target, prop, recv) {
    const v = Reflect.get(target, prop, recv);
    if (typeof v !== "function" || prop === "release") return v;
    return (...a: unknown[]) => {
      const t = performance.now();
      try {
        return v.apply(target, a);
      } finally {
        time.forward += performance.now() - t;
      }
    };
  },
}) as Kernels;
const solverInner = await createWasmSolver();
const timedSolver: QuantBackend = {
  name: solverInner.name,
  hessian(K) {
    const acc = solverInner.hessian(K);
    return {
      K: acc.K,
      get nsamples() {
        return acc.nsamples;
      },
      add(x, nSeq, tokens) {
        const t = performance.now();
        acc.add(x, nSeq, tokens);
        time.hessianAdd += performance.now() - t;
      },
      h: () => acc.h(),
      free: () => acc.free(),
    };
  },
  gptq(w, N, K, h, o, name) {
    const t = performance.now();
    try {
      return solverInner.gptq(w, N, K, h, o, name);
    } finally {
      time.gptq += performance.now() - t;
    }
  },
  rtn(w, N, K, o) {
    const t = performance.now();
    try {
      return solverInner.rtn(w, N, K, o);
    } finally {
      time.rtn += performance.now() - t;
    }
  },
};

// --- run -------------------------------------------------------------------
if (webgpu) {
  await benchWebGpu();
  Deno.exit(0);
}
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
console.log(
  `Llama-shaped model: ${layers} blocks, hidden ${hidden}, intermediate ${inter}, ${heads} heads, ` +
    `vocab ${vocab}, f16, ${mib(modelBytes)}; ${description}; solver ${timedSolver.name}`,
);
console.log(
  `calibration: ${nsamples} samples × ${seqlen} tokens; 4-bit g128 sym, true-sequential; ` +
    (split
      ? "solver in-process (timed)"
      : `solver on ${threads} Worker${threads === 1 ? "" : "s"}`),
);
const rssBefore = Deno.memoryUsage().rss;
try {
  const rep = await quantizeModel(modelDir, outDir, {
    bits: 4,
    group_size: 128,
    dataset: calib,
    nsamples,
    model_seqlen: seqlen,
  }, {
    backend: hostBackend(timedKernels),
    ...(split ? { solver: timedSolver } : { threads }),
    onBlock: (d, n) => console.log(`  block ${d}/${n} done`),
  });
  const blocks = rep.blockSeconds;
  const totalBlocks = blocks.reduce((a, b) => a + b, 0);
  const s = (ms: number) => ms / 1000;
  const solverMs = split
    ? time.gptq + time.rtn
    : 1000 * rep.modules.reduce((a, m) => a + (m.seconds ?? 0), 0);
  const other = totalBlocks - s(time.forward + time.hessianAdd + solverMs);
  const pct = (x: number) => `${(100 * x / totalBlocks).toFixed(0)}%`;
  const outBytes = (await Deno.stat(`${outDir}/model.safetensors`)).size;
  console.log(`seconds per block: ${blocks.map((b) => b.toFixed(1)).join(", ")}`);
  console.log(`  forward (kernels)      ${s(time.forward).toFixed(1)} s  ${pct(s(time.forward))}`);
  if (split) {
    console.log(
      `  Hessian accumulation   ${s(time.hessianAdd).toFixed(1)} s  ${pct(s(time.hessianAdd))}`,
    );
    console.log(`  GPTQ solver            ${s(time.gptq).toFixed(1)} s  ${pct(s(time.gptq))}`);
    console.log(`  RTN (report)           ${s(time.rtn).toFixed(1)} s  ${pct(s(time.rtn))}`);
  } else {
    console.log(
      `  GPTQ + RTN, ${threads} Worker(s) ${s(solverMs).toFixed(1)} s  ${pct(s(solverMs))}`,
    );
  }
  console.log(
    `  other (Hessians${split ? "" : " incl."}, hessianError ×2, packing, journal I/O) ` +
      `${other.toFixed(1)} s  ${pct(other)}`,
  );
  console.log(
    `total ${rep.seconds.toFixed(1)} s; peak RSS ${mib(rep.peakRssBytes)} (${
      mib(rssBefore)
    } before) ` +
      `vs model ${mib(modelBytes)} (one block ${
        mib((modelBytes - 4 * vocab * hidden) / layers)
      }), ` +
      `quantized ${mib(outBytes)}`,
  );
} finally {
  if (!flag("--keep")) await Deno.remove(tmp, { recursive: true });
  else console.log(`kept ${tmp}`);
}

/** The WebGPU engine: per-block wall time and GPU time by phase (timestamp queries). */
async function benchWebGpu(): Promise<void> {
  const { GpuContext, createWebGpuBackend } = await import(
    "../src/backends/webgpu/webgpu_backend.ts"
  );
  const ctx = await GpuContext.create({ timestamps: true });
  const be = await createWebGpuBackend({ context: ctx });
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  console.log(
    `Llama-shaped model: ${layers} blocks, hidden ${hidden}, intermediate ${inter}, ${heads} heads, ` +
      `vocab ${vocab}, f16, ${mib(modelBytes)}; backend webgpu (${be.device})` +
      (ctx.facts.timestamps ? "" : " — no timestamp-query: GPU split unavailable"),
  );
  console.log(
    `calibration: ${nsamples} samples × ${seqlen} tokens; 4-bit g128 sym, true-sequential`,
  );
  const phases = ["forward", "hessian", "solve.factor", "solve.columns", "solve.update", "report"];
  const perBlock: Record<string, number>[] = [];
  const wall: number[] = [];
  let prev: Record<string, number> = {};
  let mark = performance.now();
  try {
    const rep = await quantizeModel(modelDir, outDir, {
      bits: 4,
      group_size: 128,
      dataset: calib,
      nsamples,
      model_seqlen: seqlen,
    }, {
      backend: be,
      // Block wall time from the engine's start (the "backends:" line) or the previous block's
      // journal entry: a block's last GPU work (its outputs) finishes at its journal readback.
      onLog: (l) => {
        if (l.startsWith("backends:")) mark = performance.now();
      },
      afterBlock: async () => {
        const now = await ctx.gpuTimes();
        perBlock.push(Object.fromEntries(phases.map((p) => [p, (now[p] ?? 0) - (prev[p] ?? 0)])));
        prev = now;
        const t = performance.now();
        wall.push(t - mark);
        mark = t;
      },
    });
    const ms = (x: number) => x.toFixed(1).padStart(9);
    console.log(
      `block   wall ms  forward  Hessian   factor  columns   update   report  wall−GPU  ` +
        `(GPU ms by phase; solver wall incl. readbacks)`,
    );
    wall.forEach((b, i) => {
      const p = perBlock[i] ?? {};
      const gpuMs = phases.reduce((a, k) => a + (p[k] ?? 0), 0);
      const solverWall = rep.modules.filter((m) => m.layer === i).reduce(
        (a, m) => a + (m.seconds ?? 0),
        0,
      );
      console.log(
        `${String(i).padStart(5)} ${ms(b)}${phases.map((k) => ms(p[k] ?? 0)).join("")}` +
          `${ms(b - gpuMs)}    (solver wall ${(solverWall * 1000).toFixed(0)} ms)`,
      );
    });
    const st = ctx.stats;
    console.log(
      `total ${rep.seconds.toFixed(1)} s; ${st.dispatches} dispatches, ${st.submits} submits, ` +
        `${st.reads} readbacks, ${st.pipelines} pipelines (${
          st.pipelineMs.toFixed(0)
        } ms to create); ` +
        `peak RSS ${mib(rep.peakRssBytes)}; solver ${rep.backends.solver}`,
    );
  } finally {
    be.dispose();
    if (!flag("--keep")) await Deno.remove(tmp, { recursive: true });
    else console.log(`kept ${tmp}`);
  }
}
