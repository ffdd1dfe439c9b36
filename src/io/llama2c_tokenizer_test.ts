// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "npm:@huggingface/tokenizers@0.2.0";
import { GptqError } from "../errors.ts";
import { convertLlama2c } from "./llama2c.ts";
import {
  buildLlama2cTokenizerJson,
  llama2cTokenizerConfig,
  type Llama2cVocab,
  parseLlama2cTokenizer,
  readLlama2cTokenizer,
} from "./llama2c_tokenizer.ts";
import {
  refBuildTokenizer,
  refDecode,
  refEncode,
  type RefTokenizer,
} from "../../tests/llama2c_reference.ts";

const DATA = fileURLToPath(new URL("../../../shared/data/", import.meta.url));
const MODEL = `${DATA}stories260K/stories260K.bin`;
const TOK = `${DATA}stories260K/tok512.bin`;
const SAMPLE = `${DATA}text/tinystories_valid_sample.txt`;
const NOTES = `${DATA}stories260K/KARPATHY_NOTES.md`;

function isCode(code: string, re?: RegExp): (e: unknown) => boolean {
  return (e) => e instanceof GptqError && e.code === code && (!re || re.test(e.message));
}

interface Fixture {
  hf: Tokenizer;
  ref: RefTokenizer;
}

let fixture: Promise<Fixture> | undefined;

/** Converts stories260K once and loads the HF tokenizer from the converted folder. */
function load(): Promise<Fixture> {
  fixture ??= (async () => {
    const root = await Deno.makeTempDir({ prefix: "llama2c_tok_test_" });
    try {
      const out = `${root}/hf`;
      await convertLlama2c(MODEL, TOK, out);
      const hf = new Tokenizer(
        JSON.parse(await Deno.readTextFile(`${out}/tokenizer.json`)),
        JSON.parse(await Deno.readTextFile(`${out}/tokenizer_config.json`)),
      );
      const ref = refBuildTokenizer(await Deno.readFile(TOK), 512);
      return { hf, ref };
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  })();
  return fixture;
}

function firstDiff(a: number[], b: number[]): string {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      return `first difference at ${i}: hf ${JSON.stringify(a.slice(i, i + 5))} ` +
        `vs llama2.c ${JSON.stringify(b.slice(i, i + 5))}`;
    }
  }
  return "equal";
}

function assertSameEncoding(f: Fixture, text: string, what: string): number[] {
  const hf = f.hf.encode(text).ids;
  const ref = refEncode(f.ref, text, true, false);
  assert.ok(
    hf.length === ref.length && hf.every((v, i) => v === ref[i]),
    `${what}: ${firstDiff(hf, ref)}`,
  );
  return hf;
}

function stories(text: string): string[] {
  return text.split("\r\n").filter((s) => s.length > 0);
}

Deno.test("converted tokenizer encodes each TinyStories story exactly as llama2.c's encode", async () => {
  const f = await load();
  const sample = await Deno.readTextFile(SAMPLE);
  const list = stories(sample);
  // one story per CRLF-separated line (the README says 18 stories; the file has 19 lines)
  assert.ok(list.length >= 18, `${list.length} stories`);
  let total = 0;
  for (const [i, story] of list.entries()) {
    const ids = assertSameEncoding(f, story, `story ${i}`);
    assert.equal(ids[0], 1, "starts with BOS");
    assert.equal(f.hf.decode(ids, { skip_special_tokens: true }), story, `story ${i} round trip`);
    assert.equal(refDecode(f.ref, ids), story, `story ${i} decodes with llama2.c's decode`);
    total += ids.length;
  }
  assert.ok(total > 10_000 && total < 20_000, `plausible token count ${total}`);
});

Deno.test("converted tokenizer encodes the whole TinyStories sample as one text exactly as llama2.c", async () => {
  const f = await load();
  const sample = await Deno.readTextFile(SAMPLE);
  const ids = assertSameEncoding(f, sample, "whole file");
  assert.equal(ids[0], 1);
  // CR/LF are not pieces in tok512: llama2.c byte-falls back to <0x0D> (16), <0x0A> (13)
  assert.ok(ids.includes(16) && ids.includes(13));
  assert.equal(f.hf.decode(ids, { skip_special_tokens: true }), sample);
  // without special tokens the BOS goes
  assert.deepEqual(f.hf.encode(sample, { add_special_tokens: false }).ids, ids.slice(1));
});

