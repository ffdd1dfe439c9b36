// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { GptqError } from "../errors.ts";
import { type DType, f16BitsToF32, f32ToF16Bits } from "../io/dtype.ts";
import { SafetensorsFile } from "../io/safetensors.ts";
import { type Bits, packQWeight, packQZeros } from "./pack.ts";
import {
  dequantizeLinear,
  type QuantLinearTensors,
  readQuantLinear,
  type TensorSource,
} from "./quant_linear.ts";

const DATA = new URL("../../../shared/data/golden/", import.meta.url);

function f32(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.slice().buffer);
}

Deno.test("every layer of llama-gptq-4bit-g32 loads and dequantizes close to the fp16 original", async () => {
  const qPath = new URL("models/llama-gptq-4bit-g32/model.safetensors", DATA).pathname;
  using q = await SafetensorsFile.open(qPath);
  using orig = await SafetensorsFile.open(new URL("models/llama/model.safetensors", DATA).pathname);
  const prefixes = q.names().filter((n) => n.endsWith(".qweight")).map((n) => n.slice(0, -8));
  assert.equal(prefixes.length, 14);
  let worst = 0;
  for (const p of prefixes) {
    const t = await readQuantLinear(q, p, 4, qPath, { groupSize: 32 });
    const W = dequantizeLinear(t, "gptq");
    assert.equal(W.length, t.N * t.K);
    assert.ok(W.every(Number.isFinite), p);
    assert.equal(t.G, t.K / 32);
    assert.equal(t.bias, null);
    // The original weight [N, K] is an independent check of the layout and of v1 zeros (+1).
    const w = await orig.read(`${p}.weight`);
    assert.deepEqual(w.shape, [t.N, t.K], p);
    const ref = await orig.readFloat32(`${p}.weight`);
    let num = 0, den = 0;
    for (let i = 0; i < W.length; i++) {
      num += (W[i]! - ref[i]!) ** 2;
      den += ref[i]! ** 2;
    }
    const rel = Math.sqrt(num / den);
    worst = Math.max(worst, rel);
    assert.ok(rel < 0.2, `${p}: relative error ${rel}`);
    // Off by one zero point (v2 decoding of v1 data) is far worse: this test can tell.
    const W2 = dequantizeLinear(t, "gptq_v2");
    let num2 = 0;
    for (let i = 0; i < W2.length; i++) num2 += (W2[i]! - ref[i]!) ** 2;
    assert.ok(Math.sqrt(num2 / den) > 2 * rel, p);
  }
  assert.ok(worst > 0.01, "4-bit error must not vanish");
});

Deno.test("AutoGPTQ goldens: dequantize(packed) equals Q cast to fp16", async () => {
  const cases = JSON.parse(await Deno.readTextFile(new URL("autogptq/cases.json", DATA))).cases;
  const report: string[] = [];
  for (const c of cases) {
    const path = new URL(`autogptq/${c.file}`, DATA).pathname;
    using f = await SafetensorsFile.open(path);
    // The golden file names tensors without a module prefix: adapt.
    const src: TensorSource = {
      info: (n) => f.info(n.replace(/^layer\./, "").replace("g_idx", "packed_g_idx")),
      read: (n) => f.read(n.replace(/^layer\./, "").replace("g_idx", "packed_g_idx")),
      has: (n) =>
        f.has(n.replace(/^layer\./, "").replace("g_idx", "packed_g_idx")) && n !== "layer.bias",
    };
    const bits = Number(c.bits) as Bits;
    const t = await readQuantLinear(src, "layer", bits, path, { groupSize: Number(c.group_size) });
    assert.equal(t.K, c.K);
    assert.equal(t.N, c.N);
    const W = dequantizeLinear(t, "gptq");
    const Q = f32((await f.read("Q")).data);
    const scale = f32((await f.read("scale")).data); // [N, G] f32, as the solver used it
    const G = t.G;
    // Recover the f32 products the solver formed: Q = fp32(scale · (q − z)). W[i]/s16 is q − z exactly.
    let exact = 0, within1ulp = 0;
    for (let n = 0; n < t.N; n++) {
      for (let k = 0; k < t.K; k++) {
        const i = n * t.K + k;
        const g = t.gIdx![k]!;
        const s16 = f16BitsToF32(t.scales[g * t.N + n]!);
        const m = W[i]! / s16; // integer q − z
        assert.ok(Number.isInteger(m), `${c.file} [${n},${k}]`);
        // The golden Q is exactly the solver's f32 scale times the same integer.
        assert.equal(Q[i], Math.fround(scale[n * G + g]! * m), `${c.file} [${n},${k}]`);
        const q16 = f32ToF16Bits(Q[i]!);
        const w16 = f32ToF16Bits(W[i]!);
        if (q16 === w16) exact++;
        else if (Math.abs(q16 - w16) === 1) within1ulp++;
      }
    }
    report.push(`${c.file}: ${exact}/${Q.length} bit-exact in fp16, ${within1ulp} off by 1 ulp`);
    // Where fp16(Q) and W differ it is only because W uses the fp16-rounded scale (the
    // checkpoint holds nothing else) while Q used the f32 scale: at most one fp16 ulp.
    assert.equal(exact + within1ulp, Q.length, report.at(-1));
    // With fp16 rounding it matches AutoGPTQ's fp16 torch path to the same degree.
    const Wr = dequantizeLinear(t, "gptq", { roundToF16: true });
    assert.ok(Wr.every((v, i) => v === f16BitsToF32(f32ToF16Bits(W[i]!))));
  }
  console.log(report.join("\n"));
});

