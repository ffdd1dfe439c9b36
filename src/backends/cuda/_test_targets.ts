// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Test helper: every CUDA kernel test is registered once per build of the
 * kernels: `cuda` (a real NVIDIA GPU), `hip` (a real AMD GPU) and `hip-cpu`
 * (the same sources run on the CPU by HIP-CPU, built by
 * `deno task build:hip --cpu`). A target that cannot run here is registered
 * with `ignore: true`, a name that says why ("skipped: no CUDA device: …")
 * and a warning printed once, so no GPU test ever passes silently.
 *
 * @module
 */

import { hipSourceHash } from "../../../tools/build_hip.ts";
import { createCudaBackend, type CudaBackend, probeCuda } from "./cuda_backend.ts";
import { type GpuLibraryKind, libraryPath } from "./ffi.ts";

/** One build of the kernels and whether it can run here. */
export interface Target {
  /** The build. */
  kind: GpuLibraryKind;
  /** "" when it runs, else " (skipped: …)" to append to test names. */
  skip: string;
}

const NO_DEVICE: Record<GpuLibraryKind, string> = {
  cuda: "no CUDA device",
  hip: "no HIP device",
  "hip-cpu": "HIP-CPU library not usable",
};

async function hipCpuStale(): Promise<string | null> {
  const p = libraryPath("hip-cpu");
  if ("reason" in p) return p.reason;
  try {
    const m = JSON.parse(await Deno.readTextFile(p.path.replace(/\.so$/, ".json")));
    if (m.sourceHash !== await hipSourceHash("cpu")) {
      return "ffi/build/libgptq_hipcpu.so is stale: run deno task build:hip --cpu";
    }
    return null;
  } catch {
    return "not built: run deno task build:hip --cpu (needs g++ and libtbb-dev)";
  }
}

async function target(kind: GpuLibraryKind, file: string): Promise<Target> {
  let why: string | null = kind === "hip-cpu" ? await hipCpuStale() : null;
  if (!why) {
    const p = probeCuda({ kind });
    if (!p.ok) why = p.message;
  }
  if (why) {
    console.warn(`${file}: ${kind} tests skipped: ${NO_DEVICE[kind]}: ${why}`);
    return { kind, skip: ` (skipped: ${NO_DEVICE[kind]}: ${why})` };
  }
  return { kind, skip: "" };
}

/**
 * The three targets with their skip reasons (probed once per test file).
 *
 * @param file The test file's name, for the printed reasons.
 * @returns cuda, hip, hip-cpu.
 */
export async function targets(file: string): Promise<Target[]> {
  return [
    await target("cuda", file),
    await target("hip", file),
    await target("hip-cpu", file),
  ];
}

const backends = new Map<GpuLibraryKind, CudaBackend>();

/**
 * The shared backend of a target (one per test file and target).
 *
 * @param kind The build.
 * @returns The backend.
 */
export function backendFor(kind: GpuLibraryKind): CudaBackend {
  let be = backends.get(kind);
  if (!be) backends.set(kind, be = createCudaBackend({ kind }));
  return be;
}

/** Disposes the shared backends (the last test of a file calls it). */
export function disposeBackends(): void {
  for (const be of backends.values()) be.dispose();
  backends.clear();
}

/**
 * Registers `fn` once per target, ignored (with the reason in its name) where
 * the target cannot run.
 *
 * @param ts The targets.
 * @param name The test's name.
 * @param fn The test, given the target's backend.
 */
export function targetTest(
  ts: Target[],
  name: string,
  fn: (be: CudaBackend, t: Deno.TestContext, kind: GpuLibraryKind) => Promise<void> | void,
): void {
  for (const { kind, skip } of ts) {
    Deno.test({
      name: `${kind}: ${name}${skip}`,
      ignore: skip !== "",
      sanitizeResources: false,
      sanitizeOps: false,
      fn: (t) => fn(backendFor(kind), t, kind),
    });
  }
}
