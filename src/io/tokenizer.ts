// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Text ↔ token ids for a model folder, over `@huggingface/tokenizers` (a
 * pure-JS port of the Rust `tokenizers` library that reads `tokenizer.json`),
 * plus a streaming decoder for generation that only emits text once it is
 * complete (no half UTF-8 characters from byte-level or byte-fallback pieces).
 *
 * @module
 */

import { Tokenizer } from "npm:@huggingface/tokenizers@0.2.0";
import { fsError, GptqError } from "../errors.ts";
import { isNotFound, statPath } from "./_files.ts";
import {
  MAX_TOKENIZER_BYTES,
  MAX_TOKENIZER_CONFIG_BYTES,
  parseJsonText,
  readBoundedText,
  readJsonFile,
} from "./_json_file.ts";

/** Options of {@linkcode TextTokenizer.encode}. */
export interface EncodeOptions {
  /** Add the tokenizer's special tokens (e.g. Llama's BOS) via its post-processor. Default true. */
  addSpecialTokens?: boolean;
}

/** Options of {@linkcode TextTokenizer.decode}. */
export interface DecodeOptions {
  /** Drop special tokens (BOS/EOS/…) from the text. Default false. */
  skipSpecialTokens?: boolean;
}

/** Turns token ids into text incrementally. */
export interface StreamDecoder {
  /**
   * Adds ids and returns the text that became final (possibly "").
   *
   * @param ids One id or several.
   * @returns New text.
   */
  push(ids: number | readonly number[]): string;
  /**
   * Returns whatever is still held back (an incomplete character decodes to U+FFFD).
   *
   * @returns The remaining text.
   */
  flush(): string;
}

type Json = Record<string, unknown>;

function obj(v: unknown): Json | null {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? v as Json : null;
}

/** A special token named in tokenizer_config.json: a string or `{content}`. */
function tokenContent(v: unknown): string | null {
  if (typeof v === "string") return v;
  const o = obj(v);
  return o && typeof o["content"] === "string" ? o["content"] : null;
}

/** Ids explicitly supplied by the model's config (they win over the tokenizer's). */
export interface SpecialIds {
  /** BOS id. */
  bosTokenId?: number | null;
  /** EOS ids. */
  eosTokenIds?: readonly number[];
}

/** Tokenizer models `@huggingface/tokenizers` implements. */
const SUPPORTED_MODELS = ["BPE", "WordPiece", "Unigram"];
/** How far ids may run past the number of tokens (real tokenizers are dense or nearly so). */
const MAX_ID_GAP = 1 << 16;

function isId(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Checks what the tokenizer library would otherwise trust: a supported model
 * type, well-formed vocabulary entries, and token ids bounded by the
 * vocabulary's size (the library builds an array indexed by id, so an id of
 * 10⁹ would stall it for minutes).
 */
function validateTokenizerJson(tj: Json, file: string): void {
  const fail = (reason: string, hint = "re-download or re-save the tokenizer") =>
    new GptqError("TOKENIZER", reason, { file, hint });
  const model = tj["model"] as Json;
  const type = model["type"];
  if (typeof type !== "string" || !SUPPORTED_MODELS.includes(type)) {
    throw fail(
      `model.type ${JSON.stringify(type ?? null)} is not supported`,
      `supported: ${SUPPORTED_MODELS.join(", ")}`,
    );
  }
  let count = 0;
  let maxId = -1;
  const vocab = model["vocab"];
  if (type === "Unigram") {
    if (!Array.isArray(vocab)) throw fail("model.vocab is not a list of [piece, score] pairs");
    for (const [i, e] of vocab.entries()) {
      if (!Array.isArray(e) || typeof e[0] !== "string" || typeof e[1] !== "number") {
        throw fail(`model.vocab[${i}] is not a [piece, score] pair`);
      }
    }
    count = vocab.length;
    maxId = count - 1;
    const unk = model["unk_id"];
    if (unk !== undefined && unk !== null && !(isId(unk) && unk < count)) {
      throw fail(`model.unk_id ${JSON.stringify(unk)} is not an id of the vocabulary`);
    }
  } else {
    const v = obj(vocab);
    if (!v) throw fail("model.vocab is not an object of token → id");
    for (const [token, id] of Object.entries(v)) {
      if (!isId(id)) {
        throw fail(
          `model.vocab[${JSON.stringify(token)}] is ${JSON.stringify(id)}, not a token id`,
        );
      }
      count++;
      if (id > maxId) maxId = id;
    }
  }
  const added = tj["added_tokens"] ?? [];
  if (!Array.isArray(added)) throw fail("added_tokens is not a list");
  for (const [i, t] of added.entries()) {
    const o = obj(t);
    if (!o || !isId(o["id"]) || typeof o["content"] !== "string") {
      throw fail(`added_tokens[${i}] needs a non-negative integer 'id' and a string 'content'`);
    }
    count++;
    if (o["id"] > maxId) maxId = o["id"];
  }
  if (maxId >= count + MAX_ID_GAP) {
    throw fail(
      `token id ${maxId} is far beyond the vocabulary's ${count} tokens`,
      "ids must number the vocabulary (0..size-1); fix the id in tokenizer.json",
    );
  }
}

