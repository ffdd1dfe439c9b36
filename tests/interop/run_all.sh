#!/usr/bin/env bash
# Copyright 2026 the GPTQ toolkit authors. MIT license.
# Quantizes the golden tiny models with our CLI and checks each checkpoint with
# check_transformers.py (transformers+gptqmodel and the AutoGPTQ-dequant reference).
# Needs a Python with torch, transformers, safetensors, optimum, gptqmodel:
#   PY=/tmp/interop-venv/bin/python tests/interop/run_all.sh [OUT_DIR]
# Not run by tools/test.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python3}
OUT=${1:-/tmp/interop-out}
D=../shared/data
G=$D/golden/models
C="--dataset $D/text/wikitext2_test.txt --bits 4 --group-size 32 --seqlen 128 --nsamples 16 --force"
mkdir -p "$OUT"
q() { deno run -A cli.ts quantize "$G/$1" --out "$OUT/$2" $C "${@:3}" >"$OUT/$2.log" 2>&1; }
q llama llama-g32-sym
q llama llama-g32-actorder --desc-act
q llama llama-g32-actorder-static --desc-act --static-groups
q llama llama-g32-asym-v2 --no-sym
q llama llama-g32-asym-v1 --no-sym --format gptq
q opt opt-g32-sym
q gpt2 gpt2-g32-sym
q gpt_neox gpt_neox-g32-sym
status=0
check() { # name golden [extra args]
  echo "== $1" >&2
  "$PY" tests/interop/check_transformers.py "$OUT/$1" "$2" --json "${@:3}" 2>>"$OUT/check.log" || status=1
}
for m in llama-g32-sym llama-g32-actorder llama-g32-actorder-static llama-g32-asym-v2 llama-g32-asym-v1; do
  check $m $G/llama/golden.safetensors
done
check opt-g32-sym $G/opt/golden.safetensors
check gpt2-g32-sym $G/gpt2/golden.safetensors
check gpt_neox-g32-sym $G/gpt_neox/golden.safetensors
# Sanity of the harness itself: AutoGPTQ's own checkpoint (its golden logits are AutoGPTQ's forward).
"$PY" tests/interop/check_transformers.py "$G/llama-gptq-4bit-g32" "$G/llama-gptq-4bit-g32/golden.safetensors" --json 2>>"$OUT/check.log" || status=1
exit $status
