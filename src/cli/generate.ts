// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * `cli.ts generate MODEL --prompt TEXT [--chat [--system TEXT]] [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]`.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { loadModel } from "../load_model.ts";
import { type GenerateStats, newGenerateStats } from "../runtime/generate.ts";
import {
  ACT_QUANT_OPTION,
  actQuantOption,
  BACKEND_OPTION,
  backendOption,
  type Command,
  intOption,
  MODEL_HELP,
  numberOption,
  REVISION_OPTION,
  THREADS_OPTION,
  threadsOption,
  ZERO_FORMAT_OPTION,
  zeroFormatOption,
} from "./_command.ts";
import { resolveModelArg } from "./_hub.ts";

/** The `generate` command. */
export const generateCommand: Command = {
  name: "generate",
  summary: "generate text from a prompt, streaming tokens to stdout (plain or GPTQ models)",
  usage:
    "generate MODEL --prompt TEXT [--chat [--system TEXT]] [--max-new-tokens 128] [--temperature 1] [--top-k 0] [--top-p 1] [--seed 0] [--threads N] [--act-quant f32|int8]",
  examples: [
    'generate ./stories260K-hf --prompt "Once upon a time" --temperature 0',
    'generate ./Llama-2-7B-GPTQ --prompt "The capital of France is" --max-new-tokens 32 --top-p 0.9 --seed 7',
    'generate HuggingFaceTB/SmolLM2-135M-Instruct --prompt "Hello" --temperature 0',
    'generate ./SmolLM2-135M-Instruct-gptq --chat --prompt "What is the capital of France?" --temperature 0',
  ],
  notes: [MODEL_HELP],
  options: {
    prompt: {
      type: "string",
      short: "p",
      valueName: "TEXT",
      description: "the prompt (default: empty, i.e. BOS only)",
    },
    "max-new-tokens": {
      type: "string",
      valueName: "N",
      description: "tokens to generate at most (default 128)",
    },
    temperature: { type: "string", valueName: "T", description: "0 = greedy (default 1)" },
    "top-k": {
      type: "string",
      valueName: "K",
      description: "keep the K most likely tokens (0 = off)",
    },
    "top-p": {
      type: "string",
      valueName: "P",
      description: "nucleus sampling threshold (1 = off)",
    },
    seed: { type: "string", valueName: "S", description: "sampling seed (default 0)" },
    chat: {
      type: "boolean",
      description:
        "treat --prompt as a user message: render it with the model's chat template (as apply_chat_template with add_generation_prompt) and print only the answer",
    },
    system: {
      type: "string",
      valueName: "TEXT",
      description: "with --chat: a system message before the user message",
    },
    backend: BACKEND_OPTION,
    threads: THREADS_OPTION,
    "act-quant": ACT_QUANT_OPTION,
    "zero-format": ZERO_FORMAT_OPTION,
    revision: REVISION_OPTION,
  },
  async run(args, io) {
    const model = args.positionals[0];
    if (model === undefined || args.positionals.length !== 1) {
      throw new GptqError(
        "INVALID_ARGUMENT",
        "generate takes exactly one MODEL (folder or Hub id)",
        {
          hint: 'usage: deno run -A cli.ts generate MODEL --prompt "TEXT"',
        },
      );
    }
    const opts = {
      max_new_tokens: intOption(args, "max-new-tokens", 128, 1),
      temperature: numberOption(args, "temperature", 1, 0),
      top_k: intOption(args, "top-k", 0, 0),
      top_p: numberOption(args, "top-p", 1, 0, 1),
      seed: intOption(args, "seed", 0),
    };
    const threads = threadsOption(args);
    const prompt = (args.values.prompt as string | undefined) ?? "";
    const chat = args.values.chat === true;
    const system = args.values.system as string | undefined;
    if (system !== undefined && !chat) {
      throw new GptqError("INVALID_ARGUMENT", "--system needs --chat", {
        hint: 'usage: deno run -A cli.ts generate MODEL --chat --system "TEXT" --prompt "TEXT"',
      });
    }
    const messages = [
      ...(system !== undefined ? [{ role: "system", content: system }] : []),
      { role: "user", content: prompt },
    ];
    const m = await loadModel(await resolveModelArg(model, args, io), {
      backend: backendOption(args),
      ...(threads !== undefined ? { threads } : {}),
      ...(actQuantOption(args) ? { actQuant: actQuantOption(args)! } : {}),
      ...(zeroFormatOption(args) ? { zeroFormat: zeroFormatOption(args)! } : {}),
    });
    io.stderr(`${m.backendChoice}\n`);
    try {
      const stats: GenerateStats = newGenerateStats();
      let text = "";
      if (!io.json && !chat) io.stdout(prompt);
      const pieces = chat ? m.chat(messages, opts, stats) : m.generate(prompt, opts, stats);
      for await (const piece of pieces) {
        text += piece;
        if (!io.json) io.stdout(piece);
      }
      const decodeTps = stats.newTokens > 1 ? (stats.newTokens - 1) / (stats.decodeMs / 1000) : 0;
      const prefillTps = stats.promptTokens / (stats.prefillMs / 1000);
      if (io.json) {
        io.stdout(
          JSON.stringify(
            { prompt, text, ...stats, prefillTps, decodeTps, backend: m.backend },
            null,
            2,
          ) + "\n",
        );
      } else {
        io.stdout("\n");
        io.stderr(
          `[${stats.promptTokens} prompt tokens at ${
            prefillTps.toFixed(1)
          } tok/s, ${stats.newTokens} new at ` +
            `${decodeTps.toFixed(1)} tok/s; stop: ${stats.stop}]\n`,
        );
      }
      return 0;
    } finally {
      m.close();
    }
  },
};
