// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Fast deterministic random data for the benchmarks' random-weight models:
 * an xorshift32 stream and fp16 weights spread like N(0, std).
 *
 * @module
 */

let seed = 0x9e3779b9;

/**
 * The next value of the benchmarks' xorshift32 stream (seeded once per process).
 *
 * @returns An unsigned 32-bit integer.
 */
export function rnd(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}

/**
 * f16 bit patterns of 256 values spread like N(0, std) (inverse-CDF table,
 * normal quantiles approximated by the logistic: x = std·1.7·ln(p/(1−p))/3).
 *
 * @param std Standard deviation.
 * @returns The table.
 */
export function f16Table(std: number): Uint16Array {
  const t = new Uint16Array(256);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (let i = 0; i < 256; i++) {
    const p = (i + 0.5) / 256;
    f[0] = (std * 1.7 * Math.log(p / (1 - p))) / 3;
    const b = u[0]!, sign = (b >>> 16) & 0x8000;
    const e = ((b >>> 23) & 0xff) - 127 + 15, man = (b >>> 13) & 0x3ff;
    t[i] = e <= 0 ? sign : sign | (e << 10) | man;
  }
  return t;
}

/**
 * `n` random fp16 bit patterns spread like N(0, std), four per `rnd()` draw.
 *
 * @param n Count (a multiple of 4).
 * @param std Standard deviation.
 * @returns The bit patterns.
 */
export function randomF16(n: number, std: number): Uint16Array {
  const table = f16Table(std);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i += 4) {
    const r = rnd();
    out[i] = table[r & 255]!;
    out[i + 1] = table[(r >>> 8) & 255]!;
    out[i + 2] = table[(r >>> 16) & 255]!;
    out[i + 3] = table[r >>> 24]!;
  }
  return out;
}
