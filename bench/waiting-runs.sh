#!/usr/bin/env bash
# What waiting runs cost the engine in memory: schedules runs for DUR seconds of wrk at 16
# connections and prints how many were scheduled and the engine's RSS growth, also per run.
#   WHAT=queued   (default) workflows whose only step is a command agent that never frees its
#                 one slot: up to `workflows_in_memory` (4096) are held by driver tasks, the
#                 rest wait in the store, so the growth levels off
#   WHAT=asleep   workflows asleep in a one-hour sleep step: no task each, an entry in the
#                 engine's timers
#   WHAT=sleep    runs of the built-in `sleep` agent for an hour: the same
# See BENCHMARKS.md. BIN=OTHER_BUILD measures another build.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/restack} DUR=${DUR:-4} PORT=${PORT:-7970} WHAT=${WHAT:-queued}
case $WHAT in
  queued) URL_PATH=/api/workflows/q INPUT='{"x":1}' ;;
  asleep) URL_PATH=/api/workflows/nap INPUT='{"x":1}' ;;
  sleep) URL_PATH=/api/agents/sleep INPUT='{"seconds":3600}' ;;
  *) echo "WHAT must be queued, asleep or sleep" >&2; exit 2 ;;
esac
D=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill -9 "$PID" 2> /dev/null; pkill -9 -f "restack-slot-holder" || true; rm -rf "$D"' EXIT
cat > "$D/c.toml" <<'TOML'
[agents.slow]
command = ["sh", "-c", "exec -a restack-slot-holder sleep 600"]
concurrency = 1
[workflows.q]
steps = [{ agent = "slow" }]
[workflows.nap]
steps = [{ sleep = "1h" }]
TOML
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
  "'{\"input\":$INPUT}'" > "$D/post.lua"
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$D/data" -c "$D/c.toml" -q 2> "$D/log" &
PID=$!
disown
for _ in $(seq 50); do curl -sf "127.0.0.1:$PORT/health" > /dev/null && break; sleep 0.1; done
curl -sf "127.0.0.1:$PORT/health" > /dev/null || { echo "the engine did not start:" >&2; cat "$D/log" >&2; exit 1; }
rss() { awk '/VmRSS/{print $2}' "/proc/$PID/status"; }
r0=$(rss)
n=$(wrk -t1 -c16 -d"${DUR}s" -s "$D/post.lua" "http://127.0.0.1:$PORT$URL_PATH" |
  awk '/requests in/{print $1}')
r1=$(rss)
echo "${WHAT}_runs: $n"
echo "engine_rss_kb: $r0 -> $r1"
echo "bytes_per_${WHAT}_run: $(((r1 - r0) * 1024 / n))"
