# Sourced by the measurement scripts: a scratch directory removed on exit, the
# background processes killed on exit, free ports, and a Mosquitto with its default
# limits (plus any config lines given) on a free port of 127.0.0.1.
#
#   source "$(dirname "$0")/lib/broker.sh"
#   start_mosquitto ["extra config lines"]   # sets PORT
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
