#!/usr/bin/env bash
# Builds and runs every test: g++ (plain, ASan+UBSan, TSan on the thread
# tests), clang (plain), the install-consumer test, and a short smoke run of
# every benchmark. This is what CI (.ci/run) runs.
#
# Usage: scripts/test.sh            everything
#        QILOOP_PRESETS="dev" scripts/test.sh   a subset of: dev asan-ubsan tsan clang bench
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
presets=${QILOOP_PRESETS:-"dev asan-ubsan tsan clang bench"}

# g++ 12 / clang 14 sanitizer runtimes abort when ASLR uses 32 bits of mmap
# randomness; run them without ASLR then.
san_prefix=()
if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -gt 28 ]; then
  san_prefix=(setarch "$(uname -m)" -R)
fi

start=$(date +%s)
summary=()
for p in $presets; do
  t0=$(date +%s)
  if [ "$p" = bench ]; then
    cmake --preset release >/dev/null
    cmake --build --preset release
    scripts/bench.sh --smoke
  else
    cmake --preset "$p" >/dev/null
    cmake --build --preset "$p"
    case "$p" in
      asan-ubsan|tsan) "${san_prefix[@]}" ctest --preset "$p" ;;
      *) ctest --preset "$p" ;;
    esac
  fi
  summary+=("$p: ok in $(( $(date +%s) - t0 )) s")
done
printf '%s\n' "${summary[@]}"
echo "all test stages passed in $(( $(date +%s) - start )) s"
