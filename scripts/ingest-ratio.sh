#!/usr/bin/env bash
# Issue 12 target 1: the daemon's ingest rate as a ratio of a bare subscriber's,
# measured in the same run against one Mosquitto (docs/performance.md, "Ingest
# ratio"). For QoS 0 and QoS 1, REPS times each:
#   1. bare: `ingest_load count` (rumqttc, counts publishes, nothing else) while
#      `ingest_load publish --rate max` publishes flat out for SECS seconds;
#   2. daemon: a fresh `anomalyd run` (default model, stride 1, min_windows 256, no
#      retraining) is first warmed up (every sensor trained), then the same flat-out
#      publish; `ingest_load watch` reads its accepted readings from /metrics.
# Then a steady 50k readings/s at QoS 1 for LOSS_SECS seconds into a warm daemon, REPS
# times: loss = 1 - accepted / sent.
# Prints one line per run and the medians. Needs `mosquitto` on PATH or in /usr/sbin.
#
# Usage: scripts/ingest-ratio.sh [REPS] [SECS] [LOSS_SECS]   (defaults 3 15 30)
# Environment: SENSORS (50), WORKERS (limits.detector_workers, default 0 = auto),
#              PHASES ("0 1 loss": which measurements to run),
#              MOSQUITTO_EXTRA (lines appended to the broker's config, e.g.
#              "max_queued_messages 100000"),
#              PROTOCOL (the daemon's mqtt.protocol, 3 or 5; default 3),
#              PIN (1: the broker, the publisher and the metrics watcher on CPU 0, the
#              subscriber measured, bare or daemon, on CPU 1, so both subscribers get
#              the same core and leave the load side the same one).
set -euo pipefail

REPS=${1:-3}
SECS=${2:-15}
LOSS_SECS=${3:-30}
SENSORS=${SENSORS:-50}
WORKERS=${WORKERS:-0}
PHASES=${PHASES:-"0 1 loss"}
PROTOCOL=${PROTOCOL:-3}
cd "$(dirname "$0")/.."

cargo build --release --bin anomalyd --example ingest_load >&2
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/anomalyd
LOAD=$TARGET/release/examples/ingest_load
# shellcheck source=scripts/lib/broker.sh
source scripts/lib/broker.sh
# Mosquitto's defaults otherwise (max_inflight_messages 20, max_queued_messages 1000):
# what a gateway runs.
start_mosquitto "${MOSQUITTO_EXTRA:-}"
MPORT=$(free_port)
if [ "${PIN:-0}" = 1 ]; then
    SIDE=(taskset -c 0)
    SUB=(taskset -c 1)
    taskset -pc 0 "${PIDS[0]}" >/dev/null
else
    SIDE=()
    SUB=()
fi

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

daemon_config() { # qos
    cat <<EOF
[mqtt]
port = $PORT
client_id = "ratio-daemon"
protocol = $PROTOCOL
persistent_session = false
qos = $1

[[sources]]
topic = "perf/+/telemetry"

[state]
dir = "$WORK/state"
snapshot_every_secs = 0

[metrics]
listen = "127.0.0.1:$MPORT"

[limits]
detector_workers = $WORKERS

[training]
min_windows = 256
retrain_every = 0
EOF
}

metric() { # name
    curl -s "127.0.0.1:$MPORT/metrics" | awk -v n="$1" '$1 == n {print $2}'
}

# Starts a daemon and trains every sensor (warm-up readings timestamped in the past,
# so the measured ones come later).
start_warm_daemon() { # qos
    rm -rf "$WORK/state"
    daemon_config "$1" >"$WORK/perf.toml"
    "${SUB[@]}" "$BIN" --log warn run --config "$WORK/perf.toml" 2>>"$WORK/daemon.log" &
    DAEMON=$!
    PIDS+=($DAEMON)
    for _ in $(seq 50); do curl -sf "127.0.0.1:$MPORT/metrics" >/dev/null && break; sleep 0.2; done
    sleep 0.5
    "${SIDE[@]}" "$LOAD" publish --port "$PORT" --sensors "$SENSORS" --rate 20000 --qos 1 \
        --seconds $(( SENSORS * 400 / 20000 + 1 )) --ts_offset -100000 >/dev/null
    for _ in $(seq 300); do
        local n
        n=$(metric 'anomalyd_retrains_total{result="ok"}')
        [ "${n:-0}" -ge "$SENSORS" ] && return 0
        sleep 0.2
    done
    echo "warm-up: not every sensor trained" >&2
    return 1
}

