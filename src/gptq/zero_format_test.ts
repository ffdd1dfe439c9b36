// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { GptqError } from "../errors.ts";
import { SafetensorsFile } from "../io/safetensors.ts";
import { type Bits, packQZeros, unpackQZeros } from "./pack.ts";
import { convertV1ToV2, convertV2ToV1, detectZeroFormat, hasV1Overflow } from "./zero_format.ts";

const DATA = new URL("../../../shared/data/golden/", import.meta.url);

function i32(bytes: Uint8Array): Int32Array {
  return new Int32Array(bytes.slice().buffer);
}

/** Golden AutoGPTQ cases: [file, bits, sym, true zeros [G,N], v1 qzeros, G, N]. */
async function goldenZeros(): Promise<
  {
    file: string;
    bits: Bits;
    sym: boolean;
    zeros: Uint8Array;
    v1: Int32Array;
    G: number;
    N: number;
  }[]
> {
  const cases = JSON.parse(await Deno.readTextFile(new URL("autogptq/cases.json", DATA))).cases;
  const out = [];
  for (const c of cases) {
    using f = await SafetensorsFile.open(new URL(`autogptq/${c.file}`, DATA).pathname);
    const z = await f.read("zero");
    const [N, G] = z.shape as [number, number];
    const zf = new Float32Array(z.data.slice().buffer);
    const zeros = new Uint8Array(G * N);
    for (let n = 0; n < N; n++) for (let g = 0; g < G; g++) zeros[g * N + n] = zf[n * G + g]!;
    out.push({
      file: c.file as string,
      bits: Number(c.bits) as Bits,
      sym: c.sym === "true",
      zeros,
      v1: i32((await f.read("qzeros")).data),
      G,
      N,
    });
  }
  return out;
}

const golden = await goldenZeros();

Deno.test("llama-gptq-4bit-g32 (AutoGPTQ, v1 sym) is detected as gptq in every layer", async () => {
  using f = await SafetensorsFile.open(
    new URL("models/llama-gptq-4bit-g32/model.safetensors", DATA).pathname,
  );
  const names = f.names().filter((n) => n.endsWith(".qzeros"));
  assert.equal(names.length, 14); // 2 layers × 7 linears
  const samples: Int32Array[] = [];
  const v2: Int32Array[] = [];
  for (const n of names) {
    const t = await f.read(n);
    const q = i32(t.data);
    assert.ok(q.every((w) => w === 0x77777777), n);
    samples.push(q);
    assert.equal(detectZeroFormat([q], 4, true).format, "gptq");
    const [G, W] = t.shape as [number, number];
    const c = convertV1ToV2(q, G, (W * 32) / 4, 4);
    assert.ok(c.every((w) => w >>> 0 === 0x88888888), n);
    v2.push(c);
  }
  const all = detectZeroFormat(samples, 4, true);
  assert.equal(all.format, "gptq");
  assert.match(all.reason, /v1 symmetric constant/);
  // Its v2 form is the v2 constant and is detected as such, whatever sym says.
  assert.equal(detectZeroFormat(v2, 4, true).format, "gptq_v2");
  assert.equal(detectZeroFormat(v2, 4, undefined).format, "gptq_v2");
});

Deno.test("v1→v2 conversion of every AutoGPTQ golden equals packing the true zeros as v2", () => {
  for (const c of golden) {
    const v2 = convertV1ToV2(c.v1, c.G, c.N, c.bits);
    assert.deepEqual(v2, packQZeros(c.zeros, c.G, c.N, c.bits, "gptq_v2"), c.file);
    assert.deepEqual(convertV1ToV2(c.v1, c.G, c.N, c.bits, { mode: "fieldwise" }), v2, c.file);
    assert.deepEqual(unpackQZeros(v2, c.G, c.N, c.bits, "gptq_v2"), c.zeros, c.file);
    // and back
    assert.equal(hasV1Overflow(v2, c.bits), false);
    assert.deepEqual(convertV2ToV1(v2, c.G, c.N, c.bits), c.v1, c.file);
  }
});

