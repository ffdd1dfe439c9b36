// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { GptqError } from "../errors.ts";
import { f16BitsToF32, f32ToF16Bits, fromFloat32, toFloat32 } from "../io/dtype.ts";
import { SafetensorsFile } from "../io/safetensors.ts";
import {
  loadWasm,
  type PackBits,
  relaxedSimdSupported,
  WASM_SHA256,
  wasmModule,
  wasmSimd,
} from "./mod.ts";
import { wasmByteLength, wasmBytes } from "./_generated/gptq_wasm.wasm.js";
import {
  committedHeader,
  GENERATED_FILES,
  parseHeader,
  sourceHash,
} from "../../tools/build_wasm.ts";

const ROOT = new URL("../../", import.meta.url);
const DATA = new URL("../shared/data/", ROOT);
const GOLDEN = new URL("golden/autogptq/", DATA);

function bits32(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** xorshift32 stream of random 32-bit patterns. */
function randomU32(n: number, seed: number): Uint32Array {
  const out = new Uint32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s;
  }
  return out;
}

function firstMismatch(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "lengths differ");
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

// ---------------------------------------------------------------- dtype ----

Deno.test("f16ToF32 matches dtype.ts and Float16Array on all 65536 patterns", async () => {
  const wasm = await loadWasm();
  const all = new Uint16Array(65536 + 3); // odd length exercises the scalar tail
  for (let i = 0; i < all.length; i++) all[i] = i & 0xffff;
  const got = wasm.f16ToF32(all);
  const want = new Float32Array(all.length);
  for (let i = 0; i < all.length; i++) want[i] = f16BitsToF32(all[i]!);
  // NaN payloads do not survive a trip through a JS number, so NaNs are
  // checked bit-wise against the widening rule (sign, all-ones exponent, payload << 13).
  const gotBits = bits32(got), wantBits = bits32(want);
  for (let i = 0; i < all.length; i++) {
    const h = all[i]!;
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff)) {
      wantBits[i] = (((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13)) >>> 0;
    }
  }
  assert.equal(firstMismatch(gotBits, wantBits), -1);
  // Independent reference: the engine's own Float16Array.
  const f16 = new Float16Array(all.buffer);
  for (let i = 0; i < all.length; i++) {
    const v = f16[i]!;
    if (Number.isNaN(v)) assert.ok(Number.isNaN(got[i]!), `pattern ${i}`);
    else assert.ok(Object.is(got[i], v), `pattern ${i}: ${got[i]} vs ${v}`);
  }
});

Deno.test("f32ToF16 rounds to nearest even like Math.f16round and dtype.ts", async () => {
  const wasm = await loadWasm();
  const n = 1_000_003;
  const src = new Float32Array(randomU32(n, 12345).buffer);
  // Scale half the values into the f16 range (incl. subnormals) so rounding is exercised.
  for (let i = 0; i < n; i += 2) src[i] = (src[i]! % 1) * 2 ** ((i % 44) - 26);
  const edge = [
    0,
    -0,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    65504,
    65519.99,
    65520,
    -65520,
    2 ** -24,
    2 ** -25,
    3 * 2 ** -25,
    2 ** -14 - 2 ** -25,
    Infinity,
    -Infinity,
    NaN,
  ];
  src.set(edge, 0);
  const got = wasm.f32ToF16(src);
  for (let i = 0; i < n; i++) {
    const x = src[i]!;
    assert.equal(got[i], f32ToF16Bits(x), `x=${x}`);
    if (!Number.isNaN(x)) {
      assert.ok(Object.is(f16BitsToF32(got[i]!), Math.f16round(x)), `x=${x}`);
    }
  }
  assert.deepEqual(
    Array.from(got.subarray(0, 9), (h) => h.toString(16)),
    ["0", "8000", "3c00", "3c02", "7bff", "7bff", "7c00", "fc00", "1"],
  );
});

Deno.test("bf16 widening is a shift and narrowing rounds to nearest even", async () => {
  const wasm = await loadWasm();
  const all = new Uint16Array(65536 + 5);
  for (let i = 0; i < all.length; i++) all[i] = i & 0xffff;
  const wide = bits32(wasm.bf16ToF32(all));
  for (let i = 0; i < all.length; i++) assert.equal(wide[i], (all[i]! << 16) >>> 0);
  const src = new Float32Array(randomU32(500_001, 777).buffer);
  const ties = new Uint32Array([0x3f808000, 0x3f818000, 0x3f808001, 0x7f7fffff, 0x7f800001]);
  src.set(new Float32Array(ties.buffer), 0);
  const got = wasm.f32ToBf16(src);
  const want = new Uint16Array(fromFloat32(src, "BF16").buffer);
  assert.equal(firstMismatch(got, want), -1);
  assert.deepEqual(Array.from(got.subarray(0, 5)), [0x3f80, 0x3f82, 0x3f81, 0x7f80, 0x7fc0]);
});

