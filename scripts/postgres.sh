#!/usr/bin/env bash
# A throwaway PostgreSQL for the hub's store tests and figures.
#
#   eval "$(scripts/postgres.sh)"        # start (or reuse) it; exports KEYWAY_TEST_POSTGRES
#   scripts/postgres.sh stop             # stop it (the data stays under target/postgres)
#
# Installs Debian's `postgresql` with apt when no server binaries are found,
# then creates a cluster under target/postgres (owned by the `postgres` user
# when run as root: initdb refuses root), starts it listening only on a Unix
# socket in that directory (no TCP port, so several worktrees never clash),
# creates the database `keyway_test`, and prints the line
#   export KEYWAY_TEST_POSTGRES='postgresql://postgres@/keyway_test?host=DIR'
# on stdout (everything else goes to stderr). Idempotent: when the cluster
# already runs it only prints the line.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${KEYWAY_PG_DIR:-$PWD/target/postgres}"
DATA="$DIR/data"
DB=keyway_test
say() { printf 'postgres.sh: %s\n' "$*" >&2; }

find_bin() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; fi
}

# shellcheck source=lib/deb.sh
source scripts/lib/deb.sh
BIN="$(find_or_install postgresql find_bin)"

# Run the server's tools as `postgres` when we are root.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DIR" postgres
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

mkdir -p "$DIR"
if [ "$(id -u)" = 0 ]; then chown postgres "$DIR"; fi
chmod 700 "$DIR"

if [ "${1:-}" = stop ]; then
  if [ -f "$DATA/postmaster.pid" ]; then as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2; fi
  exit 0
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
  say "creating a cluster in $DATA"
  as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
fi

if ! as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  say "starting it (socket in $DIR, no TCP)"
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses='' -k $DIR -c max_connections=200" start >/dev/null
fi

PSQL=("$BIN/psql" -h "$DIR" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
if [ "$(as_pg "${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  as_pg "${PSQL[@]}" -c "CREATE DATABASE $DB" >/dev/null
fi

echo "export KEYWAY_TEST_POSTGRES='postgresql://postgres@/$DB?host=$DIR'"
