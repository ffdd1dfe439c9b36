// Copyright 2026 the GPTQ toolkit authors. MIT license.
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
  throws as assertThrows,
} from "node:assert/strict";
import { DATA, GOLDEN_MODELS } from "../arch/_test_util.ts";
import { GptqError } from "../errors.ts";
import { SafetensorsFile } from "./safetensors.ts";
import { TextTokenizer } from "./tokenizer.ts";

const GPT2_DIR = DATA + "tokenizers/gpt2";
const WIKI = await Deno.readTextFile(DATA + "text/wikitext2_test.txt");

for (const model of ["llama", "opt", "gpt2", "gpt_neox", "llama-gptq-4bit-g32"]) {
  Deno.test(`TextTokenizer reproduces the golden ${model} input_ids from the WikiText-2 passage`, async () => {
    const dir = GOLDEN_MODELS + model;
    using golden = await SafetensorsFile.open(`${dir}/golden.safetensors`);
    const raw = await golden.read("input_ids");
    assertEquals([raw.dtype, raw.shape], ["I32", [96]]);
    const ids = Array.from(new Int32Array(raw.data.buffer, raw.data.byteOffset, 96));
    const tok = await TextTokenizer.fromFolder(dir);
    assertEquals(tok.vocabSize, 1024);
    const passage = tok.decode(ids);
    assert(passage.length > 100, "passage decodes to text");
    assert(WIKI.includes(passage), "the decoded passage is a substring of wikitext2_test.txt");
    assertEquals(tok.encode(passage, { addSpecialTokens: false }), ids);
    assertEquals(tok.encode(passage), ids); // ByteLevel post-processor adds nothing
    assertEquals([tok.bosTokenId, tok.eosTokenIds], [0, [0]]);
  });
}

Deno.test("GPT-2 tokenizer: 'Hello world' → [15496, 995] and round trip", async () => {
  const tok = await TextTokenizer.fromFolder(GPT2_DIR);
  assertEquals(tok.vocabSize, 50257);
  assertEquals(tok.encode("Hello world"), [15496, 995]);
  assertEquals(tok.decode([15496, 995]), "Hello world");
  assertEquals(tok.encode(""), []);
  assertEquals(tok.decode([]), "");
  assertEquals(tok.tokenToId("<|endoftext|>"), 50256);
  assertEquals(tok.decode([15496, 50256]), "Hello<|endoftext|>");
  // This tokenizer.json lists no added tokens; the model config's EOS id makes it special.
  const withEos = await TextTokenizer.fromFolder(GPT2_DIR, { eosTokenIds: [50256] });
  assertEquals(withEos.decode([15496, 50256], { skipSpecialTokens: true }), "Hello");
  assertEquals(withEos.isSpecial(50256), true);
});

Deno.test("GPT-2 tokenizer: wikitext2_test.txt encodes to exactly 287,644 tokens", async () => {
  const tok = await TextTokenizer.fromFolder(GPT2_DIR);
  const t0 = performance.now();
  const ids = tok.encode(WIKI, { addSpecialTokens: false });
  const ms = performance.now() - t0;
  assertEquals(ids.length, 287_644);
  console.log(`  encoded ${WIKI.length} chars in ${ms.toFixed(0)} ms`);
  assertEquals(
    tok.decode(ids.slice(0, 2000)),
    WIKI.slice(0, tok.decode(ids.slice(0, 2000)).length),
  );
});

Deno.test("createStreamDecoder() emits whole characters only and reassembles the exact text", async () => {
  const tok = await TextTokenizer.fromFolder(GPT2_DIR);
  // A WikiText-2 passage with CJK characters, which GPT-2 splits into byte tokens.
  const at = WIKI.indexOf("甲鉄");
  assert(at > 0);
  const text = WIKI.slice(at - 200, at + 200);
  const ids = tok.encode(text);
  assert(ids.length > 60);
  // The CJK characters really are split across tokens.
  assert(ids.some((id) => tok.decode([id]).includes("\uFFFD")));
  const s = tok.createStreamDecoder();
  const pieces: string[] = [];
  for (const id of ids) pieces.push(s.push(id));
  pieces.push(s.flush());
  for (const p of pieces) {
    assert(!p.includes("\uFFFD"), `piece ${JSON.stringify(p)} has a broken character`);
  }
  assertEquals(pieces.join(""), text);
  assert(pieces.filter((p) => p.length > 0).length > 40, "text arrives incrementally");
});

Deno.test("createStreamDecoder() holds back an incomplete character until flush()", async () => {
  const tok = await TextTokenizer.fromFolder(GPT2_DIR);
  const ids = tok.encode("東");
  assert(ids.length > 1);
  const s = tok.createStreamDecoder();
  assertEquals(s.push(ids.slice(0, -1)), "");
  assertEquals(s.push(ids.at(-1)!), "東");
  const t = tok.createStreamDecoder();
  t.push(ids.slice(0, -1));
  assertEquals(t.flush(), "\uFFFD");
});

Deno.test("TextTokenizer errors are typed and name the file", async () => {
  await assertRejects(
    TextTokenizer.fromFolder(DATA + "text"),
    (e: unknown) =>
      e instanceof GptqError && e.code === "TOKENIZER" &&
      e.message.includes("tokenizer.json not found") &&
      e.file === `${DATA}text/tokenizer.json`,
  );
  assertThrows(
    () => TextTokenizer.fromJson({ version: "1.0" }, {}, "t.json"),
    (e: unknown) => e instanceof GptqError && e.code === "TOKENIZER" && e.file === "t.json",
  );
  const tok = await TextTokenizer.fromFolder(GPT2_DIR);
  assertThrows(
    () => tok.decode([50257]),
    (e: unknown) =>
      e instanceof GptqError && e.code === "TOKENIZER" && e.message.includes("outside"),
  );
});
