#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build vlmkit (a C++ compiler, make, python3 for node-gyp,
# OpenBLAS headers, ffmpeg for video input, chromium for the playground's browser test), then the npm
# dependencies, which build the native addon and the TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
# test/serve/playground.test.ts drives Debian's chromium through playwright-core (which downloads no browser)
if [ "$(uname)" = Linux ] && [ ! -x /usr/bin/chromium ]; then need+=(chromium); fi
if [ "$(uname)" = Linux ] && ! dpkg -s libopenblas-dev >/dev/null 2>&1; then need+=(libopenblas-dev); fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
npm ci --no-audit --no-fund
