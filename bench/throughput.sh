#!/usr/bin/env bash
# The real-server throughput bench: each monitoring mode serves the same axum or actix
# app (release build) on loopback, and wrk loads it. Modes run interleaved, in rounds,
# so a slow stretch of a noisy machine falls on every mode alike. Prints the median
# requests/s of each mode on each route, and its ratio to bare (a tracing registry and
# no monitoring).
#
#   bash bench/throughput.sh                 # both frameworks, 3 rounds, 10 s a run
#   ROUNDS=5 DURATION=20 FRAMEWORKS=axum bash bench/throughput.sh
#
# Environment: FRAMEWORKS (axum actix),
# MODES (bare errors sampled10 sampled100 export sentry sentry-http),
# ROUNDS (3), DURATION (seconds per wrk run, 10), WARMUP (seconds, 2), CONNECTIONS (16),
# THREADS (wrk threads, 1), PORT (18080). Raw results go to target/throughput/.
set -euo pipefail
cd "$(dirname "$0")/.."

frameworks=${FRAMEWORKS:-axum actix}
modes=${MODES:-bare errors sampled10 sampled100 export sentry sentry-http}
rounds=${ROUNDS:-3}
duration=${DURATION:-10}
warmup=${WARMUP:-2}
connections=${CONNECTIONS:-16}
threads=${THREADS:-1}
port=${PORT:-18080}
routes="/hello /query"

if ! command -v wrk >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

cargo build --release -q -p backstop-throughput
server="${CARGO_TARGET_DIR:-target}/release/throughput-server"
out=target/throughput
rm -rf "$out" && mkdir -p "$out"
results="$out/results.tsv"
: >"$results"

wait_for_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the server did not start on port $port" >&2
  return 1
}

for round in $(seq 1 "$rounds"); do
  for framework in $frameworks; do
    for mode in $modes; do
      db="$out/$framework-$mode.db"
      rm -f "$db" "$db-wal" "$db-shm"
      "$server" "$framework" "$mode" "127.0.0.1:$port" "$db" 2>"$out/$framework-$mode.log" &
      pid=$!
      wait_for_port
      for route in $routes; do
        wrk -t"$threads" -c"$connections" -d"${warmup}s" "http://127.0.0.1:$port$route" >/dev/null
        rps=$(wrk -t"$threads" -c"$connections" -d"${duration}s" "http://127.0.0.1:$port$route" |
          awk '/^Requests\/sec:/ { print $2 }')
        printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$framework" "$route" "$mode" "$rps" >>"$results"
        printf 'round %s  %-6s %-7s %-11s %10.0f req/s\n' "$round" "$framework" "$route" "$mode" "$rps"
      done
      kill -INT "$pid"
      wait "$pid" || true
    done
  done
done

echo
echo "Median requests/s over $rounds rounds (wrk -t$threads -c$connections -d${duration}s), ratio to bare:"
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
runs = {}
for _, framework, route, mode, rps in rows:
    runs.setdefault((framework, route), {}).setdefault(mode, []).append(float(rps))
modes = list(dict.fromkeys(r[3] for r in rows))
print(f"| framework | route | " + " | ".join(modes) + " |")
print("|---|---|" + "---|" * len(modes))
for (framework, route), by_mode in runs.items():
    bare = statistics.median(by_mode["bare"]) if "bare" in by_mode else None
    cells = []
    for mode in modes:
        median = statistics.median(by_mode[mode])
        ratio = f" ({median / bare:.2f})" if bare else ""
        cells.append(f"{median:,.0f}{ratio}")
    print(f"| {framework} | `{route}` | " + " | ".join(cells) + " |")
PY
