#!/usr/bin/env bash
# Issue 12 target 3: does the trainer keep up with many sensors? Starts a Mosquitto on
# a free port and `anomalyd run` with config/anomalyd.toml's detector settings (only
# the broker port, state directory and metrics address changed), then `anomalyd
# simulate` publishes SENSORS sensors × RATE readings/s (3 channels) for SECS seconds.
# Every 10 s it prints what the daemon's /metrics say: readings accepted, windows
# scored, retrains finished, the training backlog (jobs waiting for a
# `training.parallel` permit), readings dropped; at the end, retrains/s and the
# largest and last backlog (docs/performance.md, "Trainer load").
#
# Usage: scripts/trainer-load.sh [SENSORS] [RATE] [SECS]   (defaults 1000 10 240)
# Needs `mosquitto` on PATH or in /usr/sbin.
set -euo pipefail

SENSORS=${1:-1000}
RATE=${2:-10}
SECS=${3:-240}
cd "$(dirname "$0")/.."

cargo build --release --bin anomalyd >&2
BIN=${CARGO_TARGET_DIR:-target}/release/anomalyd
# shellcheck source=scripts/lib/broker.sh
source scripts/lib/broker.sh
start_mosquitto "max_queued_messages 100000"
MPORT=$(free_port)

shipped_config load "$WORK/state" "127.0.0.1:$MPORT" >"$WORK/anomalyd.toml"
"$BIN" --log warn run --config "$WORK/anomalyd.toml" 2>"$WORK/daemon.log" &
PIDS+=($!)
DAEMON=$!
sleep 1

metric() { # name [label filter] -> sum of matching samples
    awk -v n="$1" -v f="${2:-}" '$1 ~ "^"n"({|$)" && index($1, f) { s += $2 } END { printf "%.0f", s }' "$WORK/metrics"
}

"$BIN" --log warn simulate --port "$PORT" --sensors "$SENSORS" --rate "$RATE" \
    --seconds "$SECS" --prefix load >"$WORK/simulate.log" 2>&1 &
PIDS+=($!)
SIM=$!

printf '%6s %12s %12s %9s %8s %9s %7s\n' secs readings windows retrains backlog dropped cpu_s
start=$(date +%s)
max_backlog=0
while kill -0 "$SIM" 2>/dev/null; do
    sleep 10
    curl -s "127.0.0.1:$MPORT/metrics" >"$WORK/metrics" || true
    backlog=$(metric anomalyd_training_backlog)
    ((backlog > max_backlog)) && max_backlog=$backlog
    ticks=$(awk '{print $14 + $15}' "/proc/$DAEMON/stat")
    printf '%6d %12s %12s %9s %8s %9s %7.1f\n' "$(($(date +%s) - start))" \
        "$(metric anomalyd_readings_total)" "$(metric anomalyd_windows_scored_total)" \
        "$(metric anomalyd_retrains_total 'result="ok"')" "$backlog" \
        "$(metric anomalyd_readings_dropped_total)" "$(echo "$ticks / $(getconf CLK_TCK)" | bc -l)"
done
elapsed=$(($(date +%s) - start))
retrains=$(metric anomalyd_retrains_total 'result="ok"')
echo "retrains: $retrains in ${elapsed} s = $(echo "scale=1; $retrains / $elapsed" | bc) /s; backlog: largest $max_backlog, last $(metric anomalyd_training_backlog)"
