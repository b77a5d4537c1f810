#!/usr/bin/env bash
# The reproducible benchmark (issue 4): builds in release, starts `restack serve` on loopback
# with a fresh data directory, drives it with wrk, hyperfine and the loadgen bench target, and
# prints every figure as `name: value` with its target and ratio; then (PEER=1) the Restate peer
# side by side. Stops everything it started, by PID. See BENCHMARKS.md.
#
# Knobs (environment; defaults are the issue's settings):
#   WRK_DURATION=5   WRK_CONN=64  WRK_THREADS=2     wrk phases (seconds, connections, threads)
#   WRK_ROUNDS=7                                     alternating health/schedule rounds (median)
#   E2E_N=20000      E2E_C=64                        3-step workflows end to end
#   GROWTH_N=20000                                   echo runs for bytes/run (also the echo rate)
#   LAT_N=500                                        sequential schedule -> completed samples
#   FOLLOW_RUNS=50   RSS_RUNS=20                     hyperfine runs; CLI runs for peak RSS
#   SCALE_BIG=1000000 SCALE_SMALL=1000 FETCH_N=5000  stored runs; fetches per store
#   SCALE_ROUNDS=3                                   fetch rounds, the two stores taking turns in each
#   BACKLOG_S=3                                      seconds of scheduling a slow agent's queue
#   PEER=1                                           0 skips the Restate peer
#   PROFILE=0                                        1: perf record the engine during wrk POST
#   QUICK=1                                          small counts everywhere (a smoke run, ~1 min)
#   BENCH_OUT=DIR                                    where results.txt and the raw files go
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ ${QUICK:-0} == 1 ]]; then
  : "${WRK_DURATION:=3}" "${WRK_ROUNDS:=3}" "${E2E_N:=2000}" "${GROWTH_N:=2000}" "${LAT_N:=100}" "${FOLLOW_RUNS:=10}"
  : "${RSS_RUNS:=5}" "${SCALE_BIG:=100000}" "${FETCH_N:=1000}" "${PEER:=0}"
fi
WRK_DURATION=${WRK_DURATION:-5} WRK_CONN=${WRK_CONN:-64} WRK_THREADS=${WRK_THREADS:-2}
WRK_ROUNDS=${WRK_ROUNDS:-7}
E2E_N=${E2E_N:-20000} E2E_C=${E2E_C:-64} GROWTH_N=${GROWTH_N:-20000} LAT_N=${LAT_N:-500}
FOLLOW_RUNS=${FOLLOW_RUNS:-50} RSS_RUNS=${RSS_RUNS:-20}
SCALE_BIG=${SCALE_BIG:-1000000} SCALE_SMALL=${SCALE_SMALL:-1000} FETCH_N=${FETCH_N:-5000}
SCALE_ROUNDS=${SCALE_ROUNDS:-3} BACKLOG_S=${BACKLOG_S:-3}
PEER=${PEER:-1} PROFILE=${PROFILE:-0}
PEER_SCRIPT=${PEER_SCRIPT:-/work/shared/peers/restate/bench.sh}

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

TMP=$(mktemp -d /tmp/restack-bench.XXXXXX)
OUT=${BENCH_OUT:-$TMP/out}
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: > "$RESULTS"
PIDS=()
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$TMP/data-"*
  log "raw output kept in $OUT"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Figures: `name: value` always; checks add `(target OP T; ratio R; pass|MISS)`.
