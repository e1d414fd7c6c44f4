#!/usr/bin/env bash
# System calls per request of a server under ab, one connection per request:
#   bench/syscalls.sh [--concurrency C] [--requests N] [--wrk] [--switches] [-- SERVER COMMAND...]
# Without a command it builds and runs the design floor (examples/floor.rs, 2 workers) on
# 127.0.0.1:18081. strace -c -f attaches to the server after a warm-up run, the measured run
# is timed by ab (or wrk -c C -d 5s with --wrk), and the table is strace's counts divided by
# the requests answered. With --switches, perf stat instead of strace: the server's CPU time
# and context switches per request (strace slows every call; perf stat does not).
# Loopback only; every run is bounded by its count or duration.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
concurrency=64 requests=2000 tool=ab counter=strace
while [ $# -gt 0 ]; do
    case "$1" in
        --concurrency) concurrency=$2; shift 2 ;;
        --requests) requests=$2; shift 2 ;;
        --wrk) tool=wrk; shift ;;
        --switches) counter=perf; shift ;;
        --) shift; break ;;
        *) say "unknown option $1"; exit 2 ;;
    esac
done
port=18081
if [ $# -eq 0 ]; then
    cargo build --release --example floor >&2
    set -- target/release/examples/floor --listen 127.0.0.1:$port --threads 2
else
    port=${PORT:?set PORT to the port the server command listens on}
fi
counter_pkg=strace:strace; [ "$counter" = perf ] && counter_pkg=perf:linux-perf
ensure_commands ab:apache2-utils wrk:wrk curl:curl "$counter_pkg"
out=$(mktemp -d)
"$@" >"$out/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break || sleep 0.1
done
url="http://127.0.0.1:$port/hit"
ab -q -n 2000 -c "$concurrency" -p ab_data/ab_data0 -T application/x-www-form-urlencoded "$url" >/dev/null
if [ "$counter" = strace ]; then
    strace -c -f -q -p "$server" -o "$out/strace" &
else
    perf stat -e task-clock,context-switches -p "$server" -o "$out/perf" &
fi
tracer=$!
sleep 1
if [ "$tool" = ab ]; then
    ab -q -n "$requests" -c "$concurrency" -p ab_data/ab_data0 \
        -T application/x-www-form-urlencoded "$url" >"$out/load"
    answered=$(awk '/^Complete requests/ {print $3}' "$out/load")
    failed=$(awk '/^Failed requests/ {print $3}' "$out/load")
else
    wrk -t 2 -c "$concurrency" -d 5s -s bench/post.lua "$url" -- ab_data/ab_data0 >"$out/load"
    answered=$(sed -n 's/^BENCH_WRK requests=\([0-9]*\).*/\1/p' "$out/load")
    failed=$(sed -n 's/^BENCH_WRK .* status=\([0-9]*\).*/\1/p' "$out/load")
fi
sleep 0.5
kill -INT $tracer; wait $tracer 2>/dev/null || true
echo "$tool -c $concurrency: $answered requests answered, $failed failed"
if [ "$counter" = perf ]; then
    awk -v n="$answered" '
        $2 == "msec" && $3 == "task-clock" { v = $1; gsub(",", "", v); printf "CPU            %8.1f µs per request\n", v * 1000 / n }
        $2 == "context-switches" { gsub(",", "", $1); printf "switches       %8.2f per request\n", $1 / n }' "$out/perf"
    exit 0
fi
awk -v n="$answered" '
    $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { name = $NF; calls = $4; errs = (NF == 6 ? $5 : 0)
        total += calls; printf "%-14s %8.2f per request", name, calls / n
        if (errs > 0) printf "  (%d returned an error)", errs; printf "\n" }
    END { printf "%-14s %8.2f per request\n", "total", total / n }' "$out/strace"
