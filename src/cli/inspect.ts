// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * `cli.ts inspect PATH [--json]`.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { formatInspectReport, inspectPath } from "../inspect.ts";
import { type Command, MODEL_HELP, REVISION_OPTION } from "./_command.ts";
import { resolveModelArg } from "./_hub.ts";

/** The `inspect` command. */
export const inspectCommand: Command = {
  name: "inspect",
  summary: "show a model folder's or safetensors file's architecture, dtypes and quantization",
  usage: "inspect PATH [--revision REV] [--json]",
  examples: [
    "inspect ./Llama-2-7B-GPTQ",
    "inspect ./model.safetensors --json",
    "inspect TheBloke/TinyLlama-1.1B-Chat-v1.0-GPTQ",
  ],
  notes: [
    MODEL_HELP.replace("MODEL is a local folder", "PATH is a local folder, a .safetensors file"),
  ],
  options: { revision: REVISION_OPTION },
  async run(args, io) {
    const path = args.positionals[0];
    if (path === undefined || args.positionals.length > 1) {
      throw new GptqError("INVALID_ARGUMENT", "inspect takes exactly one PATH", {
        hint: "usage: deno run -A cli.ts inspect PATH [--json]",
      });
    }
    const report = await inspectPath(await resolveModelArg(path, args, io));
    io.stdout(
      io.json ? JSON.stringify(report, null, 2) + "\n" : formatInspectReport(report) + "\n",
    );
    return 0;
  },
};
