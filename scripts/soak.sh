#!/usr/bin/env bash
# The full echo soak (docs/reliability.md): 10,000 qiloop stream clients and
# 200 blocking ones against a qiloop echo server in another process (each
# process then holds one end of every connection: 10,000 fds and a few), in
# five waves (two of warm-up), one stalled client throughout.
#   scripts/soak.sh [preset]          preset: dev (default), asan-ubsan, clang, portable...
#   CONNECTIONS=20000 RAW=500 WAVES=5 scripts/soak.sh
# Exit status 0 when no problem was found; the figures on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-dev}
connections=${CONNECTIONS:-10000}
raw=${RAW:-200}
waves=${WAVES:-5}
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
[ -f "build/$preset/CMakeCache.txt" ] || cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j2 --target qiloop_soak
bin=build/$preset/tests/qiloop_soak
need=$((connections + raw + 256))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
  echo "soak.sh: each process needs $need fds; the hard limit is $(ulimit -Hn) (raise it, or set CONNECTIONS lower)" >&2
  exit 3
fi
# Sanitizers of g++ 12 / clang 14 abort when ASLR uses more than 28 bits.
run=()
if [[ "$preset" == *san* ]] && [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ]; then
  run=(setarch "$(uname -m)" -R)
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
coproc SERVER { exec "${run[@]}" "$bin" --serve; }
server_pid=$SERVER_PID
read -r _ port _ pid <&"${SERVER[0]}"
echo "server: port $port, pid $pid; clients: $connections streams + $raw blocking, $waves waves"
start=$(date +%s.%N)
status=0
"${run[@]}" "$bin" --connections "$connections" --raw "$raw" --waves "$waves" --port "$port" --server-pid "$pid" ||
  status=$?
echo "total: $(echo "$(date +%s.%N) - $start" | bc) s"
exec {SERVER[1]}>&-  # the server ends at its stdin's EOF
wait "$server_pid" || status=$?
exit "$status"
