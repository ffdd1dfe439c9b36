// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { GptqError } from "../errors.ts";
import { SafetensorsFile } from "../io/safetensors.ts";
import {
  type Bits,
  computeCodes,
  computeCodesRaw,
  gIdxForGroups,
  packQWeight,
  packQZeros,
  roundHalfEven,
  scalesToF16,
  unpackQWeight,
  unpackQZeros,
  unpackQZerosRaw,
} from "./pack.ts";

const GOLDEN = new URL("../../../shared/data/golden/autogptq/", import.meta.url);

interface GoldenCase {
  file: string;
  K: number;
  N: number;
  bits: string;
  group_size: string;
  sym: string;
  desc_act: string;
  static_groups: string;
}

function i32(bytes: Uint8Array): Int32Array {
  return new Int32Array(bytes.slice().buffer);
}
function u16(bytes: Uint8Array): Uint16Array {
  return new Uint16Array(bytes.slice().buffer);
}
function f32(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.slice().buffer);
}

/** Index of the first difference, or −1. */
function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const cases: GoldenCase[] = JSON.parse(
  await Deno.readTextFile(new URL("cases.json", GOLDEN)),
).cases;

Deno.test("golden cases.json lists all 8 AutoGPTQ cases", () => {
  assert.equal(cases.length, 8);
  assert.deepEqual(
    [...new Set(cases.map((c) => Number(c.bits)))].sort(),
    [2, 3, 4, 8],
  );
});

