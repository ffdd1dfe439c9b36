// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Serves the browser demo: `index.html` and `main.js` from this folder, the
 * bundle (`gptq.js`, from `deno task build:browser`) and a model folder under
 * `/model/` (HTTP `Range` supported, as the bundle reads safetensors by range).
 *
 * ```sh
 * deno task build:browser
 * deno run -A cli.ts convert llama2c stories260K.bin tok512.bin --out stories260K-hf
 * deno run -A examples/browser/serve.ts stories260K-hf   # then open http://127.0.0.1:8000/
 * ```
 *
 * @module
 */

import { fileURLToPath } from "node:url";

const HERE = fileURLToPath(new URL("./", import.meta.url));

/** Options of {@linkcode serveDemo}. */
export interface DemoOptions {
  /** The model folder served under `/model/`. */
  model: string;
  /** The folder holding `gptq.js` (default: `dist/browser`). */
  bundleDir?: string;
  /** Host to bind (default `127.0.0.1`). */
  hostname?: string;
  /** Port (default 8000; 0 picks a free one). */
  port?: number;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  json: "application/json",
  map: "application/json",
};

async function sendFile(req: Request, path: string): Promise<Response> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch {
    return new Response("not found\n", { status: 404 });
  }
  const st = await file.stat();
  if (!st.isFile) {
    file.close();
    return new Response("not found\n", { status: 404 });
  }
  const type = TYPES[path.slice(path.lastIndexOf(".") + 1)] ?? "application/octet-stream";
  const headers = new Headers({ "content-type": type, "accept-ranges": "bytes" });
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.get("range") ?? "");
  let start = 0, end = st.size - 1, status = 200;
  if (m) {
    start = Number(m[1]);
    end = m[2] ? Math.min(Number(m[2]), st.size - 1) : st.size - 1;
    if (start > end) {
      file.close();
      headers.set("content-range", `bytes */${st.size}`);
      return new Response(null, { status: 416, headers });
    }
    status = 206;
    headers.set("content-range", `bytes ${start}-${end}/${st.size}`);
  }
  headers.set("content-length", String(end - start + 1));
  if (req.method === "HEAD") {
    file.close();
    return new Response(null, { status, headers });
  }
  await file.seek(start, Deno.SeekMode.Start);
  const body = new Uint8Array(end - start + 1);
  let got = 0;
  try {
    while (got < body.length) {
      const n = await file.read(body.subarray(got));
      if (n === null) break;
      got += n;
    }
  } finally {
    file.close();
  }
  return new Response(body.subarray(0, got), { status, headers });
}

/**
 * Starts the demo server.
 *
 * @example
 * ```ts ignore
 * import { serveDemo } from "./serve.ts";
 * const server = serveDemo({ model: "./stories260K-hf", port: 0 });
 * console.log(`http://127.0.0.1:${server.addr.port}/`);
 * ```
 *
 * @param opts The model folder, bundle folder, host and port.
 * @returns The running server.
 */
export function serveDemo(opts: DemoOptions): Deno.HttpServer<Deno.NetAddr> {
  const bundleDir = opts.bundleDir ??
    fileURLToPath(new URL("../../dist/browser/", import.meta.url));
  return Deno.serve({
    hostname: opts.hostname ?? "127.0.0.1",
    port: opts.port ?? 8000,
    onListen: () => {},
  }, (req) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405 });
    }
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path === "/" || path === "/index.html") return sendFile(req, `${HERE}index.html`);
    if (path === "/main.js") return sendFile(req, `${HERE}main.js`);
    if (path === "/gptq.js" || path === "/gptq.js.map") {
      return sendFile(req, `${bundleDir}/${path}`);
    }
    const name = path.startsWith("/model/") ? path.slice("/model/".length) : "";
    // Plain file names only: nothing outside the model folder is served.
    if (/^[\w.-]+$/.test(name) && !name.startsWith(".")) {
      return sendFile(req, `${opts.model}/${name}`);
    }
    return new Response("not found\n", { status: 404 });
  });
}

if (import.meta.main) {
  const model = Deno.args.find((a, i) => !a.startsWith("--") && Deno.args[i - 1] !== "--port");
  if (!model) {
    console.error("usage: deno run -A examples/browser/serve.ts MODEL_DIR [--port 8000]");
    Deno.exit(2);
  }
  const i = Deno.args.indexOf("--port");
  const server = serveDemo({ model, port: i >= 0 ? Number(Deno.args[i + 1]) : 8000 });
  console.log(`serving the demo with ${model} on http://127.0.0.1:${server.addr.port}/`);
}
