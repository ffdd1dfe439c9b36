// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The shape of a CLI sub-command and the shared argument parser, built on
 * `node:util` `parseArgs` (`jsr:@std/cli` is not reachable from our
 * registries, and parseArgs is built in).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { GptqError } from "../errors.ts";
import type { BackendName } from "../backends/select.ts";

/** One option of a sub-command. */
export interface OptionSpec {
  /** `boolean` for flags, `string` for values (numbers are parsed by the command). */
  type: "boolean" | "string";
  /** One-letter alias. */
  short?: string;
  /** Shown in `--help`. */
  description: string;
  /** Placeholder shown in `--help` for string options. */
  valueName?: string;
  /** Whether the option may be repeated. */
  multiple?: boolean;
}

/** Parsed arguments handed to a command. */
export interface ParsedArgs {
  /** Positional arguments after the command name. */
  positionals: string[];
  /** Option values by long name. */
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
}

/** A sub-command of `cli.ts`. */
export interface Command {
  /** Its name, e.g. `inspect`. */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Usage line(s), without the `deno run -A cli.ts` prefix. */
  usage: string;
  /** Worked examples, without the prefix. */
  examples: string[];
  /** Notes shown in `--help` after the usage (wrapped). */
  notes?: string[];
  /** Its options (the global ones are added automatically). */
  options: Record<string, OptionSpec>;
  /** Runs the command; returns the exit code. */
  run(args: ParsedArgs, io: CommandIO): Promise<number>;
}

/** Where a command writes. */
export interface CommandIO {
  /** Normal output (results). */
  stdout(text: string): void;
  /** Progress and diagnostics. */
  stderr(text: string): void;
  /** Whether `--json` was given. */
  json: boolean;
}

/** Options every command accepts. */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  help: { type: "boolean", short: "h", description: "show this help" },
  json: { type: "boolean", description: "print machine-readable JSON on stdout" },
  debug: { type: "boolean", description: "show stack traces on errors" },
};

/** A value that reads as a negative number (`-1`, `-0.5`, `-1e-3`, `-.5`). */
const NEGATIVE_NUMBER = /^-(\d|\.\d)/;

/**
 * `parseArgs` refuses `--group-size -1` as ambiguous (the value looks like an
 * option). Joins a negative-number value to the option that takes it
 * (`--group-size=-1`, `-o-1`), so the documented form works; everything
 * after `--` is left alone.
 */
function joinNegativeValues(
  argv: readonly string[],
  options: Record<string, { type: "boolean" | "string"; short?: string }>,
): string[] {
  const shortToLong = new Map<string, string>();
  for (const [name, o] of Object.entries(options)) if (o.short) shortToLong.set(o.short, name);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    const long = /^--([^=]+)$/.exec(a)?.[1];
    const short = /^-([^-=])$/.exec(a)?.[1];
    const name = long ?? (short === undefined ? undefined : shortToLong.get(short));
    if (
      name !== undefined && options[name]?.type === "string" && next !== undefined &&
      NEGATIVE_NUMBER.test(next)
    ) {
      out.push(long !== undefined ? `--${long}=${next}` : `-${short}${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/**
 * Parses a command's arguments, turning parse failures into a
 * {@linkcode GptqError} with the command's usage as the hint.
 *
 * @param cmd The command.
 * @param argv Arguments after the command name.
 * @returns The parsed arguments.
 */
export function parseCommandArgs(cmd: Command, argv: string[]): ParsedArgs {
  const options: Record<
    string,
    { type: "boolean" | "string"; short?: string; multiple?: boolean }
  > = {};
  for (const [name, spec] of Object.entries({ ...GLOBAL_OPTIONS, ...cmd.options })) {
    options[name] = {
      type: spec.type,
      ...(spec.short ? { short: spec.short } : {}),
      ...(spec.multiple ? { multiple: true } : {}),
    };
  }
  try {
    const r = parseArgs({
      args: joinNegativeValues(argv, options),
      options,
      allowPositionals: true,
      strict: true,
    });
    return { positionals: r.positionals, values: { ...r.values } };
  } catch (e) {
    // One line: parseArgs' messages span several.
    const message = (e as Error).message.replace(/\s*\n\s*/g, " ");
    throw new GptqError("INVALID_ARGUMENT", message, {
      hint: `usage: deno run -A cli.ts ${cmd.usage.split("\n")[0]}; see --help`,
    });
  }
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out;
}

/**
 * Renders a command's `--help` text.
 *
 * @param cmd The command.
 * @returns The help text.
 */
export function commandHelp(cmd: Command): string {
  const lines = [`${cmd.summary}`, "", "Usage:"];
  for (const u of cmd.usage.split("\n")) lines.push(`  deno run -A cli.ts ${u}`);
  for (const note of cmd.notes ?? []) lines.push("", ...wrap(note, 98).map((l) => `  ${l}`));
  lines.push("", "Options:");
  const all = { ...cmd.options, ...GLOBAL_OPTIONS };
  const rows = Object.entries(all).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : "    "}--${name}${
      spec.type === "string" ? ` ${spec.valueName ?? "VALUE"}` : ""
    }`;
    return [flag, spec.description] as const;
  });
  const w = Math.max(...rows.map(([f]) => f.length));
  for (const [f, d] of rows) lines.push(`  ${f.padEnd(w)}  ${d}`);
  if (cmd.examples.length) {
    lines.push("", "Examples:");
    for (const ex of cmd.examples) lines.push(`  deno run -A cli.ts ${ex}`);
  }
  return lines.join("\n");
}

