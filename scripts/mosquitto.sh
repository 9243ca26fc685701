#!/usr/bin/env bash
# A throwaway Mosquitto broker for the hub's MQTT (Home Assistant) tests.
#
#   eval "$(scripts/mosquitto.sh)"      # start (or reuse) it; exports KEYWAY_TEST_MQTT
#   scripts/mosquitto.sh stop           # stop it
#
# Installs Debian's `mosquitto` with apt when the binary is missing, then
# starts a broker under target/mosquitto listening only on 127.0.0.1 (port
# 18830, or KEYWAY_MQTT_PORT), anonymous, no persistence, and prints
#   export KEYWAY_TEST_MQTT=mqtt://127.0.0.1:PORT
# on stdout (everything else goes to stderr). Idempotent: when the broker
# already runs it only prints the line. The tests that kill and restart a
# broker start their own on another port (they need the binary only:
# KEYWAY_MOSQUITTO, or `mosquitto` on PATH or in /usr/sbin).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${KEYWAY_MQTT_DIR:-$PWD/target/mosquitto}"
PORT="${KEYWAY_MQTT_PORT:-18830}"
say() { printf 'mosquitto.sh: %s\n' "$*" >&2; }

find_bin() {
  if command -v mosquitto >/dev/null 2>&1; then command -v mosquitto;
  elif [ -x /usr/sbin/mosquitto ]; then echo /usr/sbin/mosquitto; fi
}

# shellcheck source=lib/deb.sh
source scripts/lib/deb.sh
BIN="$(find_or_install mosquitto find_bin)"
# Debian's package enables a system broker on 1883; the tests never use it.

mkdir -p "$DIR"
PID="$DIR/mosquitto.pid"
running() { [ -f "$PID" ] && kill -0 "$(cat "$PID")" 2>/dev/null; }

if [ "${1:-}" = stop ]; then
  if running; then kill "$(cat "$PID")"; rm -f "$PID"; say "stopped"; fi
  exit 0
fi

if ! running; then
  cat > "$DIR/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
log_dest file $DIR/mosquitto.log
CONF
  # -d daemonises; mosquitto run as root drops to the `mosquitto` user, so
  # the log file must be writable by it.
  touch "$DIR/mosquitto.log"; chmod 666 "$DIR/mosquitto.log"
  "$BIN" -c "$DIR/mosquitto.conf" -d
  for _ in $(seq 1 50); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then break; fi
    sleep 0.1
  done
  pgrep -n -f "mosquitto -c $DIR/mosquitto.conf" > "$PID" || { say "mosquitto did not start; see $DIR/mosquitto.log"; exit 1; }
  say "started on 127.0.0.1:$PORT (pid $(cat "$PID"))"
fi
echo "export KEYWAY_TEST_MQTT=mqtt://127.0.0.1:$PORT"
