// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Stop strings over streamed text: text is let through as soon as it can no
 * longer be the start of a stop string, and generation ends at the first
 * stop string, which is not emitted (OpenAI's `stop` semantics).
 *
 * @module
 */

/** What {@linkcode StopFilter.push} lets through. */
export interface StopStep {
  /** Text that is final (possibly ""). */
  text: string;
  /** Whether a stop string was found (generation should end). */
  stopped: boolean;
}

/**
 * Holds back text that may begin a stop string.
 *
 * @example
 * ```ts
 * import { StopFilter } from "./_stop.ts";
 * const f = new StopFilter(["\n\n"]);
 * console.log(JSON.stringify(f.push("Hi\n"))); // {"text":"Hi","stopped":false}
 * console.log(JSON.stringify(f.push("\nmore"))); // {"text":"","stopped":true}
 * ```
 */
export class StopFilter {
  readonly #stops: readonly string[];
  #held = "";
  #stopped = false;

  /**
   * Makes a filter.
   *
   * @param stops The stop strings (empty ones are ignored).
   */
  constructor(stops: readonly string[]) {
    this.#stops = stops.filter((s) => s.length > 0);
  }

  /**
   * Adds generated text.
   *
   * @param piece New text.
   * @returns The text that became final, and whether a stop string ended it.
   */
  push(piece: string): StopStep {
    if (this.#stopped) return { text: "", stopped: true };
    if (this.#stops.length === 0) return { text: piece, stopped: false };
    const buf = this.#held + piece;
    let at = -1;
    for (const s of this.#stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.#held = "";
      this.#stopped = true;
      return { text: buf.slice(0, at), stopped: true };
    }
    let hold = 0;
    for (const s of this.#stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > hold; k--) {
        if (buf.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    this.#held = buf.slice(buf.length - hold);
    return { text: buf.slice(0, buf.length - hold), stopped: false };
  }

  /**
   * Ends the text: whatever was held back is final.
   *
   * @returns The held text ("" after a stop).
   */
  end(): string {
    const rest = this.#held;
    this.#held = "";
    return rest;
  }
}
