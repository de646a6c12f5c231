#!/usr/bin/env bash
# Janus 1.1.2 (Debian's `janus`) on a test host of its own, for the side-by-side benchmark.
# Janus gathers no candidates on `lo` alone, so it runs in network namespace $JANUS_NS on one end
# of a veth pair (10.77.0.1/30). The load generator (and our server, on 127.0.0.1) run in
# namespace $LOAD_NS on the other end (10.77.0.2/30). Both namespaces hold only `lo` and their
# veth end: no route to anything else. Needs root.
#
#   scripts/janus-host.sh up [DIR]       # install Janus if missing, make both namespaces, write
#                                        # the configuration into DIR (default target/bench/janus)
#   scripts/janus-host.sh start LOG      # start Janus in $JANUS_NS; prints its pid once the
#                                        # WebSocket API answers
#   scripts/janus-host.sh stop           # stop the Janus started last
#   scripts/janus-host.sh down           # stop Janus, delete both namespaces
#   ip netns exec "$LOAD_NS" COMMAND     # run something on the load generator's host
set -euo pipefail
cd "$(dirname "$0")/.."
JANUS_NS=${JANUS_NS:-rt-janus}
LOAD_NS=${LOAD_NS:-rt-load}
JANUS_IP=10.77.0.1
LOAD_IP=10.77.0.2
DIR=${JANUS_DIR:-target/bench/janus}
PLUGINS=/usr/lib/x86_64-linux-gnu/janus

write_config() {
  local conf=$1
  rm -rf "$conf"
  cp -r /etc/janus "$conf"
  # Only the videoroom plugin, the WebSocket transport, no loggers, no event handlers: nothing
  # that would reach for a network of its own (MQTT, RabbitMQ, nanomsg, HTTP).
  cat >"$conf/janus.jcfg" <<EOF
general: {
	configs_folder = "$conf"
	plugins_folder = "$PLUGINS/plugins"
	transports_folder = "$PLUGINS/transports"
	events_folder = "$PLUGINS/events"
	loggers_folder = "$PLUGINS/loggers"
	debug_level = 3
	session_timeout = 60
}
certificates: {
}
media: {
	ipv6 = false
}
nat: {
	nice_debug = false
	ice_enforce_list = "$JANUS_IP"
}
plugins: {
	disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so"
}
transports: {
	disable = "libjanus_http.so,libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so"
}
loggers: {
	disable = "libjanus_jsonlog.so"
}
events: {
	broadcast = false
	disable = "libjanus_gelfevh.so,libjanus_mqttevh.so,libjanus_nanomsgevh.so,libjanus_rabbitmqevh.so,libjanus_sampleevh.so,libjanus_wsevh.so"
}
EOF
  cat >"$conf/janus.transport.websockets.jcfg" <<EOF
general: {
	json = "plain"
	ws = true
	ws_port = 8188
	ws_ip = "$JANUS_IP"
	wss = false
}
admin: {
	admin_ws = false
	admin_wss = false
}
EOF
  # Rooms are created by the load generator with the videoroom `create` request.
  cat >"$conf/janus.plugin.videoroom.jcfg" <<EOF
general: {
}
EOF
}

case ${1:-} in
  up)
    DIR=${2:-$DIR}
    if ! command -v janus >/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y janus >/dev/null
    fi
    for ns in "$JANUS_NS" "$LOAD_NS"; do
      ip netns del "$ns" 2>/dev/null || true
      ip netns add "$ns"
      ip -n "$ns" link set lo up
    done
    ip link add rtj0 netns "$JANUS_NS" type veth peer name rtj1 netns "$LOAD_NS"
    ip -n "$JANUS_NS" addr add "$JANUS_IP/30" dev rtj0
    ip -n "$LOAD_NS" addr add "$LOAD_IP/30" dev rtj1
    ip -n "$JANUS_NS" link set rtj0 up
    ip -n "$LOAD_NS" link set rtj1 up
    mkdir -p "$DIR"
    write_config "$(realpath "$DIR")/conf"
    ;;
  start)
    log=${2:?log file}
    conf=$(realpath "$DIR")/conf
    ip netns exec "$JANUS_NS" janus -F "$conf" -P "$PLUGINS/plugins" -o -r 20000-21999 \
      >"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$DIR/janus.pid"
    for _ in $(seq 100); do
      if ip netns exec "$LOAD_NS" timeout 1 bash -c "exec 3<>/dev/tcp/$JANUS_IP/8188" 2>/dev/null
      then
        echo "$pid"
        exit 0
      fi
      kill -0 "$pid" 2>/dev/null || { echo "janus exited, see $log" >&2; exit 1; }
      sleep 0.1
    done
    echo "janus did not open $JANUS_IP:8188, see $log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$DIR/janus.pid" ]; then
      pid=$(cat "$DIR/janus.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$DIR/janus.pid"
    fi
    ;;
  down)
    "$0" stop
    ip netns del "$JANUS_NS" 2>/dev/null || true
    ip netns del "$LOAD_NS" 2>/dev/null || true
    ;;
  *)
    sed -n '2,15p' "$0" >&2
    exit 2
    ;;
esac
