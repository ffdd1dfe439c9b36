// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * Hardening of `quantize` (issue 15, cases 8–11), on the 2-layer demo llama:
 * leftovers of killed runs are removed, unwritable or full output locations
 * fail with one line naming the path and leave nothing half-written, the
 * documented negative values parse, and outputs overlapping the model,
 * unknown `--modules-to-not-convert` names, `--bits abc` and binary
 * calibration text are caught.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GptqError } from "../src/errors.ts";
import { quantizeModel } from "../src/quant/quantize.ts";
import { writeDemoModel } from "../tools/make_demo_model.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const DATA = fileURLToPath(new URL("../../shared/data/", import.meta.url));
const TINYSTORIES = `${DATA}text/tinystories_valid_sample.txt`;
const SMALL = ["--dataset", TINYSTORIES, "--nsamples", "4", "--seqlen", "64"];
const CFG = { dataset: TINYSTORIES, nsamples: 4, model_seqlen: 64, group_size: 32 };

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function runCli(args: string[]): Promise<CliResult> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "quantize", ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch {
    return false;
  }
}

async function list(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir), (e) => e.name)).sort();
}

async function leftovers(parent: string, name: string): Promise<string[]> {
  return (await list(parent)).filter((n) => n.startsWith(name));
}

/** The only `error:` line of stderr, last, without a stack trace or "internal error". */
function errorLine(r: CliResult): string {
  const lines = r.stderr.trimEnd().split("\n");
  const errs = lines.filter((l) => l.startsWith("error:"));
  assert.equal(errs.length, 1, `expected one 'error:' line in:\n${r.stderr}`);
  assert.equal(lines.at(-1), errs[0], r.stderr);
  assert.ok(!/internal error|^\s+at /m.test(r.stderr), r.stderr);
  return errs[0]!;
}

