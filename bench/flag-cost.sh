#!/usr/bin/env bash
# What a flag costs the hit path: POST /hit throughput and CPU per request of HitMe and of
# its Redis, for HitMe with and without extra flags, each on a private Redis, in turns
# (A B A B ...), medians of the repetitions. The loads of each turn (--loads, default all four):
#   ab     ab -n 20000 -c 64, a connection per request, one URL (ab_data/ab_data0)
#   wrk    wrk -t1 -c64, keep-alive, one URL (bench/post.lua)
#   zipf   wrk -t1 -c64, keep-alive, one URL per request from 100,000 with Zipf popularity
#          (bench/zipf.lua)
#   zipf-ref  the same with a referrer on each request, as a site's hits carry: none,
#          the site itself or one of 200 other sites (bench/zipf.lua referrers)
# Every run is bounded (ab by its count and a timeout, wrk by its duration) and targets
# 127.0.0.1 only.
#
#   bench/flag-cost.sh [--reps N] [--seconds S] [--bin PATH] [--loads L,...] -- "FLAGS A" "FLAGS B" ...
#   bench/flag-cost.sh -- "" "--rankings"
#   bench/flag-cost.sh --loads zipf,zipf-ref -- "" "--sources"
#
# Prints a markdown table: per configuration and load, req/s, HitMe and Redis CPU per
# request (µs), and the ratio of req/s to the first configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

reps=3 seconds=8 bin=target/release/hitme loads=ab,wrk,zipf,zipf-ref
while [ $# -gt 0 ]; do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --loads) loads=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) say "unknown argument: $1 (see --help)"; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { say "name the configurations after --, e.g. -- \"\" \"--rankings\""; exit 2; }
[ -x "$bin" ] || { say "no $bin: cargo build --release"; exit 2; }
ensure_commands ab:apache2-utils wrk:wrk redis-server:redis-server redis-cli:redis-server curl:curl
configs=("$@")
IFS=, read -r -a load_list <<<"$loads"
for load in "${load_list[@]}"; do
  case $load in ab|wrk|zipf|zipf-ref) ;; *) say "unknown load: $load (ab, wrk, zipf, zipf-ref)"; exit 2 ;; esac
done

work=$(mktemp -d)
redis_pid="" hitme_pid=""
stop() {
  [ -z "$hitme_pid" ] || { kill "$hitme_pid" 2>/dev/null || true; wait "$hitme_pid" 2>/dev/null || true; }
  [ -z "$redis_pid" ] || { kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; }
  hitme_pid="" redis_pid=""
}
trap 'stop; rm -rf "$work"' EXIT

free_port() {
  local port tries=0
  while :; do
    port=$((20000 + RANDOM % 10000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || { say "no free port"; exit 1; }
  done
}

# CPU seconds (user + system) a process has used.
cpu_of() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.4f\n", ($14 + $15) / hz }' "/proc/$1/stat"
}

start() {
  local flags=$1 rport hport
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    >"$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  hport=$(free_port)
  # shellcheck disable=SC2086 # the flags are words
  "$bin" --listen "127.0.0.1:$hport" --redis-url "redis://127.0.0.1:$rport" $flags \
    >"$work/hitme.log" 2>&1 &
  hitme_pid=$!
  for _ in $(seq 100); do curl -s -m 1 "http://127.0.0.1:$hport/healthz" >/dev/null && break; sleep 0.1; done
  url="http://127.0.0.1:$hport/hit"
}

# run LOAD: one run; appends "config load rps hitme_us redis_us" to the results.
run() {
  local config=$1 load=$2 c0 r0 c1 r1 requests out
  c0=$(cpu_of "$hitme_pid") r0=$(cpu_of "$redis_pid")
  case $load in
    ab)
      out=$(timeout 120 ab -q -r -n 20000 -c 64 -s 30 -p ab_data/ab_data0 \
        -T application/x-www-form-urlencoded "$url" 2>&1)
      requests=$(sed -n 's/^Complete requests: *//p' <<<"$out")
      rps=$(sed -n 's/^Requests per second: *\([0-9.]*\).*/\1/p' <<<"$out") ;;
    wrk|zipf|zipf-ref)
      local script=bench/post.lua args=(ab_data/ab_data0)
      [ "$load" = zipf ] && script=bench/zipf.lua args=(100000)
      [ "$load" = zipf-ref ] && script=bench/zipf.lua args=(100000 referrers)
      out=$(timeout $((seconds + 30)) wrk -t1 -c64 -d"${seconds}s" -s "$script" "$url" -- "${args[@]}" 2>&1)
      requests=$(sed -n 's/.*BENCH_WRK requests=\([0-9]*\).*/\1/p' <<<"$out")
      local us
      us=$(sed -n 's/.*duration_us=\([0-9]*\).*/\1/p' <<<"$out")
      rps=$(awk -v n="$requests" -v us="$us" 'BEGIN { printf "%.0f", n / (us / 1e6) }') ;;
  esac
  c1=$(cpu_of "$hitme_pid") r1=$(cpu_of "$redis_pid")
  awk -v cfg="$config" -v load="$load" -v rps="$rps" -v n="$requests" \
    -v hc="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" \
    -v rc="$(awk -v a="$r0" -v b="$r1" 'BEGIN { print b - a }')" \
    'BEGIN { printf "%s\t%s\t%.0f\t%.1f\t%.1f\n", cfg, load, rps, hc / n * 1e6, rc / n * 1e6 }' \
    >>"$work/results.tsv"
  say "$(tail -n 1 "$work/results.tsv" | tr '\t' ' ')"
}

for rep in $(seq "$reps"); do
  for i in "${!configs[@]}"; do
    say "rep $rep/$reps: hitme ${configs[$i]:-(defaults)}"
    start "${configs[$i]}"
    for load in "${load_list[@]}"; do
      run "$i" "$load"
      sleep 1
    done
    stop
  done
done

echo "| configuration | load | req/s (median of $reps) | ratio | HitMe CPU/request | Redis CPU/request |"
echo "| --- | --- | --- | --- | --- | --- |"
python3 - "$work/results.tsv" "$loads" "${configs[@]}" <<'EOF'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
loads = sys.argv[2].split(",")
configs = sys.argv[3:]
def med(cfg, load, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == str(cfg) and r[1] == load)
for load in loads:
    base = med(0, load, 2)
    for i, name in enumerate(configs):
        rps = med(i, load, 2)
        print(f"| `{name or '(defaults)'}` | {load} | {rps:,.0f} | {rps / base:.2f}× | "
              f"{med(i, load, 3):.1f} µs | {med(i, load, 4):.1f} µs |")
EOF
