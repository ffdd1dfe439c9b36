// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * `cli.ts eval MODEL --dataset FILE [--seqlen N] [--max-samples N] [--json]`.
 *
 * @module
 */

import { fsError, GptqError } from "../errors.ts";
import { loadModel } from "../load_model.ts";
import { perplexity } from "../runtime/perplexity.ts";
import {
  ACT_QUANT_OPTION,
  actQuantOption,
  BACKEND_OPTION,
  backendOption,
  type Command,
  intOption,
  MODEL_HELP,
  REVISION_OPTION,
  THREADS_OPTION,
  threadsOption,
  ZERO_FORMAT_OPTION,
  zeroFormatOption,
} from "./_command.ts";
import { resolveModelArg } from "./_hub.ts";
import { startProgress } from "./_progress.ts";

/** The `eval` command. */
export const evalCommand: Command = {
  name: "eval",
  summary: "perplexity of a model (plain or GPTQ) on a text file, as the GPTQ paper computes it",
  usage:
    "eval MODEL --dataset FILE [--seqlen 2048] [--max-samples N] [--backend auto|webgpu|wasm|typescript] [--threads N] [--act-quant f32|int8] [--json]",
  examples: [
    "eval ./Llama-2-7B-GPTQ --dataset wikitext2_test.txt --seqlen 2048",
    "eval ./stories260K-hf --dataset tinystories_valid_sample.txt --seqlen 512 --json",
    "eval HuggingFaceTB/SmolLM2-135M --revision main --dataset wikitext2_test.txt --seqlen 2048",
  ],
  notes: [MODEL_HELP],
  options: {
    dataset: {
      type: "string",
      valueName: "FILE",
      description: "text file, joined as-is and tokenized once",
    },
    seqlen: {
      type: "string",
      valueName: "N",
      description: "window length (default 2048, or the model's context if shorter)",
    },
    "max-samples": { type: "string", valueName: "N", description: "evaluate at most N windows" },
    backend: BACKEND_OPTION,
    threads: THREADS_OPTION,
    "act-quant": ACT_QUANT_OPTION,
    "zero-format": ZERO_FORMAT_OPTION,
    revision: REVISION_OPTION,
  },
  async run(args, io) {
    const model = args.positionals[0];
    if (model === undefined || args.positionals.length !== 1) {
      throw new GptqError("INVALID_ARGUMENT", "eval takes exactly one MODEL (folder or Hub id)", {
        hint: "usage: deno run -A cli.ts eval MODEL --dataset FILE",
      });
    }
    const dataset = args.values.dataset;
    if (typeof dataset !== "string") {
      throw new GptqError("INVALID_ARGUMENT", "--dataset FILE is required");
    }
    const threads = threadsOption(args);
    let text: string;
    try {
      text = await Deno.readTextFile(dataset);
    } catch (e) {
      throw fsError(e, dataset);
    }
    const m = await loadModel(await resolveModelArg(model, args, io), {
      backend: backendOption(args),
      ...(threads !== undefined ? { threads } : {}),
      ...(actQuantOption(args) ? { actQuant: actQuantOption(args)! } : {}),
      ...(zeroFormatOption(args) ? { zeroFormat: zeroFormatOption(args)! } : {}),
    });
    const { lm, tokenizer: tok } = m;
    io.stderr(`${m.backendChoice}\n`);
    try {
      const seqlen = intOption(args, "seqlen", Math.min(2048, lm.config.maxPositions), 2);
      const maxSamples = args.values["max-samples"] === undefined
        ? undefined
        : intOption(args, "max-samples", 0, 1);
      const t0 = performance.now();
      const ids = tok.encode(text, { addSpecialTokens: false });
      const tokMs = performance.now() - t0;
      const total = Math.min(Math.floor(ids.length / seqlen), maxSamples ?? Infinity);
      const bar = startProgress("eval", total, "windows", io.stderr);
      const t1 = performance.now();
      const r = await perplexity(lm, ids, {
        seqlen,
        ...(maxSamples === undefined ? {} : { maxSamples }),
        onProgress: (d) => bar.update(d),
      });
      bar.done();
      const secs = (performance.now() - t1) / 1000;
      const report = {
        model,
        dataset,
        backend: m.backend,
        ...r,
        tokensPerSecond: (r.windows * r.seqlen) / secs,
        seconds: secs,
        tokenizeSeconds: tokMs / 1000,
      };
      if (io.json) io.stdout(JSON.stringify(report, null, 2) + "\n");
      else {
        io.stdout(
          `perplexity ${r.ppl.toFixed(4)} (${r.windows} windows × ${r.seqlen} tokens, ` +
            `${r.droppedTokens} tokens dropped; ${report.tokensPerSecond.toFixed(1)} tok/s)\n`,
        );
      }
      return 0;
    } finally {
      m.close();
    }
  },
};
