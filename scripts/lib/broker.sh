# Sourced by the measurement scripts: a scratch directory removed on exit, the
# background processes killed on exit, free ports, and a Mosquitto with its default
# limits (plus any config lines given) on a free port of 127.0.0.1, and the shipped
# config pointed at it.
#
#   source "$(dirname "$0")/lib/broker.sh"
#   start_mosquitto ["extra config lines"]   # sets PORT
#   shipped_config PREFIX STATE_DIR LISTEN   # config/anomalyd.toml for this broker
#   PIDS+=($!)                               # after starting anything in the background

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_mosquitto() { # [extra config lines]
    local mosquitto
    mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
    PORT=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n%b\n' "$PORT" "${1:-}" >"$WORK/mosquitto.conf"
    chmod 777 "$WORK"
    "$mosquitto" -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
    PIDS+=($!)
    sleep 0.5
}

shipped_config() { # PREFIX STATE_DIR METRICS_LISTEN -> stdout
    # config/anomalyd.toml as shipped, with this run's broker port, client id, topics
    # under PREFIX, state directory (no periodic snapshots) and metrics address ("" =
    # none). Fails if the shipped file no longer has a line it rewrites.
    local out
    out=$(sed -e "s/^port = 1883 /port = $PORT /" \
        -e "s/^client_id = \"anomalyd\" /client_id = \"$1-daemon\" /" \
        -e 's/^persistent_session = true /persistent_session = false /' \
        -e "s#^topic = \"sensors/+/telemetry\" #topic = \"$1/+/telemetry\" #" \
        -e "s#^topic = \"anomalyd/alerts/{sensor}\" #topic = \"$1/alerts/{sensor}\" #" \
        -e "s#^state_topic = \"anomalyd/state/{sensor}\" #state_topic = \"$1/state/{sensor}\" #" \
        -e "s#^status_topic = \"anomalyd/status\" #status_topic = \"$1/status\" #" \
        -e "s#^dir = \"/var/lib/anomalyd\" #dir = \"$2\" #" \
        -e 's/^snapshot_every_secs = 300 /snapshot_every_secs = 0 /' \
        -e "s/^listen = \"127.0.0.1:9464\" /listen = \"$3\" /" \
        config/anomalyd.toml)
    for key in "port = $PORT" "client_id = \"$1-daemon\"" "persistent_session = false" \
        "topic = \"$1/+/telemetry\"" "topic = \"$1/alerts/{sensor}\"" \
        "state_topic = \"$1/state/{sensor}\"" "status_topic = \"$1/status\"" \
        "dir = \"$2\"" "snapshot_every_secs = 0" "listen = \"$3\""; do
        grep -qF -- "$key " <<<"$out" || { echo "shipped_config: cannot set $key" >&2; return 1; }
    done
    printf '%s\n' "$out"
}
