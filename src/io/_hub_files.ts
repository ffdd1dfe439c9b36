// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Which files of a Hub model repository this toolkit needs: the configs, the
 * tokenizer, the chat template, the GPTQ config and the safetensors weights
 * (only the shards an index names). Pickle/TF/Flax/ONNX/GGUF weights and
 * sub-folders are never fetched.
 *
 * @module
 */

/** One file of a repository, as `GET /api/models/{id}/revision/{rev}?blobs=true` lists it. */
export interface HubSibling {
  /** Its path in the repository. */
  rfilename: string;
  /** Its size in bytes (with `blobs=true`). */
  size?: number;
  /** Its git blob id. */
  blobId?: string;
  /** For LFS files: the content's SHA-256 and size. */
  lfs?: { sha256?: string; oid?: string; size?: number };
}

/** Small files fetched whenever the repository has them. */
export const HUB_SMALL_FILES: readonly string[] = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "tokenizer.model",
  "chat_template.jinja",
  "chat_template.json",
  "quantize_config.json",
  "quant_config.json",
];

/** Weight formats this toolkit does not read (never downloaded). */
const FOREIGN_WEIGHTS = /\.(bin|pt|pth|ckpt|h5|msgpack|onnx|onnx_data|gguf|ot|tflite)$/i;

/** What to fetch from a repository. */
export interface HubFilePlan {
  /** Small files, fetched first. */
  small: string[];
  /** The safetensors index, when the weights are sharded. */
  index: string | null;
  /** Weight files (empty when an index is to name them). */
  weights: string[];
  /** Top-level weight files in formats that are not read, for messages. */
  foreign: string[];
}

/**
 * Picks the files to fetch from a repository listing: the known small files,
 * then `model.safetensors.index.json` (or a single other `*.safetensors.index.json`)
 * whose shards are fetched after reading it, else `model.safetensors`, else
 * `gptq_model-*.safetensors`, else every top-level `.safetensors` file.
 *
 * @param names The repository's file paths.
 * @returns The plan; `index` and `weights` are both empty when there are no safetensors.
 */
export function planHubFiles(names: readonly string[]): HubFilePlan {
  const top = names.filter((n) => !n.includes("/") && n !== "." && n !== "..");
  const has = new Set(top);
  const small = HUB_SMALL_FILES.filter((n) => has.has(n));
  const foreign = top.filter((n) => FOREIGN_WEIGHTS.test(n));
  const indexes = top.filter((n) => n.endsWith(".safetensors.index.json"));
  const index = has.has("model.safetensors.index.json")
    ? "model.safetensors.index.json"
    : indexes.length === 1
    ? indexes[0]!
    : null;
  if (index) return { small, index, weights: [], foreign };
  const st = top.filter((n) => n.endsWith(".safetensors")).sort();
  const gptq = st.filter((n) => /^gptq_model-.*\.safetensors$/.test(n));
  const weights = has.has("model.safetensors") ? ["model.safetensors"] : gptq.length ? gptq : st;
  return { small, index: null, weights, foreign };
}

/**
 * The shard files a safetensors index names, in first-use order.
 *
 * @param index The parsed `*.safetensors.index.json`.
 * @returns The shard names; throws on a malformed index.
 */
export function indexShards(index: unknown): string[] {
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new Error("has no weight_map object");
  }
  const out = new Set<string>();
  for (const v of Object.values(map)) {
    if (typeof v !== "string" || v.includes("/") || v === "." || v === "..") {
      throw new Error(`names an unusable shard file ${JSON.stringify(v)}`);
    }
    out.add(v);
  }
  return [...out];
}
