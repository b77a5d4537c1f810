#!/usr/bin/env bash
# Quick A/B for the schedule-vs-health ratio while tuning: starts the release build on a fresh
# data dir, alternates ROUNDS x (wrk GET /health, wrk POST /api/agents/echo) of DUR seconds at 64
# connections, and prints each round's req/s, the engine's CPU per request (from /proc) and the
# ratio. Much shorter than bench/run.sh; build first (cargo build --release --locked).
# CONFIG=FILE serves with that config (for example `[serve] sync = "normal"`).
# B=BINARY also serves that build (say, a copy of an earlier target/release/restack) on its own
# data dir, and each round measures both engines in turn: the host's speed drifts by tens of
# percent within minutes, so two builds are only comparable in interleaved pairs like these.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/restack
DUR=${DUR:-5} ROUNDS=${ROUNDS:-3} PORT=${PORT:-7901}
D=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2> /dev/null; wait 2> /dev/null; rm -rf "$D"' EXIT
# serve NAME BINARY PORT: starts an engine and waits until it answers
serve() {
  "$2" serve --listen "127.0.0.1:$3" --data-dir "$D/$1" ${CONFIG:+-c "$CONFIG"} -q 2> "$D/$1.log" &
  PIDS+=($!)
  for _ in $(seq 50); do curl -sf "127.0.0.1:$3/health" > /dev/null && return; sleep 0.1; done
  echo "engine $1 did not answer; see $D/$1.log" >&2
  exit 1
}
serve A "$BIN" "$PORT"
ENGINES=("A $PORT ${PIDS[0]}")
if [ -n "${B:-}" ]; then
  serve B "$B" $((PORT + 1))
  ENGINES+=("B $((PORT + 1)) ${PIDS[1]}")
fi
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
  "'{\"input\":{\"x\":1}}'" > "$D/post.lua"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rps() { awk '/Requests\/sec/{print $2}'; }
TCK=$(getconf CLK_TCK)
for r in $(seq "$ROUNDS"); do
  for e in "${ENGINES[@]}"; do
    read -r name port pid <<< "$e"
    c0=$(ticks "$pid"); h=$(wrk -t2 -c64 -d"${DUR}s" "http://127.0.0.1:$port/health" | rps)
    c1=$(ticks "$pid")
    s=$(wrk -t2 -c64 -d"${DUR}s" -s "$D/post.lua" "http://127.0.0.1:$port/api/agents/echo" | rps)
    c2=$(ticks "$pid")
    awk -v r="$r" -v n="$name" -v h="$h" -v s="$s" -v a="$((c1 - c0))" -v b="$((c2 - c1))" \
      -v t="$TCK" -v d="$DUR" -v la="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
        printf "round %d %s: health %.0f req/s (%.1f us/req), schedule %.0f req/s (%.1f us/req), ratio %.3f, load %s\n",
          r, n, h, a / t * 1e6 / (h * d), s, b / t * 1e6 / (s * d), s / h, la }'
  done
done
