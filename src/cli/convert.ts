// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * `cli.ts convert llama2c MODEL.bin TOKENIZER.bin --out DIR [--force]`.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { convertLlama2c } from "../io/llama2c.ts";
import type { Command } from "./_command.ts";

/** The `convert` command. */
export const convertCommand: Command = {
  name: "convert",
  summary: "import a checkpoint from another format (llama2c) as a Hugging Face folder",
  usage: "convert llama2c MODEL.bin TOKENIZER.bin --out DIR [--dtype F32|F16|BF16] [--force]",
  examples: [
    "convert llama2c stories260K.bin tok512.bin --out ./stories260K-hf",
    "convert llama2c stories15M.bin tokenizer.bin --out ./stories15M-hf --dtype F16 --force",
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
      description: "weight dtype written: F32 (default), F16 or BF16",
    },
  },
  async run(args, io) {
    const [format, model, tokenizer, ...extra] = args.positionals;
    if (format !== "llama2c") {
      throw new GptqError("INVALID_ARGUMENT", `unknown source format '${format ?? ""}'`, {
        hint: "supported: llama2c",
      });
    }
    if (model === undefined || tokenizer === undefined || extra.length > 0) {
      throw new GptqError("INVALID_ARGUMENT", "convert llama2c takes MODEL.bin and TOKENIZER.bin", {
        hint: "usage: deno run -A cli.ts convert llama2c MODEL.bin TOKENIZER.bin --out DIR",
      });
    }
    const out = args.values.out;
    if (typeof out !== "string" || out === "") {
      throw new GptqError("INVALID_ARGUMENT", "--out DIR is required");
    }
    const dtype = (args.values.dtype as string | undefined) ?? "F32";
    if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") {
      throw new GptqError("INVALID_ARGUMENT", `--dtype must be F32, F16 or BF16, got '${dtype}'`);
    }
    const report = await convertLlama2c(model, tokenizer, out, {
      force: args.values.force === true,
      dtype,
    });
    if (io.json) io.stdout(JSON.stringify(report, null, 2) + "\n");
    else io.stdout(`wrote ${out}\n`);
    return 0;
  },
};
