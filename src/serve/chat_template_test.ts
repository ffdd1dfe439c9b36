// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { GptqError } from "../errors.ts";
import { createChatTemplate, loadChatTemplate, selectTemplate } from "./chat_template.ts";

// Qwen1.5-1.8B-Chat's published chat template (ChatML) and the text Hugging Face's
// reference renders for it, as listed in huggingface/swift-jinja's ChatTemplateTests
// ("Qwen Qwen1.5-1.8B-Chat 1" and "… 2").
const QWEN15 =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']}}{% if (loop.last and add_generation_prompt) or not loop.last %}{{ '<|im_end|>' + '\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const MESSAGES = [
  { role: "user", content: "Hello, how are you?" },
  { role: "assistant", content: "I'm doing great. How can I help you today?" },
  { role: "user", content: "I'd like to show off how chat templating works!" },
];
const PIRATE = {
  role: "system",
  content: "You are a friendly chatbot who always responds in the style of a pirate",
};

// TheBloke/Mistral-7B-Instruct-v0.1-GPTQ's published template (bos/eos tokens, role
// alternation checked with raise_exception); expected text from the same test suite.
const MISTRAL =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

Deno.test("chat template: Qwen1.5 ChatML renders exactly as the reference", () => {
  const t = createChatTemplate(QWEN15, { source: "qwen" });
  assert.equal(
    t.render(MESSAGES),
    "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n<|im_start|>assistant\n",
  );
  assert.equal(
    t.render([PIRATE, ...MESSAGES]),
    "<|im_start|>system\nYou are a friendly chatbot who always responds in the style of a pirate<|im_end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n<|im_start|>assistant\n",
  );
  // Without the generation prompt the last turn is left open, as the template says.
  assert.ok(t.render(MESSAGES, { addGenerationPrompt: false }).endsWith("works!"));
});

Deno.test("chat template: bos/eos tokens and raise_exception", () => {
  const t = createChatTemplate(MISTRAL, { source: "mistral", bosToken: "<s>", eosToken: "</s>" });
  assert.equal(
    t.render(MESSAGES),
    "<s>[INST] Hello, how are you? [/INST]I'm doing great. How can I help you today?</s> [INST] I'd like to show off how chat templating works! [/INST]",
  );
  assert.throws(
    () => t.render([MESSAGES[0]!, MESSAGES[0]!]),
    (e: unknown) =>
      e instanceof GptqError && e.code === "INVALID_ARGUMENT" &&
      e.reason.includes("Conversation roles must alternate"),
  );
});

Deno.test("chat template: a template that does not parse names its file", () => {
  assert.throws(
    () => createChatTemplate("{% for m in messages %}", { source: "x/tokenizer_config.json" }),
    (e: unknown) =>
      e instanceof GptqError && e.code === "TOKENIZER" &&
      e.message.startsWith("x/tokenizer_config.json:") && e.message.includes("--chat-template"),
  );
});

Deno.test("chat template: selectTemplate handles the string and named-list forms", () => {
  assert.equal(selectTemplate("T", "f"), "T");
  assert.equal(selectTemplate(undefined, "f"), null);
  const list = [{ name: "tool_use", template: "B" }, { name: "default", template: "A" }];
  assert.equal(selectTemplate(list, "f"), "A");
  assert.equal(selectTemplate(list, "f", "tool_use"), "B");
  assert.equal(selectTemplate([{ name: "rag", template: "C" }], "f"), "C");
  assert.throws(
    () => selectTemplate([{ name: "a", template: "1" }, { name: "b", template: "2" }], "f"),
    /no template named 'default'/,
  );
  assert.throws(() => selectTemplate([{ name: "a" }], "f"), /entries must be/);
  assert.throws(() => selectTemplate(42, "f"), /string or a list/);
});

Deno.test("chat template: loadChatTemplate reads the folder's files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(await loadChatTemplate(dir), null);
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({
        bos_token: { content: "<s>", special: true },
        eos_token: "</s>",
        chat_template: [{ name: "default", template: MISTRAL }],
      }),
    );
    const t = await loadChatTemplate(`${dir}/`);
    assert.ok(t);
    assert.equal(t.bosToken, "<s>");
    assert.equal(t.eosToken, "</s>");
    assert.equal(t.source, `${dir}/tokenizer_config.json`);
    assert.ok(t.render([MESSAGES[0]!]).startsWith("<s>[INST] Hello"));

    // chat_template.jinja (newer transformers) when tokenizer_config.json has none.
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ eos_token: "</s>" }));
    await Deno.writeTextFile(`${dir}/chat_template.jinja`, QWEN15);
    const j = await loadChatTemplate(dir);
    assert.equal(j?.source, `${dir}/chat_template.jinja`);
    assert.ok(j?.render(MESSAGES).startsWith("<|im_start|>system\nYou are a helpful assistant"));

    // --chat-template overrides, as .jinja text or JSON.
    await Deno.writeTextFile(
      `${dir}/override.json`,
      JSON.stringify({ chat_template: "X{{ eos_token }}" }),
    );
    assert.equal((await loadChatTemplate(dir, `${dir}/override.json`))?.render([]), "X</s>");
    await assert.rejects(loadChatTemplate(dir, `${dir}/missing.jinja`), /no such file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
