// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The Worker side of {@linkcode MatmulPool} (`_matmul_pool.ts`): one wasm
 * instance per Worker, holding only its slice of output rows of every weight
 * it was given. Messages are handled one at a time, in order; every request
 * gets exactly one reply with its `id`.
 *
 * @module
 */

import { loadWasm } from "../../wasm/mod.ts";
import * as glue from "../../wasm/_generated/gptq_wasm.internal.js";
import type { WorkerReply, WorkerRequest } from "./_matmul_pool.ts";

interface WorkerScope {
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(msg: WorkerReply, transfer?: Transferable[]): void;
}

const scope = globalThis as unknown as WorkerScope;
const weights = new Map<number, glue.WeightBuf>();
let xBuf: glue.F32Buf | null = null;
let yBuf: glue.F32Buf | null = null;
let ready: Promise<unknown> | null = null;

/** Returns a persistent buffer of at least `len` values (reallocated only to grow). */
function ensure(buf: glue.F32Buf | null, len: number): glue.F32Buf {
  if (buf && buf.len() >= len) return buf;
  buf?.free();
  return new glue.F32Buf(Math.max(len, 1));
}

function loadWeight(req: Extract<WorkerRequest, { op: "load" }>): glue.WeightBuf {
  const { dtype, n0, n1, K, N, transposed } = req;
  const rows = n1 - n0;
  if (dtype === "F32") {
    const f = new Float32Array(req.data);
    return transposed
      ? glue.WeightBuf.from_f32_kn(f, K, N, n0, n1)
      : glue.WeightBuf.from_f32(f, rows, K);
  }
  const b = new Uint16Array(req.data);
  if (dtype === "F16") {
    return transposed
      ? glue.WeightBuf.from_f16_kn(b, K, N, n0, n1)
      : glue.WeightBuf.from_f16(b, rows, K);
  }
  return transposed
    ? glue.WeightBuf.from_bf16_kn(b, K, N, n0, n1)
    : glue.WeightBuf.from_bf16(b, rows, K);
}

async function handle(req: WorkerRequest): Promise<void> {
  switch (req.op) {
    case "init": {
      ready ??= loadWasm({ module: req.module });
      await ready;
      scope.postMessage({ id: req.id, ok: true });
      return;
    }
    case "load": {
      const w = loadWeight(req);
      if (req.bias) w.set_bias(req.bias);
      weights.get(req.handle)?.free();
      weights.set(req.handle, w);
      scope.postMessage({ id: req.id, ok: true, bytes: w.byte_len() });
      return;
    }
    case "matmul": {
      const w = weights.get(req.handle);
      if (!w) throw new Error(`weight handle ${req.handle} is not loaded in this worker`);
      const { m } = req;
      const rows = w.rows();
      xBuf = ensure(xBuf, req.x.length);
      yBuf = ensure(yBuf, m * rows);
      xBuf.write(0, req.x);
      glue.Kernels.matmul(xBuf, m, w, 0, rows, yBuf, 0, rows);
      const y = yBuf.read(0, m * rows);
      scope.postMessage({ id: req.id, ok: true, y }, [y.buffer as ArrayBuffer]);
      return;
    }
    case "release": {
      weights.get(req.handle)?.free();
      weights.delete(req.handle);
      scope.postMessage({ id: req.id, ok: true });
      return;
    }
  }
}

scope.onmessage = (e: MessageEvent<WorkerRequest>): void => {
  const req = e.data;
  handle(req).catch((err: unknown) => {
    scope.postMessage({
      id: req.id,
      ok: false,
      message: err instanceof Error ? err.message : String(err),
    });
  });
};
