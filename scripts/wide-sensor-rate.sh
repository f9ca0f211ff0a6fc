#!/usr/bin/env bash
# Issue 12 target 3: the replay rate of one wide sensor at the default retraining
# cadence. Writes ROWS readings of a CHANNELS-channel sensor (noisy sines of different
# periods and levels, 10 s apart) and replays them with config/anomalyd.toml, REPS
# times; prints the user CPU of each run, the readings per second of user CPU, and the
# median (docs/performance.md, "A wide sensor").
#
# Usage: scripts/wide-sensor-rate.sh [CHANNELS] [ROWS] [REPS]   (defaults 19 20000 3)
# Environment: CONFIG (default config/anomalyd.toml), BIN (another build to measure,
# e.g. a copy of an earlier commit's binary; default: this tree's release build).
set -euo pipefail

CHANNELS=${1:-19}
ROWS=${2:-20000}
REPS=${3:-3}
CONFIG=${CONFIG:-config/anomalyd.toml}
cd "$(dirname "$0")/.."

cargo build --release --bin anomalyd >&2
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/anomalyd}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

awk -v c="$CHANNELS" -v n="$ROWS" 'BEGIN {
    srand(1); pi = atan2(0, -1)
    printf "timestamp"; for (j = 0; j < c; j++) printf ",ch%d", j; print ""
    for (r = 0; r < n; r++) {
        printf "%d", 1700000000 + 10 * r
        for (j = 0; j < c; j++) {
            # a Gaussian-ish noise: the sum of four uniforms, centred
            e = (rand() + rand() + rand() + rand() - 2) * 0.17
            printf ",%.4f", sin(2 * pi * r / (50 + 7 * j)) + e + j
        }
        print ""
    }
}' >"$WORK/wide.csv"

rates=()
for _ in $(seq "$REPS"); do
    /usr/bin/time -o "$WORK/time" -f '%U' "$BIN" --log warn replay --config "$CONFIG" \
        --input "$WORK/wide.csv" --output "$WORK/out.csv" >/dev/null 2>&1
    user=$(tail -1 "$WORK/time")
    rate=$(echo "$ROWS / $user" | bc)
    rates+=("$rate")
    echo "user ${user} s: ${rate} readings/s"
done
printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print "median:", a[int((NR+1)/2)], "readings/s of user CPU"}'