Deno.test("converted tokenizer round-trips llama2.c's greedy story from KARPATHY_NOTES.md", async () => {
  const f = await load();
  const notes = await Deno.readTextFile(NOTES);
  const marker = "$ ./run stories260K/stories260K.bin -z stories260K/tok512.bin -t 0.0\n";
  const start = notes.indexOf(marker) + marker.length;
  assert.ok(start > marker.length);
  const story = notes.slice(start, notes.indexOf("\n```", start));
  assert.ok(story.startsWith("Once upon a time, there was a little girl named Lily."));
  const ids = assertSameEncoding(f, story, "greedy story");
  assert.equal(f.hf.decode(ids, { skip_special_tokens: true }), story);
  assert.deepEqual(f.hf.tokenize("Once upon a time"), ["▁Once", "▁upon", "▁a", "▁time"]);
});

Deno.test("converted tokenizer matches llama2.c on edge cases and random strings", async () => {
  const f = await load();
  const edge = [
    "",
    " ",
    "  two leading spaces",
    "trailing space ",
    "a",
    "\n",
    "tabs\tand\nnewlines\r\n",
    "héllo wörld — “quotes” ™ …",
    "emoji 🙂 and 世界 fall back to bytes",
    "<0x41> is literal text, not a byte token",
  ];
  for (const text of edge) {
    const ids = assertSameEncoding(f, text, JSON.stringify(text));
    if (text === "") {
      assert.deepEqual(ids, [1], "empty text: BOS only, no dummy prefix");
    } else {
      assert.equal(f.hf.decode(ids, { skip_special_tokens: true }), text);
    }
  }
  // Random concatenations of vocab pieces, spaces and unknown characters.
  const pieces = f.ref.vocab.slice(259).map((p) =>
    new TextDecoder().decode(Uint8Array.from(p, (c) => c.charCodeAt(0)))
  );
  const extra = ["é", "€", "\n", "\t", "🙂", " ", " "];
  let seed = 20260101;
  const rnd = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  for (let it = 0; it < 3000; it++) {
    let s = "";
    const n = 1 + Math.floor(rnd() * 16);
    for (let k = 0; k < n; k++) {
      s += rnd() < 0.8
        ? pieces[Math.floor(rnd() * pieces.length)]
        : extra[Math.floor(rnd() * extra.length)];
    }
    const ids = assertSameEncoding(f, s, `random ${it} ${JSON.stringify(s)}`);
    assert.equal(f.hf.decode(ids, { skip_special_tokens: true }), s);
  }
});

Deno.test("buildLlama2cTokenizerJson: vocab, merges and specials of tok512", async () => {
  const vocab = await readLlama2cTokenizer(TOK, 512);
  assert.equal(vocab.maxTokenLength, 7);
  assert.equal(vocab.pieces.length, 512);
  assert.equal(vocab.pieces[1], "\n<s>\n");
  const t = buildLlama2cTokenizerJson(vocab, TOK);
  assert.deepEqual(t.inexactPieces, [], "HF BPE reproduces llama2.c exactly for this vocab");
  assert.deepEqual(t.hfPieces.slice(0, 4), ["<unk>", "<s>", "</s>", "<0x00>"]);
  assert.ok(t.hfPieces.every((p) => !p.includes(" ")), "spaces are ▁ in the HF vocab");
  const model = t.json.model as { vocab: Record<string, number>; merges: [string, string][] };
  assert.equal(Object.keys(model.vocab).length, 512);
  assert.equal(model.vocab["▁the"], 265);
  assert.equal(model.merges.length, t.mergeCount);
  // highest score first: " t" (score 0) then "he" (-1); " the" has two splits, both kept
  assert.deepEqual(model.merges.slice(0, 2), [["▁", "t"], ["h", "e"]]);
  const the = model.merges.filter(([a, b]) => a + b === "▁the");
  assert.deepEqual(the, [["▁t", "he"], ["▁th", "e"]]);
  const added = t.json.added_tokens as { id: number; content: string; special: boolean }[];
  assert.deepEqual(added.map((a) => [a.id, a.content, a.special]), [
    [0, "<unk>", true],
    [1, "<s>", true],
    [2, "</s>", true],
  ]);
  const cfg = llama2cTokenizerConfig(512);
  assert.equal(cfg.clean_up_tokenization_spaces, false, "decode must not rewrite spaces");
});

