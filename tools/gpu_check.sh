#!/usr/bin/env bash
# CUDA checks on a machine with an NVIDIA GPU (the lent H100/H200), in one call: the CUDA test
# suites (kernels vs the TypeScript reference, whole models vs WASM with greedy equality, the
# CLI, the GPTQ solver vs AutoGPTQ's goldens and the WASM solver), then bench/cuda_bench.ts, then
# the per-block GPTQ solve time (tools/gpu_solve_bench.ts) against AutoGPTQ's fasterquant on
# torch CUDA (tools/gpu_solve_bench.py; torch is installed there). That machine has the driver but no internet and no Deno, and
# only the repository travels, so everything it needs is put in the ignored folder .gpu/ first:
#
#   here, once:   bash tools/gpu_check.sh --prepare     (Deno xz-compressed, the shared test data,
#                                                       a Deno cache with the npm packages)
#   there:        bash tools/gpu_check.sh               (device tool: carry [".gpu"])
#                 bash tools/gpu_check.sh --solve       (only the GPTQ solver test and timing)
#
# Everything it prints also goes to $OUT/cuda_check.log, and the bench's figures to
# $OUT/cuda_bench.json, when OUT is set. Exit status: that of the tests.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

if [ "${1:-}" = "--prepare" ]; then
  set -e
  DENO_BIN="$(bash tools/setup_deno.sh)"
  mkdir -p .gpu
  grep -qxF '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  [ -f .gpu/deno.xz ] || xz -T0 -6 -c "$DENO_BIN" > .gpu/deno.xz
  rm -rf .gpu/data && mkdir -p .gpu/data/golden .gpu/data/text
  cp -r ../shared/data/golden/models .gpu/data/golden/
  cp -r ../shared/data/golden/autogptq .gpu/data/golden/
  cp -r ../shared/data/stories260K .gpu/data/
  cp ../shared/data/text/tinystories_valid_sample.txt .gpu/data/text/
  rm -rf .gpu/deno_dir
  DENO_DIR="$ROOT/.gpu/deno_dir" "$DENO_BIN" cache --quiet src/backends/cuda/*_test.ts \
    tests/cuda_cli_test.ts bench/cuda_bench.ts tools/gpu_solve_bench.ts cli.ts
  du -sh .gpu .gpu/*
  echo "prepared .gpu/: run 'bash tools/gpu_check.sh' on the device machine with carry [\".gpu\"]"
  exit 0
fi

LOG="${OUT:-/tmp}/cuda_check.log"
exec > >(tee "$LOG") 2>&1
start=$(date +%s)
step() { echo; echo "==> $* (+$(( $(date +%s) - start ))s)"; }

if [ -f .gpu/deno.xz ]; then
  mkdir -p /tmp/deno-bin && xz -dc .gpu/deno.xz > /tmp/deno-bin/deno && chmod +x /tmp/deno-bin/deno
  export PATH=/tmp/deno-bin:$PATH
else
  export PATH="$ROOT/.tools/node_modules/.bin:$PATH"
fi
[ -d .gpu/deno_dir ] && export DENO_DIR="$ROOT/.gpu/deno_dir"
# The tests read ../shared/data (beside the checkout); there only the repository travels.
if [ ! -d ../shared/data/golden ] && [ -d .gpu/data ]; then
  mkdir -p ../shared && ln -sfn "$ROOT/.gpu/data" ../shared/data
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" NO_COLOR=1

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv 2>/dev/null || true
deno --version | head -1
deno eval 'import { probeCuda } from "./src/backends/cuda/cuda_backend.ts"; console.log(JSON.stringify(probeCuda()))'

if [ "${1:-}" = "--solve" ]; then
  # Only the GPTQ solver: its test and the solve timing (about 3 minutes).
  step "CUDA GPTQ solver test (AutoGPTQ goldens, WASM equality, errors)"
  timeout 200 deno test -A src/backends/cuda/solver_test.ts
  rc=$?
  echo "tests exit status: $rc"
else
  step "CUDA tests (kernels vs the TypeScript reference, models vs WASM, CLI, GPTQ solver)"
  timeout 300 deno test -A src/backends/cuda/ tests/cuda_cli_test.ts
  rc=$?
  echo "tests exit status: $rc"

  step "CUDA bench (Llama-7B shapes)"
  timeout 200 deno run -A bench/cuda_bench.ts --layers 8 --json "${OUT:-/tmp}/cuda_bench.json"
fi

step "GPTQ solve per Llama-7B block: CUDA solver vs AutoGPTQ fasterquant on torch CUDA"
timeout 120 deno run -A tools/gpu_solve_bench.ts --json "${OUT:-/tmp}/cuda_solve_bench.json"
timeout 120 python3 tools/gpu_solve_bench.py --json "${OUT:-/tmp}/autogptq_solve_bench.json"
python3 - "${OUT:-/tmp}" <<'PY' || true
import json, sys
o = sys.argv[1]
c = json.load(open(o + "/cuda_solve_bench.json"))
t = json.load(open(o + "/autogptq_solve_bench.json"))
print("| module | N×K | cuda ms | AutoGPTQ ms | ratio |")
print("| --- | --- | ---: | ---: | ---: |")
for a, b in zip(c["modules"], t["modules"]):
    print("| %s | %d×%d | %.1f | %.1f | %.2f |" % (a["module"], a["N"], a["K"], a["ms"], b["ms"], a["ms"] / b["ms"]))
print("| block | | %.1f | %.1f | %.2f (goal <= 0.5) |" % (c["block_ms"], t["block_ms"], c["block_ms"] / t["block_ms"]))
print("engine order (shared Hessians): %.1f ms; anchor: %s on %s" % (c["engine_block_ms"], t["impl"], t["device"]))
PY

echo "total $(( $(date +%s) - start ))s"
exit "$rc"