function boundedOption(
  args: ParsedArgs,
  name: string,
  fallback: number,
  min: number,
  max: number,
  integer: boolean,
): number {
  const v = args.values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  const ok = typeof v === "string" && v.trim() !== "" &&
    (integer ? Number.isInteger(n) : Number.isFinite(n)) && n >= min && n <= max;
  if (!ok) {
    const kind = integer ? "an integer" : "a number";
    const range = min === -Infinity && max === Infinity
      ? ""
      : max === Infinity
      ? ` ≥ ${min}`
      : min === -Infinity
      ? ` ≤ ${max}`
      : ` in [${min}, ${max}]`;
    throw new GptqError("INVALID_ARGUMENT", `--${name} must be ${kind}${range}, got '${v}'`);
  }
  return n;
}

/**
 * Reads a string option as an integer within bounds.
 *
 * @param args Parsed arguments.
 * @param name The option's long name.
 * @param fallback The default.
 * @param min Smallest allowed value.
 * @param max Largest allowed value.
 * @returns The value.
 */
export function intOption(
  args: ParsedArgs,
  name: string,
  fallback: number,
  min = -Infinity,
  max = Infinity,
): number {
  return boundedOption(args, name, fallback, min, max, true);
}

/**
 * Reads a string option as a number within bounds.
 *
 * @param args Parsed arguments.
 * @param name The option's long name.
 * @param fallback The default.
 * @param min Smallest allowed value.
 * @param max Largest allowed value.
 * @returns The value.
 */
export function numberOption(
  args: ParsedArgs,
  name: string,
  fallback: number,
  min = -Infinity,
  max = Infinity,
): number {
  return boundedOption(args, name, fallback, min, max, false);
}

/** The `--backend` option shared by the commands that run a model. */
export const BACKEND_OPTION: OptionSpec = {
  type: "string",
  valueName: "NAME",
  description:
    "compute backend: auto (default: CUDA or HIP on a GPU, else WebGPU on a real GPU, else WASM " +
    "SIMD, else TypeScript), cuda, hip, webgpu, wasm or typescript",
};

/** `--threads`, shared by the commands that run a model (generate, eval, serve). */
export const THREADS_OPTION: OptionSpec = {
  type: "string",
  valueName: "N",
  description: "CPU (WASM) inference threads, 1..64 (default: all cores; identical output for " +
    "any N; GPU backends ignore it)",
};

/**
 * Reads `--threads` (CPU inference threads, 1..64).
 *
 * @example
 * ```ts ignore
 * const threads = threadsOption(args); // 1..64, or undefined for all cores
 * ```
 *
 * @param args Parsed arguments.
 * @returns The thread count, or `undefined` for the default (all cores).
 */
