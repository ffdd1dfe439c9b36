// Copyright 2026 the GPTQ toolkit authors. MIT license.
import assert from "node:assert/strict";
import { intOption, numberOption, parseCommandArgs } from "./_command.ts";
import { quantizeCommand } from "./quantize.ts";
import { generateCommand } from "./generate.ts";
import { GptqError } from "../errors.ts";

Deno.test("parseCommandArgs: a negative number after an option that takes a value is its value", () => {
  const a = parseCommandArgs(quantizeCommand, [
    "model",
    "--out",
    "q",
    "--group-size",
    "-1",
    "--damp-percent",
    "-0.5",
    "-o",
    "-2",
  ]);
  assert.deepEqual(a.positionals, ["model"]);
  assert.equal(a.values["group-size"], "-1");
  assert.equal(a.values["damp-percent"], "-0.5");
  assert.equal(a.values.out, "-2");
  assert.equal(intOption(a, "group-size", 128, -1), -1);
  // The range check, not the parser, refuses a negative damping, in one line.
  assert.throws(
    () => numberOption(a, "damp-percent", 0.01, 0, 1),
    (e) =>
      e instanceof GptqError &&
      /--damp-percent must be a number in \[0, 1\], got '-0.5'/.test(e.message),
  );
  const g = parseCommandArgs(generateCommand, ["m", "--temperature", "-1e-3", "--prompt", "-5"]);
  assert.equal(g.values.temperature, "-1e-3");
  assert.equal(g.values.prompt, "-5");
  // Flags stay flags, `--` ends option parsing, `--opt=-1` still works.
  const f = parseCommandArgs(quantizeCommand, ["m", "--desc-act", "--group-size=-1", "--", "-3"]);
  assert.equal(f.values["desc-act"], true);
  assert.equal(f.values["group-size"], "-1");
  assert.deepEqual(f.positionals, ["m", "-3"]);
});

Deno.test("parseCommandArgs: parse errors are one line; number options say what they want", () => {
  assert.throws(
    () => parseCommandArgs(quantizeCommand, ["m", "--group-size", "--bits", "4"]),
    (e) => e instanceof GptqError && !e.message.includes("\n"),
  );
  const a = parseCommandArgs(quantizeCommand, ["m", "--seed", "abc", "--nsamples", "x"]);
  assert.throws(
    () => intOption(a, "seed", 0),
    (e) => e instanceof GptqError && e.message === "--seed must be an integer, got 'abc'",
  );
  assert.throws(
    () => intOption(a, "nsamples", 128, 1),
    (e) => e instanceof GptqError && e.message === "--nsamples must be an integer ≥ 1, got 'x'",
  );
});
