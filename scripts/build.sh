#!/usr/bin/env bash
# Builds the front end (WASM bundle, JS glue, CSS, public files) into the
# site folder and the starcast binary. Usage: scripts/build.sh [debug|release]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

profile=${1:-debug}
case "$profile" in
  debug) wasm_profile=dev; wasm_dir=debug; server_flags=() ;;
  release) wasm_profile=wasm-release; wasm_dir=wasm-release; server_flags=(--release) ;;
  *) echo "usage: scripts/build.sh [debug|release]" >&2; exit 2 ;;
esac

cd "$ROOT"
step "building the front end ($profile)"
cargo build -p starcast-frontend --lib --target wasm32-unknown-unknown --profile "$wasm_profile"
rm -rf "$SITE.new"
mkdir -p "$SITE.new/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$SITE.new/pkg" --out-name starcast \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$wasm_dir/starcast_frontend.wasm"
wasm_opt="$ROOT/tools/node_modules/.bin/wasm-opt"
if [[ "$profile" == release && -x "$wasm_opt" ]]; then
  "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals "$SITE.new/pkg/starcast_bg.wasm" -o "$SITE.new/pkg/starcast_bg.wasm"
fi
step "building the in-browser models (release: unoptimised, they would be unusable)"
# Its own target folder: these flags differ from the hydrate bundle's, and
# sharing one folder would rebuild the crates both use on every switch.
RUSTFLAGS='--cfg getrandom_backend="wasm_js" -C target-feature=+simd128' \
  cargo build -p starcast-browser --lib --target wasm32-unknown-unknown --release \
  --target-dir "$CARGO_TARGET_DIR/browser"
wasm-bindgen --target web --no-typescript --out-dir "$SITE.new/pkg" --out-name starcast_browser \
  "$CARGO_TARGET_DIR/browser/wasm32-unknown-unknown/release/starcast_browser.wasm"
cp browser/worker.js "$SITE.new/pkg/worker.js"
cp style/main.css "$SITE.new/pkg/starcast.css"
cp -r public/. "$SITE.new/"
rm -rf "$SITE"
mv "$SITE.new" "$SITE"

step "building the server ($profile)"
cargo build -p starcast-server "${server_flags[@]}"
