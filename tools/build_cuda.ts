// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Reproducible build of the CUDA kernel library `ffi/lib/libgptq_cuda.so`
 * (committed, like the wasm: users need only the NVIDIA driver).
 *
 * ```sh
 * deno task build:cuda          # install nvcc if missing, build, write ffi/lib/
 * deno task check:cuda          # fail if the committed library is stale
 * ```
 *
 * - nvcc comes from PyPI wheels (`NVCC_PACKAGES`, pinned) installed into the
 *   project-local venv `.tools/cuda-venv` when it is missing; no GPU and no
 *   system CUDA are needed.
 * - One fat binary: SASS for sm_80 (A100) and sm_90 (H100/H200) plus
 *   compute_90 PTX (newer GPUs JIT it), the CUDA runtime linked statically
 *   (`-cudart static`: the library needs only libcuda.so.1 from the driver),
 *   only the `gptq_*` symbols exported, stripped.
 * - The sources are copied to a fixed folder before compiling: nvcc embeds
 *   names derived from the source paths, and the fixed path makes the output
 *   byte-identical wherever the checkout is (checked by `--check`).
 * - `ffi/lib/libgptq_cuda.json` records the source hash (sha256 over
 *   `ffi/src/*`, `ffi/include/*`, the build settings and the nvcc and host
 *   compiler versions), the toolchain and the library's sha256 and size.
 *
 * `--check` recomputes the source hash with the recorded toolchain and exits 1
 * with "CUDA library is stale: run deno task build:cuda" when the sources or
 * settings changed, or when the library is not the recorded one; then it
 * rebuilds in a temporary folder and compares bytes (a difference fails when
 * the local toolchain equals the recorded one, and is a warning otherwise).
 *
 * @module
 */

const ROOT_URL = new URL("../", import.meta.url);
const OUT = "ffi/lib/libgptq_cuda.so";
const MANIFEST = "ffi/lib/libgptq_cuda.json";
const VENV = ".tools/cuda-venv";
const FIXED_BUILD_DIR = "/tmp/gptq-cuda-build";
/**
 * nvlink records its library paths in the binary, and nvcc derives them from its own
 * location: a fixed symlink to the toolkit keeps the output independent of where the
 * checkout (and its .tools/cuda-venv) lives.
 */
const FIXED_TOOLKIT = "/tmp/gptq-cuda-toolkit";

/** The PyPI wheels that make up nvcc (pinned to CUDA 13.0, the lent GPUs' driver 580). */
export const NVCC_PACKAGES: readonly string[] = [
  "nvidia-cuda-nvcc==13.0.88",
  "nvidia-cuda-runtime==13.0.88",
  "nvidia-cuda-crt==13.0.88",
  "nvidia-nvvm==13.0.88",
  "nvidia-cuda-cccl==13.0.85",
];

/** Build settings; part of the source hash. */
export const BUILD_CONFIG = {
  recipe: "copy to a fixed dir, toolkit via a fixed symlink → nvcc fat binary → strip (v2)",
  nvccArgs: [
    "-O3",
    "-std=c++17",
    "-shared",
    "-Xcompiler",
    "-fPIC,-fvisibility=hidden",
    "-cudart",
    "static",
    "--threads",
    "2",
    "-gencode",
    "arch=compute_80,code=sm_80",
    "-gencode",
    "arch=compute_90,code=sm_90",
    "-gencode",
    "arch=compute_90,code=compute_90",
    "-Iffi/include",
    "-Xlinker",
    "-s",
  ],
} as const;

/** What `ffi/lib/libgptq_cuda.json` records. */
export interface CudaManifest {
  /** sha256 of sources, settings and toolchain. */
  sourceHash: string;
  /** nvcc and host compiler versions. */
  toolchain: string;
  /** sha256 of the library. */
  sha256: string;
  /** Its size in bytes. */
  bytes: number;
  /** The GPU targets. */
  targets: string;
}

function rootPath(rel: string): string {
  return decodeURIComponent(new URL(rel, ROOT_URL).pathname);
}

