#!/usr/bin/env bash
# The memory bench: one monitoring mode of the throughput server (release build) under
# saturating wrk load for MINUTES, the two routes alternating. It samples the server's
# resident memory and the store file's size every 5 s, and prints where memory settled
# after the first minute, the highest it reached after that, and the store at the end.
# The goal: resident memory stays within 64 MiB of the one-minute figure, and the store
# stays within its retention bound.
#
#   bash bench/memory.sh                          # axum, sampled100, 10 minutes
#   FRAMEWORK=actix MINUTES=3 bash bench/memory.sh
#
# Environment: FRAMEWORK (axum), MODE (sampled100; any throughput-server mode),
# MINUTES (10), CONNECTIONS (16), PORT (18090). Samples go to target/memory/.
set -euo pipefail
cd "$(dirname "$0")/.."

framework=${FRAMEWORK:-axum}
mode=${MODE:-sampled100}
minutes=${MINUTES:-10}
connections=${CONNECTIONS:-16}
port=${PORT:-18090}

if ! command -v wrk >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

cargo build --release -q -p backstop-throughput
server="${CARGO_TARGET_DIR:-target}/release/throughput-server"
out=target/memory
mkdir -p "$out"
db="$out/$framework-$mode.db"
samples="$out/$framework-$mode.tsv"
rm -f "$db" "$db-wal" "$db-shm"
: >"$samples"

"$server" "$framework" "$mode" "127.0.0.1:$port" "$db" 2>"$out/$framework-$mode.log" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

# Load: the routes alternate in 30 s runs until the time is up.
(
  end=$((SECONDS + minutes * 60))
  while ((SECONDS < end)); do
    for route in /hello /query; do
      left=$((end - SECONDS))
      ((left > 0)) || break
      wrk -t1 -c"$connections" -d"$((left < 30 ? left : 30))s" "http://127.0.0.1:$port$route" >/dev/null
    done
  done
) &
load=$!

start=$SECONDS
while kill -0 "$load" 2>/dev/null; do
  rss_kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
  bytes=$(stat -c %s "$db" "$db-wal" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
  printf '%s\t%s\t%s\n' "$((SECONDS - start))" "$rss_kib" "$bytes" >>"$samples"
  sleep 5
done
wait "$load"

kill -INT "$pid"
wait "$pid" || true
trap - EXIT

python3 - "$samples" "$db" "$framework" "$mode" "$minutes" <<'PY'
import sqlite3, sys
samples, db, framework, mode, minutes = sys.argv[1:]
rows = [tuple(map(int, l.split("\t"))) for l in open(samples).read().splitlines()]
mark = min(60, rows[-1][0])
settled = next(rss for t, rss, _ in rows if t >= mark)
after = [rss for t, rss, _ in rows if t >= mark]
peak, last = max(after), rows[-1][1]
con = sqlite3.connect(db)
transactions = con.execute("SELECT count(*) FROM transactions").fetchone()[0]
print(f"{framework} {mode}, {minutes} min of wrk -c16, {len(rows)} samples:")
print(f"  resident memory: {settled / 1024:.1f} MiB at 1 min, peak after {peak / 1024:.1f} MiB "
      f"(+{(peak - settled) / 1024:.1f} MiB), at the end {last / 1024:.1f} MiB")
print(f"  store: {rows[-1][2] / 2**20:.1f} MiB on disk (file and WAL), {transactions} transactions kept")
PY
