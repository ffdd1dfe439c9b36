// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The toolkit as a dependency of another project: a consumer folder in a
 * temporary directory, with its own empty `deno.json` and no import map,
 * imports `mod.ts` by relative path, by `file://` URL and by `http://` URL
 * (served from this checkout by a loopback file server), type-checks with
 * `deno check` and runs a quantize → generate round trip on the golden tiny
 * Llama (GPTQ 4-bit, group 32, calibrated on a list of strings as in
 * transformers' `GPTQConfig(dataset=[...])`).
 *
 * Checks: every form type-checks and runs; the three forms write the same
 * `model.safetensors` bytes (quantization is deterministic); the consumer's
 * greedy text equals what this process generates from the same checkpoint.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath, pathToFileURL } from "node:url";
import { relative } from "node:path";
import { loadModel } from "../mod.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const MODEL = fileURLToPath(new URL("../../shared/data/golden/models/llama", import.meta.url));

const CONSUMER = (spec: string) =>
  `import { loadModel, quantizeModel, type GPTQConfig } from "${spec}";
const [model, out] = Deno.args;
const cfg: GPTQConfig = {
  bits: 4,
  group_size: 32,
  dataset: [
    "auto-gptq is an easy-to-use model quantization library with user-friendly apis, based on GPTQ algorithm.",
    "The tower is 324 metres tall, about the same height as an 81-storey building.",
  ],
  model_seqlen: 32,
};
const report = await quantizeModel(model!, out!, cfg);
const m = await loadModel(out!);
let text = "";
for await (const piece of m.generate("The tower", { max_new_tokens: 12, temperature: 0 })) text += piece;
m.close();
console.log(JSON.stringify({ text, quantized: report.modules.filter((x) => x.quantized).length }));
`;

async function deno(args: string[], cwd: string): Promise<string> {
  const r = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  const stdout = dec.decode(r.stdout), stderr = dec.decode(r.stderr);
  assert.equal(r.code, 0, `deno ${args.join(" ")} failed:\n${stdout}\n${stderr}`);
  return stdout;
}

/** A loopback static file server over the checkout (what a web host of the sources would be). */
function serveCheckout(): { url: string; close: () => Promise<void> } {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      if (path.includes("..")) return new Response("bad path", { status: 400 });
      try {
        const body = await Deno.readFile(`${ROOT}${path.slice(1)}`);
        const type = path.endsWith(".wasm")
          ? "application/wasm"
          : path.endsWith(".json")
          ? "application/json"
          : path.endsWith(".js")
          ? "text/javascript"
          : "application/typescript";
        return new Response(body, { headers: { "content-type": type } });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  const port = (server.addr as Deno.NetAddr).port;
  return { url: `http://127.0.0.1:${port}/`, close: () => (ac.abort(), server.finished) };
}

Deno.test("consumer project: import by path, file:// and http:// URL, quantize → generate", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "gptq-consumer-" });
  const server = serveCheckout();
  try {
    await Deno.writeTextFile(`${dir}/deno.json`, "{}\n");
    const rel = relative(dir, `${ROOT}mod.ts`).replaceAll("\\", "/");
    const forms: Record<string, { spec: string; flags: string[] }> = {
      path: { spec: rel.startsWith(".") ? rel : `./${rel}`, flags: [] },
      file: { spec: pathToFileURL(`${ROOT}mod.ts`).href, flags: [] },
      http: {
        spec: `${server.url}mod.ts`,
        flags: [`--allow-import=${new URL(server.url).host}`, `--reload=${server.url}`],
      },
    };
    const results: Record<string, { text: string; quantized: number }> = {};
    for (const [name, { spec, flags }] of Object.entries(forms)) {
      await t.step(`by ${name}: deno check and run`, async () => {
        await Deno.writeTextFile(`${dir}/${name}.ts`, CONSUMER(spec));
        await deno(["check", ...flags, `${name}.ts`], dir);
        const runFlags = flags.filter((f) => !f.startsWith("--allow-import"));
        const out = await deno(
          ["run", "-A", ...runFlags, `${name}.ts`, MODEL, `${dir}/out-${name}`],
          dir,
        );
        results[name] = JSON.parse(out.trim().split("\n").at(-1)!);
        // 2 blocks × 7 linears, every one a multiple of 32.
        assert.equal(results[name]!.quantized, 14);
      });
    }
    await t.step("the three forms write the same checkpoint and text", async () => {
      const bytes = await Deno.readFile(`${dir}/out-path/model.safetensors`);
      for (const name of ["file", "http"]) {
        assert.deepEqual(await Deno.readFile(`${dir}/out-${name}/model.safetensors`), bytes);
        assert.equal(results[name]!.text, results.path!.text);
      }
      const cfg = JSON.parse(await Deno.readTextFile(`${dir}/out-path/config.json`));
      assert.equal(cfg.quantization_config.bits, 4);
      assert.equal(cfg.quantization_config.group_size, 32);
    });
    await t.step("the consumer's greedy text equals this process's", async () => {
      const m = await loadModel(`${dir}/out-path`);
      let text = "";
      for await (const p of m.generate("The tower", { max_new_tokens: 12, temperature: 0 })) {
        text += p;
      }
      m.close();
      assert.ok(text.length > 0);
      assert.equal(results.path!.text, text);
    });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
