// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Where `quantizeModel` writes, made safe: the output must not be the model
 * folder or overlap it, leftovers of killed runs (`<out>.partial-*`, a
 * finished run's `<out>.gptq-work`) are removed, and a file-system failure
 * while writing (read-only location, disk full, a path under a file) becomes
 * a one-line {@linkcode GptqError} naming the path.
 *
 * Private to `quantize.ts`.
 *
 * @module
 */

import { GptqError } from "../errors.ts";

function stripSlashes(p: string): string {
  let s = p;
  while (s.length > 1 && s.endsWith("/")) s = s.slice(0, -1);
  return s;
}

function absolute(p: string): string {
  const parts: string[] = [];
  const full = p.startsWith("/") ? p : `${Deno.cwd()}/${p}`;
  for (const part of full.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}

/** The real path of `p`, resolving the longest existing ancestor (the rest need not exist). */
async function realish(p: string): Promise<string> {
  const abs = absolute(p);
  const tail: string[] = [];
  let head = abs;
  for (;;) {
    try {
      const real = await Deno.realPath(head);
      return tail.length ? `${stripSlashes(real)}/${tail.reverse().join("/")}` : real;
    } catch {
      const i = head.lastIndexOf("/");
      if (i <= 0) return abs;
      tail.push(head.slice(i + 1));
      head = head.slice(0, i);
    }
  }
}

function inside(child: string, parent: string): boolean {
  return child.startsWith(parent === "/" ? "/" : `${parent}/`);
}

/**
 * Refuses an output folder that is the model folder, lies inside it or
 * contains it (`quantize X --out X --force` would replace the model).
 *
 * @param modelDir The source model folder.
 * @param outDir The output folder.
 */
export async function checkOutputLocation(modelDir: string, outDir: string): Promise<void> {
  const src = await realish(modelDir), out = await realish(outDir);
  const why = src === out
    ? "is the model folder"
    : inside(out, src)
    ? "lies inside the model folder"
    : inside(src, out)
    ? "contains the model folder"
    : null;
  if (why) {
    throw new GptqError("INVALID_ARGUMENT", `the output folder ${why} ${modelDir}`, {
      file: outDir,
      hint: "choose an --out outside the model folder; the model is never overwritten",
    });
  }
}

/**
 * Removes what killed runs left next to `outDir`: every `<out>.partial-*`
 * folder (an output being assembled when the process died) and a work folder
 * whose checkpoint was already renamed into place (its `commit.json` names a
 * partial folder that no longer exists while the output does). A work folder
 * of an unfinished run is kept for `--resume`.
 *
 * @param outDir The output folder.
 * @param log Where to say what was removed.
 */
export async function removeLeftovers(outDir: string, log: (line: string) => void): Promise<void> {
  const out = stripSlashes(outDir);
  const i = out.lastIndexOf("/");
  const parent = i < 0 ? "." : i === 0 ? "/" : out.slice(0, i);
  const base = out.slice(i + 1);
  const work = `${out}.gptq-work`;
  try {
    const marker = JSON.parse(await Deno.readTextFile(`${work}/commit.json`)) as {
      partial?: unknown;
    };
    if (typeof marker.partial === "string" && await exists(marker.partial)) {
      // The rename never happened: the marker is stale, the journal resumable.
      await Deno.remove(`${work}/commit.json`);
    } else if (typeof marker.partial === "string" && await exists(out)) {
      await Deno.remove(work, { recursive: true });
      log(`removed ${work}: its checkpoint is already in ${out}`);
    }
  } catch (e) {
    if (e instanceof GptqError) throw e;
    // No marker (or unreadable): the work folder belongs to an unfinished run.
  }
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(parent));
  } catch {
    return; // no parent yet: nothing left over
  }
  for (const e of entries) {
    if (!e.name.startsWith(`${base}.partial-`)) continue;
    const p = `${parent === "/" ? "" : parent}/${e.name}`;
    await Deno.remove(p, { recursive: true });
    log(`removed ${p}, left by an interrupted run`);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch {
    return false;
  }
}

const REASONS: Record<string, [string, string]> = {
  ENOSPC: ["no space left on device", "free some space or choose another --out"],
  EDQUOT: ["disk quota exceeded", "free some space or choose another --out"],
  EFBIG: ["file too large for the file system", "choose an --out on another file system"],
  EROFS: ["read-only file system", "choose an --out on a writable file system"],
  EACCES: ["permission denied", "choose an --out you may write to"],
  EPERM: ["operation not permitted", "choose an --out you may write to"],
  ENOTDIR: ["a parent of this path is a file, not a folder", "choose another --out"],
  EIO: ["input/output error", "check the disk, then run again"],
};

/**
 * Turns a file-system failure (disk full, read-only, permission, a path
 * under a file) into a one-line {@linkcode GptqError} naming the path Deno
 * reports, or returns null for any other error.
 *
 * @param e The caught error.
 * @param resumable Whether a journal exists, so `--resume` can continue.
 * @returns The typed error, or null.
 */
export function writeError(e: unknown, resumable = false): GptqError | null {
  if (e instanceof GptqError || !(e instanceof Error)) return null;
  const code = (e as { code?: unknown }).code;
  const known = typeof code === "string" ? REASONS[code] : undefined;
  if (!known) return null;
  // Deno's messages end with "op 'path'" or "op 'from' -> 'to'".
  const m = /: (\w+) '([^']*)'(?: -> '([^']*)')?$/.exec(e.message.replace(/\s+/g, " "));
  const op = m?.[1], file = m?.[3] ?? m?.[2];
  const [reason, hint] = known;
  return new GptqError("WRITE_FAILED", `${op ? `${op} failed: ` : ""}${reason}`, {
    ...(file ? { file } : {}),
    hint: resumable ? `${hint}; then rerun with --resume to continue` : hint,
    cause: e,
  });
}
