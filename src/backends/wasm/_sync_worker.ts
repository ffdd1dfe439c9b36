// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * The helper Worker of `_sync_pool.ts`: one wasm instance holding the second
 * half of the output rows of every large linear (dense, or GPTQ-packed: it
 * builds the fused kernel's layout of its own columns), started by
 * `node:worker_threads` with an {@linkcode InitMessage} as `workerData`. It
 * never returns to its event loop: it sleeps in `Atomics.wait` on the
 * command word, runs each command, publishes the command's sequence number
 * as done and `Atomics.notify`s the caller. Port messages (weights, new
 * shared buffers) are read synchronously with `receiveMessageOnPort`.
 *
 * @module
 */

import { receiveMessageOnPort, workerData } from "node:worker_threads";
import * as glue from "../../wasm/_generated/gptq_wasm.internal.js";
import { CTL, type InitMessage, OP, type PortMessage } from "./_sync_pool.ts";

/** The loop sleeps in slices so that terminate() can stop an idle Worker. */
const WAIT_SLICE_MS = 200;

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function loadWeight(m: Extract<PortMessage, { op: "load" | "loadGptq" }>): glue.WeightBuf {
  if (m.op === "loadGptq") {
    const w = glue.WeightBuf.from_gptq(
      m.qweight,
      m.qzeros,
      m.scales,
      m.gIdx,
      m.K,
      m.N,
      m.bits,
      m.v2,
      0,
      m.N,
      m.mode,
      m.act,
    );
    if (m.bias) w.set_bias(m.bias);
    return w;
  }
  const { rows, K, transposed } = m;
  let w: glue.WeightBuf;
  if (m.dtype === "F32") {
    const f = new Float32Array(m.data);
    w = transposed
      ? glue.WeightBuf.from_f32_kn(f, K, rows, 0, rows)
      : glue.WeightBuf.from_f32(f, rows, K);
  } else {
    const b = new Uint16Array(m.data);
    if (m.dtype === "F16") {
      w = transposed
        ? glue.WeightBuf.from_f16_kn(b, K, rows, 0, rows)
        : glue.WeightBuf.from_f16(b, rows, K);
    } else {
      w = transposed
        ? glue.WeightBuf.from_bf16_kn(b, K, rows, 0, rows)
        : glue.WeightBuf.from_bf16(b, rows, K);
    }
  }
  if (m.bias) w.set_bias(m.bias);
  return w;
}

function serve(init: InitMessage): void {
  const ctl = new Int32Array(init.ctl);
  const port = init.port;
  let memory: WebAssembly.Memory;
  try {
    memory = glue.initSync({ module: init.module }).memory;
  } catch (e) {
    port.postMessage({ error: `cannot instantiate the wasm module: ${errText(e)}` });
    Atomics.store(ctl, CTL.READY, 2);
    Atomics.notify(ctl, CTL.READY);
    return;
  }
  const weights = new Map<number, glue.WeightBuf>();
  let xs: Float32Array = new Float32Array(0), ys: Float32Array = new Float32Array(0);
  let xBuf = new glue.F32Buf(1), yBuf = new glue.F32Buf(1);
  let kBuf = new glue.F32Buf(1), vBuf = new glue.F32Buf(1);
  /** `b` if it holds `n` floats, else a new buffer of `n` (`b` freed). */
  const atLeast = (b: glue.F32Buf, n: number): glue.F32Buf => {
    if (b.len() >= n) return b;
    b.free();
    return new glue.F32Buf(n);
  };

  const receive = (): PortMessage => {
    for (let i = 0; i < 1000; i++) {
      const r = receiveMessageOnPort(port as never) as { message: PortMessage } | undefined;
      if (r) return r.message;
      Atomics.wait(ctl, CTL.SIZE - 1, 0, 1); // the message is in flight: 1 ms nap
    }
    throw new Error("a command announced a port message that never arrived");
  };

  const linear = (handle: number, M: number): void => {
    const w = weights.get(handle);
    if (!w) throw new Error(`weight handle ${handle} is not loaded in the helper Worker`);
    const rows = w.rows(), K = w.cols();
    const nx = M * K, ny = M * rows;
    xBuf = atLeast(xBuf, nx);
    yBuf = atLeast(yBuf, ny);
    new Float32Array(memory.buffer, xBuf.ptr(), nx).set(xs.subarray(0, nx));
    glue.Kernels.matmul(xBuf, M, w, 0, rows, yBuf, 0, rows);
    ys.set(new Float32Array(memory.buffer, yBuf.ptr(), ny));
  };

  const attention = (M: number): void => {
    const Hq = ctl[CTL.HQ]!, Hkv = ctl[CTL.HKV]!, D = ctl[CTL.D]!, past = ctl[CTL.PAST]!;
    const nq = M * Hq * D, nkv = (past + M) * Hkv * D;
    xBuf = atLeast(xBuf, nq);
    kBuf = atLeast(kBuf, nkv);
    vBuf = atLeast(vBuf, nkv);
    yBuf = atLeast(yBuf, nq);
    // Views after the allocations (which may grow wasm memory).
    new Float32Array(memory.buffer, xBuf.ptr(), nq).set(xs.subarray(0, nq));
    new Float32Array(memory.buffer, kBuf.ptr(), nkv).set(xs.subarray(nq, nq + nkv));
    new Float32Array(memory.buffer, vBuf.ptr(), nkv).set(xs.subarray(nq + nkv, nq + 2 * nkv));
    glue.Kernels.attention(xBuf, M, Hq, D, kBuf, vBuf, Hkv, past, 1 / Math.sqrt(D), yBuf);
    ys.set(new Float32Array(memory.buffer, yBuf.ptr(), nq));
  };

  Atomics.store(ctl, CTL.READY, 1);
  Atomics.notify(ctl, CTL.READY);
  let last = 0;
  for (;;) {
    // Sleep in slices: a Worker blocked in Atomics.wait ignores terminate(),
    // and would keep the process from exiting.
    Atomics.wait(ctl, CTL.CMD, last, WAIT_SLICE_MS);
    const seq = Atomics.load(ctl, CTL.CMD);
    if (seq === last) continue;
    last = seq;
    const op = ctl[CTL.OP]!, handle = ctl[CTL.HANDLE]!;
    let status = 0;
    try {
      if (op === OP.LINEAR) {
        linear(handle, ctl[CTL.M]!);
      } else if (op === OP.ATTENTION) {
        attention(ctl[CTL.M]!);
      } else if (op === OP.MESSAGE) {
        const m = receive();
        if (m.op === "load" || m.op === "loadGptq") {
          const w = loadWeight(m);
          weights.get(m.handle)?.free();
          weights.set(m.handle, w);
        } else {
          xs = new Float32Array(m.x);
          ys = new Float32Array(m.y);
        }
      } else if (op === OP.RELEASE) {
        weights.get(handle)?.free();
        weights.delete(handle);
      } else if (op !== OP.EXIT) {
        throw new Error(`unknown opcode ${op}`);
      }
    } catch (e) {
      status = 1;
      port.postMessage({ error: errText(e) });
    }
    ctl[CTL.STATUS] = status;
    Atomics.store(ctl, CTL.DONE, seq);
    Atomics.notify(ctl, CTL.DONE);
    if (op === OP.EXIT) break;
  }
  for (const w of weights.values()) w.free();
  weights.clear();
  xBuf.free();
  yBuf.free();
  kBuf.free();
  vBuf.free();
  port.close();
}

serve(workerData as InitMessage);
