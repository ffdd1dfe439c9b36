// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Resolves a command's MODEL argument (a folder or a Hub id) with a download
 * progress bar on stderr.
 *
 * @module
 */

import { resolveModel } from "../io/hub.ts";
import { type CommandIO, type ParsedArgs, revisionOption } from "./_command.ts";
import { type Progress, startProgress } from "./_progress.ts";

/** Bytes as MiB with one decimal, the unit the bar counts in. */
function mib(bytes: number): number {
  return Math.round(bytes / 104857.6) / 10;
}

/**
 * Turns MODEL into a local folder: a local path as is, a Hub id downloaded
 * into the Hugging Face cache (honouring `--revision`), with progress and ETA
 * on stderr.
 *
 * @example
 * ```ts ignore
 * const dir = await resolveModelArg("HuggingFaceTB/SmolLM2-135M-Instruct", args, io);
 * ```
 *
 * @param model The MODEL argument.
 * @param args Parsed arguments (for `--revision`).
 * @param io Where progress goes.
 * @returns A local path.
 */
export async function resolveModelArg(
  model: string,
  args: ParsedArgs,
  io: CommandIO,
): Promise<string> {
  const revision = revisionOption(args);
  let bar: Progress | null = null;
  try {
    return await resolveModel(model, {
      ...(revision === undefined ? {} : { revision }),
      onLog: (line) => io.stderr(`${line}\n`),
      onProgress: (p) => {
        bar ??= startProgress(`download ${p.repo}`, mib(p.totalBytes), "MiB", io.stderr);
        bar.update(mib(p.bytes));
      },
    });
  } finally {
    (bar as Progress | null)?.done();
  }
}
