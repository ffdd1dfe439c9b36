// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Imports llama2.c checkpoints (karpathy/llama2.c `model.bin` + `tokenizer.bin`)
 * into a Hugging Face Llama folder: `config.json`, `model.safetensors`,
 * `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json` and
 * `generation_config.json`.
 *
 * Two checkpoint formats are read:
 * - version 0 ("legacy", `export.py --version 0`): a header of 7 int32
 *   `dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len`
 *   (a negative `vocab_size` means an unshared classifier follows at the
 *   end), then fp32 `token_embedding_table, rms_att_weight, wq, wk, wv, wo,
 *   rms_ffn_weight, w1, w2, w3, rms_final_weight, freq_cis_real,
 *   freq_cis_imag[, wcls]`;
 * - version 1 (`--version 1`): a 256-byte header (uint32 magic `0x616b3432`
 *   "ak42", int32 version, the 7 int32, a uint8 shared-classifier flag,
 *   zero padding), then fp32 `rms_att, rms_ffn, rms_final, embeddings, wq, wk,
 *   wv, wo, w1, w2, w3[, wcls]`.
 *
 * Matrices are stored as `[out, in]`, the layout of `nn.Linear.weight`.
 * llama2.c rotates interleaved pairs `(x[2i], x[2i+1])` while HF Llama rotates
 * halves (`rotate_half`), so the rows of `q_proj` and `k_proj` are permuted
 * per head exactly as HF's `convert_llama_weights_to_hf.py` does:
 * `w.view(n_heads, rows / n_heads / 2, 2, cols).transpose(1, 2).reshape(rows, cols)`
 * (with `n_kv_heads` for `k_proj`).
 *
 * @module
 */

import { fsError, GptqError } from "../errors.ts";
import { fromFloat32 } from "./dtype.ts";
import { AtomicOutputDir } from "./atomic_dir.ts";
import { readExactAt } from "./safetensors.ts";
import { type NamedTensor, writeSafetensors } from "./safetensors_writer.ts";
import {
  buildLlama2cTokenizerJson,
  llama2cTokenizerConfig,
  readLlama2cTokenizer,
} from "./llama2c_tokenizer.ts";

/** The magic number of llama2.c's versioned formats: "ak42" as a little-endian uint32. */
export const LLAMA2C_MAGIC = 0x616b3432;

/** Size of the version 1/2 header in bytes. */
const V1_HEADER_BYTES = 256;
/** Size of the version 0 header in bytes. */
const V0_HEADER_BYTES = 28;

/** The hyper-parameters and layout facts of a llama2.c checkpoint. */
export interface Llama2cConfig {
  /** File format version (0 = legacy, 1 = fp32 "ak42"). */
  version: 0 | 1;
  /** Model width (`hidden_size`). */
  dim: number;
  /** MLP width (`intermediate_size`). */
  hiddenDim: number;
  /** Number of transformer blocks. */
  nLayers: number;
  /** Number of query heads. */
  nHeads: number;
  /** Number of key/value heads. */
  nKvHeads: number;
  /** Vocabulary size (always positive here). */
  vocabSize: number;
  /** Maximum sequence length. */
  seqLen: number;
  /** Whether the classifier shares the embedding table. */
  sharedClassifier: boolean;
  /** Byte offset where the weights start. */
  headerBytes: number;
  /** Total file size the header implies (checked against the real size). */
  fileBytes: number;
}

/** Where one Hugging Face tensor lives in a llama2.c file. */
export interface Llama2cTensorSlice {
  /** The HF tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  name: string;
  /** The HF shape. */
  shape: number[];
  /** Byte offset of its fp32 data in the llama2.c file. */
  offset: number;
  /** Rotary heads whose rows must be permuted (q: n_heads, k: n_kv_heads), else 0. */
  rotaryHeads: number;
}

function modelError(file: string, reason: string, hint: string): GptqError {
  return new GptqError("LLAMA2C", reason, { file, hint });
}