/** An in-memory tensor source for error tests. */
function memSource(
  tensors: Record<string, { dtype: DType; shape: number[]; data: Uint8Array }>,
): TensorSource {
  return {
    has: (n) => Object.hasOwn(tensors, n),
    info: (n) => {
      const t = tensors[n];
      if (!t) throw new Error(`missing ${n}`);
      return { dtype: t.dtype, shape: t.shape };
    },
    read: (n) => Promise.resolve(tensors[n]!),
  };
}

function layer(K: number, N: number, bits: Bits, gs: number) {
  const G = gs === -1 ? 1 : Math.ceil(K / gs);
  const qweight = packQWeight(new Uint8Array(K * N).fill(3), K, N, bits);
  const qzeros = packQZeros(new Uint8Array(G * N).fill(2), G, N, bits, "gptq_v2");
  const scales = new Uint16Array(G * N).fill(0x3c00);
  const gIdx = new Int32Array(K).map((_, k) => Math.floor(k / (gs === -1 ? K : gs)));
  const bias = new Float32Array(N).fill(0.5);
  const u8 = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return {
    "m.qweight": { dtype: "I32" as DType, shape: [(K / 32) * bits, N], data: u8(qweight) },
    "m.qzeros": { dtype: "I32" as DType, shape: [G, (N / 32) * bits], data: u8(qzeros) },
    "m.scales": { dtype: "F16" as DType, shape: [G, N], data: u8(scales) },
    "m.g_idx": { dtype: "I32" as DType, shape: [K], data: u8(gIdx) },
    "m.bias": { dtype: "F32" as DType, shape: [N], data: u8(bias) },
  };
}

Deno.test("readQuantLinear: bias, missing g_idx, all widths", async () => {
  for (const bits of [2, 3, 4, 8] as Bits[]) {
    const ts = layer(352, 64, bits, 32);
    const t = await readQuantLinear(memSource(ts), "m", bits, "x.safetensors", { groupSize: 32 });
    assert.equal(t.K, 352);
    assert.equal(t.G, 11);
    assert.deepEqual(t.bias, new Float32Array(64).fill(0.5));
    const W = dequantizeLinear(t, "gptq_v2");
    assert.ok(W.every((v) => v === 1), `bits ${bits}`); // 1.0 * (3 − 2)
    // v1: stored 2 means zero 3 → 0.
    assert.ok(dequantizeLinear(t, "gptq").every((v) => v === 0));
    // Without g_idx: K from qweight, trivial g_idx from group size.
    const { "m.g_idx": _, ...noG } = ts;
    const t2 = await readQuantLinear(memSource(noG), "m", bits, "x", { groupSize: 32 });
    assert.deepEqual(t2.gIdx, t.gIdx);
    const t3 = await readQuantLinear(memSource(noG), "m", bits, "x");
    assert.equal(t3.gIdx, null);
    assert.equal(t3.K, 352);
    assert.deepEqual(dequantizeLinear(t3, "gptq_v2"), W);
  }
});

