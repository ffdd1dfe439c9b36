// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadModel } from "./load_model.ts";
import { generateText } from "./runtime/generate.ts";

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

Deno.test("loadModel: chat renders the model's chat template and generates from its ids", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    for (const e of Deno.readDirSync(DIR)) {
      await Deno.symlink(`${DIR}/${e.name}`, `${tmp}/${e.name}`);
    }
    const noTemplate = await loadModel(tmp);
    try {
      const e = await noTemplate.chat([{ role: "user", content: "Hi" }]).next().then(
        () => null,
        (e) => e,
      );
      assert.equal(e?.code, "TOKENIZER");
      assert.match(e.message, /no chat template/);
    } finally {
      noTemplate.close();
    }
    await Deno.writeTextFile(
      `${tmp}/chat_template.jinja`,
      "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}" +
        "{% if add_generation_prompt %}<assistant>{% endif %}",
    );
    const m = await loadModel(tmp);
    try {
      const messages = [{ role: "system", content: "Be brief." }, { role: "user", content: "The" }];
      let chat = "";
      for await (const p of m.chat(messages, { temperature: 0, max_new_tokens: 8 })) chat += p;
      const rendered = "<system>Be brief.\n<user>The\n<assistant>";
      const ids = m.tokenizer.encode(rendered, { addSpecialTokens: false });
      let direct = "";
      for await (
        const p of generateText(m.lm, m.tokenizer, ids, { temperature: 0, max_new_tokens: 8 })
      ) {
        direct += p;
      }
      assert.ok(chat.length > 0);
      assert.equal(chat, direct);
    } finally {
      m.close();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
