// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The toolkit's typed errors. Every error a user can cause (bad files, bad
 * flags, unsupported models) is a {@linkcode GptqError}: it carries a stable
 * `code`, the file and tensor it concerns, and a hint saying how to fix it.
 * The CLI prints {@linkcode GptqError.prototype.message} on one line and exits
 * non-zero; anything else is a bug and shows a stack trace.
 *
 * @module
 */

/** Stable machine-readable error codes. */
export type GptqErrorCode =
  | "SAFETENSORS_HEADER"
  | "SAFETENSORS_TRUNCATED"
  | "SAFETENSORS_TENSOR"
  | "SAFETENSORS_MISSING_TENSOR"
  | "SAFETENSORS_INDEX"
  | "CONFIG"
  | "QUANT_CONFIG"
  | "UNSUPPORTED_ARCHITECTURE"
  | "UNSUPPORTED_FORMAT"
  | "GPTQ_FORMAT"
  | "SHAPE"
  | "TOKENIZER"
  | "LLAMA2C"
  | "GGUF"
  | "FILE_NOT_FOUND"
  | "PERMISSION_DENIED"
  | "OUTPUT_EXISTS"
  | "WRITE_FAILED"
  | "INVALID_ARGUMENT"
  | "WASM"
  | "HESSIAN"
  | "DATASET"
  | "HUB"
  | "HUB_INTEGRITY"
  | "WEBGPU"
  | "WEBGPU_UNAVAILABLE"
  | "CUDA"
  | "CUDA_UNAVAILABLE";

/** Where an error happened and how to fix it. */
export interface GptqErrorDetails {
  /** The file the error concerns, if any. */
  file?: string;
  /** The tensor the error concerns, if any. */
  tensor?: string;
  /** What the user can do about it. */
  hint?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * The base class of every error the toolkit raises on bad input.
 *
 * @example Catching a toolkit error
 * ```ts
 * import { GptqError } from "./errors.ts";
 * try {
 *   throw new GptqError("CONFIG", "missing field 'hidden_size'", { file: "config.json" });
 * } catch (e) {
 *   if (e instanceof GptqError) console.log(e.code, e.message);
 * }
 * ```
 */
export class GptqError extends Error {
  /** A stable code for programs. */
  readonly code: GptqErrorCode;
  /** The file concerned, if any. */
  readonly file: string | undefined;
  /** The tensor concerned, if any. */
  readonly tensor: string | undefined;
  /** How to fix it, if known. */
  readonly hint: string | undefined;
  /** What went wrong, without the file/tensor/hint decorations. */
  readonly reason: string;

  /**
   * Makes an error whose message reads `FILE: tensor 'T': REASON (HINT)`.
   *
   * @param code A stable error code.
   * @param reason What is wrong, as a short phrase.
   * @param details The file, tensor and hint.
   */
  constructor(code: GptqErrorCode, reason: string, details: GptqErrorDetails = {}) {
    const parts: string[] = [];
    if (details.file) parts.push(`${details.file}:`);
    if (details.tensor) parts.push(`tensor '${details.tensor}':`);
    parts.push(reason);
    let message = parts.join(" ");
    if (details.hint) message += ` (${details.hint})`;
    // The CLI prints one line: quoted file text must not break it.
    message = message.replace(/\s*[\r\n\u2028\u2029]+\s*/g, " ");
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "GptqError";
    this.code = code;
    this.file = details.file;
    this.tensor = details.tensor;
    this.hint = details.hint;
    this.reason = reason;
  }
}

/**
 * Turns a Deno file-system error into a {@linkcode GptqError} naming the file.
 *
 * @example
 * ```ts
 * import { fsError } from "./errors.ts";
 * try {
 *   await Deno.readFile("/nonexistent");
 * } catch (e) {
 *   console.log(fsError(e, "/nonexistent").message);
 * }
 * ```
 *
 * @param e The caught error.
 * @param file The path that was accessed.
 * @returns A GptqError (or `e` unchanged when it is not a file-system error).
 */
export function fsError(e: unknown, file: string): unknown {
  // By name, not `instanceof Deno.errors.*`: the browser build's file layer
  // (src/io/_files_web.ts) throws errors with the same names.
  const name = e instanceof Error ? e.name : "";
  if (name === "NotFound") {
    return new GptqError("FILE_NOT_FOUND", "no such file or directory", {
      file,
      hint: "check the path",
      cause: e,
    });
  }
  if (name === "PermissionDenied" || name === "NotCapable") {
    return new GptqError("PERMISSION_DENIED", "permission denied", {
      file,
      hint: "run with --allow-read/--allow-write or -A",
      cause: e,
    });
  }
  if (name === "IsADirectory") {
    return new GptqError("FILE_NOT_FOUND", "is a directory, expected a file", { file, cause: e });
  }
  return e;
}
