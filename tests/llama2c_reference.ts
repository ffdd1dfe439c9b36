// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * A line-by-line TypeScript port of llama2.c's tokenizer (`build_tokenizer`
 * and `encode` in karpathy/llama2.c `run.c`), used only by tests as the
 * reference the converted Hugging Face tokenizer must match.
 *
 * It works on bytes as the C code does: pieces are kept as "binary strings"
 * (one char per byte), so concatenation and lookup are byte-exact like
 * `sprintf("%s%s")` + `bsearch(strcmp)`. The only liberty taken is speed: the
 * score of each adjacent pair is cached and recomputed only next to a merge,
 * and the best pair is found by the same left-to-right scan with a strict `>`
 * (first occurrence wins on ties), which is what run.c's loop computes.
 *
 * @module
 */

/** A llama2.c tokenizer as run.c holds it. */
export interface RefTokenizer {
  /** Pieces as binary strings (one char per byte). */
  vocab: string[];
  /** Scores. */
  scores: Float32Array;
  /** `max_token_length`. */
  maxTokenLength: number;
  /** Piece -> id (run.c's sorted_vocab + bsearch; first id wins on duplicates). */
  lookup: Map<string, number>;
}

/**
 * Port of run.c `build_tokenizer`: reads `vocabSize` tokens.
 *
 * @example
 * ```ts ignore
 * const t = refBuildTokenizer(await Deno.readFile("tok512.bin"), 512);
 * ```
 *
 * @param bytes The tokenizer file.
 * @param vocabSize The model's vocab size.
 * @returns The tokenizer.
 */
export function refBuildTokenizer(bytes: Uint8Array, vocabSize: number): RefTokenizer {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const maxTokenLength = view.getInt32(0, true);
  const vocab: string[] = [];
  const scores = new Float32Array(vocabSize);
  let o = 4;
  for (let i = 0; i < vocabSize; i++) {
    scores[i] = view.getFloat32(o, true);
    const len = view.getInt32(o + 4, true);
    o += 8;
    let s = "";
    for (let k = 0; k < len; k++) s += String.fromCharCode(bytes[o + k]!);
    o += len;
    vocab.push(s);
  }
  const lookup = new Map<string, number>();
  for (let i = vocabSize - 1; i >= 0; i--) lookup.set(vocab[i]!, i);
  return { vocab, scores, maxTokenLength, lookup };
}

function strLookup(str: string, t: RefTokenizer): number {
  return t.lookup.get(str) ?? -1;
}

/**
 * Port of run.c `encode(t, text, bos, eos, tokens, &n_tokens)`.
 *
 * @example
 * ```ts ignore
 * const ids = refEncode(t, "Once upon a time", true, false);
 * ```
 *
 * @param t The tokenizer.
 * @param text The text (encoded to UTF-8 as the C string would be).
 * @param bos Prepend BOS (id 1).
 * @param eos Append EOS (id 2).
 * @returns The token ids.
 */
export function refEncode(t: RefTokenizer, text: string, bos: boolean, eos: boolean): number[] {
  const bytes = new TextEncoder().encode(text);
  const tokens: number[] = [];
  if (bos) tokens.push(1);
  // add_dummy_prefix: only if text != ""
  if (bytes.length > 0) tokens.push(strLookup(" ", t));

  let strBuffer = "";
  for (let c = 0; c < bytes.length; c++) {
    const byte = bytes[c]!;
    // reset buffer if the current byte is ASCII or a leading byte
    if ((byte & 0xc0) !== 0x80) strBuffer = "";
    strBuffer += String.fromCharCode(byte);
    // while the next character is a continuation byte, continue appending
    // (the C string's terminating NUL is not a continuation byte)
    const next = c + 1 < bytes.length ? bytes[c + 1]! : 0;
    if ((next & 0xc0) === 0x80 && strBuffer.length < 4) continue;
    const id = strLookup(strBuffer, t);
    if (id !== -1) {
      tokens.push(id);
    } else {
      // byte_fallback: +3 because ids 0..2 are <unk>, <s>, </s>
      for (let i = 0; i < strBuffer.length; i++) tokens.push(strBuffer.charCodeAt(i) + 3);
    }
    strBuffer = "";
  }

  // Merge the best consecutive pair each iteration, according to the scores.
  // pairScore[i] / pairId[i] describe (tokens[i], tokens[i+1]).
  let n = tokens.length;
  const ids = Int32Array.from(tokens);
  const pairId = new Int32Array(Math.max(n, 1));
  const pairScore = new Float64Array(Math.max(n, 1));
  const NONE = -Infinity;
  const scorePair = (i: number): void => {
    const id = strLookup(t.vocab[ids[i]!]! + t.vocab[ids[i + 1]!]!, t);
    pairId[i] = id;
    pairScore[i] = id === -1 ? NONE : t.scores[id]!;
  };
  for (let i = 0; i < n - 1; i++) scorePair(i);
  while (true) {
    let bestScore = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < n - 1; i++) {
      if (pairId[i] !== -1 && pairScore[i]! > bestScore) {
        bestScore = pairScore[i]!;
        bestId = pairId[i]!;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    ids[bestIdx] = bestId;
    ids.copyWithin(bestIdx + 1, bestIdx + 2, n);
    pairId.copyWithin(bestIdx + 1, bestIdx + 2, n);
    pairScore.copyWithin(bestIdx + 1, bestIdx + 2, n);
    n--;
    if (bestIdx > 0) scorePair(bestIdx - 1);
    if (bestIdx < n - 1) scorePair(bestIdx);
  }
  const out = Array.from(ids.subarray(0, n));
  if (eos) out.push(2);
  return out;
}

/**
 * Port of run.c `decode(t, prev_token, token)` joined over a sequence: drops
 * the leading space after BOS and turns `<0xNN>` pieces into raw bytes.
 *
 * @example
 * ```ts ignore
 * console.log(refDecode(t, refEncode(t, "hi", true, false)));
 * ```
 *
 * @param t The tokenizer.
 * @param tokens Token ids, starting with BOS as run.c's generate does.
 * @returns The text.
 */
export function refDecode(t: RefTokenizer, tokens: number[]): string {
  const out: number[] = [];
  for (let k = 1; k < tokens.length; k++) {
    let piece = t.vocab[tokens[k]!]!;
    if (tokens[k - 1] === 1 && piece.charCodeAt(0) === 0x20) piece = piece.slice(1);
    const m = /^<0x([0-9A-F]{2})>$/.exec(piece);
    if (m) {
      out.push(parseInt(m[1]!, 16));
      continue;
    }
    for (let i = 0; i < piece.length; i++) out.push(piece.charCodeAt(i));
  }
  return new TextDecoder().decode(new Uint8Array(out));
}
