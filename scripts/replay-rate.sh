#!/usr/bin/env bash
# Issue 12 target 4: `anomalyd replay` with retraining off, whole process (start-up,
# CSV read, the first model's training, scoring every row, CSV write, exit), in
# readings per second on one core (docs/performance.md, "Replay rate").
#
# Input: every NAB data file (sorted by path) concatenated into one single-channel CSV
# of 365,558 rows, re-timed at a 5-minute cadence from 2014-01-01 00:00:00 in NAB's own
# time format, so the timestamps increase and are parsed as NAB's are. The series is one
# sensor: its first model is trained once, on the first windows (of
# artificialNoAnomaly/art_daily_no_noise.csv), and scores everything after.
#
# Config: config/anomalyd.toml with retraining off, which takes two keys:
# `[training] retrain_every = 0` (no scheduled retrain) and `[learning]
# accept_after_secs = 0` (an alert is never accepted as the new normal, which would
# train a model); only the first model is trained.
#
# Each run is `taskset -c CPU anomalyd replay --config C --input F --output /dev/null`
# timed by /usr/bin/time; readings/s = rows / wall seconds (and, as the shared machine's
# other load stretches wall time, rows / CPU seconds, user + system). With BASELINE set to another
# anomalyd binary (e.g. the previous commit's release build), the two are run
# alternately, REPS times each, and the medians and their ratio are printed.
#
# Usage: scripts/replay-rate.sh [REPS]   (default 3)
# Environment: ANOMALYD_DATASETS (default ../shared/datasets beside the repo),
#              BASELINE (an anomalyd binary to compare with), BASELINE_CONFIG (the
#              config the baseline runs with retraining off, default config/anomalyd.toml:
#              a baseline from before a new config key needs the file of its own commit),
#              CPU (default 0).
set -euo pipefail

REPS=${1:-3}
CPU=${CPU:-0}
cd "$(dirname "$0")/.."
DATASETS=${ANOMALYD_DATASETS:-../shared/datasets}
NAB=$DATASETS/nab/data
[ -d "$NAB" ] || { echo "no NAB corpus at $NAB (set ANOMALYD_DATASETS)" >&2; exit 1; }

cargo build --release --no-default-features --bin anomalyd >&2
BIN=${CARGO_TARGET_DIR:-target}/release/anomalyd

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Retraining off: both keys must be found and set, or the figure would include training.
no_retrain() { # config → stdout
    local out
    out=$(sed -e 's/^retrain_every = [0-9]*/retrain_every = 0/' \
        -e 's/^accept_after_secs = [0-9]*/accept_after_secs = 0/' "$1")
    for key in retrain_every accept_after_secs; do
        grep -q "^$key = 0 " <<<"$out" || { echo "cannot set $key = 0 in $1" >&2; return 1; }
    done
    printf '%s\n' "$out"
}
no_retrain config/anomalyd.toml >"$WORK/no-retrain.toml"
no_retrain "${BASELINE_CONFIG:-config/anomalyd.toml}" >"$WORK/no-retrain-base.toml"

python3 - "$NAB" "$WORK/nab.csv" <<'EOF'
import csv, datetime, pathlib, sys
start, step = datetime.datetime(2014, 1, 1), datetime.timedelta(minutes=5)
rows = 0
with open(sys.argv[2], "w") as out:
    out.write("timestamp,value\n")
    for path in sorted(pathlib.Path(sys.argv[1]).glob("*/*.csv")):
        with open(path) as f:
            for record in csv.DictReader(f):
                out.write(f"{(start + rows * step):%Y-%m-%d %H:%M:%S},{record['value']}\n")
                rows += 1
EOF
ROWS=$(($(wc -l <"$WORK/nab.csv") - 1))
echo "input: $ROWS rows (all of NAB, re-timed); config: config/anomalyd.toml with retraining off" >&2

run() { # binary config → "wall_s cpu_s"
    /usr/bin/time -f '%e %U %S' -o "$WORK/time" taskset -c "$CPU" "$1" replay \
        --config "$2" --input "$WORK/nab.csv" --output /dev/null 2>"$WORK/stderr" \
        || { cat "$WORK/stderr" >&2; exit 1; }
    grep -q "model version 1," "$WORK/stderr" || { echo "expected one model: $(cat "$WORK/stderr")" >&2; exit 1; }
    awk '{print $1, $2 + $3}' "$WORK/time"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rate() { awk -v n="$ROWS" -v s="$1" 'BEGIN {printf "%.0f", n / s}'; }

: >"$WORK/this"
: >"$WORK/base"
measure() { # label binary config file
    read -r wall cpu < <(run "$2" "$3")
    echo "$wall $cpu" >>"$4"
    echo "run $i $1 $wall s wall, $cpu s CPU: $(rate "$wall") readings/s ($(rate "$cpu") per CPU second)"
}
for i in $(seq "$REPS"); do
    measure "this build:" "$BIN" "$WORK/no-retrain.toml" "$WORK/this"
    [ -z "${BASELINE:-}" ] || measure "baseline:  " "$BASELINE" "$WORK/no-retrain-base.toml" "$WORK/base"
done
summary() { # label file
    local wall cpu
    wall=$(cut -d' ' -f1 "$2" | median)
    cpu=$(cut -d' ' -f2 "$2" | median)
    echo "$1 median $wall s wall, $cpu s CPU: $(rate "$wall") readings/s ($(rate "$cpu") per CPU second)"
}
summary "this build:" "$WORK/this"
echo "($ROWS rows, whole process, one core)"
if [ -n "${BASELINE:-}" ]; then
    summary "baseline:  " "$WORK/base"
    awk -v a="$(cut -d' ' -f1 "$WORK/base" | median)" -v b="$(cut -d' ' -f1 "$WORK/this" | median)" \
        'BEGIN {printf "speed-up (wall medians): x%.2f\n", a / b}'
fi
