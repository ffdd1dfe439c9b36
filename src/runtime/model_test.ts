// Copyright 2026 the GPTQ toolkit authors. MIT license.
import { hostBackend } from "../backends/host.ts";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../io/safetensors.ts";
import { CausalLM } from "./model.ts";
import { createTsKernels } from "../backends/typescript/ts_kernels.ts";
import { createWasmKernels } from "../backends/wasm/wasm_kernels.ts";

const GOLDEN = fileURLToPath(new URL("../../../shared/data/golden/models/", import.meta.url));

async function golden(dir: string): Promise<{ ids: number[]; logits: Float32Array }> {
  using g = await SafetensorsFile.open(`${dir}/golden.safetensors`);
  const ids = Array.from(await g.readFloat32("input_ids"));
  return { ids, logits: await g.readFloat32("logits") };
}

for (const backend of ["typescript", "wasm"]) {
  for (const name of ["llama", "opt", "gpt2", "gpt_neox", "llama-gptq-4bit-g32"]) {
    Deno.test(`CausalLM.forward (${backend}) reproduces the golden logits: ${name}`, async () => {
      const dir = GOLDEN + name;
      const { ids, logits } = await golden(dir);
      const kernels = backend === "wasm" ? await createWasmKernels() : createTsKernels();
      const lm = await CausalLM.load(dir, { backend: hostBackend(kernels) });
      try {
        const out = await lm.forward(ids, lm.newCache(ids.length));
        assert.equal(out.length, logits.length);
        let maxDiff = 0;
        for (let i = 0; i < out.length; i++) {
          maxDiff = Math.max(maxDiff, Math.abs(out[i]! - logits[i]!));
        }
        console.log(`${backend} ${name}: max |Δlogit| = ${maxDiff.toExponential(3)}`);
        assert.ok(maxDiff <= 1e-3, `max abs diff ${maxDiff}`);
        // Incremental decoding through the KV cache gives the same last logits.
        const cache = lm.newCache(ids.length);
        await lm.forward(ids.slice(0, 90), cache);
        let last: Float32Array = new Float32Array();
        for (let t = 90; t < ids.length; t++) {
          last = await lm.forward([ids[t]!], cache);
        }
        const V = last.length, T = ids.length;
        let d2 = 0;
        for (let i = 0; i < V; i++) {
          d2 = Math.max(d2, Math.abs(last[i]! - logits[(T - 1) * V + i]!));
        }
        assert.ok(d2 <= 1e-3, `cached decode differs by ${d2}`);
      } finally {
        lm.close();
      }
    });
  }
}