/**
 * Counts of fp32 values in each stacked llama2.c array.
 *
 * @param c The dims.
 * @returns Element counts.
 */
function sizes(
  c: Pick<
    Llama2cConfig,
    "dim" | "hiddenDim" | "nLayers" | "nHeads" | "nKvHeads" | "vocabSize" | "seqLen"
  >,
) {
  const headSize = c.dim / c.nHeads;
  const kvDim = headSize * c.nKvHeads;
  const L = c.nLayers;
  return {
    headSize,
    kvDim,
    emb: c.vocabSize * c.dim,
    norm: L * c.dim,
    wq: L * c.dim * c.dim,
    wk: L * c.dim * kvDim,
    wo: L * c.dim * c.dim,
    ffn: L * c.dim * c.hiddenDim,
    final: c.dim,
    freq: c.seqLen * (headSize / 2),
  };
}

/**
 * Parses and validates a llama2.c checkpoint header against the file size.
 *
 * @example
 * ```ts
 * import { parseLlama2cHeader } from "./llama2c.ts";
 * const h = new Int32Array([64, 172, 5, 8, 4, 512, 512]);
 * const c = parseLlama2cHeader(new Uint8Array(h.buffer), 1056540, "stories260K.bin");
 * console.log(c.dim, c.sharedClassifier); // 64 true
 * ```
 *
 * @param head The first bytes of the file (at least 28; 256 for versioned files).
 * @param fileSize The file's size in bytes.
 * @param file The file's path, for messages.
 * @returns The validated config.
 */
export function parseLlama2cHeader(
  head: Uint8Array,
  fileSize: number,
  file: string,
): Llama2cConfig {
  const notModel =
    "the file is not a llama2.c model checkpoint (.bin) or is truncated; re-export it";
  if (head.byteLength < V0_HEADER_BYTES || fileSize < V0_HEADER_BYTES) {
    throw modelError(file, `file is ${fileSize} bytes, too short for a llama2.c header`, notModel);
  }
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let version: 0 | 1 = 0;
  let p = 0;
  let shared: boolean;
  let headerBytes = V0_HEADER_BYTES;
  if (view.getUint32(0, true) === LLAMA2C_MAGIC) {
    if (head.byteLength < V1_HEADER_BYTES || fileSize < V1_HEADER_BYTES) {
      throw modelError(
        file,
        `file is ${fileSize} bytes, too short for a version 1 header`,
        notModel,
      );
    }
    const v = view.getInt32(4, true);
    if (v !== 1) {
      throw modelError(
        file,
        v === 2
          ? "llama2.c version 2 (int8 Q8_0) checkpoints are not supported yet"
          : `unknown llama2.c format version ${v}`,
        "re-export the model with llama2.c's `export.py --version 1` (fp32) or `--version 0`",
      );
    }
    version = 1;
    p = 8;
    headerBytes = V1_HEADER_BYTES;
    const flag = head[8 + 7 * 4]!;
    if (flag > 1) throw modelError(file, `shared_classifier flag is ${flag}, not 0 or 1`, notModel);
    shared = flag === 1;
  } else {
    shared = view.getInt32(20, true) > 0;
  }
  const dim = view.getInt32(p, true);
  const hiddenDim = view.getInt32(p + 4, true);
  const nLayers = view.getInt32(p + 8, true);
  const nHeads = view.getInt32(p + 12, true);
  const nKvHeads = view.getInt32(p + 16, true);
  const rawVocab = view.getInt32(p + 20, true);
  const seqLen = view.getInt32(p + 24, true);
  const fields = `dim=${dim} hidden_dim=${hiddenDim} n_layers=${nLayers} n_heads=${nHeads} ` +
    `n_kv_heads=${nKvHeads} vocab_size=${rawVocab} seq_len=${seqLen}`;
  const vocabSize = Math.abs(rawVocab);
  if (
    dim <= 0 || hiddenDim <= 0 || nLayers <= 0 || nHeads <= 0 || nKvHeads <= 0 || seqLen <= 0 ||
    vocabSize === 0 || (version === 1 && rawVocab < 0)
  ) {
    throw modelError(file, `header has impossible sizes (${fields})`, notModel);
  }
  if (dim % nHeads !== 0 || nHeads % nKvHeads !== 0 || (dim / nHeads) % 2 !== 0) {
    throw modelError(
      file,
      `header is inconsistent (${fields}): dim must be a multiple of n_heads with an even ` +
        `head size, and n_heads a multiple of n_kv_heads`,
      notModel,
    );
  }
  const s = sizes({ dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen });
  const body = s.emb + 2 * s.norm + s.wq + 2 * s.wk + s.wo + 3 * s.ffn + s.final +
    (version === 0 ? 2 * s.freq : 0);
  const fileBytes = headerBytes + 4 * (body + (shared ? 0 : s.emb));
  if (!Number.isSafeInteger(fileBytes)) {
    throw modelError(file, `header sizes are absurdly large (${fields})`, notModel);
  }
  if (fileBytes !== fileSize) {
    const other = headerBytes + 4 * (body + (shared ? s.emb : 0));
    const hint = other === fileSize
      ? `the size fits a ${shared ? "separate" : "shared"} classifier; the header's ` +
        `${version === 0 ? "vocab_size sign" : "shared_classifier flag"} is wrong — re-export it`
      : fileSize < fileBytes
      ? "the file is truncated; re-download or re-export it"
      : "the file has trailing data or a wrong header; re-export it";
    throw modelError(
      file,
      `header (${fields}) implies ${fileBytes} bytes but the file has ${fileSize}`,
      hint,
    );
  }
  return {
    version,
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize,
    seqLen,
    sharedClassifier: shared,
    headerBytes,
    fileBytes,
  };
}

