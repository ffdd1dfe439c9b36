// Copyright 2026 the GPTQ toolkit authors. MIT license.
// The browser build: `browser.ts` bundled by tools/build_browser.ts (esbuild) holds no Deno/Node
// code, loads stories260K from URLs, and the demo page (examples/browser/) driven by headless
// Chromium over the DevTools protocol streams exactly the CLI's greedy story from BOS.
// GPTQ_BROWSER_SCREENSHOT=FILE.png saves a screenshot of the finished page (for debugging).
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { buildBrowser } from "../tools/build_browser.ts";
import { convertLlama2c } from "../src/io/llama2c.ts";
import { serveDemo } from "../examples/browser/serve.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DATA = `${ROOT}../shared/data/stories260K/`;
const NEW_TOKENS = 256;

function findChromium(): string | null {
  const env = Deno.env.get("GPTQ_CHROMIUM");
  if (env) return env;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
      } catch { /* not here */ }
    }
  }
  return null;
}

const CHROMIUM = findChromium();
const HAVE_DATA = (() => {
  try {
    return Deno.statSync(`${DATA}stories260K.bin`).isFile;
  } catch {
    return false;
  }
})();

/** The CLI's greedy output from BOS (`generate MODEL --temperature 0 --json`). */
async function cliGreedy(model: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}cli.ts`,
      "generate",
      model,
      "--temperature",
      "0",
      "--max-new-tokens",
      String(NEW_TOKENS),
      "--backend",
      "wasm",
      "--json",
    ],
    stdout: "piped",
    stderr: "piped",
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `cli generate failed: ${err}`);
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(r.newTokens, NEW_TOKENS);
  return r.text as string;
}

/** A minimal DevTools-protocol client for one page target. */
class Cdp {
  #ws: WebSocket;
  #id = 0;
  #pending = new Map<number, { ok: (v: unknown) => void; fail: (e: Error) => void }>();
  readonly log: string[] = [];

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        if (msg.error) p?.fail(new Error(`${msg.error.message}`));
        else p?.ok(msg.result);
      } else if (msg.method === "Runtime.consoleAPICalled") {
        this.log.push(
          `console.${msg.params.type}: ${
            msg.params.args.map((a: { value?: unknown }) => a.value).join(" ")
          }`,
        );
      } else if (msg.method === "Runtime.exceptionThrown") {
        this.log.push(`exception: ${msg.params.exceptionDetails.exception?.description}`);
      }
    };
  }

  static async connect(url: string): Promise<Cdp> {
    const ws = new WebSocket(url);
    await new Promise((ok, fail) => {
      ws.onopen = ok;
      ws.onerror = () => fail(new Error(`cannot connect to ${url}`));
    });
    return new Cdp(ws);
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = ++this.#id;
    this.#ws.send(JSON.stringify({ id, method, params }));
    return new Promise((ok, fail) =>
      this.#pending.set(id, { ok: ok as (v: unknown) => void, fail })
    );
  }

  async eval(expression: string): Promise<unknown> {
    const r = await this.send("Runtime.evaluate", { expression, returnByValue: true });
    return (r.result as { value?: unknown }).value;
  }

  close(): void {
    this.#ws.close();
  }
}

/** Starts headless Chromium and returns its process and the DevTools HTTP endpoint. */
async function launchChromium(
  exe: string,
  profile: string,
): Promise<{ proc: Deno.ChildProcess; http: string }> {
  const args = [
    "--headless=new",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-debugging-port=0",
    `--user-data-dir=${profile}`,
    "--window-size=900,1300",
    "about:blank",
  ];
  if (Deno.uid() === 0) args.unshift("--no-sandbox"); // Chromium refuses to run as root sandboxed
  const proc = new Deno.Command(exe, { args, stdout: "null", stderr: "piped" }).spawn();
  const reader = proc.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += value;
    const m = /DevTools listening on ws:\/\/([^/\s]+)\//.exec(seen);
    if (m) {
      // Keep draining stderr so Chromium never blocks on a full pipe.
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })().catch(() => {});
      return { proc, http: `http://${m[1]}` };
    }
  }
  proc.kill();
  throw new Error(`chromium did not start: ${seen.slice(-2000)}`);
}

