#!/usr/bin/env bash
# Writes Starcast as a static Hugging Face Space into OUT_DIR: installs what
# is missing, builds a release, fetches the default models, and exports the
# pages with both models run in the visitor's browser. Upload the folder
# to a Space (e.g. `huggingface-cli upload <user>/<space> OUT_DIR . --repo-type space`).
# Usage: scripts/build-static.sh OUT_DIR [export-static options], e.g.
#   --actors-model hf://user/actors --weights-from-hub   (see `starcast export-static --help`)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if [[ $# -lt 1 || "$1" == -* ]]; then
  echo "usage: scripts/build-static.sh OUT_DIR [starcast export-static options]" >&2
  exit 2
fi
out=$(realpath -m "$1")
shift

"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh" release
"$ROOT/scripts/fetch-defaults.sh" "$ROOT/data"
step "writing the static Space into $out"
cd "$ROOT"
"$CARGO_TARGET_DIR/release/starcast" export-static "$out" --site "$SITE" --data "$ROOT/data" "$@"
du -sh "$out"