export function threadsOption(args: ParsedArgs): number | undefined {
  return args.values.threads === undefined ? undefined : intOption(args, "threads", 1, 1, 64);
}

/** `--act-quant`, shared by the commands that run a model (generate, eval, serve). */
export const ACT_QUANT_OPTION: OptionSpec = {
  type: "string",
  valueName: "f32|int8",
  description: "CPU (WASM) activation precision of GPTQ linears: f32 (default, exact) or int8 " +
    "(per-32 int8 activations and integer dot products like llama.cpp: faster, perplexity " +
    "changes slightly; GPU backends ignore it)",
};

/**
 * Reads `--act-quant` (CPU activation precision of GPTQ linears).
 *
 * @example
 * ```ts ignore
 * const actQuant = actQuantOption(args); // "f32" | "int8" | undefined
 * ```
 *
 * @param args Parsed arguments.
 * @returns The precision, or `undefined` for the default.
 */
export function actQuantOption(args: ParsedArgs): "f32" | "int8" | undefined {
  const v = args.values["act-quant"];
  if (v === undefined) return undefined;
  if (v !== "f32" && v !== "int8") {
    throw new GptqError("INVALID_ARGUMENT", `--act-quant must be f32 or int8, got '${v}'`, {
      hint: "f32 keeps the exact activations; int8 quantizes them per 32 values (faster)",
    });
  }
  return v;
}

/** `--zero-format`, shared by the commands that load a model. */
export const ZERO_FORMAT_OPTION: OptionSpec = {
  type: "string",
  valueName: "FORMAT",
  description: "force GPTQ zero points: gptq (v1) or gptq_v2 (default: from the config, checked " +
    "against the stored zeros)",
};

/**
 * Reads `--zero-format`.
 *
 * @example
 * ```ts ignore
 * const f = zeroFormatOption(args); // "gptq" | "gptq_v2" | undefined
 * ```
 *
 * @param args Parsed arguments.
 * @returns The forced format, or `undefined`.
 */
export function zeroFormatOption(args: ParsedArgs): "gptq" | "gptq_v2" | undefined {
  const v = args.values["zero-format"];
  if (v === undefined) return undefined;
  if (v !== "gptq" && v !== "gptq_v2") {
    throw new GptqError("INVALID_ARGUMENT", `--zero-format must be gptq or gptq_v2, got '${v}'`, {
      hint: "use gptq for v1 zero points (AutoGPTQ's default) or gptq_v2 (GPTQModel's)",
    });
  }
  return v;
}

/**
 * Reads `--backend` (validated by `selectKernels`).
 *
 * @param args Parsed arguments.
 * @returns The requested backend.
 */
export function backendOption(args: ParsedArgs): BackendName {
  return (args.values.backend as BackendName | undefined) ?? "auto";
}

/** `--revision`, shared by the commands that take a MODEL (folder or Hub id). */
export const REVISION_OPTION: OptionSpec = {
  type: "string",
  valueName: "REV",
  description: "Hub branch, tag or commit when the model is a Hub id owner/name (default main; " +
    "owner/name@REV works too; ignored for a local path)",
};

/**
 * Reads `--revision`.
 *
 * @example
 * ```ts ignore
 * const rev = revisionOption(args); // "main", "v1.0", a commit, or undefined
 * ```
 *
 * @param args Parsed arguments.
 * @returns The revision, or `undefined`.
 */
export function revisionOption(args: ParsedArgs): string | undefined {
  const v = args.values.revision;
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v.trim() === "") {
    throw new GptqError("INVALID_ARGUMENT", "--revision needs a branch, a tag or a commit");
  }
  return v.trim();
}

/** How `--help` describes a MODEL argument. */
export const MODEL_HELP = "MODEL is a local folder or a Hugging Face Hub id (owner/name, " +
  "owner/name@REV), downloaded once into the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or " +
  "~/.cache/huggingface/hub); HF_ENDPOINT picks a mirror, HF_TOKEN logs in, HF_HUB_OFFLINE=1 " +
  "uses the cache only.";
