#!/usr/bin/env bash
# Builds (release) and runs the benchmarks.
#   scripts/bench.sh           full runs, figures for the README
#   scripts/bench.sh --smoke   each benchmark briefly (what CI does)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
shopt -s nullglob
for b in build/release/benchmarks/bench_*; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  if ((smoke)); then
    QT_QPA_PLATFORM=offscreen "$b" --benchmark_min_time=0.01 --smoke
  else
    QT_QPA_PLATFORM=offscreen "$b"
  fi
done
