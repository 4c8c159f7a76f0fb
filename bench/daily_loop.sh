#!/usr/bin/env bash
# Time of one full daily loop on the offline defaults (bench/daily_loop.py
# says what runs and what stands in for the horoscope sites).
# Usage: bench/daily_loop.sh [EARLIER_DAYS]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

"$ROOT/scripts/fetch-defaults.sh" "$ROOT/data"
cd "$ROOT"
step "building starcast (release)"
cargo build -q --release -p starcast-server --bin starcast
step "one run of the daily loop, $(nproc) threads"
python3 bench/daily_loop.py "$CARGO_TARGET_DIR/release/starcast" "${1:-6}"
