#!/usr/bin/env -S deno run -A
// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The `gptq` command line: `deno run -A cli.ts <command> [options]`.
 *
 * Commands: `inspect` (what a model folder or safetensors file holds) and
 * `convert llama2c` (import a llama2.c checkpoint as a Hugging Face folder).
 * Every command takes `--help`, `--json` and `--debug`.
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
