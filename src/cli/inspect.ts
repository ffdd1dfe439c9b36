// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * `cli.ts inspect PATH [--json]`.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { formatInspectReport, inspectPath } from "../inspect.ts";
import type { Command } from "./_command.ts";

/** The `inspect` command. */
export const inspectCommand: Command = {
  name: "inspect",
  summary: "show a model folder's or safetensors file's architecture, dtypes and quantization",
  usage: "inspect PATH [--json]",
  examples: [
    "inspect ./Llama-2-7B-GPTQ",
    "inspect ./model.safetensors --json",
  ],
  options: {},
  async run(args, io) {
    const path = args.positionals[0];
    if (path === undefined || args.positionals.length > 1) {
      throw new GptqError("INVALID_ARGUMENT", "inspect takes exactly one PATH", {
        hint: "usage: deno run -A cli.ts inspect PATH [--json]",
      });
    }
    const report = await inspectPath(path);
    io.stdout(
      io.json ? JSON.stringify(report, null, 2) + "\n" : formatInspectReport(report) + "\n",
    );
    return 0;
  },
};
