// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Exact positioned reads of a {@linkcode ByteSource} (a local file, or a URL
 * in the browser build) for the safetensors and checkpoint readers.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import type { ByteSource } from "./_files.ts";

/**
 * Reads exactly `length` bytes at `offset` of an open {@linkcode ByteSource}
 * (a local file or, in the browser build, a URL), failing with a typed error
 * when the file is shorter.
 *
 * @param source The open file.
 * @param offset Where to start.
 * @param length How many bytes.
 * @param path The path, for messages.
 * @param tensor The tensor being read, for messages.
 * @returns The bytes.
 */
export async function readSourceExact(
  source: ByteSource,
  offset: number,
  length: number,
  path: string,
  tensor?: string,
): Promise<Uint8Array> {
  const buf = await source.read(offset, length);
  if (buf.length < length) {
    throw new GptqError(
      "SAFETENSORS_TRUNCATED",
      `expected ${length} bytes at offset ${offset}, file ended after ${buf.length}`,
      { file: path, ...(tensor === undefined ? {} : { tensor }), hint: "re-download the file" },
    );
  }
  return buf;
}
