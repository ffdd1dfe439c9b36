// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Writes our runtime's logits for a model folder (plain or GPTQ) so that
 * `check_transformers.py` can compare them with transformers':
 *
 * ```sh
 * deno run -A tests/interop/ours_logits.ts MODEL_DIR INPUT_IDS.safetensors OUT.safetensors
 * ```
 *
 * `INPUT_IDS.safetensors` must hold an I32 or I64 tensor `input_ids` [T]
 * (the goldens' `golden.safetensors` do); `OUT.safetensors` receives
 * `logits` [T, vocab] F32 from one forward pass with the TypeScript kernels.
 *
 * @module
 */

import { GptqError } from "../../src/errors.ts";
import { SafetensorsFile } from "../../src/io/safetensors.ts";
import { writeSafetensors } from "../../src/io/safetensors_writer.ts";
import { CausalLM } from "../../src/runtime/model.ts";

/**
 * Reads `input_ids` from a safetensors file as plain numbers.
 *
 * @example
 * ```ts ignore
 * const ids = await readInputIds("../shared/data/golden/models/llama/golden.safetensors");
 * ```
 *
 * @param path The file.
 * @returns The token ids.
 */
export async function readInputIds(path: string): Promise<number[]> {
  const f = await SafetensorsFile.open(path);
  try {
    const t = await f.read("input_ids");
    const b = t.data;
    if (t.dtype === "I32") {
      return Array.from(new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
    }
    if (t.dtype === "I64") {
      const a = new BigInt64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      return Array.from(a, (v) => Number(v));
    }
    throw new GptqError("INVALID_ARGUMENT", `input_ids has dtype ${t.dtype}`, {
      file: path,
      tensor: "input_ids",
      hint: "store input_ids as I32 or I64",
    });
  } finally {
    f.close();
  }
}

/**
 * Computes logits `[T, vocab]` for `ids` with our runtime.
 *
 * @example
 * ```ts ignore
 * const logits = await ourLogits("./llama-gptq", [1, 2, 3]);
 * ```
 *
 * @param modelDir A model folder (plain or GPTQ).
 * @param ids Token ids.
 * @returns The logits, row-major.
 */
export async function ourLogits(modelDir: string, ids: number[]): Promise<Float32Array> {
  const lm = await CausalLM.load(modelDir);
  try {
    return lm.forward(ids, lm.newCache(ids.length));
  } finally {
    lm.close();
  }
}

if (import.meta.main) {
  const [modelDir, idsPath, outPath] = Deno.args;
  if (!modelDir || !idsPath || !outPath) {
    console.error("usage: ours_logits.ts MODEL_DIR INPUT_IDS.safetensors OUT.safetensors");
    Deno.exit(2);
  }
  const ids = await readInputIds(idsPath);
  const logits = await ourLogits(modelDir, ids);
  await writeSafetensors(outPath, [{
    name: "logits",
    dtype: "F32",
    shape: [ids.length, logits.length / ids.length],
    data: new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength),
  }]);
}
