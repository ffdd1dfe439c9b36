// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../io/safetensors.ts";
import { createWasmSolver } from "./solver.ts";
import { packQWeight, packQZeros } from "../gptq/pack.ts";

const DIR = fileURLToPath(new URL("../../../shared/data/golden/autogptq/", import.meta.url));

Deno.test("wasm solver (TypeScript API) reproduces AutoGPTQ's packed qweight/qzeros, g_idx and Q on every golden case", async () => {
  const s = await createWasmSolver();
  const cases = JSON.parse(await Deno.readTextFile(DIR + "cases.json")).cases as Record<
    string,
    string
  >[];
  for (const c of cases) {
    using f = await SafetensorsFile.open(DIR + c.file);
    const [N, K] = f.info("W").shape as [number, number];
    const W = await f.readFloat32("W"), H = await f.readFloat32("H"), Q = await f.readFloat32("Q");
    const r = s.gptq(W, N, K, H, {
      bits: Number(c.bits),
      group_size: Number(c.group_size),
      sym: c.sym === "true",
      desc_act: c.desc_act === "true",
      static_groups: c.static_groups === "true",
      damp_percent: Number(c.damp_percent),
    });
    // Codes are what a checkpoint stores: packing ours must give AutoGPTQ's tensors bit for bit.
    const G = r.G, bits = Number(c.bits) as 2 | 3 | 4 | 8;
    const codesKN = new Uint8Array(K * N);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) codesKN[k * N + n] = r.codes[n * K + k]!;
    }
    const zeros = new Uint32Array(G * N);
    for (let n = 0; n < N; n++) for (let g = 0; g < G; g++) zeros[g * N + n] = r.zero[n * G + g]!;
    const gold = async (t: string) => {
      const x = await f.read(t);
      return Array.from(new Int32Array(x.data.buffer, x.data.byteOffset, x.data.byteLength / 4));
    };
    assert.deepEqual(
      Array.from(packQWeight(codesKN, K, N, bits)),
      await gold("qweight"),
      `${c.file}: qweight`,
    );
    assert.deepEqual(
      Array.from(packQZeros(zeros, G, N, bits, "gptq", { allowOverflow: true })),
      await gold("qzeros"),
      `${c.file}: qzeros`,
    );
    // Q itself: equal up to fp32 rounding of the scale (torch's LAPACK factor differs in the last bits).
    let same = 0, maxRel = 0;
    for (let i = 0; i < Q.length; i++) {
      if (r.q[i] === Q[i]) same++;
      else maxRel = Math.max(maxRel, Math.abs(r.q[i]! - Q[i]!) / Math.max(Math.abs(Q[i]!), 1e-12));
    }
    assert.ok(maxRel <= 1e-6, `${c.file}: Q differs by ${maxRel} relative`);
    console.log(
      `${c.file}: Q bit-equal ${(100 * same / Q.length).toFixed(1)}%, others within ${
        maxRel.toExponential(1)
      } relative`,
    );
    const gIdx = await f.read("g_idx");
    assert.deepEqual(
      Array.from(r.gIdx),
      Array.from(new Int32Array(gIdx.data.buffer, gIdx.data.byteOffset, K)),
    );
    const rtn = s.rtn(W, N, K, {
      bits: Number(c.bits),
      group_size: Number(c.group_size),
      sym: c.sym === "true",
      desc_act: false,
      static_groups: false,
      damp_percent: 0.01,
    });
    assert.equal(rtn.codes.length, N * K);
  }
});

Deno.test("wasm solver: a Hessian with NaN is a clear error naming the module", async () => {
  const s = await createWasmSolver();
  const K = 32, N = 32;
  const h = new Float32Array(K * K);
  for (let i = 0; i < K; i++) h[i * K + i] = 1;
  h[5] = NaN;
  assert.throws(
    () =>
      s.gptq(new Float32Array(N * K).fill(0.5), N, K, h, {
        bits: 4,
        group_size: 32,
        sym: true,
        desc_act: false,
        static_groups: false,
        damp_percent: 0.01,
      }, "model.layers.0.mlp.up_proj"),
    (e: Error) => /model\.layers\.0\.mlp\.up_proj/.test(e.message) && /nan/i.test(e.message),
  );
});

Deno.test("hessianErrors (wasm GEMM) equals the plain hessianError on all rows, and samples rows when N is large", async () => {
  const { hessianError, hessianErrors } = await import("./solver.ts");
  const N = 96, K = 64;
  const w = new Float32Array(N * K).map((_, i) => Math.sin(i * 0.7));
  const q = w.map((v) => Math.round(v * 4) / 4);
  const x = new Float32Array(K * K).map((_, i) => Math.cos(i * 0.13));
  const h = new Float32Array(K * K);
  for (let i = 0; i < K; i++) {
    for (let j = 0; j < K; j++) {
      for (let t = 0; t < K; t++) h[i * K + j]! += x[t * K + i]! * x[t * K + j]!;
    }
  }
  const exact = hessianError(w, q, h, N, K);
  const [fast] = await hessianErrors(w, [q], h, N, K);
  assert.ok(Math.abs(fast! - exact) / exact < 1e-4, `${fast} vs ${exact}`);
  const [sampled] = await hessianErrors(w, [q], h, N, K, 48);
  assert.ok(Math.abs(sampled! - exact) / exact < 0.3, `sampled ${sampled} vs ${exact}`);
});
