// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Connection limits for the HTTP server, which `Deno.serve` does not have:
 * a cap on open connections (the one over the cap gets a 503 and is
 * closed), a header timeout (a request's headers must arrive within it:
 * slow-loris and half-open clients are closed) and a keep-alive idle
 * timeout. The public socket is accepted here and each connection is piped
 * to a `Deno.serve` on a private loopback port; the handler tells this
 * module when a request starts and ends (matched by the pipe's local port),
 * so a long generation is never cut by a timeout and only this process's
 * pipes may use the private port.
 *
 * @module
 */

/** Limits of {@linkcode serveGuarded}. */
export interface ConnectionLimits {
  /** Most connections open at once. */
  maxConnections: number;
  /** Milliseconds a client has to send a request's headers. */
  headerTimeoutMs: number;
  /** Milliseconds a keep-alive connection may sit idle between requests. */
  idleTimeoutMs: number;
}

/** The running server. */
export interface GuardedServer {
  /** The public address. */
  readonly addr: Deno.NetAddr;
  /** Settles once the server has shut down. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting, closes every connection and the private server.
   *
   * @returns A promise that settles once done.
   */
  shutdown(): Promise<void>;
}

/** Options of {@linkcode serveGuarded}. */
export interface GuardOptions extends ConnectionLimits {
  /** Public interface. */
  hostname: string;
  /** Public port (0: any free one). */
  port: number;
  /** Aborting it shuts the server down. */
  signal?: AbortSignal;
  /** Called once listening, with the public address. */
  onListen?: (addr: Deno.NetAddr) => void;
  /** Where to write a line when a connection is refused or timed out. */
  log?: (line: string) => void;
}

interface Conn {
  client: Deno.Conn;
  upstream: Deno.Conn | null;
  /** `header`: waiting for a request's headers; `busy`: requests running; `idle`: between requests. */
  phase: "header" | "busy" | "idle";
  since: number;
  inflight: number;
  closed: boolean;
}

const CHECK_MS = 100;
const enc = new TextEncoder();

function refusal(status: number, reason: string, message: string): Uint8Array {
  const body = JSON.stringify({
    error: { message, type: "server_error", param: null, code: "too_many_connections" },
  });
  return enc.encode(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\nconnection: close\r\n` +
      `retry-after: 1\r\ncontent-length: ${enc.encode(body).length}\r\n\r\n${body}`,
  );
}

/**
 * Serves `handler` behind the connection limits.
 *
 * @example
 * ```ts ignore
 * import { serveGuarded } from "./_conn_guard.ts";
 * const srv = serveGuarded({ hostname: "127.0.0.1", port: 0, maxConnections: 64,
 *   headerTimeoutMs: 10_000, idleTimeoutMs: 60_000 }, () => new Response("ok"));
 * await srv.shutdown();
 * ```
 *
 * @param opts Address and limits.
 * @param handler The request handler.
 * @returns The running server.
 */
export function serveGuarded(
  opts: GuardOptions,
  handler: (req: Request) => Response | Promise<Response>,
): GuardedServer {
  const log = opts.log ?? (() => {});
  const byPort = new Map<number, Conn>();
  const open = new Set<Conn>();
  const backendAbort = new AbortController();

  const start = (c: Conn) => {
    c.inflight++;
    c.phase = "busy";
  };
  const end = (c: Conn) => {
    if (--c.inflight === 0) {
      c.phase = "idle";
      c.since = performance.now();
    }
  };

  // First, so a port in use fails before anything else is started.
  const listener = Deno.listen({ hostname: opts.hostname, port: opts.port });
  const addr = listener.addr as Deno.NetAddr;

  const backend = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: backendAbort.signal,
    onListen() {},
  }, async (req, info) => {
    const c = byPort.get(info.remoteAddr.port);
    if (!c) return new Response("forbidden", { status: 403 });
    start(c);
    let res: Response;
    try {
      res = await handler(req);
    } catch (e) {
      end(c);
      throw e;
    }
    if (!res.body) {
      end(c);
      return res;
    }
    // The request ends when its body has been sent or the client went away.
    let ended = false;
    const done = () => {
      if (!ended) {
        ended = true;
        end(c);
      }
    };
    const reader = res.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(ctrl) {
        try {
          const { done: d, value } = await reader.read();
          if (d) {
            done();
            ctrl.close();
          } else ctrl.enqueue(value);
        } catch (e) {
          done();
          ctrl.error(e);
        }
      },
      cancel(reason) {
        done();
        return reader.cancel(reason);
      },
    });
    return new Response(body, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  });
  const backendPort = backend.addr.port;

  const close = (c: Conn) => {
    if (c.closed) return;
    c.closed = true;
    open.delete(c);
    if (c.upstream) byPort.delete((c.upstream.localAddr as Deno.NetAddr).port);
    try {
      c.client.close();
    } catch { /* already closed */ }
    try {
      c.upstream?.close();
    } catch { /* already closed */ }
  };

  const pipe = async (from: Deno.Conn, to: Deno.Conn, c: Conn, fromClient: boolean) => {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        if (fromClient && c.phase === "idle") {
          c.phase = "header";
          c.since = performance.now();
        }
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch { /* reset or closed */ }
    close(c);
  };

  const accept = async (client: Deno.Conn) => {
    if (open.size >= opts.maxConnections) {
      log(`refused a connection: ${opts.maxConnections} are open (the limit)`);
      const msg = refusal(
        503,
        "Service Unavailable",
        `the server has ${opts.maxConnections} open connections, its limit: try again`,
      );
      await Promise.race([
        client.write(msg).catch(() => 0),
        new Promise((r) => setTimeout(r, 1000)),
      ]);
      try {
        client.close();
      } catch { /* closed */ }
      return;
    }
    const c: Conn = {
      client,
      upstream: null,
      phase: "header",
      since: performance.now(),
      inflight: 0,
      closed: false,
    };
    open.add(c);
    try {
      const up = await Deno.connect({ hostname: "127.0.0.1", port: backendPort });
      c.upstream = up;
      byPort.set((up.localAddr as Deno.NetAddr).port, c);
      if (c.closed) {
        close(c);
        return;
      }
      void pipe(client, up, c, true);
      void pipe(up, client, c, false);
    } catch {
      close(c);
    }
  };

  const timer = setInterval(() => {
    const now = performance.now();
    for (const c of open) {
      if (c.phase === "header" && now - c.since > opts.headerTimeoutMs) {
        log(`closed a connection: no complete request headers within ${opts.headerTimeoutMs} ms`);
        close(c);
      } else if (c.phase === "idle" && now - c.since > opts.idleTimeoutMs) close(c);
    }
  }, CHECK_MS);

  const acceptLoop = (async () => {
    try {
      for await (const client of listener) void accept(client);
    } catch { /* listener closed */ }
  })();

  let stopping: Promise<void> | null = null;
  let stopped = () => {};
  const finished = new Promise<void>((resolve) => (stopped = resolve));
  const shutdown = () => {
    stopping ??= (async () => {
      clearInterval(timer);
      try {
        listener.close();
      } catch { /* closed */ }
      for (const c of [...open]) close(c);
      backendAbort.abort();
      await backend.finished;
      await acceptLoop;
      stopped();
    })();
    return stopping;
  };
  opts.signal?.addEventListener("abort", () => void shutdown(), { once: true });
  queueMicrotask(() => opts.onListen?.(addr));
  return { addr, finished, shutdown };
}
