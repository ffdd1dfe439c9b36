// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * A progress bar with rate and ETA on stderr. On a terminal it redraws one
 * line; otherwise (CI logs, pipes) it prints a line at most every few seconds.
 *
 * @module
 */

/** A progress bar. */
export interface Progress {
  /** Sets the number of finished units. */
  update(done: number): void;
  /** Finishes the bar (prints the final state). */
  done(): void;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "--:--";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = String(m).padStart(2, "0"), ss = String(sec).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/**
 * Starts a progress bar.
 *
 * @example
 * ```ts ignore
 * const bar = startProgress("eval", 10, "windows", (t) => Deno.stderr.writeSync(new TextEncoder().encode(t)));
 * bar.update(5);
 * bar.done();
 * ```
 *
 * @param label What is being done.
 * @param total Units to do.
 * @param unit Unit name.
 * @param write Where to write (stderr).
 * @param isTty Redraw in place.
 * @returns The bar.
 */
export function startProgress(
  label: string,
  total: number,
  unit: string,
  write: (text: string) => void,
  isTty: boolean = Deno.stderr.isTerminal(),
): Progress {
  const t0 = performance.now();
  let lastPrint = -Infinity;
  let current = 0;
  // Units done before the first update (a resumed run) are not part of the rate.
  let base: number | null = null;
  let printed = -1;
  const line = () => {
    const el = (performance.now() - t0) / 1000;
    // No rate (and no ETA) until a second has passed: a first unit that
    // finishes microseconds after the start would show an absurd rate.
    const rate = el >= 1 ? (current - (base ?? 0)) / el : NaN;
    const eta = current >= total ? 0 : rate > 0 ? (total - current) / rate : Infinity;
    const frac = total > 0 ? current / total : 1;
    const w = 24, fill = Math.round(frac * w);
    return `${label} [${"#".repeat(fill)}${"-".repeat(w - fill)}] ${current}/${total} ${unit} ` +
      `${(frac * 100).toFixed(0)}% ${
        Number.isFinite(rate) ? rate.toFixed(2) : "--"
      } ${unit}/s elapsed ${fmtTime(el)} eta ${fmtTime(eta)}`;
  };
  return {
    update(done) {
      base ??= done;
      current = done;
      const now = performance.now();
      if (isTty) {
        if (now - lastPrint > 100 || done === total) {
          write(`\r\x1b[2K${line()}`);
          lastPrint = now;
        }
      } else if (now - lastPrint > 5000 && done < total) {
        // The final state is printed once, by done().
        write(line() + "\n");
        lastPrint = now;
        printed = done;
      }
    },
    done() {
      if (isTty) write(`\r\x1b[2K${line()}\n`);
      else if (printed !== current) write(line() + "\n");
      printed = current;
    },
  };
}
