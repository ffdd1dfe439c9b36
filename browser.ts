// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The browser entry point: load a model (plain or GPTQ) from a base URL and
 * generate with the WASM SIMD backend (one thread), in any browser with
 * WebAssembly SIMD. `deno task build:browser` bundles it with esbuild into
 * `dist/browser/gptq.js`, an ES module with no imports (the WASM module is
 * embedded); this module's graph holds no `Deno.`/`node:` code: files are
 * fetched with HTTP `Range` requests (`src/io/_files_web.ts` replaces
 * `src/io/_files.ts` in the bundle), and the WASM backend's helper Worker
 * (`node:worker_threads`) is replaced by `_sync_pool_web.ts`.
 *
 * The model folder is read as on disk: `config.json`, `tokenizer.json`
 * (`tokenizer_config.json`, `quantize_config.json`, `generation_config.json`
 * when present) and `model.safetensors` or `model.safetensors.index.json`
 * with its shards. Import the bundle, not this file: unbundled (in Deno), the
 * readers use local files and {@linkcode loadModelFromUrl} refuses to run.
 *
 * @example Stream a greedy story into a page
 * ```ts ignore
 * import { loadModelFromUrl } from "./dist/browser/gptq.js";
 * const model = await loadModelFromUrl(new URL("./stories260K/", location.href));
 * for await (const piece of model.generate("", { max_new_tokens: 256, temperature: 0 })) {
 *   document.querySelector("#out")!.textContent += piece;
 * }
 * model.close();
 * ```
 *
 * @module
 */

import { openFile as readersOpenFile } from "./src/io/_files.ts";
import { openFile as webOpenFile, registerFolder } from "./src/io/_files_web.ts";
import { GptqError } from "./src/errors.ts";
import { ModelFolder } from "./src/io/model_folder.ts";
import { hostBackend } from "./src/backends/host.ts";
import { createWasmKernels } from "./src/backends/wasm/wasm_kernels.ts";
import { createTsKernels } from "./src/backends/typescript/ts_kernels.ts";
import { CausalLM } from "./src/runtime/model.ts";
import { type GenerateOptions, type GenerateStats, generateText } from "./src/runtime/generate.ts";

export type { GenerateOptions, GenerateStats } from "./src/runtime/generate.ts";
export type { SamplingOptions } from "./src/runtime/sample.ts";
export { GptqError, type GptqErrorCode } from "./src/errors.ts";

/** Options of {@linkcode loadModelFromUrl}. */
export interface UrlModelOptions {
  /**
   * `"wasm"` (default): the Rust SIMD kernels, one thread; `"typescript"`:
   * the reference kernels (slow, for comparison).
   */
  backend?: "wasm" | "typescript";
  /**
   * The folder's file names, when the weights are neither
   * `model.safetensors` nor `model.safetensors.index.json` (e.g. AutoGPTQ's
   * `gptq_model-4bit-128g.safetensors`): a URL folder cannot be listed.
   */
  files?: readonly string[];
}

/** A model loaded from URLs. */
export interface UrlModel {
  /** The backend's label, e.g. `"wasm-simd128"`. */
  readonly backend: string;
  /** The architecture family, e.g. `"llama"`. */
  readonly family: string;
  /**
   * Encodes text as the tokenizer's config says (BOS added when it asks).
   *
   * @param text The text.
   * @returns Token ids.
   */
  encode(text: string): number[];
  /**
   * Decodes token ids (special tokens skipped).
   *
   * @param ids Token ids.
   * @returns The text.
   */
  decode(ids: readonly number[]): string;
  /**
   * Generates text after a prompt (`""`: from BOS only), piece by piece.
   *
   * @param prompt The prompt text.
   * @param opts Sampling and stopping (`temperature: 0` is greedy).
   * @param stats Filled in as generation proceeds.
   * @returns Printable text pieces.
   */
  generate(prompt: string, opts?: GenerateOptions, stats?: GenerateStats): AsyncGenerator<string>;
  /** Frees the model's backend memory. */
  close(): void;
}

/**
 * Loads a model folder served over HTTP(S), e.g. from the page's own origin.
 *
 * @example
 * ```ts ignore
 * import { loadModelFromUrl } from "./dist/browser/gptq.js";
 * const model = await loadModelFromUrl("https://example.com/models/stories260K/");
 * let text = "";
 * for await (const piece of model.generate("Once upon a time", { temperature: 0 })) text += piece;
 * ```
 *
 * @param url The folder's URL (absolute, or relative to the page).
 * @param opts Backend and file names.
 * @returns The loaded model.
 */
export async function loadModelFromUrl(
  url: string | URL,
  opts: UrlModelOptions = {},
): Promise<UrlModel> {
  if (readersOpenFile !== webOpenFile) {
    // Unbundled, the readers still use the local-file layer (src/io/_files.ts).
    throw new GptqError("INVALID_ARGUMENT", "browser.ts reads URLs only when bundled", {
      hint: "run deno task build:browser and import dist/browser/gptq.js; " +
        "in Deno, use loadModel from mod.ts",
    });
  }
  const base =
    (typeof url === "string" && typeof location !== "undefined"
      ? new URL(url, location.href)
      : new URL(url)).href.replace(/\/+$/, "");
  registerFolder(base, opts.files);
  const kernels = opts.backend === "typescript"
    ? createTsKernels()
    : await createWasmKernels({ threads: 1 });
  const folder = await ModelFolder.open(base);
  try {
    const lm = await CausalLM.load(folder, { backend: hostBackend(kernels) });
    const tokenizer = await folder.tokenizer();
    return {
      backend: lm.backend.name,
      family: folder.arch.family,
      encode: (text) => tokenizer.encode(text),
      decode: (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }),
      generate: (prompt, g, stats) => generateText(lm, tokenizer, prompt, g, stats),
      close: () => lm.close(),
    };
  } catch (e) {
    folder.close();
    throw e;
  }
}
