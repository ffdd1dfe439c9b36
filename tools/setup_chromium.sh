#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for tests/browser_test.ts (the
# browser demo driven over the DevTools protocol). Idempotent; prints the
# version. Without root or apt-get it says so and the browser test reports
# "skipped: <why>".
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "setup_chromium: chromium missing and apt-get unavailable (not root):" \
      "tests/browser_test.ts will report 'skipped: chromium not installed'" >&2
    exit 0
  fi
fi
chromium --version 2>/dev/null
