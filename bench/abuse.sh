#!/usr/bin/env bash
# Mixed and abusive traffic for the README: the release `starcast serve` with
# the default models (SmolLM2 horoscopes, the face gallery) takes 60 s of
# classify, generate, stream, pages, flags and abusive requests at 32
# connections on loopback (bench/abuse.py). Builds the release first when
# it is missing. Usage: bench/abuse.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

seconds=${1:-60}
connections=${2:-32}
bin=$(release_starcast)
"$ROOT/scripts/fetch-defaults.sh" "$ROOT/data" >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$(mktemp -d)
cp -r "$ROOT/data/models" "$data/models"
"$bin" serve --host 127.0.0.1 --port "$port" --site "$SITE" --data "$data" 2>"$data/server.log" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$data"' EXIT
until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.1; done

step "$seconds s of mixed and abusive traffic at $connections connections ($(lscpu | sed -n 's/^Model name: *//p'))"
python3 "$ROOT/bench/abuse.py" "$port" "$server" "$ROOT/data/examples/obama3.jpg" "$seconds" "$connections"
kill -0 "$server" && echo "the server is still up"
