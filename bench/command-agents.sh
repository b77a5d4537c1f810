#!/usr/bin/env bash
# Command-agent throughput: N runs of a trivial command agent (`sh` that reads its input and
# prints `{}`) scheduled and awaited from C workers (loadgen `e2e`), on a fresh engine per round.
# What it shows is the engine's own cost around each process: spawn, pipes, the end of an
# attempt. Build first (cargo build --release --locked; cargo bench --locked --bench loadgen
# --no-run). B=BINARY also measures that build, the two taking turns each round.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/restack
N=${N:-2000} C=${C:-16} ROUNDS=${ROUNDS:-3} PORT=${PORT:-7903}
LOADGEN=$(ls -t "$ROOT"/target/release/deps/loadgen-* | grep -v '\.d$' | head -1)
D=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2> /dev/null; wait 2> /dev/null; rm -rf "$D"' EXIT
cat > "$D/c.toml" << 'TOML'
[serve]
max_concurrency = 16

[agents.quick]
command = ["sh", "-c", "cat > /dev/null; echo '{}'"]
TOML
for r in $(seq "$ROUNDS"); do
  for b in "$BIN" ${B:+"$B"}; do
    rm -rf "$D/data"
    "$b" -c "$D/c.toml" serve --listen "127.0.0.1:$PORT" --data-dir "$D/data" -q 2> "$D/log" &
    PID=$!
    for _ in $(seq 50); do curl -sf "127.0.0.1:$PORT/health" > /dev/null && break; sleep 0.1; done
    rate=$("$LOADGEN" e2e "http://127.0.0.1:$PORT" /api/agents/quick "$N" "$C" | awk '/e2e_rps/{print $2}')
    echo "round $r $b: $rate runs/s"
    kill "$PID"
    wait "$PID" 2> /dev/null || true
    PID=
  done
done
