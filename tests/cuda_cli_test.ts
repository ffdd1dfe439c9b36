// Copyright 2026 the GPTQ toolkit authors. MIT license.
// Backend selection through the CLI without a usable CUDA device (CUDA_VISIBLE_DEVICES=""
// hides any, so this runs the same on a GPU machine): `--backend cuda` is a one-line error
// with a non-zero exit, `auto` falls back to WASM and says why. With a CUDA device,
// `--backend cuda` generates the same greedy text as WASM.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { probeCuda } from "../src/backends/cuda/cuda_backend.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const MODEL = fileURLToPath(
  new URL("../../shared/data/golden/models/llama-gptq-4bit-g32", import.meta.url),
);

async function cli(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: "/tmp", ...env },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const GEN = ["generate", MODEL, "--prompt", "hello", "--max-new-tokens", "6", "--temperature", "0"];
const HIDE = { CUDA_VISIBLE_DEVICES: "", DENO_WEBGPU_BACKEND: "dx12" };

Deno.test("CLI: --backend cuda without a device fails in one line; auto falls back and says why", async () => {
  const bad = await cli([...GEN, "--backend", "cuda"], HIDE);
  assert.notEqual(bad.code, 0);
  const lines = bad.stderr.trim().split("\n");
  assert.equal(lines.length, 1, bad.stderr);
  assert.match(lines[0]!, /^error: CUDA unavailable: (no NVIDIA driver|no CUDA device)/);
  const auto = await cli(GEN, HIDE);
  assert.equal(auto.code, 0, auto.stderr);
  const line = auto.stderr.split("\n").find((l) => l.startsWith("backend:"))!;
  console.log(line);
  assert.match(
    line,
    /^backend: wasm-(relaxed-simd|simd128).* — auto: .*no CUDA device \((no NVIDIA driver|no CUDA device)/,
  );
});

const probe = probeCuda();
Deno.test({
  name: `CLI: generate --backend cuda equals wasm${
    probe.ok ? "" : ` (skipped: no CUDA device: ${probe.message})`
  }`,
  ignore: !probe.ok,
  async fn() {
    const gpu = await cli([...GEN, "--backend", "cuda"]);
    const cpu = await cli([...GEN, "--backend", "wasm"]);
    assert.equal(gpu.code, 0, gpu.stderr);
    assert.match(gpu.stderr, /^backend: cuda \(.*sm_\d+\)/m);
    assert.equal(gpu.stdout, cpu.stdout);
  },
});
