// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * `cli.ts convert llama2c MODEL.bin TOKENIZER.bin --out DIR [--dtype f32|f16|bf16] [--force]`
 * and `cli.ts convert gguf FILE.gguf --out DIR [--dtype f32|f16|bf16] [--force]`.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { convertGguf } from "../io/gguf_convert.ts";
import { convertLlama2c } from "../io/llama2c.ts";
import type { Command } from "./_command.ts";

const USAGE = {
  llama2c: "deno run -A cli.ts convert llama2c MODEL.bin TOKENIZER.bin --out DIR",
  gguf: "deno run -A cli.ts convert gguf FILE.gguf --out DIR",
};

/** The `convert` command. */
export const convertCommand: Command = {
  name: "convert",
  summary: "import a checkpoint from another format (llama2c, gguf) as a Hugging Face folder",
  usage: "convert llama2c MODEL.bin TOKENIZER.bin --out DIR [--dtype f32|f16|bf16] [--force]\n" +
    "convert gguf FILE.gguf --out DIR [--dtype f32|f16|bf16] [--force]",
  examples: [
    "convert llama2c stories260K.bin tok512.bin --out ./stories260K-hf",
    "convert llama2c stories15M.bin tokenizer.bin --out ./stories15M-hf --dtype f16 --force",
    "convert gguf SmolLM2-135M-Instruct.Q4_1.gguf --out ./smollm2-hf",
    "convert gguf qwen2-0_5b-instruct-q8_0.gguf --out ./qwen2-hf --dtype bf16 --json",
  ],
  options: {
    out: {
      type: "string",
      short: "o",
      valueName: "DIR",
      description: "output folder (must not exist unless --force)",
    },
    force: { type: "boolean", description: "replace an existing output folder" },
    dtype: {
      type: "string",
      valueName: "DTYPE",
      description: "weight dtype written: f32 (default; GGUF weights are dequantized to it " +
        "exactly), f16 or bf16 (half the size, rounded)",
    },
  },
  async run(args, io) {
    const [format, ...files] = args.positionals;
    if (format !== "llama2c" && format !== "gguf") {
      throw new GptqError("INVALID_ARGUMENT", `unknown source format '${format ?? ""}'`, {
        hint: "supported: llama2c, gguf",
      });
    }
    const wanted = format === "llama2c" ? 2 : 1;
    if (files.length !== wanted) {
      throw new GptqError(
        "INVALID_ARGUMENT",
        format === "llama2c"
          ? "convert llama2c takes MODEL.bin and TOKENIZER.bin"
          : "convert gguf takes one FILE.gguf",
        { hint: `usage: ${USAGE[format]}` },
      );
    }
    const out = args.values.out;
    if (typeof out !== "string" || out === "") {
      throw new GptqError("INVALID_ARGUMENT", "--out DIR is required", {
        hint: `usage: ${USAGE[format]}`,
      });
    }
    const raw = (args.values.dtype as string | undefined) ?? "f32";
    const dtype = raw.toUpperCase();
    if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") {
      throw new GptqError("INVALID_ARGUMENT", `--dtype must be f32, f16 or bf16, got '${raw}'`);
    }
    const force = args.values.force === true;
    const report = format === "llama2c"
      ? await convertLlama2c(files[0]!, files[1]!, out, { force, dtype })
      : await convertGguf(files[0]!, out, { force, dtype });
    if (io.json) io.stdout(JSON.stringify(report, null, 2) + "\n");
    else io.stdout(`wrote ${out}\n`);
    return 0;
  },
};
