// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Loading GPTQ checkpoints: the v1/v2 zero-point decision, `g_idx` in any
 * order and biases, checked against AutoGPTQ's own forward of its own
 * checkpoint (`golden/models/llama-gptq-4bit-g32`, v1, sym, g32) and copies
 * of it rewritten here (zeros converted to v2, configs that lie, groups
 * shuffled, biases added).
 *
 * @module
 */

import { hostBackend } from "../backends/host.ts";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../errors.ts";
import { SafetensorsFile } from "../io/safetensors.ts";
import { type NamedTensor, writeSafetensors } from "../io/safetensors_writer.ts";
import { ModelFolder } from "../io/model_folder.ts";
import { convertV1ToV2 } from "../gptq/zero_format.ts";
import { dequantizeLinear, readQuantLinear } from "../gptq/quant_linear.ts";
import type { ZeroFormat } from "../gptq/pack.ts";
import type { Kernels } from "../backends/host_kernels.ts";
import { CausalLM } from "./model.ts";
import { decideZeroFormat, resolveZeroFormat } from "./quant_load.ts";
import { mulberry32 } from "./sample.ts";
import { createTsKernels } from "../backends/typescript/ts_kernels.ts";
import { createWasmKernels } from "../backends/wasm/wasm_kernels.ts";

const GOLDEN = fileURLToPath(new URL("../../../shared/data/golden/models/", import.meta.url));
const SRC = `${GOLDEN}llama-gptq-4bit-g32`;