say() { printf '%s: %s\n' "$1" "$2" | tee -a "$RESULTS"; }
# check NAME VALUE OP TARGET [NOTE]: OP is <= or >= (or <); ratio is value / target.
check() {
  local name=$1 value=$2 op=$3 target=$4 note=${5:-} ratio verdict
  ratio=$(awk -v v="$value" -v t="$target" 'BEGIN{ if (t == 0) print "nan"; else printf "%.3f", v / t }')
  verdict=$(awk -v v="$value" -v t="$target" -v op="$op" 'BEGIN{
      ok = (op == ">=") ? (v >= t) : (op == "<") ? (v < t) : (v <= t); print ok ? "pass" : "MISS" }')
  printf '%s: %s  (target %s %s; ratio to target %s; %s)%s\n' \
    "$name" "$value" "$op" "$target" "$ratio" "$verdict" "${note:+  $note}" | tee -a "$RESULTS"
}
div() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b == 0) print "nan"; else printf "%.3f", a / b }'; }
# get FILE NAME: the value of a `name: value` line
get() { awk -v k="$2:" '$1 == k { print $2; exit }' "$1"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# Alternating rounds are kept as "RATIO ROUND" lines. median_round LINES...: the round whose
# ratio is the median; in_round_order LINES...: the ratios, quoted, in round order.
median_round() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $2} END {print a[int((NR + 1) / 2)]}'; }
in_round_order() { printf '"%s"' "$(printf '%s\n' "$@" | sort -k2 -n | awk '{printf "%s%s", sep, $1; sep = " "}')"; }
# thread_cpu PID: "NAME TICKS" per thread name, to split a phase's CPU between runtime and writer
thread_cpu() {
  for t in /proc/"$1"/task/*; do
    printf '%s %s\n' "$(tr ' ' _ < "$t/comm")" "$(awk '{ print $14 + $15 }' "$t/stat")"
  done | awk '{ s[$1] += $2 } END { for (k in s) print k, s[k] }' | sort
}
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }

# ------------------------------------------------------------------ machine and tools
say machine_nproc "$(nproc)"
say machine_cpu "\"$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)\""
say machine_mem_gib "$(awk '/MemTotal/{printf "%.1f", $2/1048576}' /proc/meminfo)"
say machine_kernel "$(uname -r)"
say git_rev "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say date "$(date -u +%FT%TZ)"
say loadavg_start "\"$(loadavg)\""

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v curl >/dev/null || need+=(curl)
[[ -x /usr/bin/time ]] || need+=(time)
if ((${#need[@]})); then
  log "installing ${need[*]} (Debian packages)"
  if ! apt-get install -y "${need[@]}" >&2; then
    apt-get update >&2 && apt-get install -y "${need[@]}" >&2
  fi
fi
command -v python3 >/dev/null || die "python3 is needed (checkpoints, CLI peak RSS)"

log "building (release)"
(cd "$ROOT" && cargo build --release --locked >&2)
LOADGEN=$(cd "$ROOT" && cargo bench --locked --bench loadgen --no-run 2>&1 \
  | sed -n 's/.*Executable.*(\(.*loadgen-[0-9a-f]*\)).*/\1/p' | tail -1)
[[ -n $LOADGEN ]] || die "cannot find the loadgen bench executable"
LOADGEN=$ROOT/${LOADGEN#"$ROOT"/}
BIN=$ROOT/target/release/restack
CONFIG=$ROOT/bench/bench.toml

# Everything from here runs hermetically: no real HOME, no inherited restack settings.
mkdir -p "$TMP/home/.config" "$TMP/home/.local/share"
export HOME=$TMP/home XDG_CONFIG_HOME=$TMP/home/.config XDG_DATA_HOME=$TMP/home/.local/share
unset RESTACK_URL RESTACK_PROFILE RESTACK_CONFIG RESTACK_API_BEARER_TOKEN RESTACK_TOKEN 2>/dev/null || true

# start_engine DATA_DIR [CONFIG]: sets ENGINE_PID and URL
start_engine() {
  # Created first: the loop below may read it before the engine's shell has opened it.
  : > "$OUT/engine-$(basename "$1").log"
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$1" -c "${2:-$CONFIG}" 2> "$OUT/engine-$(basename "$1").log" &
  ENGINE_PID=$!
  PIDS+=("$ENGINE_PID")
  URL=''
  for _ in $(seq 600); do
    URL=$(sed -n 's/.*listening on \(http:[^;]*\);.*/\1/p' "$OUT/engine-$(basename "$1").log" | head -1)
    [[ -n $URL ]] && break
    kill -0 "$ENGINE_PID" 2>/dev/null || die "engine exited; see $OUT/engine-$(basename "$1").log"
    sleep 0.05
  done
  [[ -n $URL ]] || die "engine printed no banner"
}
stop_engine() {
  kill -TERM "$ENGINE_PID" 2>/dev/null || true
  wait "$ENGINE_PID" 2>/dev/null || true
}
checkpoint() { # DB: folds the WAL into the main file, prints the main file's bytes
  python3 - "$1" <<'EOF'
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
busy, log, done = c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
if busy or log != done:
    busy, log, done = c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
c.close()
if log != done:
    print(f"checkpoint incomplete: {done}/{log} frames", file=sys.stderr)
print(os.path.getsize(sys.argv[1]))
EOF
}
run_wrk() { # TAG ARGS...: sets W_RPS W_ERR W_REQS W_CPU (engine CPU-seconds)
  local tag=$1 c0; shift
  c0=$(cpu_s "$ENGINE_PID")
  wrk -t"$WRK_THREADS" -c"$WRK_CONN" -d"${WRK_DURATION}s" --timeout 10s --latency "$@" > "$OUT/wrk_$tag.txt" 2>&1
  W_CPU=$(awk -v a="$(cpu_s "$ENGINE_PID")" -v b="$c0" 'BEGIN{printf "%.2f", a - b}')
  W_RPS=$(awk '/^Requests\/sec:/{printf "%.0f", $2}' "$OUT/wrk_$tag.txt")
  W_REQS=$(awk '/requests in/{print $1}' "$OUT/wrk_$tag.txt")
  W_ERR=$(awk '/Non-2xx/{n+=$NF} /Socket errors/{gsub(/,/,""); n+=$4+$6+$8+$10} END{print n+0}' "$OUT/wrk_$tag.txt")
  W_P50=$(awk '$1=="50%"{print $2}' "$OUT/wrk_$tag.txt")
  W_P99=$(awk '$1=="99%"{print $2}' "$OUT/wrk_$tag.txt")
}

# ------------------------------------------------------------------ engine A: fresh data dir
DATA=$TMP/data-main
start_engine "$DATA"
log "engine pid $ENGINE_PID at $URL"
curl -sf "$URL/health" > /dev/null || die "health check failed"

log "latency: $LAT_N sequential pipe3 workflows"
"$LOADGEN" latency "$URL" /api/workflows/pipe3 "$LAT_N" > "$OUT/latency.txt"
LAT_P50=$(get "$OUT/latency.txt" latency_p50_ms)
check pipe3_seq_p50_ms "$LAT_P50" "<=" 4 "(schedule -> completed, client-measured, one at a time)"
for k in p95 mean min max; do say "pipe3_seq_${k}_ms" "$(get "$OUT/latency.txt" "latency_${k}_ms")"; done

log "--follow overhead: hyperfine, $FOLLOW_RUNS runs each"
hyperfine -N --warmup 5 --runs "$FOLLOW_RUNS" --export-json "$OUT/hyperfine.json" \
  -n follow "$BIN --url $URL agent run echo --follow" \
  -n health "$BIN --url $URL health" \
  -n curl "curl -s $URL/health" > "$OUT/hyperfine.txt" 2>&1 || die "hyperfine failed; see $OUT/hyperfine.txt"
read -r H_FOLLOW H_HEALTH H_CURL < <(python3 - "$OUT/hyperfine.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
print(" ".join(f'{r[k]["median"] * 1000:.3f}' for k in ("follow", "health", "curl")))
EOF
)
say cli_follow_median_ms "$H_FOLLOW"
say cli_health_median_ms "$H_HEALTH"
say curl_health_median_ms "$H_CURL"
check follow_vs_health_ratio "$(div "$H_FOLLOW" "$H_HEALTH")" "<=" 2.5
check health_vs_curl_ratio "$(div "$H_HEALTH" "$H_CURL")" "<=" 1.5

log "CLI peak RSS over $RSS_RUNS runs"
# GNU time's %M is the CLI's own peak (wait4 on the CLI alone), in KiB; the largest of the runs.
CLI_RSS=$(for _ in $(seq "$RSS_RUNS"); do
  HOME=$TMP/cli-home XDG_DATA_HOME=$TMP/cli-home/data /usr/bin/time -f '%M' \
    "$BIN" --url "$URL" agent run echo --follow 2>&1 > /dev/null | tail -n 1
done | sort -n | tail -n 1 | awk '{printf "%.1f", $1 / 1024}')
check cli_follow_peak_rss_mb "$CLI_RSS" "<" 15

log "database growth: $GROWTH_N echo runs at c=$E2E_C"
SIZE0=$(checkpoint "$DATA/restack.db")
"$LOADGEN" e2e "$URL" /api/agents/echo "$GROWTH_N" "$E2E_C" > "$OUT/e2e_echo.txt"
SIZE1=$(checkpoint "$DATA/restack.db")
say echo_e2e_rps "$(get "$OUT/e2e_echo.txt" e2e_rps)"
say echo_e2e_errors "$(get "$OUT/e2e_echo.txt" e2e_errors)"
check db_bytes_per_echo_run "$(awk -v a="$SIZE0" -v b="$SIZE1" -v n="$GROWTH_N" 'BEGIN{printf "%.0f", (b - a) / n}')" "<=" 1024 \
  "(main file after a WAL checkpoint, $SIZE0 -> $SIZE1 bytes)"

log "end to end: $E2E_N pipe3 workflows at c=$E2E_C"
LA=$(loadavg)
C0=$(cpu_s "$ENGINE_PID")
"$LOADGEN" e2e "$URL" /api/workflows/pipe3 "$E2E_N" "$E2E_C" > "$OUT/e2e_pipe3.txt"
E2E_CPU=$(awk -v a="$(cpu_s "$ENGINE_PID")" -v b="$C0" 'BEGIN{printf "%.2f", a - b}')
E2E_RPS=$(get "$OUT/e2e_pipe3.txt" e2e_rps)
check pipe3_c${E2E_C}_wf_per_s "$E2E_RPS" ">=" 2500 "(loadavg before: $LA)"
say pipe3_c${E2E_C}_errors "$(get "$OUT/e2e_pipe3.txt" e2e_errors)"
say pipe3_c${E2E_C}_p50_ms "$(get "$OUT/e2e_pipe3.txt" e2e_p50_ms)"
say pipe3_c${E2E_C}_p99_ms "$(get "$OUT/e2e_pipe3.txt" e2e_p99_ms)"
say pipe3_c${E2E_C}_engine_cpu_s "$E2E_CPU"
say pipe3_c${E2E_C}_engine_cpu_us_per_wf "$(awk -v c="$E2E_CPU" -v n="$E2E_N" 'BEGIN{printf "%.0f", c * 1e6 / n}')"

log "wrk: GET /health, then POST /api/agents/echo; ${WRK_DURATION}s each at c=$WRK_CONN"
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
  "'{\"input\":{\"x\":1}}'" > "$TMP/post.lua"
LA=$(loadavg)
# The host is shared and noisy: alternate the two phases WRK_ROUNDS times and judge the median
# of the per-round ratios (the figures printed below are the median round's).
ROUND_RATIOS=()
for ((round = 1; round <= WRK_ROUNDS; round++)); do
  run_wrk health "$URL/health"
  RH_RPS[round]=$W_RPS RH_ERR[round]=$W_ERR RH_CPU[round]=$W_CPU RH_REQS[round]=$W_REQS RH_P50[round]=$W_P50
  if [[ $PROFILE == 1 && $round == 1 ]]; then
    perf record -e cpu-clock -F 499 -g -p "$ENGINE_PID" -o "$OUT/perf-post.data" -- sleep "$WRK_DURATION" 2> /dev/null &
    PERF_PID=$!
  fi
  thread_cpu "$ENGINE_PID" > "$TMP/threads0_$round"
  run_wrk post -s "$TMP/post.lua" "$URL/api/agents/echo"
  thread_cpu "$ENGINE_PID" > "$TMP/threads1_$round"
  RW_RPS[round]=$W_RPS RW_ERR[round]=$W_ERR RW_CPU[round]=$W_CPU RW_REQS[round]=$W_REQS RW_P50[round]=$W_P50 RW_P99[round]=$W_P99
  ROUND_RATIOS+=("$(div "$W_RPS" "${RH_RPS[round]}") $round")
  log "round $round: health ${RH_RPS[round]} req/s, schedule $W_RPS req/s"
done
r=$(median_round "${ROUND_RATIOS[@]}")
H_RPS=${RH_RPS[r]} H_ERR=${RH_ERR[r]} H_CPU=${RH_CPU[r]} H_REQS=${RH_REQS[r]} H_P50=${RH_P50[r]}
W_RPS=${RW_RPS[r]} W_ERR=${RW_ERR[r]} W_CPU=${RW_CPU[r]} W_REQS=${RW_REQS[r]} W_P50=${RW_P50[r]} W_P99=${RW_P99[r]}
cp "$TMP/threads0_$r" "$TMP/threads0"; cp "$TMP/threads1_$r" "$TMP/threads1"
if [[ $PROFILE == 1 ]]; then
  wait "$PERF_PID" || true
  { echo "## self time by symbol"
    perf report -i "$OUT/perf-post.data" --no-children --sort comm,dso,symbol -g none \
      --percent-limit 0.7 --stdio 2> /dev/null | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -60
    echo "## inclusive time by symbol"
    perf report -i "$OUT/perf-post.data" --children --sort symbol -g none \
      --percent-limit 4 --stdio 2> /dev/null | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -60
  } > "$OUT/perf-post.txt" || true
  log "profile of the POST phase in $OUT/perf-post.txt"
fi
say health_get_c${WRK_CONN}_rps "$H_RPS"
say health_get_c${WRK_CONN}_errors "$H_ERR"
say health_get_c${WRK_CONN}_p50 "$H_P50"
say health_get_engine_cpu_us_per_req "$(awk -v c="$H_CPU" -v n="$H_REQS" 'BEGIN{printf "%.1f", c * 1e6 / n}')"
say schedule_c${WRK_CONN}_rps "$W_RPS"
say schedule_c${WRK_CONN}_errors "$W_ERR"
say schedule_c${WRK_CONN}_p50 "$W_P50"
say schedule_c${WRK_CONN}_p99 "$W_P99"
say schedule_engine_cpu_us_per_req "$(awk -v c="$W_CPU" -v n="$W_REQS" 'BEGIN{printf "%.1f", c * 1e6 / n}')"
# where the POST phase's engine CPU went, by thread name (CPU-seconds)
say schedule_engine_cpu_s_by_thread "\"$(join -a 2 -e 0 -o 0,1.2,2.2 "$TMP/threads0" "$TMP/threads1" \
  | awk -v t="$(getconf CLK_TCK)" '{ printf "%s%s=%.2f", sep, $1, ($3 - $2) / t; sep = " " }')\""
say schedule_vs_health_ratio_rounds "$(in_round_order "${ROUND_RATIOS[@]}")"
check schedule_vs_health_ratio "$(div "$W_RPS" "$H_RPS")" ">=" 0.5 "(median of $WRK_ROUNDS alternating rounds; loadavg before: $LA)"
RSS=$(awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/$ENGINE_PID/status")
check engine_peak_rss_mb "$RSS" "<" 100 "(VmHWM after all the load above)"
stop_engine

# ------------------------------------------------------------------ scale: seeded stores
for n in "$SCALE_SMALL" "$SCALE_BIG"; do
  log "seeding $n runs"
  "$LOADGEN" seed "$TMP/data-$n" "$n" "$TMP/ids-$n.txt" > "$OUT/seed_$n.txt"
  say "seed_${n}_s" "$(get "$OUT/seed_$n.txt" seed_s)"
done
# Both stores' engines are up at once and take turns request by request (store1 the small
# one), and the client and both engines stay on one CPU: measured one store at a time, or with
# the kernel placing the engines, the ratio followed the host rather than the store
# (BENCHMARKS.md, "The fetch figure"). SCALE_ROUNDS such rounds; the median round's (by ratio)
# figures are printed. One more round without the pinning is printed without a target.
FETCH_ROUNDS=()
scale_round() { # OUT_FILE [--one-cpu]
  "$LOADGEN" scale ${2:-} "$BIN" "$CONFIG" "$FETCH_N" "$TMP/data-$SCALE_SMALL" \
    "$TMP/ids-$SCALE_SMALL.txt" "$TMP/data-$SCALE_BIG" "$TMP/ids-$SCALE_BIG.txt" > "$1"
}
fetch_ratio() { div "$(get "$1" store2_fetch_p50_ms)" "$(get "$1" store1_fetch_p50_ms)"; }
for round in $(seq "$SCALE_ROUNDS"); do
  log "round $round: start-ups, then $FETCH_N fetches from each store, taking turns, on one CPU"
  scale_round "$OUT/scale_$round.txt" --one-cpu
  FETCH_ROUNDS+=("$(fetch_ratio "$OUT/scale_$round.txt") $round")
done
log "one more round on any CPU"
scale_round "$OUT/scale_any_cpu.txt"
# The store's own share of a fetch, in-process (no HTTP, no wake-ups).
for n in "$SCALE_SMALL" "$SCALE_BIG"; do
  "$LOADGEN" lookup "$TMP/data-$n" "$TMP/ids-$n.txt" 20000 > "$OUT/lookup_$n.txt"
done
rm -rf "$TMP/data-$SCALE_SMALL" "$TMP/data-$SCALE_BIG"
round=$(median_round "${FETCH_ROUNDS[@]}")
SCALE_OUT="$OUT/scale_$round.txt"
for store in "1 $SCALE_SMALL" "2 $SCALE_BIG"; do
  read -r k n <<< "$store"
  say "fetch_${n}_p50_ms" "$(get "$SCALE_OUT" "store${k}_fetch_p50_ms")"
  say "fetch_from_disk_${n}_p50_ms" "$(get "$SCALE_OUT" "store${k}_cold_fetch_p50_ms")  ($(get "$SCALE_OUT" "store${k}_cold_fetch_samples") sampled runs once each, shuffled, the file's pages dropped from memory first)"
  say "lookup_in_process_${n}_p50_us" "$(get "$OUT/lookup_$n.txt" lookup_p50_us)  (Store::get_run alone)"
  say "startup_${n}_ms" "$(get "$SCALE_OUT" "store${k}_startup_p50_ms")"
  say "list_by_name_${n}_p50_ms" "$(get "$SCALE_OUT" "store${k}_list_p50_ms")"
done
say list_by_name_big_vs_small_ratio "$(div "$(get "$SCALE_OUT" store2_list_p50_ms)" \
  "$(get "$SCALE_OUT" store1_list_p50_ms)")  (no target: 20 runs older than a random stored one)"
say fetch_big_vs_small_ratio_any_cpu "$(fetch_ratio "$OUT/scale_any_cpu.txt")  (no target: $(get "$OUT/scale_any_cpu.txt" store2_fetch_p50_ms) / $(get "$OUT/scale_any_cpu.txt" store1_fetch_p50_ms) ms, one round, the kernel placing the client and engines)"
say fetch_big_vs_small_ratio_rounds "$(in_round_order "${FETCH_ROUNDS[@]}")"
check fetch_big_vs_small_ratio "${FETCH_ROUNDS[round - 1]%% *}" "<=" 1.25 \
  "($SCALE_BIG vs $SCALE_SMALL stored, taking turns on one CPU; median of $SCALE_ROUNDS rounds)"
check startup_${SCALE_BIG}_runs_ms "$(get "$SCALE_OUT" store2_startup_p50_ms)" "<" 500 \
  "(spawn -> /health answers, median of 3)"

# ------------------------------------------------------------------ a long queue of a slow agent
# No target: how much memory a queue costs the engine, and a start-up with it after kill -9
# (past max(256, 4 x concurrency) runs, a command agent's queue waits in the store).
printf '[serve]\nshutdown_grace = "0s"\n[agents.slow]\ncommand = ["sh", "-c", "sleep 300"]\nconcurrency = 1\n' \
  > "$TMP/backlog.toml"
start_engine "$TMP/data-backlog" "$TMP/backlog.toml"
log "backlog: ${BACKLOG_S}s of wrk POST /api/agents/slow (concurrency 1)"
WRK_DURATION=$BACKLOG_S run_wrk backlog -s "$TMP/post.lua" "$URL/api/agents/slow"
say backlog_queued_runs "$W_REQS  ($W_ERR errors)"
say backlog_engine_rss_mb "$(awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$ENGINE_PID/status")  (no target; right after scheduling them, one running)"
kill -KILL "$ENGINE_PID"
wait "$ENGINE_PID" 2> /dev/null || true
mv "$OUT/engine-data-backlog.log" "$OUT/engine-data-backlog-killed.log"
t0=$(date +%s%N)
start_engine "$TMP/data-backlog" "$TMP/backlog.toml"
say backlog_restart_ms "$((($(date +%s%N) - t0) / 1000000))  (no target; after kill -9: spawn -> its banner, polled every 50 ms; the queue recovered)"
say backlog_restart_rss_mb "$(awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$ENGINE_PID/status")"
stop_engine
rm -rf "$TMP/data-backlog"
say loadavg_end_ours "\"$(loadavg)\""

# ------------------------------------------------------------------ Restate, side by side
if [[ $PEER == 1 ]]; then
  log "Restate peer: $PEER_SCRIPT"
  if bash "$PEER_SCRIPT" > "$OUT/restate.txt" 2> "$OUT/restate.log"; then
    R=$OUT/restate.txt
    peer() { # NAME OURS THEIRS NOTE: ratio ours / theirs
      say "$1" "ours $2 vs restate $3; ratio $(div "$2" "$3")  $4"
    }
    say restate_version "$(get "$R" restate_server_version)"
    peer vs_restate_pipe3_seq_p50_ms "$LAT_P50" "$(get "$R" pipe3_seq_p50_ms)" "(lower is better)"
    peer vs_restate_pipe3_c64_per_s "$E2E_RPS" "$(get "$R" pipe3_c64_rps)" "(higher is better)"
    peer vs_restate_echo_c64_per_s "$(get "$OUT/e2e_echo.txt" e2e_rps)" "$(get "$R" echo_c64_rps)" \
      "(ours: schedule + wait for completion; higher is better)"
    peer vs_restate_health_c64_rps "$H_RPS" "$(get "$R" health_get_c64_rps)" "(higher is better)"
    say restate_peak_rss_mb "$(get "$R" server_peak_rss_mb)"
    say restate_phases_with_foreign_load "$(get "$R" phases_with_foreign_load)"
  else
    say restate_peer "failed; see $OUT/restate.log"
  fi
fi
say loadavg_end "\"$(loadavg)\""
log "done; figures in $RESULTS"
