#!/usr/bin/env bash
# Builds the fuzz preset (clang 14, libFuzzer, ASan + UBSan) and runs each
# fuzz target of tests/fuzz/ on its committed corpus (docs/fuzzing.md).
#   scripts/fuzz.sh                  10,000,000 executions per target, FUZZ_JOBS (nproc) at once
#   scripts/fuzz.sh --smoke          10 s of each (CI: test.sh's fuzz stage)
#   scripts/fuzz.sh [--smoke] NAME…  only those targets (stream_reader, framed_decoder, ...)
# FUZZ_RUNS (executions, full run) and FUZZ_SECONDS (per target, smoke)
# override the amounts; FUZZ_FLAGS adds libFuzzer flags (the loop targets'
# long runs use -entropic=0: docs/fuzzing.md says why). Each target's grown
# corpus is kept in build/fuzz/corpus/<name>/ (new inputs go there, the
# committed seeds are read only), its findings in build/fuzz/findings/<name>/, its log in
# build/fuzz/logs/<name>.log (<name>.smoke.log for --smoke, so that a
# smoke run beside a long one leaves the long one's log alone). A finding
# fails the run (status 1) after the other targets ran.
set -euo pipefail
cd "$(dirname "$0")/.."
# libFuzzer's runtime is in clang's compiler-rt package.
scripts/deps.sh libclang-rt-14-dev
smoke=0
if [ "${1:-}" = "--smoke" ]; then
  smoke=1
  shift
fi
all=()
for f in tests/fuzz/fuzz_*.cpp; do
  n=$(basename "$f" .cpp)
  [ "$n" = fuzz_kit ] && continue  # the targets' shared harness
  all+=("${n#fuzz_}")
done
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

# g++ 12 / clang 14 sanitizer runtimes abort when ASLR uses 32 bits of mmap
# randomness; run them without ASLR then.
san_prefix=()
if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -gt 28 ]; then
  san_prefix=(setarch "$(uname -m)" -R)
fi

# ASan's quarantine of freed memory (256 MB by default) plus its allocator's
# caches make a long run's peak RSS creep towards libFuzzer's 2 GB limit
# (fuzz_ws_frame reached 1 GB after 700,000 executions): a smaller
# quarantine keeps a run of millions of executions under it.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=64}

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "${targets[@]/#/fuzz_}"

# A target's summary line goes to build/fuzz/logs/<t>.result (<t>.smoke.result).
result_of() { if ((smoke)); then echo "build/fuzz/logs/$1.smoke.result"; else echo "build/fuzz/logs/$1.result"; fi; }

# One target: runs it, then writes its summary line.
fuzz_one() {
  local t=$1 bin=build/fuzz/tests/fuzz/fuzz_$1
  mkdir -p "build/fuzz/corpus/$t" "build/fuzz/findings/$t" build/fuzz/logs
  # -timeout: an input that runs 30 s is a hang, a finding (every input takes milliseconds).
  local args=(-max_len=4096 -timeout=30 -print_final_stats=1 -artifact_prefix="build/fuzz/findings/$t/")
  [ -f "tests/fuzz/$t.dict" ] && args+=(-dict="tests/fuzz/$t.dict")
  # unquoted on purpose: FUZZ_FLAGS is a list of flags
  args+=(${FUZZ_FLAGS:-})
  if ((smoke)); then
    args+=(-max_total_time="${FUZZ_SECONDS:-10}")
  else
    args+=(-runs="${FUZZ_RUNS:-10000000}")
  fi
  local log=build/fuzz/logs/$t.log
  ((smoke)) && log=build/fuzz/logs/$t.smoke.log
  echo "== fuzz_$t ${args[*]}"
  local t0 rc=0 runs speed
  t0=$(date +%s)
  "${san_prefix[@]}" "$bin" "${args[@]}" "build/fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if ((rc)); then
    tail -40 "$log"
    echo "fuzz_$t: FINDING after ${runs:-?} executions (exit $rc); see $log and build/fuzz/findings/$t/" \
      >"$(result_of "$t")"
  else
    echo "fuzz_$t: ${runs:-?} executions, ${speed:-?} exec/s, $(($(date +%s) - t0)) s, no finding" \
      >"$(result_of "$t")"
  fi
}

for t in "${targets[@]}"; do
  [ -x "build/fuzz/tests/fuzz/fuzz_$t" ] || { echo "fuzz: no target fuzz_$t (tests/fuzz/CMakeLists.txt)" >&2; exit 2; }
  rm -f "$(result_of "$t")"
done
# The targets run FUZZ_JOBS at a time (each is one process on one core).
jobs_max=${FUZZ_JOBS:-$(nproc)}
for t in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
  fuzz_one "$t" &
done
wait
status=0
for t in "${targets[@]}"; do
  r=$(result_of "$t")
  cat "$r" 2>/dev/null || { echo "fuzz_$t: no result (the run was interrupted)"; status=1; }
  grep -q FINDING "$r" 2>/dev/null && status=1
done
exit $status
