// Copyright 2026 the GPTQ toolkit authors. MIT license.
// The browser demo: loads the model folder served next to this page and
// streams a greedy story from BOS into #story. Query parameters: `model`
// (folder URL, default "model/"), `max_new_tokens` (default 256).
import { loadModelFromUrl } from "./gptq.js";

const params = new URLSearchParams(location.search);
const modelUrl = params.get("model") ?? "model/";
const maxNew = Number(params.get("max_new_tokens") ?? 256);
const story = document.getElementById("story");
const status = document.getElementById("status");

try {
  const t0 = performance.now();
  const model = await loadModelFromUrl(modelUrl);
  const loadMs = performance.now() - t0;
  status.textContent = `loaded in ${loadMs.toFixed(0)} ms (${model.backend}); generating…`;
  const stats = { promptTokens: 0, newTokens: 0, prefillMs: 0, decodeMs: 0, stop: "length" };
  for await (const piece of model.generate("", { max_new_tokens: maxNew, temperature: 0 }, stats)) {
    story.textContent += piece;
    await new Promise((r) => setTimeout(r, 0)); // let the page paint each piece
  }
  model.close();
  const tps = stats.newTokens > 1 ? (stats.newTokens - 1) / (stats.decodeMs / 1000) : 0;
  status.textContent = `${stats.newTokens} tokens (stop: ${stats.stop}), ` +
    `${tps.toFixed(0)} tok/s with painting, on ${model.backend}; loaded in ${loadMs.toFixed(0)} ms`;
  document.body.dataset.state = "done";
} catch (e) {
  status.textContent = `error: ${e instanceof Error ? e.message : e}`;
  document.body.dataset.state = "error";
  throw e;
}