/**
 * Lists where each Hugging Face tensor lives in a llama2.c file, in the
 * order they are written to `model.safetensors`.
 *
 * @example
 * ```ts
 * import { llama2cTensorLayout, parseLlama2cHeader } from "./llama2c.ts";
 * const h = new Int32Array([64, 172, 5, 8, 4, 512, 512]);
 * const c = parseLlama2cHeader(new Uint8Array(h.buffer), 1056540, "stories260K.bin");
 * console.log(llama2cTensorLayout(c)[0]); // model.embed_tokens.weight at offset 28
 * ```
 *
 * @param c The checkpoint's config.
 * @returns One slice per HF tensor.
 */
export function llama2cTensorLayout(c: Llama2cConfig): Llama2cTensorSlice[] {
  const s = sizes(c);
  const L = c.nLayers;
  // Start offsets (in floats) of each stacked array.
  const start: Record<string, number> = {};
  let o = 0;
  const put = (name: string, n: number): void => {
    start[name] = o;
    o += n;
  };
  if (c.version === 0) {
    put("emb", s.emb);
    put("rms_att", s.norm);
    put("wq", s.wq);
    put("wk", s.wk);
    put("wv", s.wk);
    put("wo", s.wo);
    put("rms_ffn", s.norm);
    put("w1", s.ffn);
    put("w2", s.ffn);
    put("w3", s.ffn);
    put("rms_final", s.final);
    put("freq", 2 * s.freq);
  } else {
    put("rms_att", s.norm);
    put("rms_ffn", s.norm);
    put("rms_final", s.final);
    put("emb", s.emb);
    put("wq", s.wq);
    put("wk", s.wk);
    put("wv", s.wk);
    put("wo", s.wo);
    put("w1", s.ffn);
    put("w2", s.ffn);
    put("w3", s.ffn);
  }
  if (!c.sharedClassifier) put("wcls", s.emb);

  const out: Llama2cTensorSlice[] = [];
  const at = (
    name: string,
    shape: number[],
    array: string,
    layer: number,
    rotaryHeads = 0,
  ): void => {
    const per = shape.reduce((a, b) => a * b, 1);
    out.push({
      name,
      shape,
      offset: c.headerBytes + 4 * (start[array]! + layer * per),
      rotaryHeads,
    });
  };
  at("model.embed_tokens.weight", [c.vocabSize, c.dim], "emb", 0);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    at(`${p}.input_layernorm.weight`, [c.dim], "rms_att", l);
    at(`${p}.self_attn.q_proj.weight`, [c.dim, c.dim], "wq", l, c.nHeads);
    at(`${p}.self_attn.k_proj.weight`, [s.kvDim, c.dim], "wk", l, c.nKvHeads);
    at(`${p}.self_attn.v_proj.weight`, [s.kvDim, c.dim], "wv", l);
    at(`${p}.self_attn.o_proj.weight`, [c.dim, c.dim], "wo", l);
    at(`${p}.post_attention_layernorm.weight`, [c.dim], "rms_ffn", l);
    at(`${p}.mlp.gate_proj.weight`, [c.hiddenDim, c.dim], "w1", l);
    at(`${p}.mlp.up_proj.weight`, [c.hiddenDim, c.dim], "w3", l);
    at(`${p}.mlp.down_proj.weight`, [c.dim, c.hiddenDim], "w2", l);
  }
  at("model.norm.weight", [c.dim], "rms_final", 0);
  if (!c.sharedClassifier) at("lm_head.weight", [c.vocabSize, c.dim], "wcls", 0);
  return out;
}