/**
 * A model's tokenizer.
 *
 * @example
 * ```ts ignore
 * import { TextTokenizer } from "./tokenizer.ts";
 * const tok = await TextTokenizer.fromFolder("./gpt2");
 * console.log(tok.encode("Hello world")); // [15496, 995]
 * ```
 */
export class TextTokenizer {
  /** Where it was loaded from. */
  readonly source: string;
  /** Beginning-of-sequence id, or null. */
  readonly bosTokenId: number | null;
  /** End-of-sequence ids (may be empty). */
  readonly eosTokenIds: readonly number[];
  /** Number of ids (largest id + 1, added tokens included). */
  readonly vocabSize: number;
  readonly #tok: Tokenizer;
  readonly #special: ReadonlySet<number>;

  private constructor(tok: Tokenizer, source: string, bos: number | null, eos: number[]) {
    this.#tok = tok;
    this.source = source;
    this.bosTokenId = bos;
    this.eosTokenIds = eos;
    let max = -1;
    for (const id of tok.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    const special = new Set<number>();
    for (const [id, t] of tok.get_added_tokens_decoder()) if (t.special) special.add(id);
    // BOS/EOS count as special even when tokenizer.json does not list them as added tokens.
    if (bos !== null) special.add(bos);
    for (const id of eos) special.add(id);
    this.#special = special;
  }

  /**
   * Builds a tokenizer from parsed `tokenizer.json` and `tokenizer_config.json`.
   *
   * @example
   * ```ts ignore
   * import { TextTokenizer } from "./tokenizer.ts";
   * const tok = TextTokenizer.fromJson(JSON.parse(json), {}, "tokenizer.json");
   * ```
   *
   * @param tokenizerJson The parsed `tokenizer.json`.
   * @param tokenizerConfig The parsed `tokenizer_config.json` (or `{}`).
   * @param source A path for messages.
   * @param ids BOS/EOS ids from the model config, preferred over the tokenizer's.
   * @returns The tokenizer.
   */
  static fromJson(
    tokenizerJson: unknown,
    tokenizerConfig: unknown,
    source: string,
    ids: SpecialIds = {},
  ): TextTokenizer {
    const tj = obj(tokenizerJson);
    if (!tj || !obj(tj["model"])) {
      throw new GptqError("TOKENIZER", "is not a tokenizers JSON file (no 'model')", {
        file: source,
        hint: "save the tokenizer with a fast (Rust-backed) tokenizer: tokenizer.save_pretrained()",
      });
    }
    validateTokenizerJson(tj, source);
    // transformers >= 4.45 no longer cleans up spaces by default; the JS port still does.
    const cfg: Json = { clean_up_tokenization_spaces: false, ...(obj(tokenizerConfig) ?? {}) };
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(tj, cfg);
    } catch (e) {
      throw new GptqError("TOKENIZER", `cannot be loaded (${(e as Error).message})`, {
        file: source,
        hint: "the tokenizer uses a model or component @huggingface/tokenizers does not support",
        cause: e,
      });
    }
    const idOf = (v: unknown): number | null => {
      const c = tokenContent(v);
      return c === null ? null : tok.token_to_id(c) ?? null;
    };
    const bos = ids.bosTokenId ?? idOf(cfg["bos_token"]);
    let eos = ids.eosTokenIds ? [...ids.eosTokenIds] : [];
    if (eos.length === 0) {
      const e = idOf(cfg["eos_token"]);
      if (e !== null) eos = [e];
    }
    return new TextTokenizer(tok, source, bos, eos);
  }

  /**
   * Loads `tokenizer.json` (required) and `tokenizer_config.json` (optional)
   * from a model folder.
   *
   * @example
   * ```ts ignore
   * import { TextTokenizer } from "./tokenizer.ts";
   * const tok = await TextTokenizer.fromFolder("./Llama-2-7B-GPTQ");
   * ```
   *
   * @param dir The folder.
   * @param ids BOS/EOS ids from the model config, preferred over the tokenizer's.
   * @returns The tokenizer.
   */
  static async fromFolder(dir: string, ids: SpecialIds = {}): Promise<TextTokenizer> {
    const base = dir.replace(/\/+$/, "");
    const file = `${base}/tokenizer.json`;
    let text: string;
    try {
      text = await readBoundedText(file, {
        code: "TOKENIZER",
        maxBytes: MAX_TOKENIZER_BYTES,
        hint: "re-download or re-save the tokenizer",
      });
    } catch (e) {
      if (isNotFound(e)) {
        let hasSp = false;
        try {
          hasSp = (await statPath(`${base}/tokenizer.model`)).isFile;
        } catch { /* absent */ }
        throw new GptqError("TOKENIZER", "tokenizer.json not found", {
          file,
          hint: hasSp
            ? "only a sentencepiece tokenizer.model is present; convert it with transformers " +
              "(AutoTokenizer.from_pretrained(dir).save_pretrained(dir)) to get tokenizer.json"
            : "copy tokenizer.json (and tokenizer_config.json) from the original model",
          cause: e,
        });
      }
      throw fsError(e, file);
    }
    const tj = parseJsonText(text, file, "TOKENIZER", "re-download or re-save the tokenizer");
    let cfg: unknown = {};
    const cfgFile = `${base}/tokenizer_config.json`;
    try {
      cfg = await readJsonFile(cfgFile, {
        code: "TOKENIZER",
        maxBytes: MAX_TOKENIZER_CONFIG_BYTES,
        hint: "fix or delete tokenizer_config.json",
      });
    } catch (e) {
      if (!isNotFound(e)) throw fsError(e, cfgFile);
    }
    return TextTokenizer.fromJson(tj, cfg, file, ids);
  }

