#!/usr/bin/env bash
# What queued workflows cost the engine in memory: schedules workflows whose only step is a
# command agent that never frees its one slot, for DUR seconds of wrk at 16 connections, and
# prints how many were queued and the engine's RSS growth, also per workflow. Up to
# `workflows_in_memory` (4096) of them are held by driver tasks; the rest wait in the store, so
# the growth levels off (see BENCHMARKS.md). BIN=OTHER_BUILD measures another build.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/restack} DUR=${DUR:-4} PORT=${PORT:-7970}
D=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill -9 "$PID" 2> /dev/null; pkill -9 -f "restack-slot-holder" || true; rm -rf "$D"' EXIT
cat > "$D/c.toml" <<'TOML'
[agents.slow]
command = ["sh", "-c", "exec -a restack-slot-holder sleep 600"]
concurrency = 1
[workflows.q]
steps = [{ agent = "slow" }]
TOML
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
  "'{\"input\":{\"x\":1}}'" > "$D/post.lua"
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$D/data" -c "$D/c.toml" -q 2> "$D/log" &
PID=$!
disown
for _ in $(seq 50); do curl -sf "127.0.0.1:$PORT/health" > /dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/{print $2}' "/proc/$PID/status"; }
r0=$(rss)
n=$(wrk -t1 -c16 -d"${DUR}s" -s "$D/post.lua" "http://127.0.0.1:$PORT/api/workflows/q" |
  awk '/requests in/{print $1}')
r1=$(rss)
echo "queued_workflows: $n"
echo "engine_rss_kb: $r0 -> $r1"
echo "bytes_per_queued_workflow: $(((r1 - r0) * 1024 / n))"
