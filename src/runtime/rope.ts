// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Rotary-embedding inverse frequencies, including Llama-3 and linear
 * `rope_scaling`, computed in float32 as transformers does.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import type { ModelConfig } from "../io/hf_config.ts";

/**
 * `inv_freq[i] = 1 / base^(2i/dim)` for i < dim/2, then scaled per the
 * config's `rope_scaling` (`llama3`, `linear`; `default` leaves it).
 *
 * @example
 * ```ts
 * import { ropeInvFreq } from "./rope.ts";
 * const f = ropeInvFreq(4, 10000, null, "config.json");
 * console.log(f[0], f[1]); // 1 0.01
 * ```
 *
 * @param dim Rotated dims per head.
 * @param base `rope_theta`.
 * @param scaling The config's scaling, or null.
 * @param file The config's path, for errors.
 * @returns `[dim/2]` float32 inverse frequencies.
 */
export function ropeInvFreq(
  dim: number,
  base: number,
  scaling: ModelConfig["ropeScaling"],
  file: string,
): Float32Array {
  const half = dim / 2;
  const f = new Float32Array(half);
  // torch: 1.0 / (base ** (torch.arange(0, dim, 2, dtype=int64).float() / dim)) in float32.
  for (let i = 0; i < half; i++) f[i] = 1 / Math.fround(Math.pow(base, Math.fround((2 * i) / dim)));
  if (!scaling || scaling.type === "default") return f;
  if (scaling.type === "linear") {
    for (let i = 0; i < half; i++) f[i] = f[i]! / scaling.factor;
    return f;
  }
  if (scaling.type === "llama3") {
    const factor = scaling.factor;
    const low = scaling.lowFreqFactor ?? 1;
    const high = scaling.highFreqFactor ?? 4;
    const old = scaling.originalMaxPositionEmbeddings ?? 8192;
    const lowWavelen = old / low, highWavelen = old / high;
    for (let i = 0; i < half; i++) {
      const inv = f[i]!;
      const wavelen = (2 * Math.PI) / inv;
      let v = wavelen > lowWavelen ? inv / factor : inv;
      if (!(wavelen < highWavelen) && !(wavelen > lowWavelen)) {
        const smooth = (old / wavelen - low) / (high - low);
        v = (1 - smooth) * (v / factor) + smooth * v;
      }
      f[i] = v;
    }
    return f;
  }
  throw new GptqError("CONFIG", `rope_scaling type '${scaling.type}' is not supported yet`, {
    file,
    hint: "supported: default, linear, llama3",
  });
}
