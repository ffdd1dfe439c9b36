// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Reads llama2.c tokenizer files (`tokenizer.bin`, `tok512.bin`, ...) and
 * turns them into a Hugging Face `tokenizer.json` that encodes text exactly as
 * llama2.c's `encode` (run.c) does.
 *
 * File format: an int32 `max_token_length`, then for each token an f32 score,
 * an int32 byte length and that many UTF-8 bytes. Ids 0, 1, 2 are `<unk>`,
 * `<s>` and `</s>` (llama2.c stores the latter two as `"\n<s>\n"` and
 * `"\n</s>\n"`), ids 3..258 the byte-fallback pieces `<0x00>`..`<0xFF>`, and
 * pieces hold real spaces where sentencepiece has `▁`.
 *
 * How the HF tokenizer reproduces llama2.c:
 * - llama2.c prepends the piece `" "` to non-empty text and looks up every
 *   code point as a piece: the normalizer `Prepend("▁")` + `Replace(" ", "▁")`
 *   and a BPE model on the whole text (no pre-tokenizer) with `▁` for spaces in
 *   the vocab do the same.
 * - llama2.c falls back to bytes (id = byte + 3) for code points that are not
 *   pieces, *before* merging; HF's `byte_fallback` does it *after* merging. The
 *   two agree when no piece splits into a byte piece `<0xNN>` and another
 *   piece (else the piece is listed in `inexactPieces`): a code point that is
 *   not a piece can never be half of a merge.
 * - llama2.c repeatedly merges the adjacent pair whose concatenation is a
 *   piece with the highest score, leftmost on ties. HF BPE repeatedly merges
 *   the pair with the lowest merge rank, leftmost on ties. So we emit one merge
 *   `[a, b]` for every split of every piece into two pieces, ranked by the
 *   merged piece's score, highest first (ties by id, then by cut position).
 *   Pairs that llama2.c ranks equal but HF cannot (HF ranks are distinct) are
 *   (i) different pieces with one score — sentencepiece BPE exports score
 *   pieces 0, -1, -2, ..., so this does not happen — and (ii) different splits
 *   of one piece. For (ii) HF takes the split listed first where llama2.c
 *   takes the leftmost. Candidates at disjoint places merge in either order
 *   to the same result in practice (a pair built from the new piece scores
 *   below it in a trained BPE vocab), but overlapping candidates `x|y`, `y|z`
 *   (`x+y == y+z`, like `ab|a` and `a|ba`) would differ.
 *   {@linkcode buildLlama2cTokenizerJson} lists pieces of kind (i), of kind
 *   (ii) with overlapping splits, or splitting into a byte piece in
 *   `inexactPieces` (none in stories260K's tok512), and the tests compare both
 *   encoders on real text and on random strings.
 *
 * @module
 */

import { fsError, GptqError } from "../errors.ts";

/** A parsed llama2.c tokenizer. */
export interface Llama2cVocab {
  /** The `max_token_length` field of the file. */
  maxTokenLength: number;
  /** Pieces as llama2.c stores them (real spaces; ids 1 and 2 are `"\n<s>\n"`, `"\n</s>\n"`). */
  pieces: string[];
  /** Merge scores, one per piece. */
  scores: Float32Array;
}

/** The three special tokens llama2.c hard-codes, as HF names them. */
export const LLAMA2C_SPECIAL_TOKENS: readonly string[] = ["<unk>", "<s>", "</s>"];

/** Number of leading non-byte, non-normal tokens (`<unk>`, `<s>`, `</s>`). */
const N_SPECIAL = 3;
const N_BYTES = 256;
const SPACE_MARK = "\u2581";

function tokError(file: string, reason: string, hint: string): GptqError {
  return new GptqError("TOKENIZER", reason, { file, hint });
}

function isBytePiece(id: number): boolean {
  return id >= N_SPECIAL && id < N_SPECIAL + N_BYTES;
}

function bytePiece(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
}

/**
 * Parses the bytes of a llama2.c tokenizer file.
 *
 * @example
 * ```ts
 * import { parseLlama2cTokenizer } from "./llama2c_tokenizer.ts";
 * const enc = new TextEncoder();
 * const parts: number[] = [];
 * const i32 = (v: number) => parts.push(...new Uint8Array(new Int32Array([v]).buffer));
 * const f32 = (v: number) => parts.push(...new Uint8Array(new Float32Array([v]).buffer));
 * i32(1);
 * for (const p of ["a", "b"]) { f32(0); i32(1); parts.push(...enc.encode(p)); }
 * const v = parseLlama2cTokenizer(new Uint8Array(parts), 2, "tok.bin");
 * console.log(v.pieces); // ["a", "b"]
 * ```
 *
 * @param bytes The whole file.
 * @param vocabSize How many tokens to read (the model's vocab size), or
 *   `undefined` to read until the end of the file.
 * @param file The file's path, for messages.
 * @returns The pieces and scores.
 */
export function parseLlama2cTokenizer(
  bytes: Uint8Array,
  vocabSize: number | undefined,
  file: string,
): Llama2cVocab {
  const hint = "the file is not a llama2.c tokenizer (.bin) or is truncated; re-export it";
  if (bytes.byteLength < 4) {
    throw tokError(file, `file is ${bytes.byteLength} bytes, too short`, hint);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0 || maxTokenLength > 1 << 16) {
    throw tokError(file, `max_token_length ${maxTokenLength} is not plausible`, hint);
  }
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const pieces: string[] = [];
  const scores: number[] = [];
  let o = 4;
  while (vocabSize === undefined ? o < bytes.byteLength : pieces.length < vocabSize) {
    const id = pieces.length;
    if (o + 8 > bytes.byteLength) {
      throw tokError(
        file,
        `file ends inside token ${id} (offset ${o})${
          vocabSize === undefined ? "" : `, expected ${vocabSize} tokens`
        }`,
        vocabSize === undefined ? hint : "the tokenizer does not match the model's vocab size",
      );
    }
    const score = view.getFloat32(o, true);
    const len = view.getInt32(o + 4, true);
    o += 8;
    if (len < 0 || len > maxTokenLength || o + len > bytes.byteLength) {
      throw tokError(file, `token ${id} has an invalid length ${len} at offset ${o - 4}`, hint);
    }
    let piece: string;
    try {
      piece = decoder.decode(bytes.subarray(o, o + len));
    } catch {
      throw tokError(file, `token ${id} is not valid UTF-8`, hint);
    }
    o += len;
    pieces.push(piece);
    scores.push(score);
  }
  if (vocabSize !== undefined && o !== bytes.byteLength) {
    throw tokError(
      file,
      `${bytes.byteLength - o} bytes left after ${vocabSize} tokens`,
      "the tokenizer does not match the model's vocab size; pass the model's own tokenizer",
    );
  }
  return { maxTokenLength, pieces, scores: new Float32Array(scores) };
}

/**
 * Reads a llama2.c tokenizer file.
 *
 * @example
 * ```ts ignore
 * import { readLlama2cTokenizer } from "./llama2c_tokenizer.ts";
 * const v = await readLlama2cTokenizer("tok512.bin", 512);
 * console.log(v.pieces.length); // 512
 * ```
 *
 * @param path The file's path.
 * @param vocabSize The model's vocab size, or `undefined` to read all tokens.
 * @returns The pieces and scores.
 */
export async function readLlama2cTokenizer(
  path: string,
  vocabSize?: number,
): Promise<Llama2cVocab> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw fsError(e, path);
  }
  return parseLlama2cTokenizer(bytes, vocabSize, path);
}

