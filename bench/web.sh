#!/usr/bin/env bash
# The web app's figures for the README: cold start of the release binary to
# the first 200 on `/`, the WASM bundle size (raw and gzip), and GET / at 16
# concurrent connections on loopback (wrk, from Debian). Builds the release
# first when it is missing. Usage: bench/web.sh
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

bin=$(release_starcast)
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

step "bundle size"
for file in starcast_bg.wasm starcast.js starcast.css; do
  raw=$(stat -c %s "$SITE/pkg/$file")
  gz=$(gzip -9 -c "$SITE/pkg/$file" | wc -c)
  printf '%-18s %8d bytes raw  %8d bytes gzip\n' "$file" "$raw" "$gz"
done

step "cold start (spawn to first 200 on /, 10 runs)"
python3 "$ROOT/bench/cold_start.py" "$bin" "$SITE" 10

step "GET / at 16 connections, 2 threads, 15 s"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$(mktemp -d)
"$bin" serve --host 127.0.0.1 --port "$port" --site "$SITE" --data "$data" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$data"' EXIT
until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.05; done
wrk -t2 -c16 -d15s --latency "http://127.0.0.1:$port/"
