#!/usr/bin/env bash
# Installs Deno from the npm registry into the project-local folder .tools/
# (nothing global). Idempotent. Prints the path of the deno binary.
set -euo pipefail
cd "$(dirname "$0")/.."
DENO_VERSION="2.9.6"
BIN=".tools/node_modules/.bin/deno"
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "^deno $DENO_VERSION"; then
  echo "$PWD/$BIN"; exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "setup_deno: npm not found; installing Debian's nodejs and npm" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
fi
mkdir -p .tools
[ -f .tools/package.json ] || echo '{ "private": true }' > .tools/package.json
# The deno package's binary ships inside @deno/linux-x64-glibc; its postinstall
# only links it, so this works offline from the registry.
npm install --prefix .tools --no-audit --no-fund --loglevel=error "deno@$DENO_VERSION" >&2
"$BIN" --version >&2
echo "$PWD/$BIN"
