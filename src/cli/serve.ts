// Copyright 2026 the GPTQ toolkit authors. MIT license.
/**
 * `cli.ts serve MODEL [--port 8080] [--host 127.0.0.1]`: an OpenAI-compatible
 * HTTP server (`/v1/completions`, `/v1/chat/completions`, `/v1/models`,
 * `/health`). Runs until SIGINT or SIGTERM.
 *
 * @module
 */

import { GptqError } from "../errors.ts";
import { loadModel, type LoadOptions } from "../load_model.ts";
import { type ModelWorker, startModelWorker } from "../serve/_gen_client.ts";
import { loadChatTemplate } from "../serve/chat_template.ts";
import { type RunningServer, serve, type ServedModel } from "../serve/server.ts";
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
import { parseHubId } from "../io/hub.ts";

/**
 * Loads the model in a Worker, so that forward passes never hold the event
 * loop that answers HTTP; where the backend cannot run in a Worker, on this
 * thread (between forward passes the loop still answers).
 */
async function loadServedModel(
  dir: string,
  load: Pick<LoadOptions, "backend" | "threads" | "zeroFormat" | "actQuant">,
  log: (line: string) => void,
): Promise<ServedModel & Pick<ModelWorker, "backendChoice" | "close">> {
  try {
    return await startModelWorker(dir, load);
  } catch (e) {
    if (e instanceof GptqError) throw e;
    log(`${(e as Error).message}; running the model on the server's thread instead`);
    return await loadModel(dir, load);
  }
}