Deno.test("dtype kernels decode real fp16 and bf16 checkpoints like dtype.ts", async () => {
  const wasm = await loadWasm();
  for (const [dir, dtype] of [["llama", "F16"], ["gpt_neox", "BF16"]] as const) {
    const path = new URL(`golden/models/${dir}/model.safetensors`, DATA).pathname;
    const st = await SafetensorsFile.open(path);
    try {
      const info = st.infos().find((i) => i.dtype === dtype && i.shape.length === 2)!;
      assert.ok(info, `${dir} has a 2-D ${dtype} tensor`);
      const raw = await st.read(info.name);
      const u16 = new Uint16Array(raw.data.slice().buffer);
      const got = dtype === "F16" ? wasm.f16ToF32(u16) : wasm.bf16ToF32(u16);
      const want = toFloat32(raw.data, dtype);
      assert.equal(firstMismatch(bits32(got), bits32(want)), -1, `${dir}/${info.name}`);
      // And back: narrowing the widened values is the identity.
      const back = dtype === "F16" ? wasm.f32ToF16(got) : wasm.f32ToBf16(got);
      assert.equal(firstMismatch(back, u16), -1);
    } finally {
      st.close();
    }
  }
});

// ------------------------------------------------------------- packing ----

/** Bit-by-bit reference of the bitstream rule, written independently of the Rust code. */
function refPackStream(vals: ArrayLike<number>, bits: number): Int32Array {
  const out = new Int32Array((vals.length * bits) / 32);
  for (let k = 0; k < vals.length; k++) {
    for (let t = 0; t < bits; t++) {
      if ((vals[k]! >>> t) & 1) {
        const bit = k * bits + t;
        out[bit >>> 5]! |= 1 << (bit & 31);
      }
    }
  }
  return out;
}

Deno.test("packRows/packCols follow the bitstream rule for 2, 3, 4, 8 bits", async () => {
  const wasm = await loadWasm();
  for (const bits of [2, 3, 4, 8] as PackBits[]) {
    const mask = (1 << bits) - 1;
    // n = 13 is not a multiple of 4: covers the SIMD tail.
    const k = 96, n = 13;
    const codes = randomU32(k * n, bits * 101).map((v) => v & mask);
    const q = wasm.packRows(codes, k, n, bits);
    const kp = (k * bits) / 32;
    assert.equal(q.length, kp * n);
    for (let c = 0; c < n; c++) {
      const col = Array.from({ length: k }, (_, r) => codes[r * n + c]!);
      const want = refPackStream(col, bits);
      for (let r = 0; r < kp; r++) assert.equal(q[r * n + c], want[r], `bits ${bits} col ${c}`);
    }
    assert.deepEqual(wasm.unpackRows(q, k, n, bits), codes);

    const g = 3, nn = 64;
    const zc = randomU32(g * nn, bits * 7).map((v) => v & mask);
    const qz = wasm.packCols(zc, g, nn, bits);
    const np = (nn * bits) / 32;
    for (let r = 0; r < g; r++) {
      assert.deepEqual(
        qz.subarray(r * np, (r + 1) * np),
        refPackStream(zc.subarray(r * nn, (r + 1) * nn), bits),
      );
    }
    assert.deepEqual(wasm.unpackCols(qz, g, nn, bits), zc);
  }
});

Deno.test("packCols gives the documented symmetric v1 qzeros constants", async () => {
  const wasm = await loadWasm();
  const want: Record<number, number[]> = {
    2: [0x55555555],
    4: [0x77777777],
    8: [0x7f7f7f7f],
    3: [0xdb6db6db, 0xb6db6db6, 0x6db6db6d],
  };
  for (const bits of [2, 3, 4, 8] as PackBits[]) {
    const q = wasm.packCols(new Uint32Array(32).fill((1 << (bits - 1)) - 1), 1, 32, bits);
    const words = want[bits]!;
    assert.deepEqual(
      Array.from(q, (w) => w >>> 0),
      Array.from(q, (_, i) => words[i % words.length]),
    );
  }
});

interface GoldenCase {
  file: string;
  K: number;
  N: number;
  bits: string;
}

