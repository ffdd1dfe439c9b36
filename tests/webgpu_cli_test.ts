// Copyright 2026 the GPTQ toolkit authors. MIT license.
// Backend selection through the CLI: `--backend webgpu` with no adapter is a
// one-line error naming what is missing; `auto` then falls back to WASM and
// says why; with an adapter, `--backend webgpu` generates the same greedy
// text as WASM. (`DENO_WEBGPU_BACKEND=dx12` hides every adapter on Linux.)
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const MODEL = fileURLToPath(
  new URL("../../shared/data/golden/models/llama-gptq-4bit-g32", import.meta.url),
);

async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: "/tmp", ...env },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const GEN = ["generate", MODEL, "--prompt", "hello", "--max-new-tokens", "6", "--temperature", "0"];

Deno.test("CLI: --backend webgpu without an adapter fails in one line; auto falls back to wasm", async () => {
  const hide = { DENO_WEBGPU_BACKEND: "dx12" };
  const bad = await cli([...GEN, "--backend", "webgpu"], hide);
  assert.notEqual(bad.code, 0);
  const lines = bad.stderr.trim().split("\n");
  assert.equal(lines.length, 1, bad.stderr);
  assert.match(lines[0]!, /^error: no WebGPU adapter found .*libvulkan1/);
  const auto = await cli(GEN, hide);
  assert.equal(auto.code, 0, auto.stderr);
  assert.match(auto.stderr, /^backend: wasm-(relaxed-simd|simd128).* — auto: no WebGPU GPU/m);
});

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
Deno.test({
  name: `CLI: generate --backend webgpu equals wasm${
    adapter ? "" : " (skipped: no WebGPU adapter)"
  }`,
  ignore: !adapter,
  async fn() {
    const gpu = await cli([...GEN, "--backend", "webgpu"]);
    const cpu = await cli([...GEN, "--backend", "wasm"]);
    assert.equal(gpu.code, 0, gpu.stderr);
    assert.match(gpu.stderr, /^backend: webgpu \(/m);
    assert.equal(gpu.stdout, cpu.stdout);
  },
});
