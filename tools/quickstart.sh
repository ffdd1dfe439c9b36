#!/usr/bin/env bash
# README command 1: sets everything up and runs the main job end to end on the
# project's demo model (generated locally: no network, no data download).
# Today the main job is: make the demo model → inspect → generate. `quantize`
# joins between inspect and generate when it lands; this command stays the same.
set -euo pipefail
cd "$(dirname "$0")/.."
DENO="$(bash tools/setup_deno.sh)"
export PATH="$(dirname "$DENO"):$PATH"
DEMO=".cache/demo-llama"
echo "==> demo model: $DEMO (tiny Llama, seeded random weights, byte-level tokenizer)"
deno run -A tools/make_demo_model.ts "$DEMO" --force
echo "==> inspect"
deno run -A cli.ts inspect "$DEMO"
echo "==> generate (random weights: expect gibberish; the pipeline is the point)"
deno run -A cli.ts generate "$DEMO" --prompt "Hello" --max-new-tokens 24 --temperature 0.8 --seed 1
echo "==> eval (perplexity on this script's own text)"
deno run -A cli.ts eval "$DEMO" --dataset tools/quickstart.sh --seqlen 128
echo "==> done. Next: deno run -A cli.ts --help"