async function withDemo(fn: (tmp: string, demo: string) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "gptq-harden-" });
  try {
    const demo = `${tmp}/demo`;
    await writeDemoModel(demo);
    await fn(tmp, demo);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

async function copyDir(src: string, dst: string): Promise<void> {
  await Deno.mkdir(dst, { recursive: true });
  for (const f of await list(src)) await Deno.copyFile(`${src}/${f}`, `${dst}/${f}`);
}

Deno.test("quantize (case 8): leftovers of killed runs are removed on the next run and on success", async () => {
  await withDemo(async (tmp, demo) => {
    // A partial output of a run killed while writing its checkpoint.
    const out = `${tmp}/a/out`;
    await Deno.mkdir(`${out}.partial-0123456789ab`, { recursive: true });
    await Deno.writeTextFile(`${out}.partial-0123456789ab/model.safetensors`, "half");
    const logs: string[] = [];
    await quantizeModel(demo, out, CFG, { onLog: (l) => logs.push(l) });
    assert.deepEqual(await leftovers(`${tmp}/a`, "out"), ["out"]);
    assert.ok(logs.some((l) => l.includes("out.partial-0123456789ab")), logs.join("\n"));

    // A run killed after its last block, resumed, then killed between the final
    // rename and the removal of its work folder: rebuild exactly that state.
    const b = `${tmp}/b/out`, work = `${b}.gptq-work`;
    await assert.rejects(
      quantizeModel(demo, b, CFG, {
        afterBlock: (l) => {
          if (l === 1) throw new Error("killed after the last block");
        },
      }),
      /killed after the last block/,
    );
    assert.equal(JSON.parse(await Deno.readTextFile(`${work}/journal.json`)).finished, 2);
    await copyDir(work, `${tmp}/work-snapshot`);
    // The marker of a commit whose rename did not happen: the journal still resumes.
    await Deno.mkdir(`${b}.partial-feedfacecafe`);
    await Deno.writeTextFile(
      `${work}/commit.json`,
      JSON.stringify({ partial: `${b}.partial-feedfacecafe` }),
    );
    const r = await quantizeModel(demo, b, CFG, { resume: true });
    assert.equal(r.resumedBlocks, 2);
    assert.deepEqual(await leftovers(`${tmp}/b`, "out"), ["out"]);
    // Now the state of a kill right after the rename.
    await copyDir(`${tmp}/work-snapshot`, work);
    await Deno.writeTextFile(
      `${work}/commit.json`,
      JSON.stringify({ partial: `${b}.partial-0badc0ffee00` }),
    );
    const next = await runCli([demo, "--out", b, ...SMALL, "--group-size", "32"]);
    assert.equal(next.code, 1, next.stderr);
    assert.match(errorLine(next), /already exists/);
    assert.match(next.stderr, /removed .*out\.gptq-work: its checkpoint is already in/);
    assert.deepEqual(await leftovers(`${tmp}/b`, "out"), ["out"]);
    assert.ok(await exists(`${b}/model.safetensors`));
  });
});

Deno.test("quantize (case 9): unwritable and full output locations: one line naming the path, nothing half-written", async (t) => {
  await withDemo(async (tmp, demo) => {
    await t.step("a path under a file", async () => {
      await Deno.writeTextFile(`${tmp}/file.txt`, "x");
      const r = await runCli([demo, "--out", `${tmp}/file.txt/out`, ...SMALL]);
      assert.equal(r.code, 1, r.stderr);
      const line = errorLine(r);
      assert.ok(line.includes(`${tmp}/file.txt/out`), line);
      assert.match(line, /is a file, not a folder/);
      assert.equal(await Deno.readTextFile(`${tmp}/file.txt`), "x");
    });

    // sysfs refuses new entries even to root (a chmod'ed folder would not stop root).
    const sysReason = Deno.build.os !== "linux"
      ? "not Linux"
      : !(await exists("/sys/kernel"))
      ? "no sysfs at /sys"
      : null;
    await t.step({
      name: `a location the OS refuses to write${sysReason ? ` (skipped: ${sysReason})` : ""}`,
      ignore: sysReason !== null,
      fn: async () => {
        const out = "/sys/gptq-hardening-test-out";
        const r = await runCli([demo, "--out", out, ...SMALL]);
        assert.equal(r.code, 1, r.stderr);
        const line = errorLine(r);
        assert.ok(line.includes(out), line);
        assert.match(line, /not permitted|permission denied|read-only/);
        assert.ok(!(await exists(out)) && !(await exists(`${out}.gptq-work`)));
      },
    });

    // /dev/full fails every write with ENOSPC: the journal's temp file points there.
    const fullReason = (await exists("/dev/full")) ? null : "no /dev/full";
    await t.step({
      name: `a full disk while journaling${fullReason ? ` (skipped: ${fullReason})` : ""}`,
      ignore: fullReason !== null,
      fn: async () => {
        const parent = `${tmp}/full`, out = `${parent}/out`, work = `${out}.gptq-work`;
        await Deno.mkdir(work, { recursive: true });
        await Deno.symlink("/dev/full", `${work}/journal.json.tmp`);
        const r = await runCli([demo, "--out", out, ...SMALL, "--resume"]);
        assert.equal(r.code, 1, r.stderr);
        const line = errorLine(r);
        assert.ok(line.includes(`${work}/journal.json.tmp`), line);
        assert.match(line, /no space left on device/);
        // No half-written journal, no work folder (nothing was journaled), no output.
        assert.deepEqual(await leftovers(parent, "out"), []);
      },
    });
  });
});

Deno.test("quantize (case 10): --group-size -1 and other negative values in the documented form", async () => {
  await withDemo(async (tmp, demo) => {
    const out = `${tmp}/perrow`;
    const r = await runCli([demo, "--out", out, ...SMALL, "--group-size", "-1", "--seed", "-3"]);
    assert.equal(r.code, 0, r.stderr);
    const qc = JSON.parse(await Deno.readTextFile(`${out}/quantize_config.json`));
    assert.equal(qc.group_size, -1);
    const neg = await runCli([demo, "--out", `${tmp}/x`, ...SMALL, "--damp-percent", "-0.1"]);
    assert.equal(neg.code, 2, neg.stderr);
    assert.match(errorLine(neg), /--damp-percent must be a number in \[0, 1\], got '-0.1'/);
  });
});

Deno.test("quantize (case 11): overlapping output, unknown module names, --bits abc, binary calibration text", async (t) => {
  await withDemo(async (tmp, demo) => {
    const before = await list(demo);
    await t.step("the output is the model, inside it, or contains it", async () => {
      for (
        const [out, why] of [
          [demo, /is the model folder/],
          [`${demo}/`, /is the model folder/],
          [`${demo}/../demo`, /is the model folder/],
          [`${demo}/sub`, /lies inside the model folder/],
          [tmp, /contains the model folder/],
        ] as const
      ) {
        await assert.rejects(
          quantizeModel(demo, out, CFG, { force: true }),
          (e) => e instanceof GptqError && e.code === "INVALID_ARGUMENT" && why.test(e.message),
        );
      }
      const r = await runCli([demo, "--out", demo, ...SMALL, "--force"]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(errorLine(r), /is the model folder/);
      assert.deepEqual(await list(demo), before);
    });

    await t.step("--modules-to-not-convert with an unknown name", async () => {
      const r = await runCli([
        demo,
        "--out",
        `${tmp}/nc`,
        ...SMALL,
        "--modules-to-not-convert",
        "mlp.down_proj,nope.proj",
      ]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(errorLine(r), /"nope\.proj", which is no module .*mlp\.down_proj/);
      await assert.rejects(
        quantizeModel(demo, `${tmp}/nc`, {
          ...CFG,
          modules_to_not_convert: ["model.layers.7.mlp.down_proj"],
        }),
        /model\.layers\.7\.mlp\.down_proj/,
      );
      assert.ok(!(await exists(`${tmp}/nc`)));
    });

    await t.step("--bits abc", async () => {
      const r = await runCli([demo, "--out", `${tmp}/b`, ...SMALL, "--bits", "abc"]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(errorLine(r), /--bits must be 2, 3, 4 or 8, got 'abc'$/);
    });

    await t.step("binary junk as calibration text warns", async () => {
      const junk = new Uint8Array(16384);
      let x = 12345;
      for (let i = 0; i < junk.length; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        junk[i] = x >>> 24;
      }
      await Deno.writeFile(`${tmp}/junk.txt`, junk);
      const logs: string[] = [];
      await quantizeModel(demo, `${tmp}/junk-q`, { ...CFG, dataset: `${tmp}/junk.txt` }, {
        onLog: (l) => logs.push(l),
      });
      const w = logs.filter((l) => l.startsWith("warning:"));
      assert.equal(w.length, 1, logs.join("\n"));
      assert.match(w[0]!, /junk\.txt: \d+% of the calibration text is undecodable/);
      // Real text does not warn.
      const clean: string[] = [];
      await quantizeModel(demo, `${tmp}/clean-q`, CFG, { onLog: (l) => clean.push(l) });
      assert.deepEqual(clean.filter((l) => l.startsWith("warning:")), []);
    });
  });
});
