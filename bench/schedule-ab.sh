#!/usr/bin/env bash
# Quick A/B for the schedule-vs-health ratio while tuning: starts the release build on a fresh
# data dir, alternates ROUNDS x (wrk GET /health, wrk POST /api/agents/echo) of DUR seconds at 64
# connections, and prints each round's req/s, the engine's CPU per request (from /proc) and the
# ratio. Much shorter than bench/run.sh; build first (cargo build --release --locked).
# CONFIG=FILE serves with that config (for example `[serve] sync = "normal"`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/restack
DUR=${DUR:-5} ROUNDS=${ROUNDS:-3} PORT=${PORT:-7901}
D=$(mktemp -d)
"$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$D/engine" ${CONFIG:+-c "$CONFIG"} -q 2> "$D/log" &
P=$!
trap 'kill $P 2> /dev/null; wait $P 2> /dev/null; rm -rf "$D"' EXIT
for _ in $(seq 50); do curl -sf "127.0.0.1:$PORT/health" > /dev/null && break; sleep 0.1; done
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
  "'{\"input\":{\"x\":1}}'" > "$D/post.lua"
ticks() { awk '{print $14 + $15}' "/proc/$P/stat"; }
rps() { awk '/Requests\/sec/{print $2}'; }
TCK=$(getconf CLK_TCK)
for r in $(seq "$ROUNDS"); do
  c0=$(ticks); h=$(wrk -t2 -c64 -d"${DUR}s" "http://127.0.0.1:$PORT/health" | rps); c1=$(ticks)
  s=$(wrk -t2 -c64 -d"${DUR}s" -s "$D/post.lua" "http://127.0.0.1:$PORT/api/agents/echo" | rps); c2=$(ticks)
  awk -v r="$r" -v h="$h" -v s="$s" -v a="$((c1 - c0))" -v b="$((c2 - c1))" -v t="$TCK" -v d="$DUR" \
    -v la="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
      printf "round %d: health %.0f req/s (%.1f us/req), schedule %.0f req/s (%.1f us/req), ratio %.3f, load %s\n",
        r, h, a / t * 1e6 / (h * d), s, b / t * 1e6 / (s * d), s / h, la }'
done
