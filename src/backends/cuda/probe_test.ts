// Copyright 2026 the GPTQ toolkit authors. MIT license.
// The no-GPU path, for real on every machine: a missing library, no driver or no device are
// typed reasons and a typed GptqError, quietly and cheaply. CUDA_VISIBLE_DEVICES="" hides
// every device in a subprocess, so these run the same on a GPU machine (no-device) and on CI
// (no-driver).
import assert from "node:assert/strict";
import { GptqError } from "../../errors.ts";
import { createCudaBackend, probeCuda } from "./cuda_backend.ts";
import { attentionSplits } from "./cuda_backend.ts";
import { sizeClass } from "./_memory.ts";
import { libraryPath } from "./ffi.ts";

const MOD = new URL("./cuda_backend.ts", import.meta.url).href;

/** Runs a snippet in a subprocess with every CUDA device hidden. */
async function hidden(code: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", `import * as m from "${MOD}";\n${code}`],
    env: { CUDA_VISIBLE_DEVICES: "", NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("probeCuda with no visible device: a typed reason, quiet and cheap", async () => {
  const r = await hidden(`
const t0 = performance.now();
const p = m.probeCuda();
console.log(JSON.stringify({ ...p, ms: performance.now() - t0 }));`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "", "the probe prints nothing");
  const p = JSON.parse(r.stdout);
  assert.equal(p.ok, false);
  assert.ok(["no-driver", "no-device"].includes(p.reason), p.reason);
  assert.match(p.message, /no NVIDIA driver|no CUDA device|older than the runtime/);
  assert.ok(p.ms < 2000, `probe took ${p.ms} ms`);
  console.log(`probe: ${p.reason}: ${p.message} (${p.ms.toFixed(1)} ms)`);
});

Deno.test("createCudaBackend with no visible device throws CUDA_UNAVAILABLE", async () => {
  const r = await hidden(`
try { m.createCudaBackend({ kind: "cuda" }); console.log("created"); }
catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`);
  assert.equal(r.code, 0, r.stderr);
  const e = JSON.parse(r.stdout);
  assert.equal(e.name, "GptqError");
  assert.equal(e.code, "CUDA_UNAVAILABLE");
  assert.match(e.message, /^CUDA unavailable: (no NVIDIA driver|no CUDA device)/);
  assert.ok(!e.message.includes("\n"), "one line");
});

Deno.test("probeCuda: a missing library is 'library-missing' and names the build task", () => {
  const p = probeCuda({ libraryPath: "/nonexistent/libgptq_cuda.so" });
  assert.equal(p.ok, false);
  if (p.ok) return;
  assert.equal(p.reason, "library-missing");
  assert.match(p.message, /deno task build:cuda/);
  assert.throws(
    () => createCudaBackend({ libraryPath: "/nonexistent/libgptq_cuda.so" }),
    (e: unknown) => e instanceof GptqError && e.code === "CUDA_UNAVAILABLE",
  );
});

Deno.test("the committed CUDA library exists and loads without a GPU", async () => {
  const p = libraryPath("cuda");
  assert.ok("path" in p);
  if (!("path" in p)) return;
  const st = await Deno.stat(p.path);
  assert.ok(st.size > 1e6 && st.size < 16e6, `${st.size} bytes`);
  const probe = probeCuda();
  // Loads in every case: either a device works or the reason is about the driver/device.
  assert.ok(probe.ok || probe.reason !== "library-missing", JSON.stringify(probe));
  console.log(probe.ok ? `CUDA device: ${probe.device.name}` : `no CUDA: ${probe.message}`);
});

Deno.test("host-side helpers: pool size classes and attention splits", () => {
  assert.equal(sizeClass(1), 256);
  assert.equal(sizeClass(1000), 1024);
  assert.equal(sizeClass(4097), 5120);
  assert.equal(sizeClass(1 << 20), 1 << 20);
  assert.deepEqual(attentionSplits(1, 32, 2048, 528), [16, 128]);
  assert.deepEqual(attentionSplits(128, 32, 128, 528), [1, 128]);
  assert.deepEqual(attentionSplits(1, 4, 10, 528), [1, 64]);
  const [s, c] = attentionSplits(3, 2, 1000, 256, 7);
  assert.ok(s * c >= 1000 && c % 64 === 0 && s <= 7);
});
