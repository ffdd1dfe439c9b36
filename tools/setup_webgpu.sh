#!/usr/bin/env bash
# Installs what Deno's WebGPU (wgpu over Vulkan) needs on a machine without a
# GPU: the Vulkan loader (libvulkan1) and Mesa's lavapipe CPU driver
# (mesa-vulkan-drivers). Idempotent; prints the adapter Deno then sees.
# On a machine with a GPU, its vendor's Vulkan driver is used instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! dpkg -s libvulkan1 mesa-vulkan-drivers >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libvulkan1 mesa-vulkan-drivers >&2
  else
    echo "setup_webgpu: libvulkan1/mesa-vulkan-drivers missing and apt-get unavailable (not root):" \
      "WebGPU tests will report 'skipped: no WebGPU adapter'" >&2
    exit 0
  fi
fi
DENO="$(bash tools/setup_deno.sh)"
XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" "$DENO" eval \
  'const a = await navigator.gpu?.requestAdapter(); console.log("webgpu adapter:", a ? a.info.description || a.info.vendor : "none")'
