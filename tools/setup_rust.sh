#!/usr/bin/env bash
# Copyright 2026 the GPTQ toolkit authors. MIT license.
#
# Installs what `deno task build:wasm` / `deno task check:wasm` need on Debian 12
# (idempotent; safe to run on every CI job):
#   - Debian's rustc-web toolchain, which can build std for wasm32 from source
#     (rustc-web cargo-web rust-web-src) and the wasm-ld linker (lld); no wasm-opt:
#     binaryen 108 (Debian 12) cannot parse the final relaxed-SIMD opcodes;
#   - wasm-bindgen-cli, pinned to the crate's wasm-bindgen version, built with
#     rustup's cargo into ~/.cargo/bin (Debian has no wasm-bindgen-cli package).
set -euo pipefail

WASM_BINDGEN_VERSION=0.2.130
APT_PACKAGES=(rustc-web cargo-web rust-web-src lld)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup_rust: installing ${missing[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
else
  echo "setup_rust: apt packages present (${APT_PACKAGES[*]})" >&2
fi

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
have=""
if [ -x "$CARGO_BIN/wasm-bindgen" ]; then
  have="$("$CARGO_BIN/wasm-bindgen" --version 2>/dev/null || true)"
elif command -v wasm-bindgen >/dev/null 2>&1; then
  have="$(wasm-bindgen --version 2>/dev/null || true)"
fi
if [ "$have" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  # rustup's cargo (the CLI needs rustc >= 1.86); without rustup, Debian's
  # rustc-web 1.96 builds it as well.
  if [ -x "$CARGO_BIN/cargo" ]; then
    CARGO=("$CARGO_BIN/cargo")
  else
    CARGO=(env RUSTC=/usr/bin/rustc /usr/bin/cargo)
  fi
  echo "setup_rust: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION with ${CARGO[*]} (found: '${have:-none}')" >&2
  # No --locked: the registry mirror lacks a crate version the CLI's lockfile names.
  "${CARGO[@]}" install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --force --root "${CARGO_HOME:-$HOME/.cargo}"
else
  echo "setup_rust: $have present" >&2
fi

/usr/bin/rustc --version >&2
"$CARGO_BIN/wasm-bindgen" --version >&2 2>/dev/null || wasm-bindgen --version >&2
