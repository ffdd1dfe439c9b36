#!/usr/bin/env bash
# README command 1: sets everything up and runs the main job end to end on the
# project's demo model, offline: make the demo model → quantize (GPTQ 4-bit) →
# inspect → generate → eval (fp16 vs 4-bit).
set -euo pipefail
cd "$(dirname "$0")/.."
DENO="$(bash tools/setup_deno.sh)"
export PATH="$(dirname "$DENO"):$PATH"
DEMO=".cache/demo-llama"
OUT=".cache/demo-llama-gptq-4bit"
CALIB="README.md"   # any text works as calibration data for the demo
echo "==> demo model: $DEMO (tiny Llama, seeded random weights, byte-level tokenizer; generated locally)"
deno run -A tools/make_demo_model.ts "$DEMO" --force
echo "==> quantize: GPTQ 4-bit, group 32, calibration text $CALIB"
deno run -A cli.ts quantize "$DEMO" --out "$OUT" --dataset "$CALIB" --bits 4 --group-size 32 \
  --nsamples 16 --seqlen 128 --force
echo "==> inspect the quantized checkpoint"
deno run -A cli.ts inspect "$OUT"
echo "==> generate with the quantized model (random weights: expect gibberish; the pipeline is the point)"
deno run -A cli.ts generate "$OUT" --prompt "Hello" --max-new-tokens 24 --temperature 0.8 --seed 1
echo "==> eval: perplexity of the fp16 and the 4-bit model on $CALIB"
deno run -A cli.ts eval "$DEMO" --dataset "$CALIB" --seqlen 128
deno run -A cli.ts eval "$OUT" --dataset "$CALIB" --seqlen 128
echo "==> done. Next: deno run -A cli.ts --help"