Deno.test({
  name: HAVE_DATA
    ? "browser build: bundle, URL loading and the headless-Chromium demo"
    : "skipped: browser build (../shared/data/stories260K is missing)",
  ignore: !HAVE_DATA,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const tmp = await Deno.makeTempDir({ prefix: "gptq-browser-" });
    const model = `${tmp}/stories260K`;
    const dist = `${tmp}/dist`;
    try {
      const built = await buildBrowser(dist);
      await t.step("the bundle's graph holds no node:/Deno. code", async () => {
        const inputs = Object.entries(built.metafile.inputs);
        const nodeImports = inputs.flatMap(([file, i]) =>
          i.imports.filter((x) => x.path.startsWith("node:") || x.external).map((x) =>
            `${file} → ${x.path}`
          )
        );
        assert.deepEqual(nodeImports, [], "node:/external imports in the browser graph");
        const files = inputs.map(([f]) => f);
        // The platform modules are the browser ones.
        for (
          const [native, web] of [
            ["src/io/_files.ts", "src/io/_files_web.ts"],
            ["src/backends/wasm/_sync_pool.ts", "src/backends/wasm/_sync_pool_web.ts"],
            ["src/runtime/_memory.ts", "src/runtime/_memory_web.ts"],
          ]
        ) {
          assert.ok(!files.some((f) => f.endsWith(native!)), `${native} is in the graph`);
          assert.ok(files.some((f) => f.endsWith(web!)), `${web} is not in the graph`);
        }
        for (
          const f of ["src/io/_hub_download.ts", "src/backends/select.ts", "src/load_model.ts"]
        ) {
          assert.ok(!files.some((x) => x.endsWith(f)), `${f} is in the graph`);
        }
        const code = await Deno.readTextFile(built.file);
        assert.deepEqual(code.match(/\bDeno\.\w+/g) ?? [], [], "Deno.* in the bundle");
        assert.deepEqual(
          code.match(/["'`]node:[\w/]+/g) ?? [],
          [],
          "node: specifiers in the bundle",
        );
        assert.ok(
          !/\bimport\s*\(|^\s*import\s.*from\s/m.test(code),
          "the bundle imports something",
        );
        console.log(
          `bundle: ${(built.bytes / 1024).toFixed(0)} KiB from ${files.length} modules`,
        );
      });

      await convertLlama2c(`${DATA}stories260K.bin`, `${DATA}tok512.bin`, model);
      const expected = await cliGreedy(model);
      assert.ok(expected.startsWith("Once upon a time, there was a little girl named Lily."));
      const server = serveDemo({ model, bundleDir: dist, port: 0 });
      const origin = `http://127.0.0.1:${server.addr.port}`;
      try {
        await t.step(
          "the bundle loads stories260K from URLs and generates the CLI's text",
          async () => {
            const { loadModelFromUrl } = await import(`file://${built.file}`);
            const m = await loadModelFromUrl(`${origin}/model/`);
            try {
              assert.match(m.backend, /^wasm-(relaxed-simd|simd128)$/);
              let text = "";
              for await (
                const p of m.generate("", { max_new_tokens: NEW_TOKENS, temperature: 0 })
              ) {
                text += p;
              }
              assert.equal(text, expected);
            } finally {
              m.close();
            }
            // A missing folder is a typed error naming the URL.
            await assert.rejects(
              () => loadModelFromUrl(`${origin}/model/nope/`),
              (e: Error) => e.name === "GptqError" && e.message.includes("/model/nope/config.json"),
            );
          },
        );

        await t.step({
          name: CHROMIUM
            ? "headless Chromium: the demo page streams the CLI's greedy story"
            : "skipped: headless Chromium demo (chromium not installed: bash tools/setup_chromium.sh)",
          ignore: !CHROMIUM,
          async fn() {
            const { proc, http } = await launchChromium(CHROMIUM!, `${tmp}/profile`);
            let cdp: Cdp | null = null;
            try {
              const targets = await (await fetch(`${http}/json/list`)).json() as {
                type: string;
                webSocketDebuggerUrl: string;
              }[];
              const page = targets.find((x) => x.type === "page");
              assert.ok(page, "no page target");
              cdp = await Cdp.connect(page.webSocketDebuggerUrl);
              await cdp.send("Runtime.enable");
              await cdp.send("Page.enable");
              const t0 = performance.now();
              await cdp.send("Page.navigate", { url: `${origin}/` });
              let state: unknown = "loading";
              const deadline = Date.now() + 120_000;
              while (Date.now() < deadline) {
                state = await cdp.eval("document.body?.dataset.state ?? 'loading'");
                if (state === "done" || state === "error") break;
                await new Promise((r) => setTimeout(r, 200));
              }
              const status = await cdp.eval("document.getElementById('status')?.textContent");
              const shot = Deno.env.get("GPTQ_BROWSER_SCREENSHOT");
              if (shot) {
                const { data } = await cdp.send("Page.captureScreenshot", { format: "png" });
                await Deno.writeFile(
                  shot,
                  Uint8Array.from(atob(data as string), (c) => c.charCodeAt(0)),
                );
              }
              assert.equal(state, "done", `page state ${state}: ${status}\n${cdp.log.join("\n")}`);
              const text = await cdp.eval("document.getElementById('story').textContent");
              assert.equal(text, expected);
              console.log(
                `chromium: ${NEW_TOKENS} tokens identical to the CLI in ` +
                  `${((performance.now() - t0) / 1000).toFixed(1)} s — ${status}`,
              );
            } finally {
              cdp?.close();
              proc.kill();
              await proc.status;
            }
          },
        });
      } finally {
        await server.shutdown();
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