async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${dec.decode(out.stderr)}`);
  }
  return dec.decode(out.stdout) + dec.decode(out.stderr);
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

/** The nvcc binary of the venv, or null. */
async function findNvcc(): Promise<string | null> {
  const lib = rootPath(`${VENV}/lib`);
  if (!(await exists(lib))) return null;
  for await (const e of Deno.readDir(lib)) {
    const p = `${lib}/${e.name}/site-packages/nvidia/cu13/bin/nvcc`;
    if (e.name.startsWith("python") && await exists(p)) return p;
  }
  return null;
}

/**
 * The venv's nvcc, installed from PyPI first when missing.
 *
 * @example
 * ```ts ignore
 * import { ensureNvcc } from "./build_cuda.ts";
 * console.log(await ensureNvcc()); // .../.tools/cuda-venv/lib/python3.11/site-packages/nvidia/cu13/bin/nvcc
 * ```
 *
 * @returns The path of nvcc.
 */
export async function ensureNvcc(): Promise<string> {
  let nvcc = await findNvcc();
  if (nvcc) return nvcc;
  console.error(`installing nvcc into ${VENV} (${NVCC_PACKAGES.join(" ")}) ...`);
  await run("python3", ["-m", "venv", rootPath(VENV)]);
  await run(rootPath(`${VENV}/bin/pip`), ["install", "-q", ...NVCC_PACKAGES]);
  nvcc = await findNvcc();
  if (!nvcc) throw new Error(`nvcc not found in ${VENV} after installing ${NVCC_PACKAGES}`);
  return nvcc;
}

/**
 * nvcc's and the host compiler's versions in one line.
 *
 * @param nvcc The nvcc binary.
 * @returns e.g. "nvcc 13.0.88; g++ 12.2.0".
 */
export async function toolchainVersion(nvcc: string): Promise<string> {
  const v = /V(\d+\.\d+\.\d+)/.exec(await run(nvcc, ["--version"]))?.[1] ?? "unknown";
  const g = (await run("g++", ["-dumpfullversion"])).trim();
  return `nvcc ${v}; g++ ${g}`;
}

/** The files hashed and compiled (relative to the root), sorted. */
async function listSources(): Promise<string[]> {
  const out: string[] = [];
  for (const dir of ["ffi/src", "ffi/include"]) {
    for await (const e of Deno.readDir(rootPath(dir))) {
      if (e.isFile) out.push(`${dir}/${e.name}`);
    }
  }
  return out.sort();
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The source hash: sha256 over every source file (path and bytes), the build
 * settings and the toolchain versions.
 *
 * @example
 * ```ts ignore
 * import { sourceHash } from "./build_cuda.ts";
 * console.log(await sourceHash("nvcc 13.0.88; g++ 12.2.0"));
 * ```
 *
 * @param toolchain The toolchain line.
 * @returns The hex sha256.
 */
export async function sourceHash(toolchain: string): Promise<string> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const rel of await listSources()) {
    parts.push(enc.encode(`${rel}\0`), await Deno.readFile(rootPath(rel)), enc.encode("\0"));
  }
  parts.push(enc.encode(JSON.stringify(BUILD_CONFIG)), enc.encode(toolchain));
  const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) all.set(p, (o += p.length) - p.length);
  return await sha256(all);
}

/**
 * Compiles the library into `dest`.
 *
 * @param nvcc The nvcc binary.
 * @param dest The output file.
 */
async function compile(nvcc: string, dest: string): Promise<void> {
  await Deno.remove(FIXED_BUILD_DIR, { recursive: true }).catch(() => {});
  const sources = await listSources();
  for (const rel of sources) {
    const to = `${FIXED_BUILD_DIR}/${rel}`;
    await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(rootPath(rel), to);
  }
  await Deno.remove(FIXED_TOOLKIT).catch(() => {});
  await Deno.symlink(nvcc.replace(/\/bin\/nvcc$/, ""), FIXED_TOOLKIT);
  const cu = sources.filter((s) => s.endsWith(".cu"));
  await run(
    `${FIXED_TOOLKIT}/bin/nvcc`,
    [...BUILD_CONFIG.nvccArgs, `-L${FIXED_TOOLKIT}/lib`, "-o", "out.so", ...cu],
    FIXED_BUILD_DIR,
  );
  await Deno.copyFile(`${FIXED_BUILD_DIR}/out.so`, dest);
  await Deno.remove(FIXED_BUILD_DIR, { recursive: true });
}

async function build(): Promise<void> {
  const t0 = performance.now();
  const nvcc = await ensureNvcc();
  const toolchain = await toolchainVersion(nvcc);
  await Deno.mkdir(rootPath("ffi/lib"), { recursive: true });
  await compile(nvcc, rootPath(OUT));
  const bytes = await Deno.readFile(rootPath(OUT));
  const manifest: CudaManifest = {
    sourceHash: await sourceHash(toolchain),
    toolchain,
    sha256: await sha256(bytes),
    bytes: bytes.length,
    targets: "sm_80, sm_90, compute_90 (PTX)",
  };
  await Deno.writeTextFile(rootPath(MANIFEST), JSON.stringify(manifest, null, 2) + "\n");
  console.log(
    `built ${OUT}: ${(bytes.length / 2 ** 20).toFixed(2)} MiB, ${toolchain}, ` +
      `${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
}

async function check(): Promise<number> {
  const stale = (why: string) => {
    console.error(`CUDA library is stale: run deno task build:cuda (${why})`);
    return 1;
  };
  let manifest: CudaManifest;
  let bytes: Uint8Array;
  try {
    manifest = JSON.parse(await Deno.readTextFile(rootPath(MANIFEST)));
    bytes = await Deno.readFile(rootPath(OUT));
  } catch (e) {
    return stale(`cannot read ${OUT} or ${MANIFEST}: ${(e as Error).message}`);
  }
  if (await sourceHash(manifest.toolchain) !== manifest.sourceHash) {
    return stale("ffi/src, ffi/include or the build settings changed since it was built");
  }
  if (await sha256(bytes) !== manifest.sha256) {
    return stale(`${OUT} is not the library recorded in ${MANIFEST}`);
  }
  const nvcc = await ensureNvcc();
  const local = await toolchainVersion(nvcc);
  const tmp = await Deno.makeTempFile({ suffix: ".so" });
  try {
    await compile(nvcc, tmp);
    const rebuilt = await Deno.readFile(tmp);
    if (await sha256(rebuilt) !== manifest.sha256) {
      if (local === manifest.toolchain) {
        return stale(`a rebuild with the same toolchain (${local}) differs from ${OUT}`);
      }
      console.warn(
        `WARNING: the rebuild differs, but the toolchain differs too (${local} here, ` +
          `${manifest.toolchain} recorded); the source hash matches`,
      );
    }
  } finally {
    await Deno.remove(tmp);
  }
  console.log(
    `${OUT} is up to date (${(bytes.length / 2 ** 20).toFixed(2)} MiB, ${manifest.toolchain})`,
  );
  return 0;
}

if (import.meta.main) {
  Deno.exit(Deno.args.includes("--check") ? await check() : (await build(), 0));
}
