#!/usr/bin/env bash
# Builds and runs every test: g++ (plain, ASan+UBSan, TSan on the thread
# tests), clang (plain), the whole suite again on the portable (Qt-only)
# backend, the install-consumer test, a short smoke run of every benchmark
# with both backends, a short run of every fuzz target (scripts/fuzz.sh
# --smoke: clang, libFuzzer, ASan + UBSan), and the documentation site
# (scripts/docs.sh: Doxygen with warnings as errors, then every link
# checked). This is what CI (.ci/run) runs.
#
# Usage: scripts/test.sh            everything
#        QILOOP_PRESETS="dev" scripts/test.sh   a subset of: dev asan-ubsan tsan clang portable bench fuzz docs
set -euo pipefail
cd "$(dirname "$0")/.."
# Headless Chromium drives the web_app_in_process example's page; the
# websocket_echo example's tests drive it with Python's websockets and
# headless Chromium over WebDriver.
scripts/deps.sh python3-websockets python3-selenium chromium chromium-driver
presets=${QILOOP_PRESETS:-"dev asan-ubsan tsan clang portable bench fuzz docs"}

# g++ 12 / clang 14 sanitizer runtimes abort when ASLR uses 32 bits of mmap
# randomness; run them without ASLR then.
san_prefix=()
if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -gt 28 ]; then
  san_prefix=(setarch "$(uname -m)" -R)
fi

start=$(date +%s)
summary=()
passed=0
failed=0
# Runs ctest and adds its counts to the totals (set -e stops on a failure).
run_ctest() {
  local log
  log=$(mktemp)
  "$@" 2>&1 | tee "$log"
  local line total bad
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
  rm -f "$log"
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
  bad=$(sed -E 's/.*passed, ([0-9]+) tests failed.*/\1/' <<<"$line")
  passed=$((passed + total - bad))
  failed=$((failed + bad))
}
for p in $presets; do
  t0=$(date +%s)
  if [ "$p" = bench ]; then
    scripts/bench.sh --smoke
  elif [ "$p" = fuzz ]; then
    scripts/fuzz.sh --smoke
  elif [ "$p" = docs ]; then
    scripts/docs.sh
  else
    cmake --preset "$p" >/dev/null
    cmake --build --preset "$p"
    case "$p" in
      asan-ubsan|tsan) run_ctest "${san_prefix[@]}" ctest --preset "$p" ;;
      *) run_ctest ctest --preset "$p" ;;
    esac
  fi
  summary+=("$p: ok in $(( $(date +%s) - t0 )) s")
done
printf '%s\n' "${summary[@]}"
echo "all test stages passed in $(( $(date +%s) - start )) s"
echo "qiloop: $passed passed, $failed failed"
