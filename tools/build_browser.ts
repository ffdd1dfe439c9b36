// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * `deno task build:browser [--out DIR]`: bundles `browser.ts` with esbuild
 * into `dist/browser/gptq.js` (an ES module for browsers with no imports; the
 * WASM module is embedded as it is in the sources) and writes
 * `gptq.meta.json` (esbuild's metafile) beside it.
 *
 * A small Deno resolver plugin stands in for Deno's module resolution:
 * `npm:name@range/sub` specifiers are read from Deno's npm cache at the
 * version `deno.lock` pins (the package's `exports` resolved with the
 * `browser`/`import` conditions), and the platform modules are swapped for
 * their browser versions ({@linkcode BROWSER_ALIASES}), as the `browser`
 * field of a package.json does. `jsr:`/`http(s):` imports and anything
 * resolving to `node:` fail the build.
 *
 * @module
 */

import * as esbuild from "npm:esbuild@0.25.0";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** Platform modules (repository-relative) and the browser module that replaces each. */
export const BROWSER_ALIASES: Readonly<Record<string, string>> = {
  "src/io/_files.ts": "src/io/_files_web.ts",
  "src/backends/wasm/_sync_pool.ts": "src/backends/wasm/_sync_pool_web.ts",
  "src/runtime/_memory.ts": "src/runtime/_memory_web.ts",
};

/** What {@linkcode buildBrowser} produced. */
export interface BrowserBuild {
  /** The bundle's path. */
  file: string;
  /** Its size in bytes. */
  bytes: number;
  /** esbuild's metafile (inputs with their imports, outputs). */
  metafile: esbuild.Metafile;
}

interface Lock {
  specifiers?: Record<string, string>;
  npm?: Record<string, { dependencies?: string[] }>;
}

async function npmCacheDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  if (!out.success) throw new Error(`deno info failed: ${new TextDecoder().decode(out.stderr)}`);
  const dir = JSON.parse(new TextDecoder().decode(out.stdout)).npmCache as string;
  return join(dir, "registry.npmjs.org");
}

/** Splits `@scope/name@range/sub/path` (or `name/sub`) into name, range and subpath. */
function splitNpm(spec: string): { name: string; range: string; sub: string } {
  const m = /^((?:@[^/]+\/)?[^@/]+)(?:@([^/]+))?(\/.*)?$/.exec(spec);
  if (!m) throw new Error(`cannot parse npm specifier '${spec}'`);
  return { name: m[1]!, range: m[2] ?? "", sub: m[3] ?? "" };
}

type Exports = string | null | Exports[] | { [k: string]: Exports };
const CONDITIONS = ["browser", "import", "module", "default"];

function pickExport(e: Exports): string | null {
  if (typeof e === "string") return e;
  if (e === null) return null;
  if (Array.isArray(e)) {
    for (const x of e) {
      const r = pickExport(x);
      if (r) return r;
    }
    return null;
  }
  for (const c of CONDITIONS) {
    if (c in e) {
      const r = pickExport(e[c]!);
      if (r) return r;
    }
  }
  return null;
}

/** The file a package subpath resolves to (package.json `exports`, else `browser`/`module`/`main`). */
async function packageEntry(dir: string, sub: string): Promise<string> {
  const pkg = JSON.parse(await Deno.readTextFile(join(dir, "package.json")));
  const key = `.${sub}`;
  if (pkg.exports !== undefined) {
    const exp = pkg.exports as Exports;
    const table = typeof exp === "object" && exp !== null && !Array.isArray(exp) &&
        Object.keys(exp).some((k) => k.startsWith("."))
      ? exp as Record<string, Exports>
      : { ".": exp };
    const target = table[key] === undefined ? null : pickExport(table[key]!);
    if (!target) throw new Error(`${pkg.name} does not export '${key}' for browsers`);
    return join(dir, target);
  }
  if (sub) return join(dir, sub);
  const main = typeof pkg.browser === "string" ? pkg.browser : pkg.module ?? pkg.main ?? "index.js";
  return join(dir, main);
}

/** The esbuild plugin: npm: specifiers from Deno's cache, platform modules swapped. */
function denoPlugin(lock: Lock, npmDir: string): esbuild.Plugin {
  const versionOf = (name: string, range: string): string => {
    const v = lock.specifiers?.[`npm:${name}${range ? `@${range}` : ""}`];
    if (v) return v.replace(/_.*$/, "");
    // A dependency of an npm package: the one version the lock holds.
    const keys = Object.keys(lock.npm ?? {}).filter((k) => k.startsWith(`${name}@`));
    if (keys.length === 1) return keys[0]!.slice(name.length + 1).replace(/_.*$/, "");
    throw new Error(`npm:${name}@${range} is not in deno.lock; run 'deno cache browser.ts'`);
  };
  const aliases = new Map(
    Object.entries(BROWSER_ALIASES).map(([from, to]) => [join(ROOT, from), join(ROOT, to)]),
  );
  return {
    name: "deno",
    setup(build) {
      build.onResolve({ filter: /^npm:/ }, async (args) => {
        const { name, range, sub } = splitNpm(args.path.slice(4));
        const dir = join(npmDir, name, versionOf(name, range));
        return { path: await packageEntry(dir, sub) };
      });
      build.onResolve({ filter: /^(jsr:|https?:)/ }, (args) => ({
        errors: [{ text: `${args.path}: only relative and npm: imports can be bundled` }],
      }));
      // Bare imports inside an npm package (its dependencies).
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.path.startsWith("node:") || !args.importer.startsWith(npmDir)) return undefined;
        const { name, sub } = splitNpm(args.path);
        return { path: await packageEntry(join(npmDir, name, versionOf(name, "")), sub) };
      });
      build.onResolve({ filter: /^\.\.?\// }, (args) => {
        const abs = join(args.resolveDir, args.path);
        const to = aliases.get(abs);
        return to ? { path: to } : undefined;
      });
    },
  };
}

/**
 * Bundles `browser.ts` for browsers.
 *
 * @example
 * ```ts ignore
 * import { buildBrowser } from "./build_browser.ts";
 * const { file, bytes } = await buildBrowser("dist/browser");
 * console.log(file, bytes);
 * ```
 *
 * @param outDir Where `gptq.js` and `gptq.meta.json` go.
 * @returns The bundle's path, size and metafile.
 */
export async function buildBrowser(outDir: string): Promise<BrowserBuild> {
  const lock = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.lock"))) as Lock;
  const file = join(outDir, "gptq.js");
  try {
    const r = await esbuild.build({
      entryPoints: [join(ROOT, "browser.ts")],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      minify: true,
      sourcemap: "linked",
      legalComments: "none",
      outfile: file,
      metafile: true,
      logLevel: "silent",
      plugins: [denoPlugin(lock, await npmCacheDir())],
    });
    await Deno.writeTextFile(join(outDir, "gptq.meta.json"), JSON.stringify(r.metafile));
    return { file, bytes: (await Deno.stat(file)).size, metafile: r.metafile };
  } finally {
    await esbuild.stop();
  }
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--out");
  const out = i >= 0 ? Deno.args[i + 1]! : join(ROOT, "dist/browser");
  try {
    const { file, bytes, metafile } = await buildBrowser(out);
    console.log(
      `${file}: ${(bytes / 1024).toFixed(0)} KiB from ${
        Object.keys(metafile.inputs).length
      } modules`,
    );
  } catch (e) {
    console.error(`build:browser failed: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