stop_daemon() {
    kill -TERM "$DAEMON"
    wait "$DAEMON" || true
}

echo "# $(date -u +%FT%TZ) sensors=$SENSORS secs=$SECS workers=$WORKERS protocol=$PROTOCOL pin=${PIN:-0} nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
for qos in 0 1; do
    [[ " $PHASES " == *" $qos "* ]] || continue
    ratios=()
    for rep in $(seq "$REPS"); do
        "${SUB[@]}" "$LOAD" count --port "$PORT" --filter 'perf/+/telemetry' --qos "$qos" >"$WORK/count.out" &
        COUNT=$!
        sleep 0.5
        pub=$("${SIDE[@]}" "$LOAD" publish --port "$PORT" --sensors "$SENSORS" --rate max --qos "$qos" --seconds "$SECS")
        wait "$COUNT"
        bare=$(field rate "$(cat "$WORK/count.out")")

        start_warm_daemon "$qos"
        "${SIDE[@]}" "$LOAD" watch --metrics "127.0.0.1:$MPORT" >"$WORK/watch.out" &
        WATCH=$!
        pub2=$("${SIDE[@]}" "$LOAD" publish --port "$PORT" --sensors "$SENSORS" --rate max --qos "$qos" --seconds "$SECS")
        wait "$WATCH"
        stop_daemon
        watch=$(cat "$WORK/watch.out")
        daemon=$(field rate "$watch")
        ratio=$(awk -v d="$daemon" -v b="$bare" 'BEGIN {printf "%.3f", d / b}')
        ratios+=("$ratio")
        echo "qos=$qos rep=$rep bare_rate=$bare (published $(field rate "$pub")/s) daemon_rate=$daemon (published $(field rate "$pub2")/s, queue_full=$(field queue_full "$watch")) ratio=$ratio"
    done
    echo "qos=$qos median_ratio=$(printf '%s\n' "${ratios[@]}" | median)"
done

if [[ " $PHASES " == *" loss "* ]]; then
    losses=()
    for rep in $(seq "$REPS"); do
        # The same load into the bare subscriber: the broker's and the machine's own loss.
        "${SUB[@]}" "$LOAD" count --port "$PORT" --filter 'perf/+/telemetry' --qos 1 >"$WORK/count.out" &
        COUNT=$!
        sleep 0.5
        pub=$("${SIDE[@]}" "$LOAD" publish --port "$PORT" --sensors "$SENSORS" --rate 50000 --qos 1 --seconds "$LOSS_SECS")
        wait "$COUNT"
        received=$(field received "$(cat "$WORK/count.out")")
        bare_loss=$(awk -v s="$(field sent "$pub")" -v r="$received" 'BEGIN {printf "%.5f", 100 * (1 - r / s)}')
        echo "steady qos=1 rep=$rep bare: sent=$(field sent "$pub") ($(field rate "$pub")/s) received=$received loss_pct=$bare_loss"

        start_warm_daemon 1
        "${SIDE[@]}" "$LOAD" watch --metrics "127.0.0.1:$MPORT" >"$WORK/watch.out" &
        WATCH=$!
        pub=$("${SIDE[@]}" "$LOAD" publish --port "$PORT" --sensors "$SENSORS" --rate 50000 --qos 1 --seconds "$LOSS_SECS")
        wait "$WATCH"
        stop_daemon
        watch=$(cat "$WORK/watch.out")
        sent=$(field sent "$pub")
        accepted=$(field accepted "$watch")
        loss=$(awk -v s="$sent" -v a="$accepted" 'BEGIN {printf "%.5f", 100 * (1 - a / s)}')
        losses+=("$loss")
        echo "steady qos=1 rep=$rep daemon: sent=$sent ($(field rate "$pub")/s) accepted=$accepted queue_full=$(field queue_full "$watch") loss_pct=$loss"
    done
    echo "steady 50k/s qos=1 median_loss_pct=$(printf '%s\n' "${losses[@]}" | median)"
fi
# Mosquitto says when it drops messages for a subscriber whose queue is full.
echo "broker: $(grep -c 'dropped' "$WORK/mosquitto.log" || true) 'messages dropped' warnings"
