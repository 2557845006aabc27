#!/usr/bin/env bash
# Builds (release) and runs the benchmarks, with each backend: the linux one
# (preset release) and the portable one (preset release-portable; the peers'
# binaries, whose peers do not depend on qiloop's backend, run once).
#   scripts/bench.sh           full runs, figures for docs/performance.md
#   scripts/bench.sh --smoke   each benchmark briefly (what CI does)
set -euo pipefail
cd "$(dirname "$0")/.."
# Python and uvloop: the peers bench_concurrency, bench_qt and bench_net run (benchmarks/peers/).
scripts/deps.sh python3 python3-uvloop
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
shopt -s nullglob
for preset in release release-portable; do
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
  echo "==== backend: $(sed -n 's/^#define QILOOP_BACKEND_NAME "\(.*\)"$/\1/p' \
    "build/$preset/qiloop/generated/qiloop/config.h") (preset $preset)"
  for b in "build/$preset"/benchmarks/bench_*; do
    [ -f "$b" ] && [ -x "$b" ] || continue  # skips bench_*_autogen/ (AUTOMOC)
    [ "$preset" = release-portable ] && [[ "$(basename "$b")" == bench_peers_* ]] && continue
    echo "== $(basename "$b")"
    if ((smoke)); then
      QT_QPA_PLATFORM=offscreen "$b" --benchmark_min_time=0.01 --smoke
    else
      QT_QPA_PLATFORM=offscreen "$b"
    fi
  done
done
