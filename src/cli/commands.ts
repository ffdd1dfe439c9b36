// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The list of CLI sub-commands, in the order `--help` shows them.
 *
 * @module
 */

import type { Command } from "./_command.ts";
import { inspectCommand } from "./inspect.ts";
import { convertCommand } from "./convert.ts";
import { evalCommand } from "./eval.ts";
import { generateCommand } from "./generate.ts";
import { quantizeCommand } from "./quantize.ts";
import { serveCommand } from "./serve.ts";

/** Every sub-command. */
export const COMMANDS: Command[] = [
  quantizeCommand,
  generateCommand,
  serveCommand,
  evalCommand,
  inspectCommand,
  convertCommand,
];
