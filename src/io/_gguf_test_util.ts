// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Test helpers: a minimal GGUF writer, so tests can build well-formed,
 * edited and deliberately broken GGUF files in memory.
 *
 * @module
 */

import { type GgufHeader, GgufType, type GgufValue } from "./gguf.ts";
import { GGML_TYPES } from "./gguf_dequant.ts";

/** One metadata entry to write. */
export interface KvSpec {
  /** Key. */
  key: string;
  /** Value type (a {@linkcode GgufType}). */
  type: number;
  /** Item type, for arrays. */
  itemType?: number;
  /** The value (arrays: a JS array or typed array; nested arrays: arrays of `{itemType, value}`). */
  value: unknown;
}

/** One tensor to write. */
export interface TensorSpec {
  /** Name. */
  name: string;
  /** ggml dims, fastest first. */
  ne: number[];
  /** ggml type id. */
  type: number;
  /** Raw bytes (any length: the writer does not check). */
  data: Uint8Array;
}

/** Options of {@linkcode buildGguf}. */
export interface BuildOptions {
  /** Format version written (default 3). */
  version?: number;
  /** Alignment used for the layout (write `general.alignment` yourself to declare it). */
  alignment?: number;
}

class Bytes {
  parts: number[] = [];
  u8(v: number) {
    this.parts.push(v & 255);
  }
  u32(v: number) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    this.parts.push(...b);
  }
  u64(v: number | bigint) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    this.parts.push(...b);
  }
  raw(b: Uint8Array) {
    for (const x of b) this.parts.push(x);
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.raw(b);
  }
}

function writeValue(w: Bytes, type: number, value: unknown, itemType?: number): void {
  const dv = (n: number, f: (v: DataView) => void) => {
    const b = new Uint8Array(n);
    f(new DataView(b.buffer));
    w.raw(b);
  };
  switch (type) {
    case GgufType.UINT8:
    case GgufType.INT8:
      return w.u8(Number(value));
    case GgufType.BOOL:
      return w.u8(value === true ? 1 : value === false ? 0 : Number(value));
    case GgufType.UINT16:
    case GgufType.INT16:
      return dv(2, (v) => v.setUint16(0, Number(value) & 0xffff, true));
    case GgufType.UINT32:
      return w.u32(Number(value));
    case GgufType.INT32:
      return dv(4, (v) => v.setInt32(0, Number(value), true));
    case GgufType.FLOAT32:
      return dv(4, (v) => v.setFloat32(0, Number(value), true));
    case GgufType.UINT64:
      return w.u64(value as number | bigint);
    case GgufType.INT64:
      return dv(8, (v) => v.setBigInt64(0, BigInt(value as number), true));
    case GgufType.FLOAT64:
      return dv(8, (v) => v.setFloat64(0, Number(value), true));
    case GgufType.STRING:
      return w.str(String(value));
    case GgufType.ARRAY: {
      const items = Array.from(value as ArrayLike<unknown>);
      w.u32(itemType!);
      w.u64(items.length);
      for (const it of items) {
        if (itemType === GgufType.ARRAY) {
          const nested = it as { itemType: number; value: unknown };
          writeValue(w, GgufType.ARRAY, nested.value, nested.itemType);
        } else writeValue(w, itemType!, it);
      }
      return;
    }
    default:
      throw new Error(`test writer: value type ${type}`);
  }
}

/**
 * Builds a GGUF file in memory.
 *
 * @param kvs Metadata, in order.
 * @param tensors Tensors, in order (data laid out aligned, in this order).
 * @param opts Version and alignment.
 * @returns The file's bytes.
 */
export function buildGguf(
  kvs: KvSpec[],
  tensors: TensorSpec[],
  opts: BuildOptions = {},
): Uint8Array {
  const align = opts.alignment ?? 32;
  const w = new Bytes();
  w.raw(new TextEncoder().encode("GGUF"));
  w.u32(opts.version ?? 3);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const kv of kvs) {
    w.str(kv.key);
    w.u32(kv.type);
    writeValue(w, kv.type, kv.value, kv.itemType);
  }
  let off = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    w.str(t.name);
    w.u32(t.ne.length);
    for (const n of t.ne) w.u64(n);
    w.u32(t.type);
    w.u64(off);
    offsets.push(off);
    off += Math.ceil(t.data.length / align) * align;
  }
  while (w.parts.length % align !== 0) w.u8(0);
  const start = w.parts.length;
  const out = new Uint8Array(start + off);
  out.set(w.parts);
  tensors.forEach((t, i) => out.set(t.data, start + offsets[i]!));
  return out;
}

/** The item type of a parsed metadata array value, as {@linkcode buildGguf} needs it. */
function specOf(h: GgufHeader, key: string, value: GgufValue): KvSpec {
  const t = h.types.get(key)!;
  if (t.type !== GgufType.ARRAY) return { key, type: t.type, value };
  return { key, type: t.type, itemType: t.itemType, value };
}

/** Edits applied by {@linkcode rewriteGguf}. */
export interface RewriteEdits {
  /** Metadata to set (replacing or appending); `null` deletes the key. */
  set?: Record<string, { type: number; itemType?: number; value: unknown } | null>;
  /** Tensors to drop. */
  drop?: string[];
  /** Tensors to add. */
  add?: TensorSpec[];
  /** Per-tensor replacement of type and bytes. */
  retype?: Record<string, { type: number; data: Uint8Array }>;
}

/**
 * Rewrites a GGUF with edits: metadata changed, tensors dropped, added or retyped.
 *
 * @param h The parsed header of the original.
 * @param raw Reads a tensor's raw bytes from the original.
 * @param edits What to change.
 * @returns The new file's bytes.
 */
export async function rewriteGguf(
  h: GgufHeader,
  raw: (name: string) => Promise<Uint8Array>,
  edits: RewriteEdits,
): Promise<Uint8Array> {
  const kvs: KvSpec[] = [];
  const set = edits.set ?? {};
  for (const [key, value] of h.metadata) {
    if (key in set) {
      const s = set[key];
      if (s) kvs.push({ key, ...s });
    } else kvs.push(specOf(h, key, value));
  }
  for (const [key, s] of Object.entries(set)) {
    if (s && !h.metadata.has(key)) kvs.push({ key, ...s });
  }
  const tensors: TensorSpec[] = [];
  for (const t of h.tensors) {
    if (edits.drop?.includes(t.name)) continue;
    const re = edits.retype?.[t.name];
    tensors.push({
      name: t.name,
      ne: t.ne,
      type: re?.type ?? t.type,
      data: re?.data ?? await raw(t.name),
    });
  }
  tensors.push(...(edits.add ?? []));
  return buildGguf(kvs, tensors, { alignment: h.alignment });
}

/**
 * Zero bytes of the right size for `numel` values of a ggml type.
 *
 * @param type The ggml type id.
 * @param numel Number of values.
 * @returns The bytes.
 */
export function zeroTensorBytes(type: number, numel: number): Uint8Array {
  const t = GGML_TYPES.get(type)!;
  return new Uint8Array(numel / t.blockSize * t.typeSize);
}
