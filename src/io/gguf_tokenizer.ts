// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Builds a Hugging Face `tokenizer.json` and `tokenizer_config.json` from a
 * GGUF file's `tokenizer.ggml.*` metadata, the same tokenizer transformers'
 * GGUF loader (`integrations/gguf/gguf_tokenizer_mapping.py`, 5.24) builds:
 *
 * - `gpt2` (byte-level BPE): the tokens as the vocabulary (a token that is not
 *   spelled in the GPT-2 byte alphabet is re-spelled as its UTF-8 bytes in it),
 *   the file's merges, GPT-2's `ByteLevel` pre-tokenizer, or for the
 *   `tokenizer.ggml.pre` names transformers knows (`llama-bpe`, `qwen2`,
 *   `gpt-4o`, …) a `Split` on that model's regex followed by `ByteLevel`
 *   without its own regex. `smollm` and others use GPT-2's.
 * - `llama` (sentencepiece BPE): the tokens as the vocabulary, merges derived
 *   from the scores as transformers' `generate_merges` does, a `Metaspace`
 *   pre-tokenizer (`▁`, prepend on the first piece), byte fallback, and the
 *   Llama decoder.
 *
 * Tokens typed CONTROL (3) become special added tokens (byte-level: only when
 * spelled in the byte alphabet), USER_DEFINED (4) plain added tokens; the
 * BOS/EOS/UNK/PAD tokens named by id are special too. BOS/EOS are added by the
 * post-processor when `tokenizer.ggml.add_bos_token` / `add_eos_token` say so
 * (a `llama` vocabulary without the flag adds BOS, as llama.cpp does).
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import type { GgufHeader, GgufValue } from "./gguf.ts";

