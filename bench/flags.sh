#!/usr/bin/env bash
# Flag writes per second into the records database, SQLite (the default
# file) beside PostgreSQL (a fresh cluster of Debian's package on loopback),
# at CLIENTS concurrent clients, each flag with a photo (bench/flags.py).
# Builds the release first when it is missing (STARCAST_BIN overrides it).
# Usage: bench/flags.sh [SECONDS] [CLIENTS]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

seconds=${1:-20}
clients=${2:-16}
bin=${STARCAST_BIN:-$(release_starcast)}
"$ROOT/scripts/fetch-defaults.sh" "$ROOT/data" >/dev/null
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || "$ROOT/scripts/setup.sh" --test
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

work=$(mktemp -d)
cluster="$work/cluster"
pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# PostgreSQL refuses to run as root: as root the cluster is the postgres user's.
as_owner() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[[ $(id -u) -eq 0 ]] && chown postgres:postgres "$work"
stop() {
  as_owner "$pg_bin/pg_ctl" -D "$cluster" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap stop EXIT
as_owner "$pg_bin/initdb" --auth=trust --username=starcast --encoding=UTF8 -D "$cluster" >/dev/null
as_owner "$pg_bin/pg_ctl" -D "$cluster" -o "-p $pg_port -h 127.0.0.1 -k $cluster" \
  -l "$cluster/log" -w start >/dev/null

step "flag writes/s at $clients clients, $seconds s each: SQLite vs PostgreSQL $("$pg_bin/postgres" --version | awk '{ print $3 }') ($(lscpu | sed -n 's/^Model name: *//p'))"
python3 "$ROOT/bench/flags.py" "$bin" "$ROOT/data/examples/obama2.jpg" "$seconds" "$clients" \
  "postgres://starcast@127.0.0.1:$pg_port/postgres"
