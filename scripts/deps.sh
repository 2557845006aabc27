#!/usr/bin/env bash
# Installs the Debian 12 packages qiloop needs, only those that are missing.
# Usage: scripts/deps.sh [extra-package ...]
set -euo pipefail
pkgs=(g++ clang cmake ninja-build ccache pkg-config qt6-base-dev libabsl-dev
      libgtest-dev libgmock-dev libbenchmark-dev libuv1-dev libasio-dev qcoro-qt6-dev
      libssl-dev openssl python3 "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