/**
 * Permutes the rows of a q/k projection from llama2.c's interleaved rotary
 * layout to HF's half-split layout: per head, row `2p + t` moves to
 * `t * headSize/2 + p` (HF `permute`:
 * `w.view(n_heads, rows/n_heads/2, 2, cols).transpose(1, 2).reshape(rows, cols)`).
 *
 * @example
 * ```ts
 * import { permuteRotaryToHf } from "./llama2c.ts";
 * // one head of size 4, one column: rows [r0, r1, r2, r3] -> [r0, r2, r1, r3]
 * console.log(permuteRotaryToHf(new Float32Array([0, 1, 2, 3]), 1, 4, 1)); // [0, 2, 1, 3]
 * ```
 *
 * @param w The `[rows, cols]` weight, row-major.
 * @param nHeads Heads in the projection (n_heads for q, n_kv_heads for k).
 * @param rows Output features (`nHeads * headSize`).
 * @param cols Input features.
 * @returns A new permuted array.
 */
export function permuteRotaryToHf(
  w: Float32Array,
  nHeads: number,
  rows: number,
  cols: number,
): Float32Array {
  const headSize = rows / nHeads;
  if (!Number.isInteger(headSize) || headSize % 2 !== 0 || w.length !== rows * cols) {
    throw new GptqError(
      "SHAPE",
      `cannot split [${rows}, ${cols}] (${w.length} values) into ${nHeads} rotary heads`,
      { hint: "rows must be n_heads * an even head size" },
    );
  }
  const half = headSize / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    const base = h * headSize;
    for (let p = 0; p < half; p++) {
      for (let t = 0; t < 2; t++) {
        const src = (base + 2 * p + t) * cols;
        out.set(w.subarray(src, src + cols), (base + t * half + p) * cols);
      }
    }
  }
  return out;
}

/** Output dtypes of {@linkcode convertLlama2c}. */
export type Llama2cDType = "F32" | "F16" | "BF16";

const TORCH_DTYPE: Record<Llama2cDType, string> = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
};