Deno.test("detectZeroFormat on the AutoGPTQ goldens (v1) and their v2 conversions", () => {
  for (const c of golden) {
    const v1 = detectZeroFormat([c.v1], c.bits, c.sym);
    const v2 = detectZeroFormat([convertV1ToV2(c.v1, c.G, c.N, c.bits)], c.bits, c.sym);
    if (c.sym) {
      assert.equal(v1.format, "gptq", `${c.file}: ${v1.reason}`);
      assert.equal(v2.format, "gptq_v2", `${c.file}: ${v2.reason}`);
    } else {
      // Asymmetric: the distribution rule may decline, but must never pick the wrong format.
      assert.notEqual(v1.format, "gptq_v2", `${c.file}: ${v1.reason}`);
      assert.notEqual(v2.format, "gptq", `${c.file}: ${v2.reason}`);
    }
  }
  // Asymmetric 3- and 4-bit goldens are decided correctly; 192 8-bit zeros are too few.
  const asym = golden.filter((c) => !c.sym && c.bits !== 8);
  assert.equal(asym.length, 2);
  for (const c of asym) {
    assert.equal(detectZeroFormat([c.v1], c.bits, false).format, "gptq", c.file);
    assert.equal(
      detectZeroFormat([convertV1ToV2(c.v1, c.G, c.N, c.bits)], c.bits, undefined).format,
      "gptq_v2",
      c.file,
    );
  }
  const b8 = golden.find((c) => c.bits === 8)!;
  const r8 = detectZeroFormat([b8.v1], 8, false);
  assert.equal(r8.format, "unknown");
  assert.match(r8.reason, /too few/);
});

Deno.test("detectZeroFormat: sym=true contradicted by the weights is unknown", () => {
  const asym = golden.find((c) => !c.sym && c.bits === 4)!;
  const r = detectZeroFormat([asym.v1], 4, true);
  assert.equal(r.format, "unknown");
  assert.match(r.reason, /sym=true/);
  assert.equal(detectZeroFormat([], 4, true).format, "unknown");
  assert.equal(detectZeroFormat([new Int32Array([0x12345678])], 4, false).format, "unknown");
});

Deno.test("synthetic v2 ↔ v1 at every width, including 3-bit straddles", () => {
  let s = 12345;
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8;
  for (const bits of [2, 3, 4, 8] as Bits[]) {
    const G = 4, N = 96;
    const maxq = (1 << bits) - 1;
    const zeros = new Uint8Array(G * N).map(() => 1 + (rnd() % maxq)); // 1..maxq, v1-safe
    const v1 = packQZeros(zeros, G, N, bits, "gptq");
    const v2 = packQZeros(zeros, G, N, bits, "gptq_v2");
    assert.deepEqual(convertV1ToV2(v1, G, N, bits), v2, `bits ${bits}`);
    assert.deepEqual(convertV2ToV1(v2, G, N, bits), v1, `bits ${bits}`);
    assert.deepEqual(convertV2ToV1(v2, G, N, bits, { mode: "fieldwise" }), v1, `bits ${bits}`);
  }
});

Deno.test("overflow: GPTQModel's word constant borrows, fieldwise wraps", () => {
  const zeros = new Uint8Array(32).fill(8);
  zeros[0] = 0; // v2 zero 0 in field 0
  const v2 = packQZeros(zeros, 1, 32, 4, "gptq_v2");
  assert.equal(hasV1Overflow(v2, 4), true);
  const gm = convertV2ToV1(v2, 1, 32, 4);
  // 0x88888880 − 0x11111111 = 0x7777776F: field 0 → 15, field 1 borrowed → 6.
  assert.equal(gm[0]! >>> 0, 0x7777776f);
  const fw = convertV2ToV1(v2, 1, 32, 4, { mode: "fieldwise" });
  assert.equal(fw[0]! >>> 0, 0x7777777f);
  // GPTQModel's load-time add carries back: round trip is exact in its own mode.
  assert.deepEqual(convertV1ToV2(gm, 1, 32, 4), v2);
  assert.deepEqual(convertV1ToV2(fw, 1, 32, 4, { mode: "fieldwise" }), v2);
});

Deno.test("converters validate shapes", () => {
  assert.throws(() => convertV1ToV2(new Int32Array(3), 1, 32, 4), (e) => {
    assert.ok(e instanceof GptqError);
    assert.equal(e.code, "SHAPE");
    assert.match(e.message, /expected G\*N\*bits\/32/);
    return true;
  });
  assert.throws(() => convertV1ToV2(new Int32Array(4), 1, 33, 4), GptqError);
  assert.throws(() => convertV1ToV2(new Int32Array(4), 1, 32, 5 as Bits), GptqError);
});
