#!/usr/bin/env bash
# From a fresh clone to a running app: installs what is missing, builds a
# release, prepares the data folder and serves on http://localhost:7860.
# Extra arguments go to `starcast serve` (see `starcast serve --help`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh" release
"$ROOT/scripts/fetch-defaults.sh" "$ROOT/data"
step "starting Starcast"
cd "$ROOT"
exec "$CARGO_TARGET_DIR/release/starcast" serve --site "$SITE" --data "$ROOT/data" "$@"