/**
 * The HF `config.json` of a converted llama2.c model.
 *
 * @example
 * ```ts
 * import { llama2cHfConfig, parseLlama2cHeader } from "./llama2c.ts";
 * const h = new Int32Array([64, 172, 5, 8, 4, 512, 512]);
 * const c = parseLlama2cHeader(new Uint8Array(h.buffer), 1056540, "stories260K.bin");
 * console.log(llama2cHfConfig(c, "F32").num_key_value_heads); // 4
 * ```
 *
 * @param c The checkpoint's config.
 * @param dtype The dtype the weights are written in.
 * @returns The config object.
 */
export function llama2cHfConfig(c: Llama2cConfig, dtype: Llama2cDType): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.dim / c.nHeads,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.seqLen,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    rope_scaling: null,
    hidden_act: "silu",
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    initializer_range: 0.02,
    pretraining_tp: 1,
    tie_word_embeddings: c.sharedClassifier,
    bos_token_id: 1,
    eos_token_id: 2,
    use_cache: true,
    torch_dtype: TORCH_DTYPE[dtype],
  };
}

/**
 * Opens a llama2.c checkpoint and validates its header against its size.
 *
 * @example
 * ```ts ignore
 * import { readLlama2cConfig } from "./llama2c.ts";
 * const c = await readLlama2cConfig("stories260K.bin");
 * console.log(c.nLayers); // 5
 * ```
 *
 * @param path The model file.
 * @returns The validated config.
 */
export async function readLlama2cConfig(path: string): Promise<Llama2cConfig> {
  const f = await openFile(path);
  try {
    return await readHeader(f, path);
  } finally {
    f.close();
  }
}

async function openFile(path: string): Promise<Deno.FsFile> {
  try {
    const f = await Deno.open(path, { read: true });
    const st = await f.stat();
    if (!st.isFile) {
      f.close();
      throw new GptqError("FILE_NOT_FOUND", "is not a regular file", { file: path });
    }
    return f;
  } catch (e) {
    throw fsError(e, path);
  }
}

async function readHeader(f: Deno.FsFile, path: string): Promise<Llama2cConfig> {
  let size: number;
  try {
    size = (await f.stat()).size;
  } catch (e) {
    throw fsError(e, path);
  }
  const head = await readExactAt(f, 0, Math.min(V1_HEADER_BYTES, size), path);
  return parseLlama2cHeader(head, size, path);
}

/**
 * Reads one HF tensor of a llama2.c checkpoint as float32, with the rotary
 * permutation applied for q/k projections.
 *
 * @example
 * ```ts ignore
 * import { llama2cTensorLayout, readLlama2cConfig, readLlama2cTensor } from "./llama2c.ts";
 * const c = await readLlama2cConfig("stories260K.bin");
 * using f = await Deno.open("stories260K.bin");
 * const w = await readLlama2cTensor(f, "stories260K.bin", c, llama2cTensorLayout(c)[2]!);
 * ```
 *
 * @param f The open model file.
 * @param path Its path, for messages.
 * @param c Its config.
 * @param slice The tensor to read.
 * @returns The tensor's values in HF layout.
 */
export async function readLlama2cTensor(
  f: Deno.FsFile,
  path: string,
  c: Llama2cConfig,
  slice: Llama2cTensorSlice,
): Promise<Float32Array> {
  const numel = slice.shape.reduce((a, b) => a * b, 1);
  const bytes = await readExactAt(f, slice.offset, numel * 4, path, slice.name);
  const w = new Float32Array(bytes.buffer, bytes.byteOffset, numel);
  if (slice.rotaryHeads === 0) return w;
  return permuteRotaryToHf(w, slice.rotaryHeads, slice.shape[0]!, slice.shape[1] ?? c.dim);
}

/** Options of {@linkcode convertLlama2c}. */
export interface Llama2cConvertOptions {
  /** Replace an existing output folder. */
  force?: boolean;
  /** Weight dtype in `model.safetensors` (default `"F32"`, lossless). */
  dtype?: Llama2cDType;
}