/** The `serve` command. */
export const serveCommand: Command = {
  name: "serve",
  summary: "serve a model over an OpenAI-compatible HTTP API (completions, chat, streaming)",
  usage:
    "serve MODEL [--port 8080] [--host 127.0.0.1] [--model-name NAME] [--chat-template FILE] " +
    "[--max-body-bytes 1048576] [--max-prompt-tokens N] [--max-tokens-limit N] " +
    "[--max-connections 128] [--header-timeout-ms 10000] [--body-timeout-ms 30000] " +
    "[--idle-timeout-ms 60000] " +
    "[--prompt-timeout-ms 2000] [--threads N] [--act-quant f32|int8]",
  examples: [
    "serve ./stories260K-hf --port 8080",
    "serve ./Qwen2-0.5B-Instruct-GPTQ --host 0.0.0.0 --port 8000 --max-tokens-limit 512",
    "serve HuggingFaceTB/SmolLM2-135M-Instruct --port 8080",
  ],
  notes: [MODEL_HELP],
  options: {
    port: {
      type: "string",
      valueName: "PORT",
      description: "TCP port, 0 = any free one (default 8080)",
    },
    host: {
      type: "string",
      valueName: "HOST",
      description: "interface to listen on (default 127.0.0.1; 0.0.0.0 exposes it to the network)",
    },
    "model-name": {
      type: "string",
      valueName: "NAME",
      description: "the model id clients use (default: the folder's name, or the Hub id)",
    },
    "chat-template": {
      type: "string",
      valueName: "FILE",
      description:
        "a Jinja chat template (.jinja, or JSON with chat_template) replacing the model's",
    },
    "max-body-bytes": {
      type: "string",
      valueName: "N",
      description: "largest request body; larger ones get 413 (default 1048576)",
    },
    "max-prompt-tokens": {
      type: "string",
      valueName: "N",
      description: "longest prompt in tokens; longer ones get 400 (default: the model's context)",
    },
    "max-tokens-limit": {
      type: "string",
      valueName: "N",
      description: "largest max_tokens a request may ask for, else 400 (default: the context)",
    },
    "max-connections": {
      type: "string",
      valueName: "N",
      description: "most open connections; one more gets 503 and is closed (default 128)",
    },
    "header-timeout-ms": {
      type: "string",
      valueName: "MS",
      description: "time a client has to send a request's headers (default 10000)",
    },
    "body-timeout-ms": {
      type: "string",
      valueName: "MS",
      description:
        "time a request's body has to arrive after its headers, else 408 (default 30000)",
    },
    "idle-timeout-ms": {
      type: "string",
      valueName: "MS",
      description: "time a keep-alive connection may idle between requests (default 60000)",
    },
    "prompt-timeout-ms": {
      type: "string",
      valueName: "MS",
      description: "budget of rendering the chat template and tokenizing one prompt, " +
        "else 400 (default 2000; the memory budget is 256 MiB)",
    },
    backend: BACKEND_OPTION,
    threads: THREADS_OPTION,
    "act-quant": ACT_QUANT_OPTION,
    "zero-format": ZERO_FORMAT_OPTION,
    revision: REVISION_OPTION,
  },
  async run(args, io) {
    const dir = args.positionals[0];
    if (dir === undefined || args.positionals.length !== 1) {
      throw new GptqError("INVALID_ARGUMENT", "serve takes exactly one MODEL (folder or Hub id)", {
        hint: "usage: deno run -A cli.ts serve MODEL [--port 8080]",
      });
    }
    const port = intOption(args, "port", 8080, 0, 65535);
    const hostname = (args.values.host as string | undefined) ?? "127.0.0.1";
    const maxBodyBytes = intOption(args, "max-body-bytes", 1 << 20, 1);
    const maxPromptTokens = intOption(args, "max-prompt-tokens", Infinity, 1);
    const maxTokensLimit = intOption(args, "max-tokens-limit", Infinity, 1);
    const maxConnections = intOption(args, "max-connections", 128, 1, 100_000);
    const headerTimeoutMs = intOption(args, "header-timeout-ms", 10_000, 100, 3_600_000);
    const bodyTimeoutMs = intOption(args, "body-timeout-ms", 30_000, 100, 3_600_000);
    const idleTimeoutMs = intOption(args, "idle-timeout-ms", 60_000, 100, 3_600_000);
    const promptTimeoutMs = intOption(args, "prompt-timeout-ms", 2000, 10, 600_000);
    const threads = threadsOption(args);
    const given = dir.replace(/\/+$/, "");
    const base = (await resolveModelArg(given, args, io)).replace(/\/+$/, "");
    const hubId = base === given ? null : parseHubId(given);
    const modelId = (args.values["model-name"] as string | undefined) ?? hubId?.repo ??
      (base.split("/").pop() || base);
    const chatTemplate = await loadChatTemplate(
      base,
      args.values["chat-template"] as string | undefined,
    );
    const model = await loadServedModel(base, {
      backend: backendOption(args),
      ...(threads !== undefined ? { threads } : {}),
      ...(actQuantOption(args) ? { actQuant: actQuantOption(args)! } : {}),
      ...(zeroFormatOption(args) ? { zeroFormat: zeroFormatOption(args)! } : {}),
    }, (line) => io.stderr(`${line}\n`));
    io.stderr(`${model.backendChoice}\n`);
    io.stderr(
      chatTemplate
        ? `chat template: ${chatTemplate.source}\n`
        : "no chat template: /v1/chat/completions will answer 400 (pass --chat-template FILE)\n",
    );
    const ctx = model.lm.config.maxPositions;
    const ac = new AbortController();
    const stop = () => ac.abort();
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    for (const s of signals) Deno.addSignalListener(s, stop);
    try {
      let server: RunningServer;
      try {
        server = serve({
          model,
          modelId,
          chatTemplate,
          maxBodyBytes,
          maxPromptTokens: Math.min(maxPromptTokens, ctx),
          maxTokensLimit: Math.min(maxTokensLimit, ctx),
          maxConnections,
          headerTimeoutMs,
          bodyTimeoutMs,
          idleTimeoutMs,
          promptTimeoutMs,
          port,
          hostname,
          signal: ac.signal,
          log: (line) => io.stderr(`${new Date().toISOString()} ${line}\n`),
          onListen: (addr) => {
            const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
            const url = `http://${host}:${addr.port}`;
            io.stderr(`serving '${modelId}' (context ${ctx} tokens); listening on ${url}\n`);
            if (io.json) {
              io.stdout(JSON.stringify({ url, model: modelId, backend: model.backend }) + "\n");
            }
          },
        });
      } catch (e) {
        if (e instanceof Deno.errors.AddrInUse || e instanceof Deno.errors.AddrNotAvailable) {
          throw new GptqError("INVALID_ARGUMENT", `cannot listen on ${hostname}:${port}`, {
            hint: e instanceof Deno.errors.AddrInUse
              ? "the port is in use: pick another with --port (0 = any free port)"
              : "the address is not one of this machine's: check --host",
            cause: e,
          });
        }
        throw e;
      }
      await server.finished;
      io.stderr("server stopped\n");
      return 0;
    } finally {
      for (const s of signals) Deno.removeSignalListener(s, stop);
      model.close();
    }
  },
};
