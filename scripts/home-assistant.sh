#!/usr/bin/env bash
# A throwaway Home Assistant (2025.4.4 from PyPI) wired to the test MQTT
# broker, for the hub's Home Assistant test (KEYWAY_HA=1).
#
#   eval "$(scripts/mosquitto.sh)"           # the broker (KEYWAY_TEST_MQTT)
#   eval "$(scripts/home-assistant.sh)"      # exports KEYWAY_HA_URL, KEYWAY_HA_TOKEN
#   KEYWAY_HA=1 cargo test -p keyway-hub --test home_assistant -- --nocapture
#   scripts/home-assistant.sh stop
#
# Makes a venv under target/home-assistant with pyenv's Python 3.13
# (`$(pyenv root)/versions/3.13.*`), installs homeassistant with every
# dependency pinned (scripts/home-assistant-constraints.txt; the frontend
# too: without it HA starts in recovery mode), writes a fresh
# config dir with no UI step: configuration.yaml (http on 127.0.0.1, api),
# .storage/core.config_entries with the MQTT integration's entry (broker =
# KEYWAY_TEST_MQTT, discovery on, prefix `homeassistant`), and
# .storage/auth with an owner and a long-lived access token (an HS256 JWT
# signed with the refresh token's jwt_key, exactly what the UI makes).
# Then starts `hass` and waits until its REST API answers. Prints the two
# export lines on stdout; the rest goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="$PWD/target/home-assistant"
CONF="$DIR/config"
PORT="${KEYWAY_HA_PORT:-18123}"
say() { printf 'home-assistant.sh: %s\n' "$*" >&2; }
PIDF="$DIR/hass.pid"
running() { [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; }

if [ "${1:-}" = stop ]; then
  if running; then kill "$(cat "$PIDF")"; rm -f "$PIDF"; say "stopped"; fi
  exit 0
fi

: "${KEYWAY_TEST_MQTT:?set KEYWAY_TEST_MQTT first: eval \"\$(scripts/mosquitto.sh)\"}"
HOSTPORT="${KEYWAY_TEST_MQTT#mqtt://}"
BROKER="${HOSTPORT%:*}"; BPORT="${HOSTPORT##*:}"

PY="$(ls -d "$(pyenv root)"/versions/3.13.*/bin/python 2>/dev/null | sort -V | tail -n1 || true)"
[ -n "$PY" ] || { say "pyenv has no Python 3.13 (pyenv install 3.13)"; exit 1; }
if [ ! -x "$DIR/venv/bin/hass" ]; then
  say "installing homeassistant 2025.4.4 into $DIR/venv (a few minutes)"
  mkdir -p "$DIR"
  "$PY" -m venv "$DIR/venv"
  "$DIR/venv/bin/pip" install -q -c scripts/home-assistant-constraints.txt \
    homeassistant==2025.4.4 paho-mqtt==2.1.0 home-assistant-frontend==20250411.0 Pillow==11.1.0 >&2
fi

if running; then kill "$(cat "$PIDF")"; sleep 2; fi
rm -rf "$CONF"; mkdir -p "$CONF/.storage"
cat > "$CONF/configuration.yaml" <<YAML
homeassistant:
  name: Keyway test house
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
http:
  server_host: 127.0.0.1
  server_port: $PORT
api:
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: info
YAML
TOKEN="$("$DIR/venv/bin/python" - "$CONF" "$BROKER" "$BPORT" <<'PYEOF'
import json, secrets, sys, time, uuid, datetime
import jwt
conf, broker, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
now = datetime.datetime.now(datetime.timezone.utc).isoformat()
user, rt, key = uuid.uuid4().hex, uuid.uuid4().hex, secrets.token_hex(64)
auth = {"version": 1, "minor_version": 1, "key": "auth", "data": {
  "users": [{"id": user, "group_ids": ["system-admin"], "is_owner": True, "is_active": True,
             "name": "Keyway test", "system_generated": False, "local_only": False}],
  "groups": [{"id": "system-admin", "name": "Administrators"}, {"id": "system-users", "name": "Users"},
             {"id": "system-read-only", "name": "Read Only"}],
  "credentials": [],
  "refresh_tokens": [{"id": rt, "user_id": user, "client_id": None, "client_name": "keyway-test",
    "client_icon": None, "token_type": "long_lived_access_token", "created_at": now,
    "access_token_expiration": 315360000.0, "token": secrets.token_hex(64), "jwt_key": key,
    "last_used_at": None, "last_used_ip": None, "expire_at": None, "credential_id": None, "version": None}]}}
entries = {"version": 1, "minor_version": 5, "key": "core.config_entries", "data": {"entries": [{
  "created_at": now, "modified_at": now, "data": {"broker": broker, "port": port},
  "discovery_keys": {}, "disabled_by": None, "domain": "mqtt", "entry_id": uuid.uuid4().hex,
  "minor_version": 2, "version": 1, "options": {"discovery": True, "discovery_prefix": "homeassistant"},
  "pref_disable_new_entities": False, "pref_disable_polling": False, "source": "user",
  "subentries": [], "title": broker, "unique_id": None}]}}
onboarding = {"version": 4, "minor_version": 1, "key": "onboarding",
  "data": {"done": ["user", "core_config", "analytics", "integration"]}}
for name, v in [("auth", auth), ("core.config_entries", entries), ("onboarding", onboarding)]:
    with open(f"{conf}/.storage/{name}", "w") as f:
        json.dump(v, f)
t = int(time.time())
print(jwt.encode({"iss": rt, "iat": t, "exp": t + 315360000}, key, algorithm="HS256"))
PYEOF
)"
chmod 600 "$CONF/.storage/auth"
say "starting Home Assistant on 127.0.0.1:$PORT (log: $DIR/hass.log)"
nohup "$DIR/venv/bin/hass" -c "$CONF" --skip-pip > "$DIR/hass.log" 2>&1 &
echo $! > "$PIDF"
for _ in $(seq 1 240); do
  if curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/config/config_entries/entry" 2>/dev/null | grep -q '"domain":"mqtt".*"state":"loaded"'; then
    say "up, MQTT integration loaded"
    echo "export KEYWAY_HA_URL=http://127.0.0.1:$PORT"
    echo "export KEYWAY_HA_TOKEN=$TOKEN"
    exit 0
  fi
  if grep -q "Activating recovery mode" "$DIR/hass.log"; then
    say "Home Assistant started in recovery mode; see $DIR/hass.log"; tail -n 30 "$DIR/hass.log" >&2; exit 1
  fi
  running || { say "hass exited; see $DIR/hass.log"; tail -n 30 "$DIR/hass.log" >&2; exit 1; }
  sleep 1
done
say "Home Assistant did not load MQTT within 240 s; see $DIR/hass.log"; tail -n 30 "$DIR/hass.log" >&2
exit 1
