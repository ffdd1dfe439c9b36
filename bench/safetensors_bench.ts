// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Safetensors read throughput against a raw sequential read of the same file.
 *
 * Run the report (writes a ~262 MB F16/F32 file with 100 tensors to a temp
 * dir, then times raw `Deno.open` + `read`, `SafetensorsFile.read` of every
 * tensor, and `readFloat32` of every tensor; best of 3, MB = 10^6 bytes):
 *
 * ```sh
 * deno run -A bench/safetensors_bench.ts [sizeMB]
 * ```
 *
 * Under `deno bench` (e.g. `deno task bench`) the same three cases are
 * registered as `Deno.bench` entries on a 64 MB file.
 *
 * @module
 */

import { SafetensorsFile } from "../src/io/safetensors.ts";
import { type NamedTensor, writeSafetensors } from "../src/io/safetensors_writer.ts";
import { fromFloat32 } from "../src/io/dtype.ts";

const MB = 1e6;
const TENSORS = 100;

/** Writes `totalBytes` of F32/F16 tensors (alternating) and returns the file's path. */
async function makeFixture(dir: string, totalBytes: number): Promise<string> {
  const path = `${dir}/bench.safetensors`;
  const perTensor = Math.floor(totalBytes / TENSORS / 4096) * 4096;
  let seed = 12345;
  async function* tensors(): AsyncGenerator<NamedTensor> {
    for (let i = 0; i < TENSORS; i++) {
      const f16 = i % 2 === 1;
      const numel = perTensor / (f16 ? 2 : 4);
      const vals = new Float32Array(numel);
      for (let j = 0; j < numel; j++) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        vals[j] = (seed / 2 ** 32 - 0.5) * 0.1;
      }
      const cols = 1024;
      yield {
        name: `model.layers.${i >> 1}.${f16 ? "mlp" : "attn"}.weight`,
        dtype: f16 ? "F16" : "F32",
        shape: [numel / cols, cols],
        data: fromFloat32(vals, f16 ? "F16" : "F32"),
      };
    }
  }
  await writeSafetensors(path, tensors(), { format: "pt" });
  return path;
}

async function rawRead(path: string): Promise<number> {
  using f = await Deno.open(path, { read: true });
  const buf = new Uint8Array(16 * 1024 * 1024);
  let total = 0;
  for (;;) {
    const n = await f.read(buf);
    if (n === null) break;
    total += n;
  }
  return total;
}

async function tensorRead(path: string): Promise<number> {
  using f = await SafetensorsFile.open(path);
  let total = 0;
  for (const name of f.names()) total += (await f.read(name)).data.byteLength;
  return total;
}

async function float32Read(path: string): Promise<number> {
  using f = await SafetensorsFile.open(path);
  let total = 0;
  for (const info of f.infos()) {
    await f.readFloat32(info.name);
    total += info.byteLength;
  }
  return total;
}

async function best(fn: () => Promise<number>, runs = 3): Promise<{ ms: number; bytes: number }> {
  let ms = Infinity;
  let bytes = 0;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    bytes = await fn();
    ms = Math.min(ms, performance.now() - t);
  }
  return { ms, bytes };
}

async function report(sizeMB: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "st-bench-" });
  try {
    const t = performance.now();
    const path = await makeFixture(dir, sizeMB * MB);
    const size = (await Deno.stat(path)).size;
    const writeMs = performance.now() - t;
    console.log(
      `fixture: ${(size / MB).toFixed(1)} MB, ${TENSORS} tensors (F32/F16), written in ${
        writeMs.toFixed(0)
      } ms incl. data generation`,
    );
    await rawRead(path); // warm the page cache so every case reads from memory
    const raw = await best(() => rawRead(path));
    const read = await best(() => tensorRead(path));
    const f32 = await best(() => float32Read(path));
    const line = (label: string, r: { ms: number; bytes: number }) => {
      const mbs = r.bytes / MB / (r.ms / 1000);
      const rawMbs = raw.bytes / MB / (raw.ms / 1000);
      console.log(
        `${label.padEnd(34)} ${r.ms.toFixed(1).padStart(8)} ms ${
          mbs.toFixed(0).padStart(7)
        } MB/s  ${(mbs / rawMbs).toFixed(2)}× raw`,
      );
    };
    line("raw Deno.open + read (16 MiB buf)", raw);
    line("SafetensorsFile.read (all)", read);
    line("SafetensorsFile.readFloat32 (all)", f32);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const sizeMB = Number(Deno.args[0] ?? 262);
  await report(sizeMB);
} else if (typeof Deno.bench === "function") {
  let fixture: Promise<string> | null = null;
  let dir: string | null = null;
  const get = (): Promise<string> =>
    fixture ??= Deno.makeTempDir({ prefix: "st-bench-" }).then((d) => {
      dir = d;
      return makeFixture(d, 64 * MB);
    });
  globalThis.addEventListener("unload", () => {
    if (dir) Deno.removeSync(dir, { recursive: true });
  });
  const bench = (name: string, fn: (p: string) => Promise<number>, baseline = false) =>
    Deno.bench({ name, group: "safetensors read 64 MB", baseline }, async (b) => {
      const p = await get();
      b.start();
      await fn(p);
      b.end();
    });
  bench("raw Deno.open + read", rawRead, true);
  bench("SafetensorsFile.read", tensorRead);
  bench("SafetensorsFile.readFloat32", float32Read);
}
