// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Cheap, quiet detection of a usable CUDA/HIP device: opens the kernel
 * library, asks for the device count and checks that the library has code for
 * the device's architecture. Nothing is printed and no device context is
 * created when there is no driver, so `--backend auto` can call it on every
 * start.
 *
 * @module
 */

import {
  ABI_VERSION,
  type GpuDeviceInfo,
  GpuLibrary,
  type GpuLibraryKind,
  libraryPath,
} from "./ffi.ts";
import { STATUS_KIND } from "./ffi.ts";

/** Why a CUDA/HIP backend is unavailable. */
export type CudaUnavailableReason =
  /** The library file (or a dependency such as ROCm's libamdhip64) cannot be loaded. */
  | "library-missing"
  /** No GPU driver (`cudaErrorInsufficientDriver`, 35: no libcuda.so.1, or one too old). */
  | "no-driver"
  /** A driver but no device (`cudaErrorNoDevice`, 100, or a count of 0). */
  | "no-device"
  /** The device's architecture is not in the fat binary (`cudaErrorNoKernelImageForDevice`). */
  | "no-kernel-image"
  /** Anything else (permissions, an ABI mismatch, another runtime error). */
  | "error";

/** What {@linkcode probeCuda} found. */
export type CudaProbe =
  | {
    /** A device is usable. */
    ok: true;
    /** The build that was loaded. */
    kind: GpuLibraryKind;
    /** The library file. */
    library: string;
    /** Every device the runtime sees. */
    devices: GpuDeviceInfo[];
    /** The device that was checked (and that a backend would use). */
    device: GpuDeviceInfo;
    /** Driver version (e.g. 13000 for CUDA 13.0). */
    driverVersion: number;
    /** Runtime version the library was built with. */
    runtimeVersion: number;
  }
  | {
    /** Nothing usable. */
    ok: false;
    /** The build that was asked for. */
    kind: GpuLibraryKind;
    /** The typed reason. */
    reason: CudaUnavailableReason;
    /** One line for the user. */
    message: string;
  };

/** Options of {@linkcode probeCuda}. */
export interface ProbeOptions {
  /** The build: `cuda` (default), `hip`, or `hip-cpu` (the CPU emulation used in tests). */
  kind?: GpuLibraryKind;
  /** The library file (default: {@linkcode libraryPath}). */
  libraryPath?: string;
  /** The device index (default 0). */
  device?: number;
}

function version(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}

/**
 * Checks whether a CUDA (or HIP) device can run the toolkit's kernels here.
 *
 * @example
 * ```ts
 * import { probeCuda } from "./probe.ts";
 * const p = probeCuda();
 * console.log(p.ok ? `cuda: ${p.device.name}` : `no cuda (${p.reason}): ${p.message}`);
 * ```
 *
 * @param opts The build, library file and device.
 * @returns The devices, or a typed reason and a one-line message.
 */
export function probeCuda(opts: ProbeOptions = {}): CudaProbe {
  const kind = opts.kind ?? "cuda";
  const gpu = kind === "hip" ? "HIP (AMD)" : kind === "hip-cpu" ? "HIP-CPU" : "CUDA";
  const fail = (reason: CudaUnavailableReason, message: string): CudaProbe => ({
    ok: false,
    kind,
    reason,
    message,
  });
  let path = opts.libraryPath;
  if (!path) {
    const p = libraryPath(kind);
    if ("reason" in p) return fail("library-missing", p.reason);
    path = p.path;
  }
  let lib: GpuLibrary;
  try {
    lib = GpuLibrary.open(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      return fail("error", `loading ${gpu} kernels needs --allow-ffi (${(e as Error).message})`);
    }
    const msg = (e as Error).message;
    const build = kind === "cuda" ? "deno task build:cuda" : "deno task build:hip";
    if (/libamdhip64|libhsa/.test(msg)) {
      return fail("library-missing", `the HIP runtime (ROCm) is not installed: ${msg}`);
    }
    return fail("library-missing", `no ${gpu} kernel library at ${path} (run ${build}): ${msg}`);
  }
  if (lib.symbols.gptq_abi_version() !== ABI_VERSION) {
    return fail(
      "error",
      `${path} speaks ABI v${lib.symbols.gptq_abi_version()}, this toolkit v${ABI_VERSION} ` +
        "(rebuild it: deno task build:cuda)",
    );
  }
  const S = lib.symbols;
  const drv = new Int32Array(1), rt = new Int32Array(1);
  S.gptq_versions(drv, rt);
  const count = new Int32Array(1);
  const status = S.gptq_device_count(count);
  const kindOf = (s: number) => S.gptq_status_kind(s);
  if (status !== 0) {
    const k = kindOf(status);
    if (k === STATUS_KIND.noDriver) {
      const driver = kind === "hip" ? "AMD GPU driver (amdgpu/ROCm)" : "NVIDIA driver";
      return fail(
        "no-driver",
        drv[0] === 0
          ? `no ${driver} found (${kind === "cuda" ? "libcuda.so.1 is missing" : lib.lastError()})`
          : `the ${driver} (CUDA ${version(drv[0]!)}) is older than the runtime ` +
            `(CUDA ${version(rt[0]!)}): update the driver`,
      );
    }
    if (k === STATUS_KIND.noDevice) return fail("no-device", `no ${gpu} device found`);
    return fail("error", `${gpu} device query failed: ${lib.lastError()}`);
  }
  if (count[0] === 0) return fail("no-device", `no ${gpu} device found`);
  const dev = opts.device ?? 0;
  if (dev < 0 || dev >= count[0]!) {
    return fail("no-device", `${gpu} device ${dev} does not exist (${count[0]} found)`);
  }
  let devices: GpuDeviceInfo[];
  try {
    devices = Array.from({ length: count[0]! }, (_, i) => lib.deviceInfo(i));
  } catch (e) {
    return fail("error", (e as Error).message);
  }
  const device = devices[dev]!;
  const img = S.gptq_check_kernel_image(dev);
  if (img !== 0) {
    if (kindOf(img) === STATUS_KIND.noKernelImage) {
      return fail(
        "no-kernel-image",
        `the ${gpu} library has no code for ${device.name} (${device.arch}); it was built for ` +
          (kind === "cuda" ? "sm_80 and sm_90 (+ compute_90 PTX)" : "gfx90a and gfx1030") +
          `: rebuild with your architecture`,
      );
    }
    return fail("error", `${gpu} kernel check failed: ${lib.lastError()}`);
  }
  return {
    ok: true,
    kind: lib.kind,
    library: path,
    devices,
    device,
    driverVersion: drv[0]!,
    runtimeVersion: rt[0]!,
  };
}

/**
 * A device in words: "NVIDIA H200, 139.8 GiB, sm_90".
 *
 * @example
 * ```ts
 * import { describeDevice } from "./probe.ts";
 * console.log(describeDevice({ index: 0, name: "NVIDIA H200", arch: "sm_90", totalBytes: 150e9, major: 9, minor: 0, multiprocessors: 132 }));
 * ```
 *
 * @param d The device.
 * @returns Its name, memory and architecture.
 */
export function describeDevice(d: GpuDeviceInfo): string {
  return `${d.name}, ${(d.totalBytes / 2 ** 30).toFixed(1)} GiB, ${d.arch}`;
}
