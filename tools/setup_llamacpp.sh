#!/usr/bin/env bash
# Copyright 2026 the GPTQ toolkit authors. MIT license.
# Builds llama.cpp (CPU only) from the source bundled in the PyPI sdist of
# llama-cpp-python, for bench/cpu_vs_llamacpp.ts and bench/smollm2_speed_bench.ts.
#
#   tools/setup_llamacpp.sh [SDIST.tar.gz]
#
# Without an argument it runs `pip download --no-binary :all: --no-deps llama-cpp-python`.
# Result (ignored by git): .tools/llama.cpp/{src,build/bin/llama-bench,build/bin/llama-quantize}
# and .tools/llama.cpp/venv (torch, transformers, sentencepiece, numpy for convert_hf_to_gguf.py,
# bench/_sp_vocab.py and tests/interop/autogptq_smollm2.py; skipped with SKIP_CONVERT_VENV=1). JOBS (default 2) sets the build parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD/.tools/llama.cpp
JOBS=${JOBS:-2}
mkdir -p "$ROOT"
SDIST=${1:-}
if [[ -z "$SDIST" ]]; then
  mkdir -p "$ROOT/sdist"
  python3 -m pip download --no-binary :all: --no-deps -d "$ROOT/sdist" llama-cpp-python
  SDIST=$(ls "$ROOT"/sdist/llama_cpp_python-*.tar.gz | tail -n 1)
fi
if [[ ! -f "$ROOT/src/CMakeLists.txt" ]]; then
  TMP=$(mktemp -d "$ROOT/unpack.XXXXXX")
  tar -xzf "$SDIST" -C "$TMP"
  rm -rf "$ROOT/src"
  mv "$TMP"/llama_cpp_python-*/vendor/llama.cpp "$ROOT/src"
  basename "$SDIST" >"$ROOT/src/SDIST"
  rm -rf "$TMP"
fi
cmake -S "$ROOT/src" -B "$ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF
cmake --build "$ROOT/build" -j "$JOBS" --target llama-bench llama-quantize
"$ROOT/build/bin/llama-bench" --help >/dev/null
echo "llama.cpp built: $ROOT/build/bin (from $(cat "$ROOT/src/SDIST"))"
if [[ "${SKIP_CONVERT_VENV:-0}" != 1 && ! -x "$ROOT/venv/bin/python" ]]; then
  python3 -m venv "$ROOT/venv"
  # torch from PyPI (download.pytorch.org may be unreachable; the default wheel runs on CPU).
  # convert_hf_to_gguf.py imports the gguf-py bundled beside it.
  "$ROOT/venv/bin/pip" install -q torch numpy sentencepiece safetensors transformers pyyaml tqdm
  echo "convert venv: $ROOT/venv"
fi
