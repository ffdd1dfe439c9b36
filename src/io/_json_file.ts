// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Bounded reads of a model folder's small metadata files (`config.json`,
 * `quantize_config.json`, `tokenizer.json`, `tokenizer_config.json`,
 * `generation_config.json`, shard indexes): a size cap checked before and
 * while reading (a link to `/dev/zero` or a FIFO is refused, never read to
 * exhaustion), strict UTF-8, and JSON parse errors as one-line messages.
 *
 * @module
 */

import { GptqError, type GptqErrorCode } from "../errors.ts";
import { type ByteSource, isNotFound, openFile } from "./_files.ts";

/** Cap for `config.json`, `quantize_config.json`, `generation_config.json` (real ones are a few KiB). */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;
/** Cap for `tokenizer_config.json` (chat templates and `added_tokens_decoder` make it larger). */
export const MAX_TOKENIZER_CONFIG_BYTES = 16 * 1024 * 1024;
/** Cap for `tokenizer.json` (Gemma's 262k-token tokenizer is about 33 MiB). */
export const MAX_TOKENIZER_BYTES = 64 * 1024 * 1024;
/** Cap for `model.safetensors.index.json`. */
export const MAX_INDEX_BYTES = 16 * 1024 * 1024;

/** How to report a bad file. */
export interface JsonFileOptions {
  /** The error code for a bad file. */
  code: GptqErrorCode;
  /** The most bytes the file may hold. */
  maxBytes: number;
  /** What the user can do about a bad file. */
  hint: string;
}

function mib(n: number): string {
  return `${Math.round(n / (1024 * 1024))} MiB`;
}

/**
 * Reads a text file of at most `opts.maxBytes` bytes. A missing file throws
 * Deno's own `NotFound` (callers decide whether that is an error); anything
 * that is not a regular file, is too large or is not UTF-8 is a typed error.
 *
 * @param path The file.
 * @param opts Error code, size cap and hint.
 * @returns The text.
 */
export async function readBoundedText(path: string, opts: JsonFileOptions): Promise<string> {
  const fail = (reason: string, hint = opts.hint, cause?: unknown) =>
    new GptqError(opts.code, reason, { file: path, hint, cause });
  let f: ByteSource;
  try {
    f = await openFile(path);
  } catch (e) {
    if (isNotFound(e)) throw e;
    const name = e instanceof Error ? e.name : "";
    if (name === "PermissionDenied" || name === "NotCapable") {
      throw fail("permission denied", "run with --allow-read or -A", e);
    }
    throw fail(`cannot be opened (${oneLine((e as Error).message)})`, opts.hint, e);
  }
  try {
    const st = await f.stat();
    if (!st.isFile) {
      throw fail(
        st.isDirectory ? "is a directory, expected a file" : "is not a regular file",
        "metadata files must be regular files (a link to /dev/zero, a FIFO or a device is refused)",
      );
    }
    if (st.size > opts.maxBytes) {
      throw fail(`is ${st.size} bytes, more than the ${mib(opts.maxBytes)} limit`);
    }
    // Read at most maxBytes + 1: the size may change while reading.
    const want = Math.min(opts.maxBytes + 1, Math.max(st.size + 1, 4096));
    const buf = await f.read(0, want);
    if (buf.length === want && want > opts.maxBytes) {
      throw fail(`grew past the ${mib(opts.maxBytes)} limit while being read`);
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(buf);
    } catch {
      throw fail("is not valid UTF-8 text");
    }
  } catch (e) {
    if (e instanceof GptqError) throw e;
    throw fail(`cannot be read (${oneLine((e as Error).message)})`, opts.hint, e);
  } finally {
    f.close();
  }
}

/**
 * Makes any text safe for a one-line message: control characters and line
 * breaks become spaces, runs of blanks collapse, and long text is cut.
 *
 * @param s The text.
 * @param max The most characters kept.
 * @returns One line.
 */
export function oneLine(s: string, max = 240): string {
  // deno-lint-ignore no-control-regex
  const t = s.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, " ").replace(/ {2,}/g, " ").trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/**
 * Parses JSON text; a syntax error becomes a one-line typed error that says
 * where (line and column) without quoting the file's text.
 *
 * @param text The text.
 * @param file The file, for messages.
 * @param code The error code.
 * @param hint What the user can do.
 * @returns The parsed value.
 */
export function parseJsonText(
  text: string,
  file: string,
  code: GptqErrorCode,
  hint: string,
): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new GptqError(code, `is not valid JSON (${jsonErrorWhere(e as Error)})`, {
      file,
      hint,
    });
  }
}

/** V8's message without the quoted source text V8 puts in some messages. */
function jsonErrorWhere(e: Error): string {
  const m = e.message;
  if (/at position \d+/.test(m)) return oneLine(m, 160);
  // `Unexpected token 'x', "…source…" is not valid JSON`: keep the token, drop the quote.
  const tok = /^(Unexpected token '[^]{1,8}?'|Unexpected end of JSON input)/u.exec(m);
  if (!tok) return oneLine(m, 160);
  return tok[1]!.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Reads and parses a bounded JSON file (see {@linkcode readBoundedText} and
 * {@linkcode parseJsonText}).
 *
 * @example
 * ```ts ignore
 * import { MAX_CONFIG_BYTES, readJsonFile } from "./_json_file.ts";
 * const cfg = await readJsonFile("model/config.json", {
 *   code: "CONFIG",
 *   maxBytes: MAX_CONFIG_BYTES,
 *   hint: "fix config.json",
 * });
 * ```
 *
 * @param path The file.
 * @param opts Error code, size cap and hint.
 * @returns The parsed value.
 */
export async function readJsonFile(path: string, opts: JsonFileOptions): Promise<unknown> {
  return parseJsonText(await readBoundedText(path, opts), path, opts.code, opts.hint);
}
