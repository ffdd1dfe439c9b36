// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The WebGPU device and the machinery every WebGPU kernel encodes through:
 * one adapter/device with the adapter's limits requested, a pipeline cache
 * (compiled once per model load), a pool of storage buffers for activations,
 * a params arena for per-dispatch uniforms, and one command encoder that
 * collects every dispatch and copy until the next read (so a whole decode
 * step is one submit).
 *
 * Binding convention of every kernel: `@group(0) @binding(0)` is a uniform
 * params struct (at most {@linkcode PARAMS_BYTES} bytes), and bindings
 * `1..n` are the storage buffers passed to {@linkcode GpuContext.dispatch} in
 * order. Pipelines use `layout: "auto"`, so a kernel must use every binding
 * it declares.
 *
 * Ordering: `queue.writeBuffer` runs before the commands still being
 * encoded, so data uploads never go into pooled buffers (which pending
 * commands may still read); they use fresh buffers created mapped.
 *
 * @module
 */

import { GptqError } from "../../errors.ts";
import { quietHeadlessWsi } from "./_headless.ts";
import { WGSL } from "./_generated/wgsl.ts";

/** Bytes of one dispatch's params slot (the uniform offset alignment). */
export const PARAMS_BYTES = 256;
const PARAMS_SLOTS = 4096;

const STORAGE = 0x80 | 0x4 | 0x8; // STORAGE | COPY_SRC | COPY_DST
const MAP_READ = 0x1, COPY_SRC = 0x4, COPY_DST = 0x8, UNIFORM = 0x40, QUERY_RESOLVE = 0x200;
/** Timestamp queries per query set (two per compute pass). */
const QUERIES = 4096;

/** A storage binding: a whole buffer, or a byte range of one. */
export type Binding = GPUBuffer | { buffer: GPUBuffer; offset: number; size: number };

/** What {@linkcode GpuContext.create} found. */
export interface AdapterFacts {
  /** The adapter's description (e.g. "NVIDIA H200", "llvmpipe (LLVM 15.0.6, 256 bits)"). */
  description: string;
  /** A software (CPU) adapter such as llvmpipe/lavapipe or SwiftShader. */
  isFallback: boolean;
  /** `shader-f16` was enabled on the device. */
  f16: boolean;
  /** `subgroups` was enabled on the device. */
  subgroups: boolean;
  /** `timestamp-query` was enabled (GPU time per {@linkcode GpuContext.phase}). */
  timestamps: boolean;
}

/** Options of {@linkcode GpuContext.create}. */
export interface GpuContextOptions {
  /** Request a high-performance adapter (default true). */
  highPerformance?: boolean;
  /** Enable `shader-f16` when offered (default true). */
  f16?: boolean;
  /** Enable `subgroups` when offered (default true). */
  subgroups?: boolean;
  /**
   * Enable `timestamp-query` when offered (default false) and time every
   * compute pass on the GPU, by {@linkcode GpuContext.phase} label
   * ({@linkcode GpuContext.gpuTimes}); for benchmarks.
   */
  timestamps?: boolean;
}

/** GPU timing state: one query set, the passes timed since the last submit, the totals. */
interface Profiler {
  set: GPUQuerySet;
  resolve: GPUBuffer;
  next: number;
  spans: { label: string; q: number }[];
  label: string;
  totals: Map<string, number>;
  pending: Promise<void>[];
}

function isSoftware(info: GPUAdapterInfo, fallbackFlag: boolean): boolean {
  const d = `${info.description} ${info.device} ${info.vendor} ${info.architecture}`.toLowerCase();
  return fallbackFlag || /llvmpipe|lavapipe|swiftshader|softpipe|warp|basic render/.test(d);
}

/**
 * An adapter's description and whether it is a software (CPU) adapter.
 *
 * @example
 * ```ts
 * import { describeAdapter } from "./context.ts";
 * const adapter = await navigator.gpu?.requestAdapter();
 * if (adapter) console.log(describeAdapter(adapter).description);
 * ```
 *
 * @param adapter The adapter.
 * @returns Its description (e.g. "NVIDIA H200") and the software flag.
 */