function tokBytes(maxLen: number, pieces: [number, string][]): Uint8Array {
  const enc = new TextEncoder();
  const parts: number[] = [];
  const i32 = (v: number) => parts.push(...new Uint8Array(new Int32Array([v]).buffer));
  const f32 = (v: number) => parts.push(...new Uint8Array(new Float32Array([v]).buffer));
  i32(maxLen);
  for (const [score, p] of pieces) {
    const b = enc.encode(p);
    f32(score);
    i32(b.length);
    parts.push(...b);
  }
  return new Uint8Array(parts);
}

Deno.test("parseLlama2cTokenizer rejects broken files with typed errors", async () => {
  const good = await Deno.readFile(TOK);
  assert.throws(
    () => parseLlama2cTokenizer(good.subarray(0, 2), 512, "t.bin"),
    isCode("TOKENIZER", /too short/),
  );
  assert.throws(
    () => parseLlama2cTokenizer(good.subarray(0, 3000), 512, "t.bin"),
    (e: unknown) =>
      isCode("TOKENIZER", /expected 512 tokens/)(e) && (e as GptqError).file === "t.bin",
  );
  assert.throws(
    () => parseLlama2cTokenizer(good, 500, "t.bin"),
    isCode("TOKENIZER", /bytes left after 500/),
  );
  const badLen = good.slice();
  new DataView(badLen.buffer).setInt32(8, 1000, true); // token 0's length
  assert.throws(
    () => parseLlama2cTokenizer(badLen, 512, "t.bin"),
    isCode("TOKENIZER", /invalid length/),
  );
  const badMax = good.slice();
  new DataView(badMax.buffer).setInt32(0, -1, true);
  assert.throws(
    () => parseLlama2cTokenizer(badMax, 512, "t.bin"),
    isCode("TOKENIZER", /max_token_length/),
  );
  // a vocab without the byte-fallback block is refused when building tokenizer.json
  const tiny: Llama2cVocab = parseLlama2cTokenizer(
    tokBytes(7, [[0, "<unk>"], [0, "\n<s>\n"], [0, "\n</s>\n"], [0, "a"]]),
    undefined,
    "tiny.bin",
  );
  assert.throws(
    () => buildLlama2cTokenizerJson(tiny, "tiny.bin"),
    isCode("TOKENIZER", /need at least 259/),
  );
  await assert.rejects(readLlama2cTokenizer("/nonexistent/tok.bin", 512), isCode("FILE_NOT_FOUND"));
});

Deno.test("buildLlama2cTokenizerJson flags vocabularies HF BPE cannot reproduce exactly", () => {
  const bytes: [number, string][] = [];
  for (let b = 0; b < 256; b++) {
    bytes.push([0, `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`]);
  }
  const base: [number, string][] = [[0, "<unk>"], [0, "\n<s>\n"], [0, "\n</s>\n"], ...bytes];
  // "aba" has overlapping splits ab|a and a|ba; "cd" and "ef" share a score.
  const v = parseLlama2cTokenizer(
    tokBytes(7, [
      ...base,
      [-1, "a"],
      [-2, "b"],
      [-3, "ab"],
      [-4, "ba"],
      [-5, "aba"],
      [-6, "c"],
      [-7, "d"],
      [-8, "e"],
      [-9, "f"],
      [-10, "cd"],
      [-10, "ef"],
    ]),
    undefined,
    "synthetic.bin",
  );
  const t = buildLlama2cTokenizerJson(v, "synthetic.bin");
  assert.deepEqual(t.inexactPieces.sort(), ["aba", "ef"]);
});
