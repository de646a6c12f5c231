#!/usr/bin/env bash
# Build and run the server (release). Arguments go to the server, e.g.
#   scripts/run.sh --bind 0.0.0.0:8080
# The build compiles libopus (with cmake) and libwebm (C++). On a fresh Debian machine this
# installs what that needs first: cmake and a C++ compiler.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v c++ >/dev/null || missing+=(g++)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "installing the build's tools: ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

exec cargo run --release -- "$@"