async function goldenLogits(): Promise<{ ids: number[]; logits: Float32Array }> {
  using g = await SafetensorsFile.open(`${SRC}/golden.safetensors`);
  return {
    ids: Array.from(await g.readFloat32("input_ids")),
    logits: await g.readFloat32("logits"),
  };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

function relL2(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

function i32(t: NamedTensor): Int32Array {
  const d = t.data.slice();
  return new Int32Array(d.buffer, 0, d.byteLength / 4);
}

function bytes(a: Int32Array | Uint16Array | Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

interface CopyEdits {
  /** Rewrites the tensor list. */
  tensors?: (ts: NamedTensor[]) => NamedTensor[] | Promise<NamedTensor[]>;
  /** Edits quantize_config.json and config.json's quantization_config (null: drop both). */
  quant?: ((q: Record<string, unknown>) => void) | null;
  /** Edits config.json. */
  config?: (c: Record<string, unknown>) => void;
}

/** Copies the golden GPTQ folder into `dst`, applying edits. */
async function copyGolden(dst: string, edits: CopyEdits = {}): Promise<void> {
  await Deno.mkdir(dst, { recursive: true });
  for (const f of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
    await Deno.copyFile(`${SRC}/${f}`, `${dst}/${f}`);
  }
  const config = JSON.parse(await Deno.readTextFile(`${SRC}/config.json`));
  const qc = JSON.parse(await Deno.readTextFile(`${SRC}/quantize_config.json`));
  edits.config?.(config);
  if (edits.quant === null) {
    delete config.quantization_config;
  } else {
    edits.quant?.(qc);
    edits.quant?.(config.quantization_config);
    await Deno.writeTextFile(`${dst}/quantize_config.json`, JSON.stringify(qc, null, 2));
  }
  await Deno.writeTextFile(`${dst}/config.json`, JSON.stringify(config, null, 2));
  using f = await SafetensorsFile.open(`${SRC}/model.safetensors`);
  let ts: NamedTensor[] = [];
  for (const name of f.names()) {
    const r = await f.read(name);
    ts.push({ name, dtype: r.dtype, shape: [...r.shape], data: r.data });
  }
  if (edits.tensors) ts = await edits.tensors(ts);
  await writeSafetensors(`${dst}/model.safetensors`, ts, { format: "pt" });
}

/** The golden's qzeros converted to v2 (GPTQModel's word-wise add; no field overflows at sym). */
function toV2(ts: NamedTensor[]): NamedTensor[] {
  return ts.map((t) => {
    if (!t.name.endsWith(".qzeros")) return t;
    const [G, W] = t.shape as [number, number];
    const v2 = convertV1ToV2(i32(t), G, (W * 32) / 4, 4);
    return { ...t, data: bytes(v2) };
  });
}

async function logitsOf(
  dir: string,
  kernels: Kernels,
  ids: number[],
  opts: { zeroFormat?: ZeroFormat } = {},
): Promise<{ logits: Float32Array; warnings: string[]; format: string | undefined }> {
  const warnings: string[] = [];
  const lm = await CausalLM.load(dir, {
    backend: hostBackend(kernels),
    onWarning: (m) => warnings.push(m),
    ...opts,
  });
  try {
    const logits = await lm.forward(ids, lm.newCache(ids.length));
    return { logits, warnings, format: lm.ctx.zeroFormat?.format };
  } finally {
    lm.close();
  }
}

const backends: [string, () => Kernels | Promise<Kernels>][] = [
  ["typescript", () => createTsKernels()],
  ["wasm", () => createWasmKernels({ threads: 2 })],
];

Deno.test("decideZeroFormat: symmetric constants beat the config, statistics do not", () => {
  const v2Const = { format: "gptq_v2" as const, reason: "all 64 stored zeros are 8" };
  const v2Stat = { format: "gptq_v2" as const, reason: "asymmetric zeros centred on 7.5" };
  const base = { configExplicit: true, sym: true, source: "q.json" };
  let d = decideZeroFormat({ ...base, configFormat: "gptq", detected: v2Const, certain: true });
  assert.deepEqual([d.format, d.source], ["gptq_v2", "detected"]);
  assert.match(d.warning!, /q\.json says checkpoint_format "gptq".*using "gptq_v2"/);
  d = decideZeroFormat({ ...base, configFormat: "gptq_v2", detected: v2Const, certain: true });
  assert.deepEqual([d.format, d.source, d.warning], ["gptq_v2", "config", null]);
  // Asymmetric: an explicit config wins (with a warning saying how to override) ...
  d = decideZeroFormat({
    ...base,
    sym: false,
    configFormat: "gptq",
    detected: v2Stat,
    certain: false,
  });
  assert.deepEqual([d.format, d.source], ["gptq", "config"]);
  assert.match(d.warning!, /set "checkpoint_format": "gptq_v2"/);
  // ... but a default (no format named anywhere) does not.
  d = decideZeroFormat({
    ...base,
    sym: false,
    configExplicit: false,
    configFormat: "gptq",
    detected: v2Stat,
    certain: false,
  });
  assert.deepEqual([d.format, d.source], ["gptq_v2", "detected"]);
  // Undecidable zeros: the config, and a warning only when sym=true was contradicted.
  const unknown = { format: "unknown" as const, reason: "zeros are not constant" };
  d = decideZeroFormat({ ...base, configFormat: "gptq_v2", detected: unknown, certain: false });
  assert.deepEqual([d.format, d.source], ["gptq_v2", "config"]);
  assert.match(d.warning!, /zeros are not constant/);
  d = decideZeroFormat({
    ...base,
    sym: false,
    configFormat: "gptq_v2",
    detected: unknown,
    certain: false,
  });
  assert.equal(d.warning, null);
});

for (const [backend, make] of backends) {
  Deno.test(`GPTQ loading (${backend}): every zero-format variant of AutoGPTQ's checkpoint gives its logits`, async () => {
    const { ids, logits: golden } = await goldenLogits();
    const tmp = await Deno.makeTempDir({ prefix: "gptq-quant-load-" });
    try {
      const kernels = await make();
      // As written by AutoGPTQ: v1, config "gptq", no warning.
      const asIs = await logitsOf(SRC, kernels, ids);
      assert.deepEqual(asIs.warnings, []);
      assert.equal(asIs.format, "gptq");
      const tol = 1e-3;
      const d0 = maxAbsDiff(asIs.logits, golden);
      assert.ok(d0 <= tol, `as-is: ${d0}`);

      // Decoding the v1 zeros as v2 shifts every weight by a step: far off (the test can tell).
      const forced = await logitsOf(SRC, createTsKernels(), ids, { zeroFormat: "gptq_v2" });
      const dWrong = maxAbsDiff(forced.logits, golden);
      assert.ok(dWrong > 100 * tol, `wrong format only ${dWrong} off`);

      // A config that lies about v1 zeros.
      await copyGolden(`${tmp}/claims-v2`, { quant: (q) => (q.checkpoint_format = "gptq_v2") });
      const lie = await logitsOf(`${tmp}/claims-v2`, kernels, ids);
      assert.equal(lie.format, "gptq");
      assert.equal(lie.warnings.length, 1);
      assert.match(lie.warnings[0]!, /says checkpoint_format "gptq_v2".*using "gptq"/);
      assert.ok(maxAbsDiff(lie.logits, golden) <= tol);

      // The classic mix-up: v2 zeros (all 8) under a "gptq" config.
      await copyGolden(`${tmp}/v2-says-v1`, { tensors: toV2 });
      const mix = await logitsOf(`${tmp}/v2-says-v1`, kernels, ids);
      assert.equal(mix.format, "gptq_v2");
      assert.equal(mix.warnings.length, 1);
      assert.match(mix.warnings[0]!, /stored zeros are 8 = 2\^\(b-1\)/);
      assert.ok(maxAbsDiff(mix.logits, golden) <= tol);

      // Honest v2 (GPTQModel's `format` spelling): no warning.
      await copyGolden(`${tmp}/v2`, {
        tensors: toV2,
        quant: (q) => {
          delete q.checkpoint_format;
          q.format = "gptq_v2";
        },
      });
      const v2 = await logitsOf(`${tmp}/v2`, kernels, ids);
      assert.deepEqual([v2.format, v2.warnings], ["gptq_v2", []]);
      assert.ok(maxAbsDiff(v2.logits, golden) <= tol);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  });
}

Deno.test("GPTQ loading: groups stored in any order (shuffled g_idx, scales and qzeros rows) give the same logits", async () => {
  const { ids, logits: golden } = await goldenLogits();
  const tmp = await Deno.makeTempDir({ prefix: "gptq-quant-load-" });
  try {
    const rand = mulberry32(7);
    let shuffled = 0;
    await copyGolden(tmp, {
      tensors: (ts) => {
        const byName = new Map(ts.map((t) => [t.name, t]));
        for (const t of ts) {
          if (!t.name.endsWith(".g_idx")) continue;
          const m = t.name.slice(0, -".g_idx".length);
          const sc = byName.get(`${m}.scales`)!, qz = byName.get(`${m}.qzeros`)!;
          const G = sc.shape[0]!;
          // sigma: a random permutation of the groups (Fisher-Yates).
          const sigma = Array.from({ length: G }, (_, i) => i);
          for (let i = G - 1; i > 0; i--) {
            const j = Math.floor(rand() * (i + 1));
            [sigma[i], sigma[j]] = [sigma[j]!, sigma[i]!];
          }
          const permuteRows = (x: NamedTensor) => {
            const row = x.data.byteLength / G;
            const out = new Uint8Array(x.data.byteLength);
            for (let g = 0; g < G; g++) {
              out.set(x.data.subarray(g * row, (g + 1) * row), sigma[g]! * row);
            }
            byName.set(x.name, { ...x, data: out });
          };
          permuteRows(sc);
          permuteRows(qz);
          const g = i32(t).map((v) => sigma[v]!);
          byName.set(t.name, { ...t, data: bytes(g) });
          shuffled++;
        }
        return ts.map((t) => byName.get(t.name)!);
      },
    });
    assert.equal(shuffled, 14);
    for (const [backend, make] of backends) {
      const r = await logitsOf(tmp, await make(), ids);
      const d = maxAbsDiff(r.logits, golden);
      console.log(`${backend}: shuffled groups, max |Δlogit| vs AutoGPTQ = ${d.toExponential(3)}`);
      assert.ok(d <= 1e-3, `${backend}: ${d}`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("GPTQ loading: biases of quantized linears are applied (vs a dense copy with dequantized weights)", async () => {
  const { ids } = await goldenLogits();
  const tmp = await Deno.makeTempDir({ prefix: "gptq-quant-load-" });
  try {
    const rand = mulberry32(11);
    const biases = new Map<string, Float32Array>();
    const addBias = (ts: NamedTensor[]): NamedTensor[] => {
      const out: NamedTensor[] = [];
      for (const t of ts) {
        out.push(t);
        if (!/self_attn\.[qkvo]_proj\.qweight$/.test(t.name)) continue;
        const m = t.name.slice(0, -".qweight".length);
        let b = biases.get(m);
        if (!b) biases.set(m, b = new Float32Array(t.shape[1]!).map(() => rand() - 0.5));
        out.push({ name: `${m}.bias`, dtype: "F32", shape: [b.length], data: bytes(b) });
      }
      return out;
    };
    const biasConfig = (c: Record<string, unknown>) => (c.attention_bias = true);
    await copyGolden(`${tmp}/q`, { tensors: addBias, config: biasConfig });
    assert.equal(biases.size, 8);
    // The reference: the same model with every quantized weight dequantized by the
    // reference decoder (bit-checked against AutoGPTQ elsewhere) and stored dense.
    using src = await ModelFolder.open(`${tmp}/q`);
    const dense: NamedTensor[] = [];
    for (const m of src.quantizedModules()) {
      const t = await readQuantLinear(src, m, 4, src.dir, { groupSize: 32 });
      assert.deepEqual(t.bias, biases.get(m) ?? null, `${m}: bias not read as stored`);
      const w = dequantizeLinear(t, "gptq");
      dense.push({ name: `${m}.weight`, dtype: "F32", shape: [t.N, t.K], data: bytes(w) });
    }
    await copyGolden(`${tmp}/dense`, {
      quant: null,
      config: biasConfig,
      tensors: (ts) => [
        ...addBias(ts).filter((t) => !/\.(qweight|qzeros|scales|g_idx)$/.test(t.name)),
        ...dense,
      ],
    });
    const ref = await logitsOf(`${tmp}/dense`, createTsKernels(), ids);
    const noBias = await logitsOf(SRC, createTsKernels(), ids);
    assert.ok(relL2(noBias.logits, ref.logits) > 1e-2, "the biases make no difference");
    for (const [backend, make] of backends) {
      const r = await logitsOf(`${tmp}/q`, await make(), ids);
      const e = relL2(r.logits, ref.logits);
      console.log(`${backend}: quantized+bias vs dense reference, rel L2 ${e.toExponential(3)}`);
      assert.ok(e <= 1e-4, `${backend}: ${e}`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("GPTQ loading: a Marlin checkpoint is refused with a GptqError naming the config", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "gptq-quant-load-" });
  try {
    await copyGolden(tmp, { quant: (q) => (q.checkpoint_format = "marlin") });
    using folder = await ModelFolder.open(tmp);
    await assert.rejects(
      () => resolveZeroFormat(folder),
      (e: unknown) =>
        e instanceof GptqError && e.code === "QUANT_CONFIG" &&
        /quantize_config\.json/.test(e.message) && /marlin/.test(e.message),
    );
    await assert.rejects(() => CausalLM.load(tmp), GptqError);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("resolveZeroFormat: samples at most about sampleFields zeros and says why", async () => {
  using folder = await ModelFolder.open(SRC);
  const d = await resolveZeroFormat(folder, { sampleFields: 1 });
  // One module: k_proj (N = 64, G = 4) → 4 · 64 = 256 zero points.
  assert.match(d.detected.reason, /all 256 stored zeros are 7/);
  assert.deepEqual([d.format, d.source, d.certain, d.configExplicit], [
    "gptq",
    "config",
    true,
    true,
  ]);
});