  /**
   * Encodes text.
   *
   * @example
   * ```ts ignore
   * tok.encode("Hello world", { addSpecialTokens: false });
   * ```
   *
   * @param text The text.
   * @param opts `addSpecialTokens` (default true).
   * @returns Token ids.
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    let ids: number[];
    if (text.length === 0) {
      ids = opts.addSpecialTokens === false ? [] : this.#tok.encode("", {}).ids;
    } else {
      ids = this.#tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
    }
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new GptqError(
          "TOKENIZER",
          `encoding produced a token with no id (${String(id)}): a merge or piece ` +
            "names a token that is missing from the vocabulary",
          {
            file: this.source,
            hint: "the tokenizer is inconsistent; re-save it with transformers",
          },
        );
      }
    }
    return ids;
  }

  /**
   * Decodes ids to text.
   *
   * @example
   * ```ts ignore
   * tok.decode([15496, 995]); // "Hello world"
   * ```
   *
   * @param ids Token ids.
   * @param opts `skipSpecialTokens` (default false).
   * @returns The text.
   */
  decode(ids: readonly number[] | Int32Array, opts: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    const list = Array.from(ids);
    for (const id of list) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new GptqError(
          "TOKENIZER",
          `token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`,
          {
            file: this.source,
            hint: "the ids come from a different tokenizer or model",
          },
        );
      }
    }
    if (opts.skipSpecialTokens) {
      const kept = list.filter((id) => !this.#special.has(id));
      if (kept.length === 0) return "";
      return this.#tok.decode(kept, { skip_special_tokens: true });
    }
    return this.#tok.decode(list, { skip_special_tokens: false });
  }

  /**
   * Looks up a token's string.
   *
   * @param id A token id.
   * @returns Its token string, or undefined.
   */
  idToToken(id: number): string | undefined {
    return this.#tok.id_to_token(id);
  }

  /**
   * Looks up a token's id.
   *
   * @param token A token string.
   * @returns Its id, or undefined.
   */
  tokenToId(token: string): number | undefined {
    return this.#tok.token_to_id(token);
  }

  /**
   * Whether a token is special (added special tokens, BOS, EOS).
   *
   * @param id A token id.
   * @returns Whether it is a special (added) token.
   */
  isSpecial(id: number): boolean {
    return this.#special.has(id);
  }

  /**
   * A decoder for tokens arriving one by one. It decodes a short window of
   * ids with some already-emitted context before it (so tokenizers that drop a
   * leading space at the start of a text still get it right) and holds text
   * back while it ends in an incomplete character (U+FFFD).
   *
   * @example
   * ```ts ignore
   * const s = tok.createStreamDecoder();
   * for (const id of ids) Deno.stdout.writeSync(new TextEncoder().encode(s.push(id)));
   * console.log(s.flush());
   * ```
   *
   * @param opts `skipSpecialTokens` (default false).
   * @returns The decoder.
   */
  createStreamDecoder(opts: DecodeOptions = {}): StreamDecoder {
    const ids: number[] = [];
    let prefix = 0; // start of the context window
    let read = 0; // ids before this are already emitted
    const decode = (a: number, b: number): string => this.decode(ids.slice(a, b), opts);
    return {
      push: (more) => {
        if (typeof more === "number") ids.push(more);
        else for (const id of more) ids.push(id);
        const before = decode(prefix, read);
        const all = decode(prefix, ids.length);
        if (all.length > before.length && !all.endsWith("\uFFFD")) {
          const piece = all.slice(before.length);
          prefix = read;
          read = ids.length;
          // Keep the window short: drop ids that are no longer needed as context.
          if (prefix > 64) {
            ids.splice(0, prefix);
            read -= prefix;
            prefix = 0;
          }
          return piece;
        }
        return "";
      },
      flush: () => {
        const before = decode(prefix, read);
        const all = decode(prefix, ids.length);
        prefix = read = ids.length;
        return all.startsWith(before) ? all.slice(before.length) : all;
      },
    };
  }
}
