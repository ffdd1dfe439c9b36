// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Deno's WebGPU enumerates Vulkan adapters through a loader that also loads the
 * Wayland client library; with `XDG_RUNTIME_DIR` unset (a server, a container,
 * a CI job) that library prints "error: XDG_RUNTIME_DIR is invalid or not set
 * in the environment." twice on stderr, although we never present to a
 * window. Pointing the variable at a path that holds no Wayland socket before
 * the first `requestAdapter` keeps stderr clean and changes nothing else.
 *
 * @module
 */

let done = false;

/**
 * Sets `XDG_RUNTIME_DIR` for this process when it is unset (Deno only, needs
 * `--allow-env`; otherwise, and in browsers, it does nothing).
 *
 * @example
 * ```ts
 * import { quietHeadlessWsi } from "./_headless.ts";
 * quietHeadlessWsi();
 * const adapter = await navigator.gpu?.requestAdapter();
 * ```
 */
export function quietHeadlessWsi(): void {
  if (done) return;
  done = true;
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  if (!deno?.env) return;
  try {
    if (!deno.env.get("XDG_RUNTIME_DIR")) deno.env.set("XDG_RUNTIME_DIR", "/nonexistent-gptq-wsi");
  } catch {
    // No env permission: leave the environment as it is.
  }
}
