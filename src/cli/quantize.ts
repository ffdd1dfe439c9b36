// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * `cli.ts quantize MODEL_DIR --out OUT_DIR [options]`: GPTQ, block by block.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { quantizeModel } from "../quant/quantize.ts";
import { selectBackend } from "../backends/select.ts";
import {
  BACKEND_OPTION,
  backendOption,
  type Command,
  intOption,
  MODEL_HELP,
  numberOption,
  REVISION_OPTION,
} from "./_command.ts";
import { resolveModelArg } from "./_hub.ts";
import { startProgress } from "./_progress.ts";

function methodOption(v: unknown): "gptq" | "rtn" {
  if (v === undefined || v === "gptq") return "gptq";
  if (v === "rtn") return "rtn";
  throw new GptqError("INVALID_ARGUMENT", `--method must be gptq or rtn, got '${v}'`);
}

/** The `quantize` command. */
export const quantizeCommand: Command = {
  name: "quantize",
  summary: "quantize a model folder with GPTQ into an AutoGPTQ/transformers/GPTQModel checkpoint",
  usage:
    "quantize MODEL_DIR --out OUT_DIR --dataset FILE [--bits 4] [--group-size 128] [--desc-act] " +
    "[--static-groups] [--sym|--no-sym] [--damp-percent 0.01] [--true-sequential|--no-true-sequential] [--mse] " +
    "[--nsamples 128] [--seqlen 2048] [--seed 0] [--format gptq|gptq_v2] [--modules-to-not-convert NAMES] " +
    "[--max-shard-size 10GB] [--method gptq|rtn] [--threads 2] [--backend auto|cuda|hip|webgpu|wasm|typescript] " +
    "[--resume] [--force] [--json]",
  examples: [
    "quantize ./Llama-2-7b-hf --out ./Llama-2-7b-gptq --dataset c4_sample.jsonl --bits 4 --group-size 128",
    "quantize ./stories260K-hf --out ./stories260K-3bit --dataset tinystories.txt --bits 3 --group-size 32 --seqlen 512",
    "quantize ./opt-125m --out ./opt-125m-gptq --dataset wiki.txt --desc-act --static-groups --resume",
    "quantize HuggingFaceTB/SmolLM2-135M-Instruct --out ./smollm2-gptq --dataset wikitext2",
    "quantize ./Llama-2-7b-hf --out ./Llama-2-7b-gptq --dataset c4_sample.jsonl --backend webgpu",
  ],
  notes: [
    MODEL_HELP.replace("MODEL is", "MODEL_DIR is"),
    "--backend cuda, hip or webgpu runs the calibration forward, the Hessians and the GPTQ solves " +
    "on the GPU (the same codes as the CPU solver up to floating-point ties); auto stays on the CPU.",
  ],
  options: {
    out: {
      type: "string",
      short: "o",
      valueName: "DIR",
      description: "output folder (must not exist unless --force)",
    },
    dataset: {
      type: "string",
      valueName: "FILE",
      description: "wikitext2, c4 or c4-new (downloaded once from the Hub and cached), " +
        "a .txt file (random windows) or a .jsonl file with a 'text' field",
    },
    bits: { type: "string", valueName: "N", description: "2, 3, 4 (default) or 8" },
    "group-size": {
      type: "string",
      valueName: "N",
      description: "columns per group, -1 = per row (default 128)",
    },
    "desc-act": {
      type: "boolean",
      description: "act-order: quantize columns by decreasing Hessian diagonal",
    },
    "static-groups": {
      type: "boolean",
      description: "group parameters fixed before error feedback (fast act-order)",
    },
    sym: { type: "boolean", description: "symmetric quantization (default)" },
    "no-sym": {
      type: "boolean",
      description: "asymmetric quantization (written as gptq_v2 unless --format gptq)",
    },
    "damp-percent": {
      type: "string",
      valueName: "F",
      description: "Hessian damping fraction (default 0.01)",
    },
    "true-sequential": {
      type: "boolean",
      description: "AutoGPTQ's sequential groups inside a block (default)",
    },
    "no-true-sequential": {
      type: "boolean",
      description: "quantize all modules of a block from the same inputs",
    },
    mse: {
      type: "boolean",
      description: "MSE clipping search (norm 2.4, grid 100, maxshrink 0.8)",
    },
    nsamples: { type: "string", valueName: "N", description: "calibration samples (default 128)" },
    seqlen: {
      type: "string",
      valueName: "N",
      description: "tokens per sample (default min(2048, context))",
    },
    seed: { type: "string", valueName: "N", description: "calibration sampling seed (default 0)" },
    format: {
      type: "string",
      valueName: "F",
      description: "gptq (v1 zeros) or gptq_v2 (default: v1 if sym, v2 if not)",
    },
    "modules-to-not-convert": {
      type: "string",
      valueName: "NAMES",
      description: "comma-separated block modules to keep unquantized (e.g. mlp.down_proj)",
    },
    "max-shard-size": {
      type: "string",
      valueName: "SIZE",
      description: "largest output shard (default 10GB)",
    },
    method: {
      type: "string",
      valueName: "M",
      description: "gptq (default) or rtn: round-to-nearest with the same groups and format, " +
        "the baseline GPTQ is compared with",
    },
    resume: { type: "boolean", description: "continue a killed run from its last finished block" },
    force: { type: "boolean", description: "replace an existing output folder" },
    backend: BACKEND_OPTION,
    revision: REVISION_OPTION,
    threads: {
      type: "string",
      valueName: "N",
      description:
        "solver Workers of the CPU engine (default 2; identical output for any N; each " +
        "extra one holds another copy of the Hessian's factor, so 1 uses least memory)",
    },
  },
  async run(args, io) {
    const model = args.positionals[0];
    if (model === undefined || args.positionals.length !== 1) {
      throw new GptqError(
        "INVALID_ARGUMENT",
        "quantize takes exactly one MODEL_DIR (folder or Hub id)",
        {
          hint: "usage: deno run -A cli.ts quantize MODEL_DIR --out OUT_DIR --dataset FILE",
        },
      );
    }
    const out = args.values.out, dataset = args.values.dataset;
    if (typeof out !== "string" || !out) {
      throw new GptqError("INVALID_ARGUMENT", "--out OUT_DIR is required");
    }
    if (typeof dataset !== "string" || !dataset) {
      throw new GptqError("INVALID_ARGUMENT", "--dataset FILE is required", {
        hint: "a .txt file (random windows) or a .jsonl file with a 'text' field per line",
      });
    }
    if (args.values.sym && args.values["no-sym"]) {
      throw new GptqError("INVALID_ARGUMENT", "--sym and --no-sym conflict");
    }
    const format = args.values.format as string | undefined;
    if (format !== undefined && format !== "gptq" && format !== "gptq_v2") {
      throw new GptqError("INVALID_ARGUMENT", `--format must be gptq or gptq_v2, got '${format}'`);
    }
    const sym = !args.values["no-sym"];
    if (!sym && format === "gptq") {
      io.stderr(
        "warning: asymmetric quantization in v1 ('gptq') format: a zero point of 0 cannot be stored " +
          "(AutoGPTQ PR #640); affected fields are written as AutoGPTQ does and may load wrongly. " +
          "gptq_v2 avoids this.\n",
      );
    }
    const bitsArg = args.values.bits ?? "4";
    const bits = Number(bitsArg);
    if (
      typeof bitsArg !== "string" || !/^\s*\d+\s*$/.test(bitsArg) || ![2, 3, 4, 8].includes(bits)
    ) {
      throw new GptqError("INVALID_ARGUMENT", `--bits must be 2, 3, 4 or 8, got '${bitsArg}'`);
    }
    const groupSize = intOption(args, "group-size", 128, -1);
    if (groupSize === 0 || groupSize < -1) {
      throw new GptqError("INVALID_ARGUMENT", "--group-size must be -1 or positive");
    }
    // cuda/hip/webgpu: calibration forward, Hessians and GPTQ solves on the device; wasm/typescript:
    // the CPU engine (WASM solver Workers). auto stays on the CPU, so a default run writes
    // the same checkpoint on every machine.
    const backend = await selectBackend(backendOption(args), { allowGpu: false });
    io.stderr(`${backend.description}\n`);
    let bar: ReturnType<typeof startProgress> | null = null;
    const modelDir = await resolveModelArg(model, args, io);
    const report = await quantizeModel(modelDir, out, {
      bits,
      group_size: groupSize,
      desc_act: args.values["desc-act"] === true,
      static_groups: args.values["static-groups"] === true,
      sym,
      damp_percent: numberOption(args, "damp-percent", 0.01, 0, 1),
      true_sequential: !args.values["no-true-sequential"],
      mse: args.values.mse === true,
      dataset,
      nsamples: intOption(args, "nsamples", 128, 1),
      ...(args.values.seqlen === undefined
        ? {}
        : { model_seqlen: intOption(args, "seqlen", 2048, 2) }),
      seed: intOption(args, "seed", 0),
      ...(format ? { checkpoint_format: format as "gptq" | "gptq_v2" } : {}),
      ...(typeof args.values["modules-to-not-convert"] === "string"
        ? {
          modules_to_not_convert: (args.values["modules-to-not-convert"] as string).split(",").map((
            s,
          ) => s.trim()),
        }
        : {}),
      ...(typeof args.values["max-shard-size"] === "string"
        ? { max_shard_size: args.values["max-shard-size"] as string }
        : {}),
    }, {
      force: args.values.force === true,
      threads: intOption(args, "threads", 2, 1, 64),
      method: methodOption(args.values.method),
      resume: args.values.resume === true,
      backend: backend.backend,
      onLog: (l) => io.stderr(l + "\n"),
      onBlock: (d, t) => {
        bar ??= startProgress("quantize", t, "blocks", io.stderr);
        bar.update(d);
      },
    });
    (bar as ReturnType<typeof startProgress> | null)?.done();
    if (io.json) io.stdout(JSON.stringify(report, null, 2) + "\n");
    else {
      const q = report.modules.filter((m) => m.quantized);
      const gErr = q.reduce((a, m) => a + (m.gptqError ?? 0), 0),
        rErr = q.reduce((a, m) => a + (m.rtnError ?? 0), 0);
      io.stdout(
        `wrote ${out}: ${q.length} modules quantized, ${
          report.modules.length - q.length
        } kept in full precision; ` +
          `Hessian-weighted error GPTQ/RTN = ${(gErr / rErr).toFixed(3)}; ${
            report.seconds.toFixed(1)
          } s, ` +
          `peak RSS ${
            (report.peakRssBytes / 2 ** 20).toFixed(0)
          } MiB (report: ${out}/quantize_report.json)\n`,
      );
    }
    return 0;
  },
};
