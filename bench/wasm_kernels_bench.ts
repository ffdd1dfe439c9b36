// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Throughput of the wasm kernels against plain TypeScript loops, measured in
 * the same run, on a 4096×4096 layer (16.8 M elements).
 *
 * ```sh
 * deno run -A bench/wasm_kernels_bench.ts   # prints a table: GB/s and wasm/TS ratio
 * deno bench -A bench/wasm_kernels_bench.ts # the same pairs as `deno bench` groups
 * ```
 *
 * GB/s counts the bytes a call reads plus the bytes it returns (codes are
 * u32, packed words i32, f16 2 bytes, f32 4 bytes). The wasm timings include
 * copying the input into wasm memory and the result out, as callers see it.
 *
 * @module
 */

import { toFloat32 } from "../src/io/dtype.ts";
import { type GptqWasm, loadWasm, type PackBits } from "../src/wasm/mod.ts";

const K = 4096;
const N = 4096;

/** Plain TypeScript bitstream packer along K (the baseline). */
function tsPackRows(codes: Uint32Array, k: number, n: number, bits: number): Int32Array {
  const out = new Int32Array((k / 32) * bits * n);
  for (let blk = 0; blk < k / 32; blk++) {
    const base = blk * bits * n;
    for (let j = 0; j < 32; j++) {
      const bit = bits * j;
      const w = bit >>> 5, s = bit & 31;
      const src = (blk * 32 + j) * n;
      const dst = base + w * n;
      for (let c = 0; c < n; c++) out[dst + c]! |= codes[src + c]! << s;
      if (s + bits > 32) {
        const r = 32 - s;
        for (let c = 0; c < n; c++) out[dst + n + c]! |= codes[src + c]! >>> r;
      }
    }
  }
  return out;
}

/** Plain TypeScript unpacker along K (the baseline). */
function tsUnpackRows(q: Int32Array, k: number, n: number, bits: number): Uint32Array {
  const out = new Uint32Array(k * n);
  const mask = (1 << bits) - 1;
  for (let blk = 0; blk < k / 32; blk++) {
    const base = blk * bits * n;
    for (let j = 0; j < 32; j++) {
      const bit = bits * j;
      const w = bit >>> 5, s = bit & 31;
      const dst = (blk * 32 + j) * n;
      const lo = base + w * n;
      if (s + bits > 32) {
        for (let c = 0; c < n; c++) {
          out[dst + c] = ((q[lo + c]! >>> s) | (q[lo + n + c]! << (32 - s))) & mask;
        }
      } else {
        for (let c = 0; c < n; c++) out[dst + c] = (q[lo + c]! >>> s) & mask;
      }
    }
  }
  return out;
}

interface Case {
  name: string;
  bytes: number;
  wasm: () => unknown;
  ts: () => unknown;
}

function makeCases(wasm: GptqWasm): Case[] {
  const cases: Case[] = [];
  let seed = 1;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (const bits of [4, 3] as PackBits[]) {
    const codes = new Uint32Array(K * N);
    for (let i = 0; i < codes.length; i++) codes[i] = rnd() >>> (32 - bits);
    const packed = wasm.packRows(codes, K, N, bits);
    const bytes = codes.byteLength + packed.byteLength;
    cases.push({
      name: `pack ${bits}-bit ${K}x${N}`,
      bytes,
      wasm: () => wasm.packRows(codes, K, N, bits),
      ts: () => tsPackRows(codes, K, N, bits),
    });
    cases.push({
      name: `unpack ${bits}-bit ${K}x${N}`,
      bytes,
      wasm: () => wasm.unpackRows(packed, K, N, bits),
      ts: () => tsUnpackRows(packed, K, N, bits),
    });
  }
  const f16 = new Uint16Array(K * N);
  for (let i = 0; i < f16.length; i++) f16[i] = (rnd() >>> 16) & 0x7bff; // finite values
  const f16Bytes = new Uint8Array(f16.buffer);
  cases.push({
    name: `f16→f32 ${K}x${N}`,
    bytes: f16.byteLength * 3,
    wasm: () => wasm.f16ToF32(f16),
    ts: () => toFloat32(f16Bytes, "F16"),
  });
  return cases;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function time(f: () => unknown, reps: number): number {
  f(); // warm up (JIT, wasm memory growth)
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    f();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

async function main(): Promise<void> {
  const wasm = await loadWasm();
  const reps = Number(Deno.args[0] ?? 7);
  const rows: string[][] = [["kernel", "wasm ms", "wasm GB/s", "TS ms", "TS GB/s", "wasm/TS"]];
  for (const c of makeCases(wasm)) {
    const tw = time(c.wasm, reps);
    const tt = time(c.ts, reps);
    rows.push([
      c.name,
      tw.toFixed(1),
      (c.bytes / tw / 1e6).toFixed(2),
      tt.toFixed(1),
      (c.bytes / tt / 1e6).toFixed(2),
      `${(tt / tw).toFixed(2)}x`,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log(`median of ${reps} runs; GB/s = (bytes read + bytes returned) / time`);
  for (const r of rows) {
    console.log(r.map((v, i) => i ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)).join("  "));
  }
}

if (import.meta.main) {
  await main();
} else {
  const wasm = await loadWasm();
  for (const c of makeCases(wasm)) {
    Deno.bench({ name: `wasm ${c.name}`, group: c.name, baseline: false, fn: () => void c.wasm() });
    Deno.bench({ name: `ts ${c.name}`, group: c.name, baseline: true, fn: () => void c.ts() });
  }
}
