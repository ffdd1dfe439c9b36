// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * End-to-end tests of `cli.ts quantize` run as a subprocess: a run killed
 * with SIGKILL and continued with `--resume` writes the same bytes as an
 * uninterrupted run; bad input fails with one `error:` line and leaves no
 * output behind; `--json` prints the report.
 *
 * Models: stories260K (a genuinely trained llama2.c model from
 * `../shared/data`, converted to an HF folder here) and the 2-layer demo
 * llama of `tools/make_demo_model.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { convertLlama2c } from "../src/io/llama2c.ts";
import { SafetensorsFile } from "../src/io/safetensors.ts";
import { type NamedTensor, writeSafetensors } from "../src/io/safetensors_writer.ts";
import { quantizeModel, type QuantizeReport } from "../src/quant/quantize.ts";
import { selectBackend } from "../src/backends/select.ts";
import { writeDemoModel } from "../tools/make_demo_model.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const DATA = fileURLToPath(new URL("../../shared/data/", import.meta.url));
const STORIES = `${DATA}stories260K/`;
const TINYSTORIES = `${DATA}text/tinystories_valid_sample.txt`;

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
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function list(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

/** Everything in `out`'s parent whose name starts with `out`'s name (partials, work folders). */
async function leftovers(parent: string, name: string): Promise<string[]> {
  return (await list(parent)).filter((n) => n.startsWith(name));
}

async function convertStories(dir: string): Promise<void> {
  await convertLlama2c(`${STORIES}stories260K.bin`, `${STORIES}tok512.bin`, dir);
}

/** Copies a model folder, setting one value of one F16/F32 tensor to NaN. */
async function copyWithNaN(src: string, dst: string, tensor: string, index: number): Promise<void> {
  await Deno.mkdir(dst, { recursive: true });
  for (const name of await list(src)) {
    if (name !== "model.safetensors") await Deno.copyFile(`${src}/${name}`, `${dst}/${name}`);
  }
  using f = await SafetensorsFile.open(`${src}/model.safetensors`);
  const tensors: NamedTensor[] = [];
  let hit = false;
  for (const name of f.names()) {
    const t = await f.read(name);
    if (name === tensor) {
      const data = t.data.slice();
      const view = new DataView(data.buffer);
      if (t.dtype === "F16") view.setUint16(index * 2, 0x7e00, true);
      else if (t.dtype === "F32") view.setFloat32(index * 4, NaN, true);
      else throw new Error(`unexpected dtype ${t.dtype}`);
      tensors.push({ name, dtype: t.dtype, shape: t.shape, data });
      hit = true;
    } else tensors.push({ name, ...t });
  }
  assert.ok(hit, `${tensor} not in ${src}`);
  await writeSafetensors(`${dst}/model.safetensors`, tensors, { format: "pt" });
}

/** stderr ends with exactly one `error:` line naming the problem, and shows no stack trace. */
function assertOneErrorLine(r: CliResult, ...patterns: (RegExp | string)[]): string {
  const lines = r.stderr.trimEnd().split("\n");
  const errs = lines.filter((l) => l.startsWith("error:"));
  assert.equal(errs.length, 1, `expected one 'error:' line in:\n${r.stderr}`);
  assert.equal(lines.at(-1), errs[0], `the error is not the last line of:\n${r.stderr}`);
  assert.ok(!/^\s+at /m.test(r.stderr), `stack trace in:\n${r.stderr}`);
  assert.ok(!/internal error|Uncaught/.test(r.stderr), r.stderr);
  const line = errs[0]!;
  for (const p of patterns) {
    if (typeof p === "string") assert.ok(line.includes(p), `'${p}' not in: ${line}`);
    else assert.match(line, p);
  }
  return line;
}

async function bytes(path: string): Promise<Uint8Array> {
  return await Deno.readFile(path);
}

/** The files that must be byte-identical between two runs with the same settings. */
const DETERMINISTIC = [
  "model.safetensors",
  "quantize_config.json",
  "config.json",
  "tokenizer.json",
];

async function assertSameCheckpoint(a: string, b: string): Promise<void> {
  for (const f of DETERMINISTIC) {
    const x = await bytes(`${a}/${f}`), y = await bytes(`${b}/${f}`);
    assert.equal(x.length, y.length, `${f}: sizes differ`);
    assert.ok(x.every((v, i) => v === y[i]), `${f}: bytes differ between ${a} and ${b}`);
  }
}

async function readJournal(workDir: string): Promise<{ finished: number } | null> {
  try {
    return JSON.parse(await Deno.readTextFile(`${workDir}/journal.json`));
  } catch {
    return null; // not there yet (it is replaced by rename, so never half-written)
  }
}

// 5 blocks × 16 samples × 128 tokens: a few tenths of a second per block, so
// polling every 10 ms catches the run between blocks 2 and 5.
const RESUME_ARGS = [
  "--dataset",
  TINYSTORIES,
  "--nsamples",
  "16",
  "--seqlen",
  "128",
  "--bits",
  "4",
  "--group-size",
  "32",
];

Deno.test("quantize CLI: a run killed with SIGKILL continues with --resume to the same checkpoint", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "gptq-resume-" });
  try {
    const hf = `${tmp}/stories260K-hf`;
    await convertStories(hf);

    // The reference: one uninterrupted run.
    const ref = `${tmp}/ref`;
    const t0 = performance.now();
    const r0 = await runCli([hf, "--out", ref, ...RESUME_ARGS]);
    assert.equal(r0.code, 0, r0.stderr);
    const refReport: QuantizeReport = JSON.parse(
      await Deno.readTextFile(`${ref}/quantize_report.json`),
    );
    assert.equal(refReport.resumedBlocks, 0);
    assert.deepEqual(await leftovers(tmp, "ref"), ["ref"]);
    console.log(`uninterrupted run: ${((performance.now() - t0) / 1000).toFixed(2)} s`);

    await t.step("SIGKILL after block 2, then --resume", async () => {
      const parent = `${tmp}/killed`;
      await Deno.mkdir(parent);
      const out = `${parent}/q`, work = `${out}.gptq-work`;
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, "quantize", hf, "--out", out, ...RESUME_ARGS],
        stdout: "null",
        stderr: "null",
        stdin: "null",
      }).spawn();
      let exited = false;
      const status = child.status.then((s) => {
        exited = true;
        return s;
      });
      const deadline = Date.now() + 60_000;
      let seen = 0;
      while (!exited && Date.now() < deadline) {
        seen = (await readJournal(work))?.finished ?? 0;
        if (seen >= 2) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(!exited, "the run ended before it could be killed after block 2");
      assert.ok(seen >= 2, "no journal with 2 finished blocks within 60 s");
      child.kill("SIGKILL");
      const st = await status;
      assert.equal(st.signal, "SIGKILL");

      // Nothing half-written where the output goes; only the work folder.
      assert.ok(!(await exists(out)), "the output folder exists after the kill");
      assert.deepEqual(await leftovers(parent, "q"), ["q.gptq-work"]);
      const finished = (await readJournal(work))!.finished;
      assert.ok(finished >= 2 && finished < 5, `killed at ${finished} finished blocks`);
      const files = await list(work);
      for (let l = 0; l < finished; l++) {
        assert.ok(files.includes(`layer-${String(l).padStart(5, "0")}.safetensors`), files.join());
      }

      const r = await runCli([hf, "--out", out, ...RESUME_ARGS, "--resume"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`resuming after block ${finished - 1} of 5`));
      assert.match(r.stdout, /^wrote .*20 modules quantized, 15 kept in full precision/);
      await assertSameCheckpoint(out, ref);
      const report: QuantizeReport = JSON.parse(
        await Deno.readTextFile(`${out}/quantize_report.json`),
      );
      assert.equal(report.resumedBlocks, finished);
      assert.ok(report.resumedBlocks >= 2);
      // Same per-module results (solver timings aside).
      const noTime = ({ seconds: _, ...m }: QuantizeReport["modules"][number]) => m;
      assert.deepEqual(report.modules.map(noTime), refReport.modules.map(noTime));
      // The work folder is gone once the checkpoint is in place.
      assert.deepEqual(await leftovers(parent, "q"), ["q"]);
    });

    await t.step(
      "a crash between a block's data files and its journal entry resumes correctly",
      async () => {
        // Run in-process with the CLI's settings and kernels, stopping right after
        // block 1's journal entry (2 finished blocks).
        const { backend: kernels } = await selectBackend("auto", { allowGpu: false });
        const cfg = {
          bits: 4,
          group_size: 32,
          dataset: TINYSTORIES,
          nsamples: 16,
          model_seqlen: 128,
        };
        const out = `${tmp}/window/q`, work = `${out}.gptq-work`;
        const stopAt = (layer: number) => (l: number) => {
          if (l === layer) throw new Error(`simulated crash after block ${layer}`);
        };
        await assert.rejects(
          quantizeModel(hf, out, cfg, { backend: kernels, afterBlock: stopAt(1) }),
          /simulated crash after block 1/,
        );
        assert.equal((await readJournal(work))?.finished, 2);
        const snapshot = new Map<string, Uint8Array>();
        for (const f of await list(work)) snapshot.set(f, await bytes(`${work}/${f}`));
        // Let block 2 finish and be journaled, then put back the previous journal and
        // any file removed after that journal entry: the state of a process that
        // died after writing block 2's data but before committing its journal entry.
        await assert.rejects(
          quantizeModel(hf, out, cfg, { backend: kernels, resume: true, afterBlock: stopAt(2) }),
          /simulated crash after block 2/,
        );
        assert.equal((await readJournal(work))?.finished, 3);
        const now = new Set(await list(work));
        for (const [f, data] of snapshot) {
          if (f === "journal.json" || !now.has(f)) await Deno.writeFile(`${work}/${f}`, data);
        }
        assert.equal((await readJournal(work))?.finished, 2);
        const report = await quantizeModel(hf, out, cfg, { backend: kernels, resume: true });
        assert.equal(report.resumedBlocks, 2);
        await assertSameCheckpoint(out, ref);
        assert.ok(!(await exists(work)));
      },
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("quantize CLI: bad input fails with one error line and writes nothing", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "gptq-badinput-" });
  try {
    const demo = `${tmp}/demo`;
    await writeDemoModel(demo);
    const small = ["--dataset", TINYSTORIES, "--nsamples", "4", "--seqlen", "64"];
    let n = 0;
    /** Runs quantize into a fresh `case-N/out` and checks the failure leaves nothing there. */
    const fails = async (
      args: (out: string) => string[],
      code: number | null,
      ...patterns: (RegExp | string)[]
    ): Promise<string> => {
      const parent = `${tmp}/case-${n++}`;
      await Deno.mkdir(parent);
      const out = `${parent}/out`;
      const r = await runCli(args(out));
      if (code === null) assert.notEqual(r.code, 0, r.stderr);
      else assert.equal(r.code, code, r.stderr);
      assert.equal(r.stdout, "");
      const line = assertOneErrorLine(r, ...patterns);
      assert.deepEqual(await leftovers(parent, "out"), [], `left behind in ${parent}`);
      return line;
    };

    await t.step("unsupported architecture", async () => {
      const bloom = `${tmp}/bloom`;
      await Deno.mkdir(bloom);
      for (const f of await list(demo)) await Deno.copyFile(`${demo}/${f}`, `${bloom}/${f}`);
      const config = JSON.parse(await Deno.readTextFile(`${bloom}/config.json`));
      config.model_type = "bloom";
      config.architectures = ["BloomForCausalLM"];
      await Deno.writeTextFile(`${bloom}/config.json`, JSON.stringify(config));
      await fails(
        (o) => [bloom, "--out", o, ...small],
        1,
        `${bloom}/config.json`,
        /bloom/,
        /support/,
      );
    });

    await t.step("missing model folder", async () => {
      await fails((o) => [`${tmp}/no-such-model`, "--out", o, ...small], 1, "no-such-model");
    });

    await t.step("missing dataset file", async () => {
      const ds = `${tmp}/no-such.txt`;
      await fails(
        (o) => [demo, "--out", o, "--dataset", ds, "--nsamples", "4", "--seqlen", "64"],
        1,
        ds,
        /no such file/,
      );
    });

    await t.step("empty dataset file", async () => {
      const ds = `${tmp}/empty.txt`;
      await Deno.writeTextFile(ds, "");
      await fails(
        (o) => [demo, "--out", o, "--dataset", ds, "--nsamples", "4", "--seqlen", "64"],
        1,
        ds,
        /\b0 tokens|empty/,
      );
    });

    await t.step("empty .jsonl dataset", async () => {
      const ds = `${tmp}/empty.jsonl`;
      await Deno.writeTextFile(ds, "\n\n");
      await fails(
        (o) => [demo, "--out", o, "--dataset", ds, "--nsamples", "4", "--seqlen", "64"],
        1,
        ds,
        /no non-empty examples/,
      );
    });

    await t.step("dataset too short for one window", async () => {
      const ds = `${tmp}/short.txt`;
      await Deno.writeTextFile(ds, "Once upon a time there was a cat.\n");
      await fails(
        (o) => [demo, "--out", o, "--dataset", ds, "--nsamples", "4", "--seqlen", "64"],
        1,
        ds,
        /too few for one window of 64/,
      );
    });

    await t.step("malformed .jsonl", async () => {
      const ds = `${tmp}/bad.jsonl`;
      await Deno.writeTextFile(ds, '{"text": "Once upon a time."}\n{"text": "oops\n');
      await fails(
        (o) => [demo, "--out", o, "--dataset", ds, "--nsamples", "4", "--seqlen", "64"],
        1,
        ds,
        /line 2 is not JSON/,
      );
      const ds2 = `${tmp}/notext.jsonl`;
      await Deno.writeTextFile(ds2, '{"content": "Once upon a time."}\n');
      await fails(
        (o) => [demo, "--out", o, "--dataset", ds2, "--nsamples", "4", "--seqlen", "64"],
        1,
        ds2,
        /line 1 has no string 'text' field/,
      );
    });

    await t.step("--seqlen beyond the model's positions", async () => {
      await fails(
        (o) => [demo, "--out", o, "--dataset", TINYSTORIES, "--nsamples", "4", "--seqlen", "300"],
        2,
        `${demo}/config.json`,
        /--seqlen 300 exceeds the model's 256 positions/,
      );
    });

    await t.step("--bits 5", async () => {
      await fails(
        (o) => [demo, "--out", o, ...small, "--bits", "5"],
        2,
        /--bits must be 2, 3, 4 or 8/,
      );
    });

    await t.step("existing --out without --force is left untouched", async () => {
      const parent = `${tmp}/existing`;
      const out = `${parent}/out`;
      await Deno.mkdir(out, { recursive: true });
      await Deno.writeTextFile(`${out}/keep.txt`, "precious");
      const r = await runCli([demo, "--out", out, ...small]);
      assert.equal(r.code, 1, r.stderr);
      assertOneErrorLine(r, out, /already exists/, /--force/);
      assert.deepEqual(await list(out), ["keep.txt"]);
      assert.equal(await Deno.readTextFile(`${out}/keep.txt`), "precious");
      assert.deepEqual(await leftovers(parent, "out"), ["out"]);
    });

    await t.step("--force replaces an existing output", async () => {
      const parent = `${tmp}/forced`;
      const out = `${parent}/out`;
      await Deno.mkdir(out, { recursive: true });
      await Deno.writeTextFile(`${out}/stale.txt`, "old");
      const r = await runCli([demo, "--out", out, ...small, "--force"]);
      assert.equal(r.code, 0, r.stderr);
      const files = await list(out);
      assert.ok(!files.includes("stale.txt"), files.join());
      for (const f of ["model.safetensors", "config.json", "quantize_config.json"]) {
        assert.ok(files.includes(f), `${f} missing: ${files.join()}`);
      }
      assert.deepEqual(await leftovers(parent, "out"), ["out"]);
      using st = await SafetensorsFile.open(`${out}/model.safetensors`);
      assert.ok(st.has("model.layers.1.mlp.down_proj.qweight"));
    });

    for (
      const [what, tensor, index, module] of [
        [
          "the weight",
          "model.layers.0.self_attn.q_proj.weight",
          5,
          /tensor 'model\.layers\.0\.self_attn\.q_proj'/,
        ],
        [
          "the input layernorm (so the Hessian gets NaN)",
          "model.layers.0.input_layernorm.weight",
          5,
          /tensor 'model\.layers\.0\.self_attn\.[qkv]_proj'/,
        ],
      ] as const
    ) {
      await t.step(`NaN in ${what}`, async () => {
        const bad = `${tmp}/nan-${index}-${tensor}`;
        await copyWithNaN(demo, bad, tensor, index);
        await fails((o) => [bad, "--out", o, ...small], 1, module, /NaN/);
      });
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("quantize CLI: --json prints the report with per-module errors and peak RSS", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "gptq-json-" });
  try {
    const hf = `${tmp}/stories260K-hf`;
    await convertStories(hf);
    const out = `${tmp}/q`;
    const r = await runCli([
      hf,
      "--out",
      out,
      "--dataset",
      TINYSTORIES,
      "--nsamples",
      "8",
      "--seqlen",
      "64",
      "--bits",
      "3",
      "--group-size",
      "32",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const report: QuantizeReport = JSON.parse(r.stdout); // stdout holds the JSON and nothing else
    assert.deepEqual(
      report,
      JSON.parse(await Deno.readTextFile(`${out}/quantize_report.json`)),
    );
    assert.equal(report.resumedBlocks, 0);
    assert.ok(Number.isInteger(report.peakRssBytes));
    assert.ok(report.peakRssBytes > 16 * 2 ** 20 && report.peakRssBytes < 8 * 2 ** 30);
    assert.equal(report.calibration.samples, 8);
    assert.equal(report.calibration.tokens, 8 * 64);
    assert.equal(report.blockSeconds.length, 5);
    assert.equal(report.config.bits, 3);
    assert.equal(report.config.group_size, 32);
    // stories260K: 5 blocks × (q, k, v, o) quantized; MLP width 172 is not packable.
    assert.equal(report.modules.length, 5 * 7);
    using st = await SafetensorsFile.open(`${out}/model.safetensors`);
    for (const m of report.modules) {
      assert.match(m.name, /^model\.layers\.[0-4]\.(self_attn|mlp)\./);
      if (m.name.includes(".mlp.")) {
        assert.equal(m.quantized, false, m.name);
        assert.match(m.reason!, /172/);
        assert.ok(st.has(`${m.name}.weight`), m.name);
        assert.ok(!st.has(`${m.name}.qweight`), m.name);
        continue;
      }
      assert.equal(m.quantized, true, m.name);
      for (const k of ["loss", "gptqError", "rtnError"] as const) {
        assert.ok(Number.isFinite(m[k]) && m[k]! >= 0, `${m.name}.${k} = ${m[k]}`);
      }
      assert.ok(m.gptqError! < m.rtnError!, `${m.name}: GPTQ ${m.gptqError} ≥ RTN ${m.rtnError}`);
      // The report describes what is in the checkpoint.
      assert.deepEqual(st.info(`${m.name}.qweight`).shape, [(m.K * 3) / 32, m.N]);
      assert.deepEqual(st.info(`${m.name}.scales`).shape, [m.K / 32, m.N]);
      assert.ok(!st.has(`${m.name}.weight`), m.name);
    }
    const qc = JSON.parse(await Deno.readTextFile(`${out}/quantize_config.json`));
    assert.deepEqual([...qc.modules_to_not_convert].sort(), [
      "mlp.down_proj",
      "mlp.gate_proj",
      "mlp.up_proj",
    ]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
