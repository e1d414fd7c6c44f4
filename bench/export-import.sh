#!/usr/bin/env bash
# Times `hitme export` and `hitme import` of N URLs (default 100,000) in each of the six
# current buckets (6 N counts), on loopback with two private Redis servers (no persistence):
# wall time, HitMe's peak RSS (GNU time), Redis's used_memory, and whether the import holds
# every count of the export. Builds the release binary first.
#
#   bench/export-import.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
cargo build --release --quiet
bin=target/release/hitme
work=$(mktemp -d)
ports=()
cleanup() {
  for p in "${ports[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
start_redis() {
  local port
  port=$(python3 bench/benchkit.py freeport)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --logfile "$work/redis-$port.log" --dir "$work"
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  ports+=("$port")
  echo "$port"
}
used() { redis-cli -p "$1" info memory | tr -d '\r' | sed -n 's/^used_memory_human://p'; }
# Runs hitme with GNU time: prints "<seconds> s, peak RSS <MiB> MiB".
timed() {
  /usr/bin/time -f "%e %M" -o "$work/time" "$@"
  read -r secs kib <"$work/time"
  echo "$secs s, peak RSS $((kib / 1024)) MiB"
}
from=$(start_redis)
to=$(start_redis)
python3 bench/benchkit.py fill "$from" hits "$n" monday >/dev/null
echo "filled $n URLs in six buckets ($((6 * n)) counts); source Redis $(used "$from")"
echo "export: $(timed "$bin" --redis-url "redis://127.0.0.1:$from" export --output "$work/counts.csv")"
rows=$(($(wc -l <"$work/counts.csv") - 2))
echo "        $rows rows, $(du -h "$work/counts.csv" | cut -f1) of CSV"
echo "import: $(timed "$bin" --redis-url "redis://127.0.0.1:$to" --retention-minute 0 --retention-hour 0 --retention-day 0 import "$work/counts.csv" 2>"$work/import.err")"
tail -n 1 "$work/import.err"
echo "        target Redis $(used "$to")"
again=$("$bin" --redis-url "redis://127.0.0.1:$to" export 2>/dev/null | tail -n +3 | sort | md5sum)
before=$(tail -n +3 "$work/counts.csv" | sort | md5sum)
[ "$again" = "$before" ] && echo "check: the target's export equals the source's, row for row" \
  || { echo "check: the exports DIFFER"; exit 1; }