export function describeAdapter(adapter: GPUAdapter): { description: string; isFallback: boolean } {
  const info = adapter.info;
  return {
    description: info.description || `${info.vendor} ${info.device}`.trim() || "unknown adapter",
    isFallback: isSoftware(
      info,
      (info as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
    ),
  };
}

/**
 * One WebGPU device and its encoding state. Not thread-safe; one per model.
 */
export class GpuContext {
  /** The device. */
  readonly device: GPUDevice;
  /** The device's limits (the adapter's, requested in full). */
  readonly limits: GPUSupportedLimits;
  /** Adapter facts. */
  readonly facts: AdapterFacts;
  readonly #pipelines = new Map<string, GPUComputePipeline>();
  readonly #pool = new Map<number, GPUBuffer[]>();
  readonly #params: GPUBuffer;
  readonly #paramsHost = new ArrayBuffer(PARAMS_BYTES * PARAMS_SLOTS);
  #paramsUsed = 0;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #lost: string | null = null;
  #discarded: GPUBuffer[] = [];
  #prof: Profiler | null = null;
  /** Dispatches and copies encoded since creation (for tests and benches). */
  stats = { dispatches: 0, submits: 0, reads: 0, pipelines: 0, pipelineMs: 0 };

  private constructor(device: GPUDevice, facts: AdapterFacts) {
    this.device = device;
    this.limits = device.limits;
    this.facts = facts;
    this.#params = device.createBuffer({
      size: PARAMS_BYTES * PARAMS_SLOTS,
      usage: UNIFORM | COPY_DST,
    });
    device.lost.then((info) => {
      this.#lost = info.message || info.reason || "device lost";
    });
    if (facts.timestamps) {
      this.#prof = {
        set: device.createQuerySet({ type: "timestamp", count: QUERIES }),
        resolve: device.createBuffer({ size: QUERIES * 8, usage: QUERY_RESOLVE | COPY_SRC }),
        next: 0,
        spans: [],
        label: "other",
        totals: new Map(),
        pending: [],
      };
    }
  }

  /**
   * Opens the adapter and a device with the adapter's limits.
   *
   * @param opts Feature choices.
   * @returns The context.
   * @throws {GptqError} `WEBGPU_UNAVAILABLE` naming what is missing.
   */
  static async create(opts: GpuContextOptions = {}): Promise<GpuContext> {
    // Not `Navigator`: Workers type-check without it.
    const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
    if (!gpu) {
      throw new GptqError("WEBGPU_UNAVAILABLE", "this runtime has no navigator.gpu (WebGPU)", {
        hint: "use Deno 2 or a browser with WebGPU, or --backend wasm",
      });
    }
    let adapter: GPUAdapter | null = null;
    try {
      quietHeadlessWsi();
      adapter = await gpu.requestAdapter({
        powerPreference: opts.highPerformance === false ? "low-power" : "high-performance",
      });
    } catch (e) {
      throw new GptqError("WEBGPU_UNAVAILABLE", `requestAdapter failed: ${(e as Error).message}`, {
        hint:
          "install a Vulkan driver and loader (libvulkan1, mesa-vulkan-drivers), or use --backend wasm",
        cause: e,
      });
    }
    if (!adapter) {
      throw new GptqError(
        "WEBGPU_UNAVAILABLE",
        "no WebGPU adapter found (no Vulkan/Metal/DX12 device: is the Vulkan loader libvulkan1 and a driver installed?)",
        {
          hint:
            "apt-get install libvulkan1 mesa-vulkan-drivers (CPU) or a GPU driver, or use --backend wasm",
        },
      );
    }
    const features: GPUFeatureName[] = [];
    const f16 = opts.f16 !== false && adapter.features.has("shader-f16");
    const subgroups = opts.subgroups !== false &&
      adapter.features.has("subgroups" as GPUFeatureName);
    const timestamps = opts.timestamps === true && adapter.features.has("timestamp-query");
    if (f16) features.push("shader-f16");
    if (subgroups) features.push("subgroups" as GPUFeatureName);
    if (timestamps) features.push("timestamp-query");
    const requiredLimits: Record<string, number> = {};
    for (
      const k of [
        "maxBufferSize",
        "maxStorageBufferBindingSize",
        "maxComputeWorkgroupStorageSize",
        "maxComputeInvocationsPerWorkgroup",
        "maxComputeWorkgroupSizeX",
        "maxComputeWorkgroupSizeY",
        "maxComputeWorkgroupsPerDimension",
        "maxStorageBuffersPerShaderStage",
      ] as const
    ) requiredLimits[k] = adapter.limits[k];
    const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
    const info = adapter.info;
    const facts: AdapterFacts = {
      description: info.description || `${info.vendor} ${info.device}`.trim() || "unknown adapter",
      isFallback: isSoftware(
        info,
        (info as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
      ),
      f16,
      subgroups,
      timestamps,
    };
    return new GpuContext(device, facts);
  }

  #check(): void {
    if (this.#lost) {
      throw new GptqError("WEBGPU", `the WebGPU device was lost: ${this.#lost}`, {
        hint: "reload the model; use --backend wasm if it keeps happening",
      });
    }
  }

  /**
   * A compute pipeline for a kernel of `wgsl/`, compiled once and cached.
   *
   * @param name The WGSL file name without extension (e.g. `"norm"`).
   * @param entry The entry point.
   * @param constants Values of its `override` constants.
   * @param prelude Text put before the file (e.g. `enable f16;`, `const` switches).
   * @returns The pipeline.
   */
  pipeline(
    name: string,
    entry: string,
    constants: Record<string, number> = {},
    prelude = "",
  ): GPUComputePipeline {
    const key = `${name}|${entry}|${JSON.stringify(constants)}|${prelude}`;
    let p = this.#pipelines.get(key);
    if (p) return p;
    const src = WGSL[name];
    if (src === undefined) throw new Error(`bug: no WGSL kernel '${name}'`);
    const t0 = performance.now();
    const module = this.device.createShaderModule({ code: prelude + src, label: name });
    p = this.device.createComputePipeline({
      layout: "auto",
      compute: { module, entryPoint: entry, constants },
      label: `${name}.${entry}`,
    });
    this.stats.pipelines++;
    this.stats.pipelineMs += performance.now() - t0;
    this.#pipelines.set(key, p);
    return p;
  }

  /**
   * A storage buffer of at least `bytes` from the pool (contents undefined).
   *
   * @param bytes Size.
   * @returns The buffer.
   */
  buffer(bytes: number): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const free = this.#pool.get(size);
    if (free && free.length) return free.pop()!;
    this.#check();
    if (size > this.limits.maxBufferSize) {
      throw new GptqError(
        "WEBGPU",
        `a ${size}-byte buffer exceeds the adapter's maxBufferSize ${this.limits.maxBufferSize}`,
      );
    }
    return this.device.createBuffer({ size, usage: STORAGE });
  }

  /**
   * Returns a pooled buffer (safe while commands that use it are pending:
   * later users are ordered after them).
   *
   * @param buf The buffer.
   */
  release(buf: GPUBuffer): void {
    const list = this.#pool.get(buf.size);
    if (list) list.push(buf);
    else this.#pool.set(buf.size, [buf]);
  }

  /** Destroys every pooled buffer (after a long prefill, to give memory back). */
  trim(): void {
    for (const list of this.#pool.values()) for (const b of list) b.destroy();
    this.#pool.clear();
  }

  /**
   * A new storage buffer holding `data` (weights, uploads); never from the pool.
   *
   * @param data The bytes (padded with zeros to a multiple of 16).
   * @returns The buffer.
   */
  upload(data: ArrayBufferView): GPUBuffer {
    this.#check();
    const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
    if (size > this.limits.maxBufferSize) {
      throw new GptqError(
        "WEBGPU",
        `a ${size}-byte tensor exceeds the adapter's maxBufferSize ${this.limits.maxBufferSize}`,
      );
    }
    const buf = this.device.createBuffer({ size, usage: STORAGE, mappedAtCreation: true });
    new Uint8Array(buf.getMappedRange()).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    buf.unmap();
    return buf;
  }

  #passEncoder(): GPUComputePassEncoder {
    if (!this.#pass) {
      const prof = this.#prof;
      if (prof && prof.next + 2 > QUERIES) this.flush();
      this.#encoder ??= this.device.createCommandEncoder();
      if (prof) {
        const q = prof.next;
        prof.next += 2;
        prof.spans.push({ label: prof.label, q });
        this.#pass = this.#encoder.beginComputePass({
          timestampWrites: {
            querySet: prof.set,
            beginningOfPassWriteIndex: q,
            endOfPassWriteIndex: q + 1,
          },
        });
      } else {
        this.#pass = this.#encoder.beginComputePass();
      }
    }
    return this.#pass;
  }

  /**
   * Labels the dispatches encoded from now on, for {@linkcode gpuTimes}
   * (does nothing unless the context was created with `timestamps`).
   *
   * @param label E.g. `forward`, `hessian`, `solve`.
   */
  phase(label: string): void {
    const prof = this.#prof;
    if (!prof || prof.label === label) return;
    prof.label = label;
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
  }

  /**
   * Submits what is pending and returns the GPU time (ms) of every compute
   * pass so far, summed by {@linkcode phase} label; empty unless the context
   * was created with `timestamps` on an adapter that offers them.
   *
   * @returns Milliseconds by label (cumulative).
   */
  async gpuTimes(): Promise<Record<string, number>> {
    const prof = this.#prof;
    if (!prof) return {};
    this.flush();
    while (prof.pending.length) await prof.pending.shift();
    return Object.fromEntries(prof.totals);
  }

  #copyEncoder(): GPUCommandEncoder {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
    return this.#encoder ??= this.device.createCommandEncoder();
  }

  /**
   * Encodes one dispatch.
   *
   * @param pipeline From {@linkcode pipeline}.
   * @param bindings Storage bindings 1..n in order.
   * @param params The params struct's bytes (≤ {@linkcode PARAMS_BYTES}); u32/i32/f32 words.
   * @param groups Workgroup counts `[x, y?, z?]`.
   */
  dispatch(
    pipeline: GPUComputePipeline,
    bindings: Binding[],
    params: ArrayBuffer | ArrayBufferView,
    groups: [number, number?, number?],
  ): void {
    this.#check();
    if (this.#paramsUsed === PARAMS_SLOTS) this.flush();
    // The pass first: starting one may submit (a full timestamp query set) and reset the slots.
    const pass = this.#passEncoder();
    const bytes = params instanceof ArrayBuffer
      ? new Uint8Array(params)
      : new Uint8Array(params.buffer, params.byteOffset, params.byteLength);
    if (bytes.byteLength > PARAMS_BYTES) throw new Error("bug: params larger than a slot");
    const offset = this.#paramsUsed++ * PARAMS_BYTES;
    new Uint8Array(this.#paramsHost, offset, PARAMS_BYTES).fill(0).set(bytes);
    const entries: GPUBindGroupEntry[] = [{
      binding: 0,
      resource: { buffer: this.#params, offset, size: PARAMS_BYTES },
    }];
    bindings.forEach((b, i) => {
      entries.push({
        binding: i + 1,
        resource: "buffer" in b ? b : { buffer: b },
      });
    });
    const group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    const [x, y = 1, z = 1] = groups;
    if (x > max || y > max || z > max) {
      throw new Error(`bug: dispatch [${x}, ${y}, ${z}] exceeds ${max} workgroups per dimension`);
    }
    if (x > 0 && y > 0 && z > 0) pass.dispatchWorkgroups(x, y, z);
    this.stats.dispatches++;
  }

  /**
   * Encodes a buffer-to-buffer copy (ordered with the dispatches).
   *
   * @param src Source.
   * @param srcOffset Source byte offset (multiple of 4).
   * @param dst Destination.
   * @param dstOffset Destination byte offset (multiple of 4).
   * @param bytes Byte count (multiple of 4).
   */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.#check();
    if (bytes > 0) this.#copyEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /**
   * Encodes zero-filling a byte range (ordered with the dispatches).
   *
   * @param buf The buffer.
   * @param offset Byte offset (multiple of 4).
   * @param bytes Byte count (multiple of 4; default: to the end).
   */
  clear(buf: GPUBuffer, offset = 0, bytes?: number): void {
    this.#check();
    const n = bytes ?? buf.size - offset;
    if (n > 0) this.#copyEncoder().clearBuffer(buf, offset, n);
  }

  /**
   * Destroys a buffer that is not from the pool (uploads, weights) once the
   * commands encoded so far are submitted, so pending commands may still use it.
   *
   * @param buf The buffer.
   */
  discard(buf: GPUBuffer): void {
    if (this.#encoder) this.#discarded.push(buf);
    else buf.destroy();
  }

  /** Submits everything encoded so far (does not wait). */
  flush(): void {
    if (!this.#encoder) return;
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
    if (this.#paramsUsed > 0) {
      this.device.queue.writeBuffer(
        this.#params,
        0,
        this.#paramsHost,
        0,
        this.#paramsUsed * PARAMS_BYTES,
      );
    }
    const prof = this.#prof;
    let timing: { staging: GPUBuffer; spans: Profiler["spans"] } | null = null;
    if (prof && prof.spans.length) {
      const staging = this.device.createBuffer({
        size: prof.next * 8,
        usage: MAP_READ | COPY_DST,
      });
      this.#encoder.resolveQuerySet(prof.set, 0, prof.next, prof.resolve, 0);
      this.#encoder.copyBufferToBuffer(prof.resolve, 0, staging, 0, prof.next * 8);
      timing = { staging, spans: prof.spans };
      prof.spans = [];
      prof.next = 0;
    }
    this.device.queue.submit([this.#encoder.finish()]);
    this.#encoder = null;
    if (prof && timing) {
      const { staging, spans } = timing;
      prof.pending.push(
        staging.mapAsync(1 /* GPUMapMode.READ */).then(() => {
          const t = new BigUint64Array(staging.getMappedRange());
          for (const { label, q } of spans) {
            const ms = Number(t[q + 1]! - t[q]!) / 1e6;
            if (ms >= 0) prof.totals.set(label, (prof.totals.get(label) ?? 0) + ms);
          }
          staging.destroy();
        }),
      );
    }
    this.#paramsUsed = 0;
    this.stats.submits++;
    for (const b of this.#discarded) b.destroy();
    this.#discarded = [];
  }

  /**
   * Submits what is pending and reads `bytes` of `src` from `offset` back.
   *
   * @param src The buffer.
   * @param offset Byte offset (multiple of 4).
   * @param bytes Byte count (multiple of 4).
   * @returns A copy of the bytes.
   */
  async read(src: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const staging = this.device.createBuffer({ size, usage: MAP_READ | COPY_DST });
    this.copy(src, offset, staging, 0, Math.min(size, src.size - offset));
    this.flush();
    this.stats.reads++;
    try {
      await staging.mapAsync(1 /* GPUMapMode.READ */);
      this.#check();
      return staging.getMappedRange(0, size).slice(0, bytes);
    } finally {
      staging.destroy();
    }
  }

  /** Destroys the device (handles become unusable). */
  destroy(): void {
    if (this.#prof) {
      this.#prof.set.destroy();
      this.#prof.resolve.destroy();
    }
    for (const b of this.#discarded) b.destroy();
    this.#discarded = [];
    this.trim();
    this.#params.destroy();
    this.device.destroy();
  }
}