for (const c of cases) {
  Deno.test(`AutoGPTQ golden ${c.file}: codes+pack are bit-identical`, async () => {
    using f = await SafetensorsFile.open(new URL(c.file, GOLDEN).pathname);
    const bits = Number(c.bits) as Bits;
    const { K, N } = c;
    const Q = f32((await f.read("Q")).data);
    const scaleT = await f.read("scale");
    const scale = f32(scaleT.data);
    const zero = f32((await f.read("zero")).data);
    const gIdx = i32((await f.read("g_idx")).data);
    const G = scaleT.shape[1]!;
    assert.deepEqual(scaleT.shape, [N, G]);

    // g_idx: packed_g_idx is what went into the checkpoint.
    assert.deepEqual(i32((await f.read("packed_g_idx")).data), gIdx);
    const gs = Number(c.group_size);
    if (c.desc_act === "false" || c.static_groups === "true") {
      assert.deepEqual(gIdx, gIdxForGroups(K, gs), "trivial g_idx");
    }

    const codes = computeCodes(Q, scale, zero, gIdx, N, K, bits);
    const qweight = packQWeight(codes, K, N, bits);
    const gold = i32((await f.read("qweight")).data);
    assert.deepEqual((await f.info("qweight")).shape, [(K / 32) * bits, N]);
    assert.equal(firstDiff(qweight, gold), -1, "qweight differs");
    assert.deepEqual(unpackQWeight(gold, K, N, bits), codes);

    // zeros [N,G] f32 → [G,N] integers.
    const zerosGN = new Uint8Array(G * N);
    for (let n = 0; n < N; n++) for (let g = 0; g < G; g++) zerosGN[g * N + n] = zero[n * G + g]!;
    const qzeros = packQZeros(zerosGN, G, N, bits, "gptq");
    const goldZ = i32((await f.read("qzeros")).data);
    assert.equal(firstDiff(qzeros, goldZ), -1, "qzeros differs");
    assert.deepEqual(
      Int16Array.from(zerosGN),
      unpackQZeros(goldZ, G, N, bits, "gptq"),
    );

    const scales = scalesToF16(scale, N, G);
    assert.equal(firstDiff(scales, u16((await f.read("scales")).data)), -1, "scales differ");

    // Raw codes (AutoGPTQ's unclamped intweight) stay in range here.
    const raw = computeCodesRaw(Q, scale, zero, gIdx, N, K);
    assert.deepEqual(Uint8Array.from(raw), codes);
  });
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

for (const bits of [2, 3, 4, 8] as Bits[]) {
  Deno.test(`round trip pack/unpack at ${bits} bits`, () => {
    const rnd = lcg(bits * 7919);
    for (const [K, N] of [[32, 32], [64, 96], [96, 64], [4096, 32], [32, 4096], [352, 160]]) {
      const maxq = (1 << bits) - 1;
      const codes = new Uint8Array(K * N).map(() => rnd() & maxq);
      const q = packQWeight(codes, K!, N!, bits);
      assert.equal(q.length, (K! / 32) * bits * N!);
      assert.deepEqual(unpackQWeight(q, K!, N!, bits), codes);
      // zeros along N: v2 keeps 0..maxq; v1 needs 1..maxq.
      const G = 3;
      const zN = new Uint8Array(G * K!).map(() => rnd() & maxq);
      assert.deepEqual(
        unpackQZeros(packQZeros(zN, G, K!, bits, "gptq_v2"), G, K!, bits, "gptq_v2"),
        zN,
      );
      const z1 = zN.map((v) => (v === 0 ? 1 : v));
      assert.deepEqual(
        unpackQZeros(packQZeros(z1, G, K!, bits, "gptq"), G, K!, bits, "gptq"),
        Int16Array.from(z1),
      );
    }
  });
}

Deno.test("3-bit layout matches AutoGPTQ's special cases", () => {
  // Value 10 straddles words 0/1, value 21 words 1/2.
  const codes = new Uint8Array(32);
  codes[10] = 0b101;
  codes[21] = 0b110;
  codes[0] = 7;
  codes[31] = 7;
  const q = packQWeight(codes, 32, 1, 3);
  assert.equal(q[0]! >>> 0, (7 | (0b01 << 30)) >>> 0);
  assert.equal(q[1]! >>> 0, (1 | (0 << 31)) >>> 0); // bit 2 of value 10; bit 0 of value 21 is 0
  assert.equal(q[2]! >>> 0, (0b11 | (7 << 29)) >>> 0); // bits 1–2 of value 21; value 31 at bits 29..31
});

Deno.test("symmetric v1 constants from the reference", () => {
  const expect: Record<number, number[]> = {
    2: [0x55555555],
    3: [0xdb6db6db, 0xb6db6db6, 0x6db6db6d],
    4: [0x77777777],
    8: [0x7f7f7f7f],
  };
  for (const bits of [2, 3, 4, 8] as Bits[]) {
    const z = new Uint8Array(32).fill(1 << (bits - 1));
    const q = packQZeros(z, 1, 32, bits, "gptq");
    assert.deepEqual([...q.subarray(0, expect[bits]!.length)].map((x) => x >>> 0), expect[bits]);
  }
});

Deno.test("v1 zero of 0: refused by default, AutoGPTQ bleed reproduced with allowOverflow", () => {
  const z = new Uint8Array(32).fill(8);
  z[2] = 0; // field 2 of word 0
  assert.throws(() => packQZeros(z, 1, 32, 4, "gptq"), (e) => {
    assert.ok(e instanceof GptqError);
    assert.equal(e.code, "GPTQ_FORMAT");
    assert.match(e.message, /zero point 0/);
    return true;
  });
  const q = packQZeros(z, 1, 32, 4, "gptq", { allowOverflow: true });
  // numpy: 0xFFFFFFFF << 8 ORed into 0x77777777 → fields 2..7 all ones.
  assert.equal(q[0]! >>> 0, 0xffffff77);
  assert.equal(q[1]! >>> 0, 0x77777777);
  // AutoGPTQ decodes (field & 15) + 1 = 16 for all fields 2..7; "wrap" gives 0.
  const auto = unpackQZeros(q, 1, 32, 4, "gptq");
  assert.deepEqual([...auto.subarray(0, 8)], [8, 8, 16, 16, 16, 16, 16, 16]);
  const wrap = unpackQZeros(q, 1, 32, 4, "gptq", { v1Zero: "wrap" });
  assert.deepEqual([...wrap.subarray(0, 8)], [8, 8, 0, 0, 0, 0, 0, 0]);
  // 3 bits: value 10 = 0 → low bits 30–31 set, bit 0 of word 1 set ((-1 >> 2) & 1).
  const z3 = new Uint8Array(32).fill(4);
  z3[10] = 0;
  const q3 = packQZeros(z3, 1, 32, 3, "gptq", { allowOverflow: true });
  const ref = packQZeros(new Uint8Array(32).fill(4), 1, 32, 3, "gptq");
  assert.equal(q3[0]! >>> 0, (ref[0]! | (3 << 30)) >>> 0);
  assert.equal(q3[1]! >>> 0, (ref[1]! | 1) >>> 0);
  assert.equal(q3[2], ref[2]);
  assert.deepEqual(unpackQZerosRaw(q3, 1, 32, 3)[10], 7);
});

Deno.test("out-of-range codes throw; allowOverflow ORs them unmasked like numpy", () => {
  const codes = new Uint32Array(32);
  codes[1] = 0xffffffff; // a −1 intweight after astype(uint32)
  assert.throws(() => packQWeight(codes, 32, 1, 4), GptqError);
  const q = packQWeight(codes, 32, 1, 4, { allowOverflow: true });
  assert.equal(q[0]! >>> 0, 0xfffffff0);
  assert.equal(q[1], 0);
});

Deno.test("shape validation", () => {
  assert.throws(() => packQWeight(new Uint8Array(33 * 2), 33, 2, 4), (e) => {
    assert.ok(e instanceof GptqError);
    assert.equal(e.code, "SHAPE");
    assert.match(e.message, /multiple of 32/);
    return true;
  });
  assert.throws(() => packQWeight(new Uint8Array(10), 32, 2, 4), GptqError);
  assert.throws(() => packQWeight(new Uint8Array(64), 32, 2, 5 as Bits), GptqError);
  assert.throws(() => unpackQWeight(new Int32Array(3), 32, 1, 4), GptqError);
});

Deno.test("roundHalfEven matches torch.round", () => {
  assert.deepEqual(
    [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, 2.5001, -3.7].map(roundHalfEven),
    [0, 2, 2, -0, -2, -2, 2, 3, -4],
  );
});

Deno.test("computeCodes rejects codes off the grid and bad g_idx", () => {
  const Q = new Float32Array([100]); // far outside 4-bit range at scale 1
  assert.throws(
    () =>
      computeCodes(Q, new Float32Array([1]), new Float32Array([8]), new Int32Array([0]), 1, 1, 4),
    (e) => e instanceof GptqError && e.code === "GPTQ_FORMAT",
  );
  assert.throws(
    () =>
      computeCodes(
        new Float32Array(2),
        new Float32Array([1]),
        new Float32Array([8]),
        new Int32Array([0, 1]),
        1,
        2,
        4,
      ),
    (e) => e instanceof GptqError && /g_idx\[1\]/.test(e.message),
  );
});

Deno.test("gIdxForGroups and scalesToF16", () => {
  assert.deepEqual([...gIdxForGroups(5, -1)], [0, 0, 0, 0, 0]);
  assert.deepEqual([...gIdxForGroups(5, 2)], [0, 0, 1, 1, 2]);
  assert.throws(() => gIdxForGroups(5, 0), GptqError);
  // [N=2, G=2] → [G, N]
  const s = scalesToF16(new Float32Array([1, 2, 0.5, -1]), 2, 2);
  assert.deepEqual([...s], [0x3c00, 0x3800, 0x4000, 0xbc00]);
});
