#!/usr/bin/env bash
# Replicas on one registry in S3 (moto on loopback) behind a round-robin
# proxy, beside one replica alone: classify traffic with the face gallery
# while the registry is promoted and rolled back (bench/replicas.py).
# Builds the release first when it is missing; moto comes from
# scripts/setup.sh --test. Usage: bench/replicas.sh [SECONDS] [CONNECTIONS] [PERIOD]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

seconds=${1:-60}
connections=${2:-16}
period=${3:-10}
bin=$(release_starcast)
"$ROOT/scripts/fetch-defaults.sh" "$ROOT/data" >/dev/null
[[ -x "$MOTO_SERVER" ]] || "$ROOT/scripts/setup.sh" --test

step "two replicas vs one, $seconds s each at $connections connections, the registry moved every $period s ($(lscpu | sed -n 's/^Model name: *//p'))"
python3 "$ROOT/bench/replicas.py" "$bin" "$MOTO_SERVER" "$ROOT/data/models/face-gallery" \
  "$ROOT/data/examples/obama3.jpg" "$seconds" "$connections" "$period"
