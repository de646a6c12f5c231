#!/bin/sh
# One address floods the server while clients from another measure their chat and ping
# round trips (BENCHMARKS.md, "Floods from one address"). Runs as root in a network
# namespace that holds only lo. Usage: scripts/flood-bench.sh [SERVER_BINARY]
# SECS: measurement time per phase (default 20). Builds nothing: run
# `cargo build -p roundtable -p roundtable-loadgen` first.
set -eu
BIN=$(realpath "${1:-target/debug/roundtable}")
FLOOD=$(realpath target/debug/roundtable-flood)
SECS=${SECS:-20}
export BIN FLOOD SECS
exec unshare --net sh -eu -c '
ip link set lo up
data=$(mktemp -d)
trap "kill \$server 2>/dev/null; rm -rf $data" EXIT
ROUNDTABLE_ADMIN_TOKEN=bench "$BIN" --bind 127.0.0.1:8080 --data-dir "$data" \
    >"$data/server.log" 2>&1 &
server=$!
export ROUNDTABLE_ADMIN_TOKEN=bench
until room=$("$FLOOD" room 2>/dev/null); do sleep 0.2; done
phase() {
    echo "== $1"
    if [ "$2" != none ]; then
        "$FLOOD" flood --room "$room" --kind "$2" --connections "$3" 2>/dev/null &
        flood=$!
        sleep 3
    fi
    "$FLOOD" measure --room "$room" --seconds "$SECS"
    if [ "$2" != none ]; then kill $flood; wait $flood 2>/dev/null || true; fi
}
phase "no flood" none 0
phase "50 joined connections from 127.0.0.2 sending chat as fast as they can" chat 50
phase "200 unjoined connections from 127.0.0.2 sending pings as fast as they can" ping 200
'
