// Copyright 2026 the GPTQ toolkit authors. MIT license.
// Whole models on the CUDA/HIP backend against the WASM backend: the golden models (plain and
// GPTQ), and the real stories260K model (plain, and GPTQ checkpoints with act-order and 3 bits
// quantized here): logits, KV-cache decode, greedy tokens (equal), perplexity; a decode step is
// one host read. Registered per target (cuda, hip, hip-cpu), skipped with the reason where a
// target cannot run.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { CausalLM } from "../../runtime/model.ts";
import type { Backend } from "../backend.ts";
import { goldenVsWasm, noDispose, stories260KVsWasm } from "../_model_test_util.ts";
import type { CudaBackend } from "./cuda_backend.ts";
import { disposeBackends, targets, targetTest } from "./_test_targets.ts";

const DATA = Deno.env.get("GPTQ_SHARED_DATA") ??
  fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
const GOLDEN = `${DATA}golden/models/`;
const TS = await targets("model_cuda_test");

/** The shared device backend, with a dispose that does nothing (CausalLM.close disposes). */
function device(be: CudaBackend): Backend {
  return noDispose<Backend>(be);
}

for (const name of ["llama", "opt", "gpt2", "gpt_neox", "llama-gptq-4bit-g32"]) {
  targetTest(TS, `vs wasm on the golden ${name}`, async (be) => {
    await goldenVsWasm(name, GOLDEN + name, () => Promise.resolve(device(be)));
  });
}

targetTest(
  TS,
  "vs wasm on stories260K: plain, GPTQ 4-bit act-order, GPTQ 3-bit asym; greedy equal",
  async (be, t) => {
    await stories260KVsWasm(DATA, t, () => Promise.resolve(device(be)));
  },
);

targetTest(TS, "a decode step is one host read (the greedy token)", async (be) => {
  const lm = await CausalLM.load(GOLDEN + "llama-gptq-4bit-g32", {
    backend: device(be),
    onWarning: () => {},
  });
  try {
    const cache = lm.newCache(16);
    let id = await lm.greedy([1, 2, 3, 4], cache);
    const before = be.reads;
    for (let i = 0; i < 4; i++) id = await lm.greedy([id], cache);
    assert.equal(be.reads - before, 4, "one read per decode step");
    lm.freeCache(cache);
  } finally {
    lm.close();
  }
});

Deno.test({
  name: "model cuda tests: release the shared devices",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => disposeBackends(),
});