const LLAMA3 = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}` +
  String.raw`| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const TEKKEN =
  String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+` +
  String.raw`|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*` +
  String.raw`|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const CONTRACTIONS = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)?`;
const GPT4O =
  String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+` +
  CONTRACTIONS +
  String.raw`|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*` +
  CONTRACTIONS + String.raw`|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2 = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}` +
  String.raw`| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN35 = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}` +
  String.raw`| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

/** Pre-tokenizer regexes by `tokenizer.ggml.pre`, as transformers maps them. */
export const GGUF_PRE_TOKENIZER_SPLITS: Readonly<Record<string, string>> = {
  "llama3": LLAMA3,
  "llama-v3": LLAMA3,
  "llama-bpe": LLAMA3,
  "falcon3": LLAMA3,
  "falcon-h1": LLAMA3,
  "pixtral": LLAMA3,
  "midm-2.0": LLAMA3,
  "lfm2": LLAMA3,
  "jina-v5-nano": LLAMA3,
  "dbrx": LLAMA3,
  "smaug-bpe": LLAMA3,
  "tekken": TEKKEN,
  "qwen2": QWEN2,
  "deepseek-r1-qwen": QWEN2,
  "kormo": QWEN2,
  "f2llmv2": QWEN2,
  "megrez": QWEN2,
  "qwen35": QWEN35,
  "gpt-4o": GPT4O,
  "llama4": GPT4O,
  "kanana2": GPT4O,
  "talkie": GPT4O,
  "minimax-m2": GPT4O,
};

const CONTROL = 3;
const USER_DEFINED = 4;

/** GPT-2's byte → printable character table (`bytes_to_unicode`). */
function byteAlphabet(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const map = new Array<string>(256);
  for (const b of bs) map[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (map[b] === undefined) map[b] = String.fromCodePoint(256 + n++);
  return map;
}

/** What {@linkcode buildGgufTokenizer} returns. */
export interface GgufTokenizerFiles {
  /** The `tokenizer.json` object. */
  tokenizerJson: Record<string, unknown>;
  /** The `tokenizer_config.json` object. */
  tokenizerConfig: Record<string, unknown>;
  /** `tokenizer.ggml.model` (`gpt2` or `llama`). */
  model: string;
  /** Number of tokens. */
  vocabSize: number;
  /** Number of merges written. */
  merges: number;
}

function tokError(file: string, reason: string): GptqError {
  return new GptqError("TOKENIZER", reason, {
    file,
    hint: "the GGUF's tokenizer.ggml.* metadata is missing or malformed; re-convert the model",
  });
}

function strings(v: GgufValue | undefined, key: string, file: string): string[] | null {
  if (v === undefined) return null;
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
    throw tokError(file, `${key} is not an array of strings`);
  }
  return v as string[];
}

function numbers(v: GgufValue | undefined, key: string, n: number, file: string): number[] | null {
  if (v === undefined) return null;
  const ok = ArrayBuffer.isView(v) || (Array.isArray(v) && v.every((x) => typeof x === "number"));
  if (!ok || (v as ArrayLike<unknown>).length !== n) {
    throw tokError(file, `${key} is not ${n} numbers (one per token)`);
  }
  return Array.from(v as ArrayLike<number>, Number);
}

function tokenId(h: GgufHeader, key: string, n: number): number | null {
  const v = h.metadata.get(`tokenizer.ggml.${key}`);
  if (v === undefined) return null;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= n) {
    throw tokError(h.file, `tokenizer.ggml.${key} is ${String(v)}, not a token id below ${n}`);
  }
  return v;
}

function flag(h: GgufHeader, key: string): boolean | null {
  const v = h.metadata.get(`tokenizer.ggml.${key}`);
  return typeof v === "boolean" ? v : null;
}

/**
 * Merges implied by a sentencepiece vocabulary, exactly as transformers'
 * `generate_merges(vocab, vocab_scores)`: every split of every token into two
 * tokens, ordered by the merged token's score (highest first), then by the
 * lengths of the halves (longest first); ties keep vocabulary order.
 *
 * @param tokens Tokens by id.
 * @param scores Their scores.
 * @returns The merges as `[left, right]`.
 */
function mergesFromScores(tokens: string[], scores: number[]): [string, string][] {
  const vocab = new Map<string, number>();
  tokens.forEach((t, i) => vocab.set(t, i));
  const byScore = new Map<string, number>();
  tokens.forEach((t, i) => byScore.set(t, scores[i]!));
  const all: { l: string; r: string; s: number; ll: number; rl: number }[] = [];
  for (const [merge, score] of byScore) {
    const cps = Array.from(merge);
    const local: { l: string; r: string; s: number; ll: number; rl: number }[] = [];
    for (let k = 1; k < cps.length; k++) {
      const l = cps.slice(0, k).join(""), r = cps.slice(k).join("");
      if (vocab.has(l) && vocab.has(r)) local.push({ l, r, s: score, ll: k, rl: cps.length - k });
    }
    local.sort((a, b) => vocab.get(a.l)! - vocab.get(b.l)! || vocab.get(a.r)! - vocab.get(b.r)!);
    all.push(...local);
  }
  all.sort((a, b) => b.s - a.s || b.ll - a.ll || b.rl - a.rl);
  return all.map((m) => [m.l, m.r]);
}

function postProcessor(bos: string | null, eos: string | null, ids: Map<string, number>) {
  const special = (t: string, typeId: number) => ({ SpecialToken: { id: t, type_id: typeId } });
  const seq = (id: string, typeId: number) => ({ Sequence: { id, type_id: typeId } });
  const single: unknown[] = [], pair: unknown[] = [];
  if (bos !== null) single.push(special(bos, 0));
  single.push(seq("A", 0));
  if (eos !== null) single.push(special(eos, 0));
  if (bos !== null) pair.push(special(bos, 0));
  pair.push(seq("A", 0));
  if (eos !== null) pair.push(special(eos, 0));
  if (bos !== null) pair.push(special(bos, 1));
  pair.push(seq("B", 1));
  if (eos !== null) pair.push(special(eos, 1));
  const specials: Record<string, unknown> = {};
  for (const t of [bos, eos]) {
    if (t !== null) specials[t] = { id: t, ids: [ids.get(t)!], tokens: [t] };
  }
  return { type: "TemplateProcessing", single, pair, special_tokens: specials };
}

/**
 * Builds `tokenizer.json` and `tokenizer_config.json` for a GGUF's tokenizer.
 *
 * @example
 * ```ts ignore
 * import { GgufReader } from "./gguf.ts";
 * import { buildGgufTokenizer } from "./gguf_tokenizer.ts";
 * using r = await GgufReader.open("SmolLM2-135M-Instruct.Q4_1.gguf");
 * const t = buildGgufTokenizer(r.header, 8192);
 * console.log(t.model, t.vocabSize, t.merges); // gpt2 49152 48900
 * ```
 *
 * @param h The GGUF header.
 * @param modelMaxLength The model's context length (`model_max_length`).
 * @returns The two objects and facts about them.
 * @throws {GptqError} `TOKENIZER` for missing or malformed metadata or an unsupported model.
 */
export function buildGgufTokenizer(h: GgufHeader, modelMaxLength: number): GgufTokenizerFiles {
  const file = h.file;
  const model = h.metadata.get("tokenizer.ggml.model");
  if (typeof model !== "string") throw tokError(file, "has no tokenizer.ggml.model");
  if (model !== "gpt2" && model !== "llama") {
    throw new GptqError("TOKENIZER", `tokenizer model '${model}' is not supported`, {
      file,
      hint: "supported: gpt2 (byte-level BPE) and llama (sentencepiece BPE)",
    });
  }
  const tokens = strings(h.metadata.get("tokenizer.ggml.tokens"), "tokenizer.ggml.tokens", file);
  if (!tokens || tokens.length === 0) throw tokError(file, "has no tokenizer.ggml.tokens");
  const n = tokens.length;
  const types = numbers(h.metadata.get("tokenizer.ggml.token_type"), "token_type", n, file);
  const byteLevel = model === "gpt2";
  const alphabet = byteAlphabet();
  const inAlphabet = new Set(alphabet);
  const spelled = (t: string) => Array.from(t).every((ch) => inAlphabet.has(ch));
  const utf8 = new TextEncoder();
  const vocab = new Map<string, number>();
  tokens.forEach((t, i) => {
    const key = !byteLevel || spelled(t)
      ? t
      : Array.from(utf8.encode(t), (b) => alphabet[b]!).join("");
    vocab.set(key, i);
  });

  let merges: [string, string][];
  if (byteLevel || h.metadata.has("tokenizer.ggml.merges")) {
    const raw = strings(h.metadata.get("tokenizer.ggml.merges"), "tokenizer.ggml.merges", file);
    if (!raw) throw tokError(file, "has no tokenizer.ggml.merges (needed for a gpt2 tokenizer)");
    merges = raw.map((m, i) => {
      const parts = m.split(" ");
      if (parts.length !== 2) throw tokError(file, `merge #${i} ${JSON.stringify(m)} is not 'a b'`);
      return parts as [string, string];
    });
  } else {
    const scores = numbers(h.metadata.get("tokenizer.ggml.scores"), "scores", n, file);
    if (!scores) {
      throw tokError(file, "has neither tokenizer.ggml.merges nor tokenizer.ggml.scores");
    }
    merges = mergesFromScores(tokens, scores);
  }

  const bosId = tokenId(h, "bos_token_id", n), eosId = tokenId(h, "eos_token_id", n);
  const unkId = tokenId(h, "unknown_token_id", n), padId = tokenId(h, "padding_token_id", n);
  const tok = (id: number | null) => id === null ? null : tokens[id]!;
  const added = new Map<number, boolean>(); // id -> special
  tokens.forEach((t, i) => {
    if (types?.[i] === CONTROL && (!byteLevel || spelled(t))) added.set(i, true);
  });
  for (const id of [unkId, bosId, eosId, padId]) {
    if (id !== null && (!byteLevel || spelled(tokens[id]!))) added.set(id, true);
  }
  tokens.forEach((t, i) => {
    if (types?.[i] === USER_DEFINED && vocab.get(t) === i && !added.has(i)) added.set(i, false);
  });
  const addedTokens = [...added.entries()].sort((a, b) => a[0] - b[0]).map(([id, special]) => ({
    id,
    content: tokens[id]!,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special,
  }));

  const addBos = flag(h, "add_bos_token") ?? (model === "llama");
  const addEos = flag(h, "add_eos_token") ?? false;
  const bos = addBos ? tok(bosId) : null;
  const eos = addEos ? tok(eosId) : null;
  if ((addBos && bos === null) || (addEos && eos === null)) {
    throw tokError(file, `add_${addBos && bos === null ? "bos" : "eos"}_token is set but no id`);
  }
  const vocabObj: Record<string, number> = {};
  for (const [t, i] of vocab) vocabObj[t] = i;
  const split = GGUF_PRE_TOKENIZER_SPLITS[String(h.metadata.get("tokenizer.ggml.pre") ?? "")];
  const byteLevelPre = (useRegex: boolean) => ({
    type: "ByteLevel",
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: useRegex,
  });
  const tokenizerJson: Record<string, unknown> = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: !byteLevel
      ? { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false }
      : split === undefined
      ? byteLevelPre(true)
      : {
        type: "Sequence",
        pretokenizers: [
          { type: "Split", pattern: { Regex: split }, behavior: "Isolated", invert: false },
          byteLevelPre(false),
        ],
      },
    post_processor: postProcessor(bos, eos, new Map(tokens.map((t, i) => [t, i]))),
    decoder: byteLevel
      ? { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true }
      : {
        type: "Sequence",
        decoders: [
          { type: "Replace", pattern: { String: "\u2581" }, content: " " },
          { type: "ByteFallback" },
          { type: "Fuse" },
          { type: "Strip", content: " ", start: 1, stop: 0 },
        ],
      },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: byteLevel ? "" : null,
      end_of_word_suffix: byteLevel ? "" : null,
      fuse_unk: !byteLevel,
      byte_fallback: !byteLevel,
      ignore_merges: false,
      vocab: vocabObj,
      merges,
    },
  };
  const decoder: Record<string, unknown> = {};
  for (const t of addedTokens) {
    const { id: _id, ...rest } = t;
    decoder[String(t.id)] = rest;
  }
  const template = h.metadata.get("tokenizer.chat_template");
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: addBos,
    add_eos_token: addEos,
    added_tokens_decoder: decoder,
    bos_token: tok(bosId),
    eos_token: tok(eosId),
    unk_token: tok(unkId),
    pad_token: tok(padId),
    clean_up_tokenization_spaces: false,
    model_max_length: modelMaxLength,
    tokenizer_class: "PreTrainedTokenizerFast",
    ...(typeof template === "string" ? { chat_template: template } : {}),
  };
  return { tokenizerJson, tokenizerConfig, model, vocabSize: n, merges: merges.length };
}
