// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Paths to the shared test data, resolved from this file.
 *
 * @module
 */

/** `../shared/data/` relative to the repository root. */
export const DATA: string = new URL("../../../shared/data/", import.meta.url).pathname;

/** The golden tiny models. */
export const GOLDEN_MODELS: string = `${DATA}golden/models/`;
