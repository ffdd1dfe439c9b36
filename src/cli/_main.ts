// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The CLI's dispatcher: picks the sub-command, parses its options, runs it,
 * and turns errors into one line on stderr and a non-zero exit code.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { type Command, commandHelp, type CommandIO, parseCommandArgs } from "./_command.ts";
import { COMMANDS } from "./commands.ts";
import { VERSION } from "../version.ts";

const encoder = new TextEncoder();

function topHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `gptq ${VERSION}: quantize LLMs with GPTQ and run them, from Deno.`,
    "",
    "Usage: deno run -A cli.ts <command> [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    "",
    "Run 'deno run -A cli.ts <command> --help' for a command's options and examples.",
    "Global options: --json (machine-readable output), --debug (stack traces), --help.",
  ].join("\n");
}

/**
 * Runs the CLI with the given arguments.
 *
 * @param argv The arguments (without the script name).
 * @param io Where output goes; defaults to the process's stdout/stderr.
 * @returns The exit code.
 */
export async function main(argv: string[], io?: Partial<CommandIO>): Promise<number> {
  const out: CommandIO = {
    stdout: io?.stdout ?? ((t) => Deno.stdout.writeSync(encoder.encode(t))),
    stderr: io?.stderr ?? ((t) => Deno.stderr.writeSync(encoder.encode(t))),
    json: argv.includes("--json"),
  };
  const debug = argv.includes("--debug");
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    out.stdout(topHelp() + "\n");
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-V") {
    out.stdout(`${VERSION}\n`);
    return 0;
  }
  const cmd: Command | undefined = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    out.stderr(
      `error: unknown command '${name}'. Commands: ${COMMANDS.map((c) => c.name).join(", ")}\n`,
    );
    return 2;
  }
  try {
    const args = parseCommandArgs(cmd, rest);
    if (args.values.help) {
      out.stdout(commandHelp(cmd) + "\n");
      return 0;
    }
    return await cmd.run(args, out);
  } catch (err) {
    let e = err;
    // A permission Deno refused (no --allow-read/-write/-net…) is the user's to grant, not a bug.
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      e = new GptqError(
        "PERMISSION_DENIED",
        "permission denied: " + e.message.replace(/\s*,? run again with.*$/, ""),
        {
          hint: "run with the --allow-… flag it names, or -A",
          cause: e,
        },
      );
    }
    if (e instanceof GptqError) {
      if (out.json) {
        out.stdout(
          JSON.stringify({
            error: { code: e.code, message: e.message, file: e.file, tensor: e.tensor },
          }) +
            "\n",
        );
      }
      out.stderr(`error: ${e.message}\n`);
      if (debug && e.stack) out.stderr(e.stack + "\n");
      return e.code === "INVALID_ARGUMENT" ? 2 : 1;
    }
    out.stderr(`internal error: ${(e as Error)?.message ?? String(e)}\n`);
    if (debug) out.stderr(`${(e as Error)?.stack ?? ""}\n`);
    else out.stderr("(run again with --debug for a stack trace, and please report it)\n");
    return 70;
  }
}