/** A `tokenizer.json` object plus facts found while building it. */
export interface Llama2cTokenizerJson {
  /** The HF `tokenizer.json` content. */
  json: Record<string, unknown>;
  /** HF vocab strings by id (`▁` for spaces, `<s>`/`</s>` for ids 1, 2). */
  hfPieces: string[];
  /** Number of merges emitted. */
  mergeCount: number;
  /**
   * Pieces with two overlapping splits `x|y`, `y|z` (see the module doc):
   * the only case where HF's rank order can differ from llama2.c's. Empty for
   * every vocab seen so far.
   */
  inexactPieces: string[];
}

/**
 * Checks a llama2.c vocab's fixed layout and maps its pieces to HF strings.
 *
 * @param vocab The parsed vocab.
 * @param file The tokenizer's path, for messages.
 * @returns The HF vocab strings by id.
 */
function hfPiecesOf(vocab: Llama2cVocab, file: string): string[] {
  const n = vocab.pieces.length;
  const hint =
    "llama2.c tokenizers start with <unk>, <s>, </s> and the 256 byte pieces <0x00>..<0xFF>";
  if (n < N_SPECIAL + N_BYTES) {
    throw tokError(file, `only ${n} tokens, need at least ${N_SPECIAL + N_BYTES}`, hint);
  }
  for (let b = 0; b < N_BYTES; b++) {
    if (vocab.pieces[N_SPECIAL + b] !== bytePiece(b)) {
      throw tokError(
        file,
        `token ${N_SPECIAL + b} is ${JSON.stringify(vocab.pieces[N_SPECIAL + b])}, expected ${
          JSON.stringify(bytePiece(b))
        }`,
        hint,
      );
    }
  }
  const out = vocab.pieces.map((p, i) =>
    i < N_SPECIAL ? LLAMA2C_SPECIAL_TOKENS[i]! : p.replaceAll(" ", SPACE_MARK)
  );
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const p = out[i]!;
    if (i >= N_SPECIAL && p === "") throw tokError(file, `token ${i} is empty`, hint);
    const prev = seen.get(p);
    if (prev !== undefined) {
      throw tokError(
        file,
        `tokens ${prev} and ${i} are both ${JSON.stringify(p)} once spaces become "▁"`,
        "the vocab must have distinct pieces (and no literal '▁' beside ' ')",
      );
    }
    seen.set(p, i);
  }
  return out;
}