/** What {@linkcode convertLlama2c} wrote. */
export interface Llama2cConvertReport {
  /** The output folder. */
  outDir: string;
  /** The checkpoint's config. */
  config: Llama2cConfig;
  /** The weight dtype written. */
  dtype: Llama2cDType;
  /** Number of tensors in `model.safetensors`. */
  tensors: number;
  /** Number of parameters written. */
  parameters: number;
  /** Files written, relative to `outDir`. */
  files: string[];
  /** Tokenizer facts. */
  tokenizer: {
    /** Vocabulary size. */
    vocabSize: number;
    /** BPE merges derived from the piece scores. */
    merges: number;
    /** Pieces where HF BPE may not reproduce llama2.c exactly (normally none). */
    inexactPieces: string[];
  };
}

/**
 * Converts a llama2.c checkpoint and tokenizer into a Hugging Face Llama
 * folder. Inputs are validated before anything is written; the folder appears
 * all at once, and an existing folder is only replaced with `force`.
 *
 * @example
 * ```ts ignore
 * import { convertLlama2c } from "./llama2c.ts";
 * const r = await convertLlama2c("stories260K.bin", "tok512.bin", "stories260K-hf");
 * console.log(r.parameters, r.files);
 * ```
 *
 * @param modelPath The llama2.c model `.bin` (version 0 or 1).
 * @param tokenizerPath The llama2.c tokenizer `.bin`.
 * @param outDir The folder to create.
 * @param opts `force` to overwrite, `dtype` for the weights.
 * @returns What was written.
 */
export async function convertLlama2c(
  modelPath: string,
  tokenizerPath: string,
  outDir: string,
  opts: Llama2cConvertOptions = {},
): Promise<Llama2cConvertReport> {
  const dtype = opts.dtype ?? "F32";
  if (!Object.hasOwn(TORCH_DTYPE, dtype)) {
    throw new GptqError("INVALID_ARGUMENT", `unsupported dtype ${JSON.stringify(dtype)}`, {
      hint: "use F32, F16 or BF16",
    });
  }
  const f = await openFile(modelPath);
  try {
    const config = await readHeader(f, modelPath);
    const vocab = await readLlama2cTokenizer(tokenizerPath, config.vocabSize);
    const tok = buildLlama2cTokenizerJson(vocab, tokenizerPath);
    const layout = llama2cTensorLayout(config);

    const out = await AtomicOutputDir.create(outDir, { force: opts.force ?? false });
    try {
      let parameters = 0;
      const tensors = async function* (): AsyncGenerator<NamedTensor> {
        for (const slice of layout) {
          const w = await readLlama2cTensor(f, modelPath, config, slice);
          parameters += w.length;
          yield { name: slice.name, dtype, shape: slice.shape, data: fromFloat32(w, dtype) };
        }
      };
      await writeSafetensors(out.path("model.safetensors"), tensors(), { format: "pt" });
      const json = (o: unknown): string => JSON.stringify(o, null, 2) + "\n";
      const files: [string, string][] = [
        ["config.json", json(llama2cHfConfig(config, dtype))],
        ["generation_config.json", json({ bos_token_id: 1, eos_token_id: 2 })],
        ["tokenizer.json", json(tok.json)],
        ["tokenizer_config.json", json(llama2cTokenizerConfig(config.seqLen))],
        [
          "special_tokens_map.json",
          json({ bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" }),
        ],
      ];
      for (const [name, text] of files) {
        const p = out.path(name);
        try {
          await Deno.writeTextFile(p, text);
        } catch (e) {
          throw fsError(e, p);
        }
      }
      await out.commit();
      return {
        outDir: out.outDir,
        config,
        dtype,
        tensors: layout.length,
        parameters,
        files: ["model.safetensors", ...files.map(([n]) => n)],
        tokenizer: {
          vocabSize: vocab.pieces.length,
          merges: tok.mergeCount,
          inexactPieces: tok.inexactPieces,
        },
      };
    } catch (e) {
      await out.abort();
      throw e;
    }
  } finally {
    f.close();
  }
}