async function expectError(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof GptqError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, re);
    assert.match(e.message, /^x\.safetensors: /);
    return true;
  });
}

Deno.test("readQuantLinear: clear errors naming the tensor", async () => {
  const base = layer(352, 64, 4, 32);
  // 45 qweight rows instead of 44.
  await expectError(
    readQuantLinear(
      memSource({ ...base, "m.qweight": { ...base["m.qweight"], shape: [45, 64] } }),
      "m",
      4,
      "x.safetensors",
    ),
    "SHAPE",
    /tensor 'm\.qweight': qweight has 45 rows, expected K\*bits\/32 = 352\*4\/32 = 44/,
  );
  // Wrong bits in the config.
  await expectError(
    readQuantLinear(memSource(base), "m", 3, "x.safetensors"),
    "SHAPE",
    /qweight has 44 rows/,
  );
  await expectError(
    readQuantLinear(
      memSource({ ...base, "m.qzeros": { ...base["m.qzeros"], dtype: "I64" } }),
      "m",
      4,
      "x.safetensors",
    ),
    "GPTQ_FORMAT",
    /m\.qzeros': dtype is I64, expected I32/,
  );
  await expectError(
    readQuantLinear(
      memSource({ ...base, "m.scales": { ...base["m.scales"], shape: [10, 64] } }),
      "m",
      4,
      "x.safetensors",
    ),
    "SHAPE",
    /scales is \[10, 64\], expected \[G, N\] = \[11, 64\]/,
  );
  await expectError(
    readQuantLinear(memSource(base), "m", 4, "x.safetensors", { groupSize: 128 }),
    "SHAPE",
    /ceil\(352\/128\) = 3/,
  );
  const badG = new Int32Array(352);
  badG[7] = 11;
  await expectError(
    readQuantLinear(
      memSource({
        ...base,
        "m.g_idx": { dtype: "I32", shape: [352], data: new Uint8Array(badG.buffer) },
      }),
      "m",
      4,
      "x.safetensors",
    ),
    "GPTQ_FORMAT",
    /g_idx\[7\] = 11 is outside 0\.\.10/,
  );
  await expectError(
    readQuantLinear(
      memSource({ ...base, "m.bias": { ...base["m.bias"], shape: [63] } }),
      "m",
      4,
      "x.safetensors",
    ),
    "SHAPE",
    /bias is \[63\], expected \[N\] = \[64\]/,
  );
  const { "m.qzeros": _, ...noZ } = base;
  await expectError(
    readQuantLinear(memSource(noZ), "m", 4, "x.safetensors"),
    "SAFETENSORS_MISSING_TENSOR",
    /m\.qzeros/,
  );
  const inf = new Uint16Array(11 * 64).fill(0x3c00);
  inf[70] = 0x7c00;
  await expectError(
    readQuantLinear(
      memSource({ ...base, "m.scales": { ...base["m.scales"], data: new Uint8Array(inf.buffer) } }),
      "m",
      4,
      "x.safetensors",
    ),
    "GPTQ_FORMAT",
    /scale \[1, 6\] is not finite/,
  );
});

Deno.test("dequantizeLinear: v1 overflowed zero decodes like AutoGPTQ (16) or wrapped (0)", () => {
  const K = 32, N = 32;
  const zeros = new Uint8Array(N).fill(8);
  zeros[0] = 0;
  const t: QuantLinearTensors = {
    qweight: packQWeight(new Uint8Array(K * N).fill(0), K, N, 4),
    qzeros: packQZeros(zeros, 1, N, 4, "gptq", { allowOverflow: true }),
    scales: new Uint16Array(N).fill(0x3c00),
    gIdx: null,
    bias: null,
    K,
    N,
    G: 1,
    bits: 4,
  };
  const a = dequantizeLinear(t, "gptq");
  assert.equal(a[0], -16); // row n=0
  assert.equal(a[7 * K], -16); // bleed: fields 0..7 of word 0 all ones
  assert.equal(a[8 * K], -8);
  const w = dequantizeLinear(t, "gptq", { v1Zero: "wrap" });
  assert.equal(w[0], 0);
  assert.equal(w[7 * K], 0);
});
