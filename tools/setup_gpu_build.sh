#!/usr/bin/env bash
# Installs what builds the CUDA/HIP kernel libraries without a GPU (idempotent):
# nvcc from PyPI wheels into the project-local venv .tools/cuda-venv (pinned in
# tools/build_cuda.ts), Debian's hipcc (AMD targets) and TBB (HIP-CPU, the CPU build the
# kernel tests run on).
set -euo pipefail
cd "$(dirname "$0")/.."
DENO="${DENO:-deno}"
need=()
command -v hipcc >/dev/null 2>&1 || need+=(hipcc)
[ -e /usr/include/tbb/tbb.h ] || [ -e /usr/include/oneapi/tbb.h ] || need+=(libtbb-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup_gpu_build: apt-get install ${need[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
python3 -m venv --help >/dev/null 2>&1 || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
}
"$DENO" eval --quiet 'import { ensureNvcc } from "./tools/build_cuda.ts"; console.log(await ensureNvcc())'
