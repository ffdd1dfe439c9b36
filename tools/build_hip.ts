// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Builds the kernels of `ffi/src/*.cu` for AMD GPUs with HIP, or for the CPU
 * with HIP-CPU (tests). Outputs go to the ignored folder `ffi/build/`: a HIP
 * library is built where ROCm is installed, never committed.
 *
 * ```sh
 * deno task build:hip            # ffi/build/libgptq_hip.so     (hipcc; gfx90a + gfx1030)
 * deno task build:hip --cpu      # ffi/build/libgptq_hipcpu.so  (g++ + vendored HIP-CPU + TBB)
 * ```
 *
 * - HIP: Debian's `hipcc` (`apt-get install hipcc`, ROCm 5.2, clang 15) or
 *   ROCm's; targets gfx90a (MI200, wave64) and gfx1030 (RDNA2, wave32). Set
 *   `GPTQ_HIP_ARCHS=gfx942,...` for others your hipcc supports. The library
 *   links ROCm's `libamdhip64.so`, needed at run time.
 * - HIP-CPU: the same sources compiled by g++ against the headers vendored in
 *   `ffi/third_party/hip-cpu/` (`-DGPTQ_HIP_CPU`), linked with TBB
 *   (`apt-get install libtbb-dev`). It runs every kernel on the CPU so that CI
 *   can test them against the TypeScript reference; it is slow and only a
 *   functional check.
 *
 * Each build writes `<library>.json` with the source hash (sources + settings)
 * so tests can tell a stale build from a current one ({@linkcode hipSourceHash}).
 *
 * @module
 */

const ROOT_URL = new URL("../", import.meta.url);

/** Settings per target; part of the source hash. */
export const HIP_CONFIG = {
  hip: {
    out: "ffi/build/libgptq_hip.so",
    compiler: "hipcc",
    args: [
      "-x",
      "hip",
      "-O3",
      "-std=c++17",
      "-fPIC",
      "-shared",
      "-fvisibility=hidden",
      "-Iffi/include",
    ],
    archs: ["gfx90a", "gfx1030"],
  },
  cpu: {
    out: "ffi/build/libgptq_hipcpu.so",
    compiler: "g++",
    args: [
      "-x",
      "c++",
      "-O2",
      "-std=c++17",
      "-fPIC",
      "-shared",
      "-fvisibility=hidden",
      "-DGPTQ_HIP_CPU",
      "-Iffi/third_party/hip-cpu/include",
      "-Iffi/include",
      "-w",
    ],
    archs: [],
  },
} as const;

function rootPath(rel: string): string {
  return decodeURIComponent(new URL(rel, ROOT_URL).pathname);
}

async function sources(): Promise<string[]> {
  const out: string[] = [];
  for (const dir of ["ffi/src", "ffi/include"]) {
    for await (const e of Deno.readDir(rootPath(dir))) if (e.isFile) out.push(`${dir}/${e.name}`);
  }
  return out.sort();
}

/**
 * sha256 over the kernel sources and a target's settings (what `<library>.json` records).
 *
 * @example
 * ```ts ignore
 * import { hipSourceHash } from "./build_hip.ts";
 * console.log(await hipSourceHash("cpu"));
 * ```
 *
 * @param target `hip` or `cpu`.
 * @returns The hex sha256.
 */
export async function hipSourceHash(target: "hip" | "cpu"): Promise<string> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const rel of await sources()) {
    parts.push(enc.encode(`${rel}\0`), await Deno.readFile(rootPath(rel)), enc.encode("\0"));
  }
  parts.push(enc.encode(JSON.stringify(HIP_CONFIG[target])));
  const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) all.set(p, (o += p.length) - p.length);
  const d = await crypto.subtle.digest("SHA-256", all);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function main(): Promise<number> {
  const target = Deno.args.includes("--cpu") ? "cpu" : "hip";
  const cfg = HIP_CONFIG[target];
  const t0 = performance.now();
  const cu = (await sources()).filter((s) => s.endsWith(".cu"));
  let archs: string[] = [...cfg.archs];
  const env = Deno.env.get("GPTQ_HIP_ARCHS");
  if (target === "hip" && env) archs = env.split(",").map((s) => s.trim()).filter(Boolean);
  const args = [
    ...cfg.args,
    ...archs.map((a) => `--offload-arch=${a}`),
    "-o",
    cfg.out,
    ...cu,
    ...(target === "cpu" ? ["-ltbb", "-lpthread"] : []),
  ];
  await Deno.mkdir(rootPath("ffi/build"), { recursive: true });
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cfg.compiler, { args, cwd: rootPath("."), stderr: "piped" })
      .output();
  } catch (e) {
    const pkg = target === "hip" ? "hipcc" : "g++ libtbb-dev";
    console.error(`${cfg.compiler} not found (${(e as Error).message}): apt-get install ${pkg}`);
    return 1;
  }
  if (!out.success) {
    console.error(new TextDecoder().decode(out.stderr));
    console.error(`${cfg.compiler} failed`);
    return 1;
  }
  const st = await Deno.stat(rootPath(cfg.out));
  await Deno.writeTextFile(
    rootPath(cfg.out.replace(/\.so$/, ".json")),
    JSON.stringify({ sourceHash: await hipSourceHash(target), archs, bytes: st.size }, null, 2) +
      "\n",
  );
  console.log(
    `built ${cfg.out}: ${(st.size / 2 ** 20).toFixed(2)} MiB` +
      (archs.length ? ` for ${archs.join(", ")}` : " (HIP-CPU, tests only)") +
      `, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main());