/** round-half-to-even, as torch.round. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const cases: GoldenCase[] =
  JSON.parse(await Deno.readTextFile(new URL("cases.json", GOLDEN))).cases;

for (const c of cases) {
  Deno.test(`wasm packer reproduces AutoGPTQ qweight/qzeros bit for bit: ${c.file}`, async () => {
    const wasm = await loadWasm();
    const bits = Number(c.bits) as PackBits;
    const { K, N } = c;
    const path = new URL(c.file, GOLDEN).pathname;
    const st = await SafetensorsFile.open(path);
    try {
      const Q = await st.readFloat32("Q"); // [N, K]
      const scale = await st.readFloat32("scale"); // [N, G]
      const zero = await st.readFloat32("zero"); // [N, G]
      const gIdx = new Int32Array((await st.read("packed_g_idx")).data.slice().buffer);
      const qweight = new Int32Array((await st.read("qweight")).data.slice().buffer);
      const qzeros = new Int32Array((await st.read("qzeros")).data.slice().buffer);
      const G = st.info("scale").shape[1]!;
      // QuantLinear.pack (gptq-reference §1.3): Q and scale cast to fp16,
      // scale_zeros = zero*scale in fp32, then round((Q + sz) / scale) in fp32.
      const codes = new Uint32Array(K * N);
      for (let k = 0; k < K; k++) {
        const g = gIdx[k]!;
        for (let n = 0; n < N; n++) {
          const s = scale[n * G + g]!;
          const sh = Math.f16round(s);
          const sz = Math.fround(zero[n * G + g]! * s);
          const num = Math.fround(Math.f16round(Q[n * K + k]!) + sz);
          codes[k * N + n] = roundEven(Math.fround(num / sh));
        }
      }
      const packed = wasm.packRows(codes, K, N, bits, { file: c.file, tensor: "qweight" });
      assert.equal(firstMismatch(packed, qweight), -1, "qweight differs");
      assert.deepEqual(wasm.unpackRows(qweight, K, N, bits), codes);
      // v1 qzeros: zero - 1, [G, N] packed along N.
      const zc = new Uint32Array(G * N);
      for (let g = 0; g < G; g++) for (let n = 0; n < N; n++) zc[g * N + n] = zero[n * G + g]! - 1;
      const pz = wasm.packCols(zc, G, N, bits, { file: c.file, tensor: "qzeros" });
      assert.equal(firstMismatch(pz, qzeros), -1, "qzeros differs");
      assert.deepEqual(wasm.unpackCols(qzeros, G, N, bits), zc);
    } finally {
      st.close();
    }
  });
}

Deno.test("pack errors are GptqErrors naming the tensor and the problem", async () => {
  const wasm = await loadWasm();
  const ctx = { file: "model.safetensors", tensor: "mlp.down_proj.qweight" };
  const catchErr = (f: () => unknown): GptqError => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof GptqError, String(e));
      return e;
    }
    throw new Error("expected a GptqError");
  };
  // stories260K's MLP: K = 172 is not a multiple of 32.
  const e1 = catchErr(() => wasm.packRows(new Uint32Array(172 * 64), 172, 64, 4, ctx));
  assert.equal(e1.code, "SHAPE");
  assert.match(
    e1.message,
    /^model\.safetensors: tensor 'mlp\.down_proj\.qweight': .*K = 172 is not a multiple of 32/,
  );
  const codes = new Uint32Array(64 * 32);
  codes[33 * 32 + 5] = 16;
  const e2 = catchErr(() => wasm.packRows(codes, 64, 32, 4, ctx));
  assert.equal(e2.code, "INVALID_ARGUMENT");
  assert.match(e2.message, /code 16 at row 33, column 5 does not fit in 4 bits/);
  // A v1 zero of 0 stored as -1 must be rejected, not silently corrupt neighbours.
  const zc = new Int32Array(32).fill(7);
  zc[3] = -1;
  const e3 = catchErr(() => wasm.packCols(zc, 1, 32, 4, { tensor: "qzeros" }));
  assert.match(e3.message, /code 4294967295 at row 0, column 3/);
  assert.match(e3.hint!, /gptq_v2/);
  assert.equal(catchErr(() => wasm.packRows(new Uint32Array(63), 32, 2, 4)).code, "SHAPE");
  assert.equal(catchErr(() => wasm.unpackCols(new Int32Array(3), 1, 64, 4)).code, "SHAPE");
  assert.equal(
    catchErr(() => wasm.packRows(new Uint32Array(64), 32, 2, 5 as PackBits)).code,
    "INVALID_ARGUMENT",
  );
  assert.equal(
    catchErr(() => wasm.packRows(new Uint32Array(64), 32.5, 2, 4)).code,
    "INVALID_ARGUMENT",
  );
});

// ------------------------------------------------------- module loading ----

Deno.test("loadWasm is cached and the embedded module matches its recorded hash", async () => {
  const a = await loadWasm();
  assert.equal(await loadWasm(), a);
  const bytes = wasmBytes();
  assert.equal(bytes.length, wasmByteLength);
  const sha = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  assert.equal(sha, WASM_SHA256);
  assert.ok((await wasmModule()) instanceof WebAssembly.Module);
  assert.equal(await wasmModule(), await wasmModule());
});

Deno.test("a Worker instantiates the compiled module it receives", async () => {
  const module = await wasmModule();
  const modUrl = new URL("./mod.ts", import.meta.url).href;
  const src = `import { loadWasm } from ${JSON.stringify(modUrl)};
self.onmessage = async (e) => {
  const wasm = await loadWasm({ module: e.data.module });
  self.postMessage(Array.from(wasm.f16ToF32(new Uint16Array([0x3c00, 0x4000]))));
};`;
  const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  try {
    const result = await new Promise<number[]>((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(e.message));
      };
      worker.postMessage({ module });
    });
    assert.deepEqual(result, [1, 2]);
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
  }
});

const CONTENT_TYPES: Record<string, string> = {
  ".ts": "application/typescript; charset=utf-8",
  ".js": "application/javascript; charset=utf-8",
};

Deno.test("src/wasm/mod.ts works when imported over http without --allow-read", async () => {
  const ac = new AbortController();
  const probe = `import { loadWasm } from "./src/wasm/mod.ts";
const wasm = await loadWasm();
const q = wasm.packRows(new Uint32Array(32).fill(5), 32, 1, 4);
console.log(JSON.stringify({ q: Array.from(q), f: Array.from(wasm.f16ToF32(new Uint16Array([0x3c00]))) }));`;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      if (path === "/probe.ts") {
        return new Response(probe, { headers: { "content-type": CONTENT_TYPES[".ts"]! } });
      }
      if (!path.startsWith("/src/") || path.includes("..")) {
        return new Response("no", { status: 404 });
      }
      const ext = path.slice(path.lastIndexOf("."));
      try {
        const body = await Deno.readFile(new URL(`.${path}`, ROOT));
        return new Response(body, {
          headers: { "content-type": CONTENT_TYPES[ext] ?? "application/octet-stream" },
        });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  const denoDir = await Deno.makeTempDir({ prefix: "gptq_wasm_remote_" });
  try {
    const base = `127.0.0.1:${server.addr.port}`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-config",
        "--no-lock",
        `--allow-net=127.0.0.1`,
        `--allow-import=${base}`,
        `http://${base}/probe.ts`,
      ],
      cwd: denoDir,
      env: { DENO_DIR: `${denoDir}/cache`, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, `subprocess failed:\n${stderr}`);
    const result = JSON.parse(new TextDecoder().decode(out.stdout).trim());
    assert.deepEqual(result, { q: [0x55555555, 0x55555555, 0x55555555, 0x55555555], f: [1] });
  } finally {
    ac.abort();
    await server.finished;
    await Deno.remove(denoDir, { recursive: true });
  }
});

Deno.test("committed wasm is not stale: source hash matches crates/ and Cargo files", async () => {
  const header = await committedHeader();
  assert.ok(header, "src/wasm/_generated/gptq_wasm.wasm.js has a header");
  for (const rel of GENERATED_FILES) {
    const h = parseHeader(await Deno.readTextFile(new URL(rel, ROOT)));
    assert.deepEqual(h, header, `${rel} header`);
  }
  const now = await sourceHash(header.toolchain);
  assert.equal(now, header.sourceHash, "wasm is stale: run deno task build:wasm");
});

Deno.test("wasmSimd picks relaxed SIMD where the engine has it, and GPTQ_WASM_SIMD overrides", async () => {
  const saved = Deno.env.get("GPTQ_WASM_SIMD");
  try {
    Deno.env.delete("GPTQ_WASM_SIMD");
    assert.equal(wasmSimd(), relaxedSimdSupported() ? "relaxed" : "baseline");
    Deno.env.set("GPTQ_WASM_SIMD", "baseline");
    assert.equal(wasmSimd(), "baseline");
    Deno.env.set("GPTQ_WASM_SIMD", "auto");
    assert.equal(wasmSimd(), relaxedSimdSupported() ? "relaxed" : "baseline");
    Deno.env.set("GPTQ_WASM_SIMD", "avx512");
    assert.throws(
      () => wasmSimd(),
      (e: unknown) => e instanceof GptqError && /GPTQ_WASM_SIMD=avx512/.test(e.message),
    );
  } finally {
    if (saved === undefined) Deno.env.delete("GPTQ_WASM_SIMD");
    else Deno.env.set("GPTQ_WASM_SIMD", saved);
  }
  // Deno 2 (V8) ships relaxed SIMD: both embedded modules compile, and differ.
  assert.ok(relaxedSimdSupported());
  const [a, b] = [await wasmModule("baseline"), await wasmModule("relaxed")];
  assert.ok(a instanceof WebAssembly.Module && b instanceof WebAssembly.Module);
  assert.notEqual(a, b);
  const loaded = await loadWasm();
  assert.equal(loaded.simd, saved === "baseline" ? "baseline" : "relaxed");
});
