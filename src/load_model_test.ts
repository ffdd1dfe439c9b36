// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadModel } from "./load_model.ts";

const DIR = fileURLToPath(
  new URL("../../shared/data/golden/models/llama-gptq-4bit-g32", import.meta.url),
);

Deno.test("loadModel: generate streams text and perplexity is finite (GPTQ checkpoint, wasm backend)", async () => {
  const m = await loadModel(DIR);
  try {
    assert.match(m.backend, /wasm/);
    let text = "";
    for await (const p of m.generate("The", { temperature: 0, max_new_tokens: 8 })) text += p;
    assert.ok(text.length > 0);
    const r = await m.perplexity(
      await Deno.readTextFile(`${DIR}/../../../text/wikitext2_test.txt`).then((t) =>
        t.slice(0, 20000)
      ),
      {
        seqlen: 256,
        maxSamples: 2,
      },
    );
    assert.equal(r.windows, 2);
    assert.ok(Number.isFinite(r.ppl) && r.ppl > 1);
  } finally {
    m.close();
  }
});
