// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * A Worker for `serve_abuse_test.ts` that polls a server's `/health` every
 * 25 ms on its own thread, so that the test's load (32 clients, 1 MB bodies)
 * does not delay the measurement. Messages in: `{type: "start", base}`,
 * `{type: "phase", name}`, `{type: "pause", paused}`, `{type: "stop"}`.
 * Out: `{type: "ready"}` once a first (warm-up, untimed) poll has been answered, `{type:
 * "paused"}` after pause, `{type: "report", report}` ({@linkcode
 * HealthReport}) after stop.
 *
 * @module
 */

/** What the monitor measured. */
export interface HealthReport {
  /** Every latency in ms, in order. */
  samples: number[];
  /** Worst latency per phase, ms. */
  phases: Record<string, number>;
  /** Failed or non-ok polls. */
  failures: string[];
}

type In =
  | { type: "start"; base: string }
  | { type: "phase"; name: string }
  | { type: "pause"; paused: boolean }
  | { type: "stop" };

// deno-lint-ignore no-explicit-any
const scope = self as any;
const report: HealthReport = { samples: [], phases: {}, failures: [] };
let phase = "start";
let paused = false;
let running = true;
let loop: Promise<void> = Promise.resolve();

async function poll(base: string): Promise<void> {
  for (let first = true; running; first = false) {
    if (!paused) {
      const t0 = performance.now();
      try {
        const r = await fetch(`${base}/health`, { signal: AbortSignal.timeout(5000) });
        const body = await r.json();
        const ms = performance.now() - t0;
        // The first poll warms this Worker's HTTP client up (a fresh isolate's first
        // fetch took 13–147 ms here, the server idle): it is checked but not timed.
        if (first && (r.status !== 200 || body.status !== "ok")) {
          report.failures.push(`warm-up: status ${r.status}`);
        }
        if (!paused && !first) {
          if (r.status !== 200 || body.status !== "ok") report.failures.push(`status ${r.status}`);
          report.samples.push(ms);
          report.phases[phase] = Math.max(report.phases[phase] ?? 0, Math.round(ms));
        }
      } catch (e) {
        if (!paused) report.failures.push(String(e));
      }
      if (first) scope.postMessage({ type: "ready" });
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

scope.onmessage = async (e: MessageEvent<In>) => {
  const m = e.data;
  if (m.type === "start") loop = poll(m.base);
  else if (m.type === "phase") phase = m.name;
  else if (m.type === "pause") {
    paused = m.paused;
    scope.postMessage({ type: "paused", paused });
  } else {
    running = false;
    await loop;
    scope.postMessage({ type: "report", report });
  }
};
