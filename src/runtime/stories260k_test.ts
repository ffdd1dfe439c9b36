// Copyright 2026 the GPTQ toolkit authors. MIT license.
// End-to-end on the real trained stories260K model (llama2.c import → runtime).
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { convertLlama2c } from "../io/llama2c.ts";
import { CausalLM } from "./model.ts";
import { generateTokens } from "./generate.ts";
import { meanNll, perplexity } from "./perplexity.ts";

const DATA = fileURLToPath(new URL("../../../shared/data/", import.meta.url));

async function converted(): Promise<{ dir: string; tmp: string }> {
  const tmp = await Deno.makeTempDir();
  const dir = `${tmp}/stories260K`;
  await convertLlama2c(`${DATA}stories260K/stories260K.bin`, `${DATA}stories260K/tok512.bin`, dir);
  return { dir, tmp };
}

Deno.test("stories260K: greedy generation from BOS reproduces the author's story token for token", async () => {
  const { dir, tmp } = await converted();
  const lm = await CausalLM.load(dir);
  try {
    const tok = await lm.folder.tokenizer();
    const notes = await Deno.readTextFile(`${DATA}stories260K/KARPATHY_NOTES.md`);
    const story = notes.split("```")[3]!.split("\n").slice(2).join("\n").trimEnd();
    assert.ok(story.startsWith("Once upon a time, there was a little girl named Lily."));
    const expected = tok.encode(story).slice(1); // drop BOS
    const got = await Array.fromAsync(
      generateTokens(lm, [1], { temperature: 0, max_new_tokens: expected.length }),
    );
    const n = Math.min(got.length, expected.length);
    assert.ok(n >= 200, `only ${n} tokens compared`);
    // The notes' text ends mid-story (257 tokens); compare everything it holds.
    assert.deepEqual(got.slice(0, n), expected.slice(0, n));
    console.log(`greedy: ${n} tokens identical to KARPATHY_NOTES.md`);
  } finally {
    lm.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("stories260K: perplexity on the TinyStories sample", async () => {
  const { dir, tmp } = await converted();
  const lm = await CausalLM.load(dir);
  try {
    const tok = await lm.folder.tokenizer();
    const text = await Deno.readTextFile(`${DATA}text/tinystories_valid_sample.txt`);
    // Setting A: each of the first 8 stories alone, BOS + story truncated to the 512-token context,
    // NLL over every predicted token.
    const stories = text.split(/\r?\n/).filter((s) => s.trim() !== "").slice(0, 8);
    let nll = 0, count = 0;
    for (const s of stories) {
      const ids = tok.encode(s).slice(0, lm.config.maxPositions);
      const logits = await lm.forward(ids, lm.newCache(ids.length));
      const V = lm.config.vocabSize;
      nll += meanNll(logits.subarray(0, (ids.length - 1) * V), V, ids.slice(1)) * (ids.length - 1);
      count += ids.length - 1;
    }
    const pplStories = Math.exp(nll / count);
    // Setting B: the GPTQ paper's protocol on the whole file, seqlen 512 (the model's context).
    const r = await perplexity(lm, tok.encode(text), { seqlen: 512 });
    console.log(
      `stories260K ppl: per-story (first 8, ${count} tokens) ${pplStories.toFixed(3)}; ` +
        `paper protocol seqlen 512 (${r.windows} windows) ${r.ppl.toFixed(3)}`,
    );
    assert.ok(pplStories > 4.5 && pplStories < 6.5, `per-story ppl ${pplStories}`);
    assert.ok(r.ppl > 3 && r.ppl < 8, `windowed ppl ${r.ppl}`);
  } finally {
    lm.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
