#!/usr/bin/env -S deno run -A
// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The `gptq` command line: `deno run -A cli.ts <command> [options]`.
 *
 * Commands: `quantize` (GPTQ into an AutoGPTQ-layout checkpoint),
 * `generate` (stream text), `eval` (perplexity as the GPTQ paper computes it),
 * `serve` (an OpenAI-compatible HTTP server), `inspect` (what a model folder
 * or safetensors file holds) and `convert llama2c` / `convert gguf` (import a
 * llama2.c or GGUF model as a Hugging Face folder). Every command takes
 * `--help`, `--json` and `--debug`; `deno run -A cli.ts --help` lists them.
 *
 * @example Inspect a quantized checkpoint
 * ```sh
 * deno run -A cli.ts inspect ./TinyLlama-GPTQ --json
 * ```
 *
 * @module
 */

import { main } from "./src/cli/_main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