/**
 * Builds a Hugging Face `tokenizer.json` (sentencepiece-style BPE with byte
 * fallback, as HF Llama uses) that encodes exactly as llama2.c's `encode`.
 *
 * @example
 * ```ts ignore
 * import { buildLlama2cTokenizerJson, readLlama2cTokenizer } from "./llama2c_tokenizer.ts";
 * const t = buildLlama2cTokenizerJson(await readLlama2cTokenizer("tok512.bin"), "tok512.bin");
 * await Deno.writeTextFile("tokenizer.json", JSON.stringify(t.json));
 * ```
 *
 * @param vocab The parsed llama2.c vocab.
 * @param file The tokenizer's path, for messages.
 * @returns The JSON object, the HF pieces and merge facts.
 */
export function buildLlama2cTokenizerJson(
  vocab: Llama2cVocab,
  file: string,
): Llama2cTokenizerJson {
  const hfPieces = hfPiecesOf(vocab, file);
  const n = hfPieces.length;
  const ids = new Map<string, number>();
  for (let i = 0; i < n; i++) ids.set(hfPieces[i]!, i);

  // Every split of every normal piece into two normal pieces. Splits are at
  // code point boundaries: HF BPE works on code points and llama2.c's pieces
  // are whole code points.
  interface Merge {
    left: string;
    right: string;
    id: number;
    cut: number;
  }
  const merges: Merge[] = [];
  const inexact: string[] = [];
  for (let id = N_SPECIAL; id < n; id++) {
    const chars = Array.from(hfPieces[id]!);
    if (chars.length < 2) continue;
    const splits: [string, string][] = [];
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join("");
      const right = chars.slice(k).join("");
      const l = ids.get(left);
      const r = ids.get(right);
      if (l === undefined || r === undefined || l < N_SPECIAL || r < N_SPECIAL) continue;
      splits.push([left, right]);
      merges.push({ left, right, id, cut: k });
    }
    // Overlapping candidates x|y and y|z for the same piece, or a byte piece
    // as a half (llama2.c merges byte tokens, HF falls back to bytes last).
    let suspicious = false;
    for (const [x, y] of splits) {
      if (isBytePiece(ids.get(x)!) || isBytePiece(ids.get(y)!)) suspicious = true;
      for (const [y2, z] of splits) if (y === y2 && x !== z) suspicious = true;
    }
    if (suspicious) inexact.push(hfPieces[id]!);
  }
  const scores = vocab.scores;
  // Two different mergeable pieces with one score: llama2.c picks the leftmost.
  const byScore = new Map<number, number>();
  for (const m of merges) {
    const other = byScore.get(scores[m.id]!);
    if (other !== undefined && other !== m.id) {
      inexact.push(hfPieces[m.id]!);
    } else {
      byScore.set(scores[m.id]!, m.id);
    }
  }
  merges.sort((a, b) => scores[b.id]! - scores[a.id]! || a.id - b.id || a.cut - b.cut);

  const vocabObj: Record<string, number> = {};
  for (let i = 0; i < n; i++) vocabObj[hfPieces[i]!] = i;
  const added = LLAMA2C_SPECIAL_TOKENS.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const json: Record<string, unknown> = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: SPACE_MARK },
        { type: "Replace", pattern: { String: " " }, content: SPACE_MARK },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<s>", type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: SPACE_MARK }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: vocabObj,
      merges: merges.map((m) => [m.left, m.right]),
    },
  };
  return { json, hfPieces, mergeCount: merges.length, inexactPieces: inexact };
}

/**
 * The `tokenizer_config.json` of a converted llama2.c tokenizer.
 *
 * @example
 * ```ts
 * import { llama2cTokenizerConfig } from "./llama2c_tokenizer.ts";
 * console.log(llama2cTokenizerConfig(512).bos_token); // "<s>"
 * ```
 *
 * @param modelMaxLength The model's context length (llama2.c `seq_len`).
 * @returns The config object.
 */
export function llama2cTokenizerConfig(modelMaxLength: number): Record<string, unknown> {
  const decoder: Record<string, unknown> = {};
  LLAMA2C_SPECIAL_TOKENS.forEach((content, id) => {
    decoder[String(id)] = {
      content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    };
  });
  return {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: decoder,
    bos_token: "<s>",
    eos_token: "</s>",
    unk_token: "<unk>",
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: false,
    model_max_length: modelMaxLength,
    tokenizer_class: "PreTrainedTokenizerFast",
  };
}
