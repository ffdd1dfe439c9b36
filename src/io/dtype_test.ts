// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import {
  type DType,
  DTYPE_SIZE,
  f16BitsToF32,
  f32ToF16Bits,
  fromFloat32,
  isDType,
  toFloat32,
} from "./dtype.ts";
import { mulberry32 as rng } from "../runtime/sample.ts";

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsToF32(b: number): number {
  u32[0] = b >>> 0;
  return f32[0]!;
}

Deno.test("f16BitsToF32 matches V8's Float16Array on all 65536 patterns", () => {
  const all = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) all[i] = i;
  const native = new Float16Array(all.buffer);
  for (let h = 0; h < 65536; h++) {
    const v = f16BitsToF32(h);
    const ref = native[h]!;
    if (Number.isNaN(ref)) assert.ok(Number.isNaN(v), `0x${h.toString(16)}`);
    else assert.ok(Object.is(v, ref), `0x${h.toString(16)}: ${v} vs ${ref}`);
  }
});

Deno.test("f32ToF16Bits inverts f16BitsToF32 on all 65536 patterns", () => {
  for (let h = 0; h < 65536; h++) {
    const v = f16BitsToF32(h);
    const back = f32ToF16Bits(v);
    if (Number.isNaN(v)) {
      assert.equal(back & 0x7c00, 0x7c00);
      assert.notEqual(back & 0x3ff, 0, `NaN 0x${h.toString(16)} became Inf`);
      assert.equal(back & 0x8000, h & 0x8000);
    } else {
      assert.equal(back, h, `0x${h.toString(16)}`);
    }
  }
});

Deno.test("f32ToF16Bits rounds to nearest even at every f16 midpoint", () => {
  // For each pair of adjacent finite f16 values, the midpoint (exact in f32) must
  // round to the even one, and one f32 ulp either side to the nearer one.
  const half = new Float16Array(1);
  for (let h = 0; h < 0x7bff; h++) {
    for (const sign of [0, 0x8000]) {
      const a = f16BitsToF32(h | sign);
      const b = f16BitsToF32((h + 1) | sign);
      const mid = (a + b) / 2;
      f32[0] = mid;
      assert.equal(f32[0], mid, "midpoint not exact in f32");
      const even = (h & 1) === 0 ? h : h + 1;
      assert.equal(f32ToF16Bits(mid), even | sign, `tie at 0x${h.toString(16)}`);
      const midBits = u32[0]!;
      const below = bitsToF32(midBits - 1);
      const above = bitsToF32(midBits + 1);
      const [near, far] = Math.abs(below) < Math.abs(above) ? [below, above] : [above, below];
      assert.equal(f32ToF16Bits(near), h | sign);
      assert.equal(f32ToF16Bits(far), (h + 1) | sign, `far 0x${h.toString(16)} ${sign} ${far}`);
      half[0] = near; // V8 native as a second reference
      assert.equal(new Uint16Array(half.buffer)[0], h | sign);
    }
  }
  // overflow: 65520 (max + half ulp) is a tie with Inf's "even" side → Inf; just below stays max.
  assert.equal(f32ToF16Bits(65520), 0x7c00);
  assert.equal(f32ToF16Bits(65519.99), 0x7bff);
  assert.equal(f32ToF16Bits(-1e10), 0xfc00);
  assert.equal(f32ToF16Bits(2 ** -25), 0); // tie with zero → even (0)
  assert.equal(f32ToF16Bits(2 ** -25 * 1.0001), 1);
  assert.equal(f32ToF16Bits(-0), 0x8000);
});

Deno.test("f32ToF16Bits matches V8's Float16Array on 2^20 random f32 patterns", () => {
  const r = rng(42);
  const n = 1 << 20;
  const src = new Uint32Array(n);
  for (let i = 0; i < n; i++) src[i] = r();
  const vals = new Float32Array(src.buffer);
  const native = new Uint16Array(new Float16Array(vals).buffer);
  for (let i = 0; i < n; i++) {
    const v = vals[i]!;
    if (Number.isNaN(v)) continue;
    assert.equal(f32ToF16Bits(v), native[i], `${v}`);
  }
  // and fromFloat32 gives the same bytes as the scalar function
  const bytes = new Uint16Array(fromFloat32(vals, "F16").buffer);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(vals[i]!)) assert.equal(bytes[i]! & 0x7c00, 0x7c00);
    else assert.equal(bytes[i], f32ToF16Bits(vals[i]!));
  }
});

/** Exact round-to-nearest-even f32 → bf16 by comparing distances in float64. */
function bf16Reference(bits: number): number {
  const x = bitsToF32(bits);
  const lo = bits & 0xffff0000;
  const hi = (lo + 0x10000) >>> 0;
  const vlo = bitsToF32(lo);
  // the value past the largest finite bf16 rounds as if it were 2^128
  const vhi = ((hi >>> 16) & 0x7fff) === 0x7f80 ? Math.sign(x) * 2 ** 128 : bitsToF32(hi);
  const dlo = Math.abs(x - vlo);
  const dhi = Math.abs(vhi - x);
  if (dlo < dhi) return lo >>> 16;
  if (dhi < dlo) return hi >>> 16;
  return (lo >>> 16) & 1 ? hi >>> 16 : lo >>> 16;
}

