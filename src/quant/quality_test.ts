// Copyright 2026 the GPTQ toolkit authors. MIT license.
// Quality on a real trained model: stories260K (llama2.c import), GPTQ vs RTN vs fp32 perplexity.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { convertLlama2c } from "../io/llama2c.ts";
import { loadModel } from "../load_model.ts";
import { quantizeModel } from "./quantize.ts";

const DATA = fileURLToPath(new URL("../../../shared/data/", import.meta.url));

Deno.test("stories260K: GPTQ perplexity is clearly below RTN's at 4 and 3 bits (g32), table for 8/4/3/2 bits", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await convertLlama2c(
      `${DATA}stories260K/stories260K.bin`,
      `${DATA}stories260K/tok512.bin`,
      `${tmp}/fp`,
    );
    // Calibrate on the second half of the TinyStories sample, evaluate on the first half.
    const stories = (await Deno.readTextFile(`${DATA}text/tinystories_valid_sample.txt`)).split(
      /\r?\n/,
    )
      .filter((s) => s.trim());
    const half = Math.floor(stories.length / 2);
    await Deno.writeTextFile(`${tmp}/calib.txt`, stories.slice(half).join("\n"));
    const evalText = stories.slice(0, half).join("\n");
    const ppl = async (dir: string) => {
      const m = await loadModel(dir);
      try {
        return (await m.perplexity(evalText, { seqlen: 512 })).ppl;
      } finally {
        m.close();
      }
    };
    const rows: string[] = [];
    const fp = await ppl(`${tmp}/fp`);
    rows.push(`fp32 ${fp.toFixed(3)}`);
    const result: Record<string, number> = {};
    for (const bits of [8, 4, 3, 2]) {
      for (const method of ["rtn", "gptq"] as const) {
        const out = `${tmp}/${method}${bits}`;
        await quantizeModel(`${tmp}/fp`, out, {
          bits,
          group_size: 32,
          dataset: `${tmp}/calib.txt`,
          nsamples: 16,
          model_seqlen: 256,
        }, { method });
        result[`${method}${bits}`] = await ppl(out);
        await Deno.remove(out, { recursive: true });
      }
      rows.push(
        `${bits}-bit g32: RTN ${result[`rtn${bits}`]!.toFixed(3)}  GPTQ ${
          result[`gptq${bits}`]!.toFixed(3)
        }`,
      );
    }
    console.log(
      `stories260K perplexity (attention quantized; MLP width 172 kept in fp32):\n  ${
        rows.join("\n  ")
      }`,
    );
    for (const b of [4, 3]) {
      assert.ok(result[`gptq${b}`]! < result[`rtn${b}`]!, `${b}-bit: GPTQ not below RTN`);
    }
    assert.ok(result.gptq8! < fp * 1.01);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
