#!/usr/bin/env bash
# Issue 12 target 3: does retraining more than double publish→alert p99? Starts a
# Mosquitto, then REPS times each, alternately: `anomalyd run` with config/anomalyd.toml's
# detector settings (retraining as shipped) and the same with retraining off
# (`retrain_every = 0`, `accept_after_secs = 0`); each time `examples/alert_latency.rs`
# publishes SENSORS sensors × RATE readings/s for SECS seconds, injects an anomaly
# every 0.5 s after a 20 s warm-up, and measures each raised alert's latency from the
# publish of the reading that raised it. Both configurations set `reorder_rows = 0`
# (otherwise every alert waits for 8 later readings or 1 s). Prints one line per run
# and the median p99 of each (docs/performance.md, "Alert latency under retraining").
#
# Usage: scripts/alert-latency.sh [REPS] [SENSORS] [RATE] [SECS]   (defaults 3 20 20 60)
set -euo pipefail

REPS=${1:-3}
SENSORS=${2:-20}
RATE=${3:-20}
SECS=${4:-60}
cd "$(dirname "$0")/.."

cargo build --release --bin anomalyd --example alert_latency >&2
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/anomalyd
PROBE=$TARGET/release/examples/alert_latency
# shellcheck source=scripts/lib/broker.sh
source scripts/lib/broker.sh
start_mosquitto "max_queued_messages 100000"

config() { # retrain|off
    local retrain_every=500 accept=3600
    if [ "$1" = off ]; then retrain_every=0 accept=0; fi
    shipped_config lat "$WORK/state-$1" "" |
        sed -e 's/^reorder_rows = 8 /reorder_rows = 0 /' \
            -e "s/^retrain_every = 500 /retrain_every = $retrain_every /" \
            -e "s/^accept_after_secs = 3600 /accept_after_secs = $accept /" >"$WORK/$1.toml"
    for key in "reorder_rows = 0" "retrain_every = $retrain_every" "accept_after_secs = $accept"; do
        grep -q "^$key " "$WORK/$1.toml" || { echo "cannot set $key" >&2; exit 1; }
    done
}
config retrain
config off

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
: >"$WORK/p99-retrain"
: >"$WORK/p99-off"
for i in $(seq "$REPS"); do
    for mode in retrain off; do
        rm -rf "$WORK/state-$mode"
        "$BIN" --log warn run --config "$WORK/$mode.toml" 2>"$WORK/daemon-$mode.log" &
        daemon=$!
        PIDS+=("$daemon")
        sleep 1
        line=$("$PROBE" "$PORT" lat "$SENSORS" "$RATE" "$SECS" 20 0.5)
        kill "$daemon"
        wait "$daemon" 2>/dev/null || true
        echo "run $i $mode: $line"
        sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$line" >>"$WORK/p99-$mode"
    done
done
with=$(median <"$WORK/p99-retrain")
without=$(median <"$WORK/p99-off")
echo "median p99: retraining ${with} ms, retraining off ${without} ms, ratio $(echo "scale=2; $with / $without" | bc)"
