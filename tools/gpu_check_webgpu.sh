#!/usr/bin/env bash
# WebGPU checks on a machine with a real GPU (e.g. the lent NVIDIA H200), in one call:
# the WebGPU test suites, then bench/webgpu_bench.ts, then the CPU inference bench
# for comparison. Deno and the Vulkan loader travel with the tree (no internet there):
#
#   here, once:  xz -T0 -6 -c .tools/node_modules/@deno/linux-x64-glibc/deno > .gl/deno.xz
#                echo /.gl/ >> .git/info/exclude   (and the loader .debs in .gl/, see the
#                device README: libvulkan1 libegl1 libglvnd0 ...)
#   there:       bash tools/gpu_check_webgpu.sh      (carry: .gl)
#
# Everything it prints also goes to $OUT/webgpu_check.log when OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG="${OUT:-/tmp}/webgpu_check.log"
exec > >(tee "$LOG") 2>&1
for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
ldconfig 2>/dev/null || true
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
if [ -f .gl/deno.xz ]; then
  mkdir -p /tmp/deno-bin && xz -dc .gl/deno.xz > /tmp/deno-bin/deno && chmod +x /tmp/deno-bin/deno
  export PATH=/tmp/deno-bin:$PATH
else
  export PATH="$PWD/.tools/node_modules/.bin:$PATH"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
deno eval 'const a = await navigator.gpu?.requestAdapter(); console.log("adapter:", a?.info)'
echo "== WebGPU tests"
NO_COLOR=1 timeout 300 deno test -A src/backends/webgpu/ tests/serve_e2e_test.ts
echo "== WebGPU bench"
timeout 240 deno run -A bench/webgpu_bench.ts --layers 8