Deno.test("fromFloat32 BF16 rounds to nearest even (exact reference)", () => {
  const r = rng(7);
  const n = 1 << 20;
  const src = new Uint32Array(n + 8);
  for (let i = 0; i < n; i++) {
    const x = r();
    // a quarter of the cases are exact ties
    src[i] = (i & 3) === 0 ? ((x & 0xffff0000) | 0x8000) >>> 0 : x;
  }
  src.set(
    [0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f7f7fff, 0x00008000, 0x00018000, 0, 0x80000000],
    n,
  );
  const vals = new Float32Array(src.buffer);
  const out = new Uint16Array(fromFloat32(vals, "BF16").buffer);
  for (let i = 0; i < src.length; i++) {
    if (Number.isNaN(vals[i]!)) {
      assert.equal(out[i]! & 0x7f80, 0x7f80);
      assert.notEqual(out[i]! & 0x7f, 0, "NaN became Inf");
      continue;
    }
    assert.equal(out[i], bf16Reference(src[i]!), `0x${src[i]!.toString(16)}`);
  }
  assert.equal(out[n], 0x7f80); // max f32 rounds up to Inf, as torch does
  assert.equal(out[n + 2], 0x7f80); // tie at the top, odd mantissa → Inf
  assert.equal(out[n + 3], 0x7f7f);
  // bf16 → f32 is exact
  const back = toFloat32(new Uint8Array(out.buffer), "BF16");
  for (let i = 0; i < src.length; i++) {
    if (!Number.isNaN(back[i]!)) {
      assert.equal(new Uint32Array(back.buffer)[i], (out[i]! << 16) >>> 0);
    }
  }
});

Deno.test("toFloat32 decodes every dtype like DataView, aligned or not", () => {
  const r = rng(3);
  const n = 37;
  const readers: Partial<Record<DType, (v: DataView, i: number) => number>> = {
    F64: (v, i) => v.getFloat64(i * 8, true),
    F32: (v, i) => v.getFloat32(i * 4, true),
    F16: (v, i) => f16BitsToF32(v.getUint16(i * 2, true)),
    BF16: (v, i) => bitsToF32(v.getUint16(i * 2, true) << 16),
    I64: (v, i) => Number(v.getBigInt64(i * 8, true)),
    U64: (v, i) => Number(v.getBigUint64(i * 8, true)),
    I32: (v, i) => v.getInt32(i * 4, true),
    U32: (v, i) => v.getUint32(i * 4, true),
    I16: (v, i) => v.getInt16(i * 2, true),
    U16: (v, i) => v.getUint16(i * 2, true),
    I8: (v, i) => v.getInt8(i),
    U8: (v, i) => v.getUint8(i),
    BOOL: (v, i) => v.getUint8(i),
  };
  for (
    const [dt, read] of Object.entries(readers) as [DType, (v: DataView, i: number) => number][]
  ) {
    assert.ok(isDType(dt));
    const size = DTYPE_SIZE[dt];
    const backing = new Uint8Array(n * size + 1);
    for (let i = 0; i < backing.length; i++) backing[i] = r() & 0xff;
    for (const offset of [0, 1]) {
      const bytes = backing.subarray(offset, offset + n * size);
      const got = toFloat32(bytes, dt);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < n; i++) {
        const want = Math.fround(read(view, i));
        if (Number.isNaN(want)) assert.ok(Number.isNaN(got[i]!), `${dt}[${i}]`);
        else {assert.ok(
            Object.is(got[i], want),
            `${dt}[${i}] offset ${offset}: ${got[i]} vs ${want}`,
          );}
      }
    }
  }
  assert.equal(isDType("Q4_0"), false);
  assert.equal(isDType("__proto__"), false);
});

Deno.test("toFloat32 decodes float8 (e4m3fn and e5m2) like torch", () => {
  const e4 = toFloat32(
    new Uint8Array([0x38, 0x7e, 0x7f, 0x01, 0x08, 0xb8, 0xfe, 0x00, 0x80]),
    "F8_E4M3",
  );
  assert.deepEqual([...e4.subarray(0, 2)], [1, 448]);
  assert.ok(Number.isNaN(e4[2]!));
  assert.deepEqual([...e4.subarray(3)], [2 ** -9, 2 ** -6, -1, -448, 0, -0]);
  const e5 = toFloat32(new Uint8Array([0x3c, 0x7b, 0x7c, 0x7d, 0x01, 0xc0]), "F8_E5M2");
  assert.deepEqual([...e5.subarray(0, 3)], [1, 57344, Infinity]);
  assert.ok(Number.isNaN(e5[3]!));
  assert.deepEqual([...e5.subarray(4)], [2 ** -16, -2]);
});

Deno.test("fromFloat32 F32 copies; F16 and BF16 round-trip exactly representable values", () => {
  const v = new Float32Array([0, -0, 1, -2.5, 65504, 2 ** -24, Infinity, -Infinity]);
  const b = fromFloat32(v, "F32");
  assert.deepEqual(new Float32Array(b.buffer), v);
  assert.notEqual(b.buffer, v.buffer);
  for (const dt of ["F16", "BF16"] as const) {
    const vals = dt === "F16" ? v : new Float32Array([0, -0, 1, -2.5, 65536, 2 ** -100, Infinity]);
    const back = toFloat32(fromFloat32(vals, dt), dt);
    for (let i = 0; i < vals.length; i++) {
      assert.ok(Object.is(back[i], vals[i]), `${dt} ${vals[i]}`);
    }
  }
});
