// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The package version (kept equal to `deno.json`'s by a test).
 *
 * @module
 */

/** The toolkit's version. */
export const VERSION = "0.1.0";
