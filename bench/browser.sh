#!/usr/bin/env bash
# Starcast's models in the browser beside their peers, in one headless
# Chromium run: classification (resnet18, mobilenet_v2, batch 1) against
# onnxruntime-web's WASM backend, generation (SmolLM2-135M Q4_1) against
# wllama, both single-threaded; and a first visit to the static Space (its
# downloads, the time to its first answer). The peers come from npm into
# bench/browser/node_modules; torch exports the same torchvision networks
# to ONNX in the peer environment under ~/.cache/starcast-peers.
# Usage: bench/browser.sh [RUNS]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

runs=${1:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$ROOT/scripts/setup.sh" --test
"$ROOT/scripts/build.sh" release
"$ROOT/scripts/fetch-defaults.sh" "$ROOT/data"
peer_venv "torchvision, onnx" torch torchvision onnx pillow
(cd "$ROOT/bench/browser" && npm install --no-audit --no-fund --loglevel=error)

step "exporting the networks (torch) and the static Space"
"$PEER_VENV/bin/python" "$ROOT/bench/browser_models.py" "$work/networks" "$ROOT/data/samples/chelsea.png"
mkdir -p "$work/data"
"$CARGO_TARGET_DIR/release/starcast" export-static "$work/space" --site "$SITE" --data "$work/data" \
  --actors-model "$ROOT/data/models/face-gallery" --horoscope-model "$ROOT/data/models/smollm2-135m-instruct"

step "measuring in headless Chromium ($runs runs a network)"
cd "$ROOT"
results=$(WORK="$work/networks" SMOLLM2="$ROOT/data/models/smollm2-135m-instruct" SPACE="$work/space" \
  PEERS="$ROOT/bench/browser/node_modules" PHOTO="$ROOT/data/examples/obama.jpg" RUNS="$runs" \
  node bench/browser.mjs)
echo "$results"

step "ratios"
python3 - "$results" <<'PY'
import json, sys
for line in sys.argv[1].splitlines():
    r = json.loads(line)
    if "arch" in r:
        print(f"{r['arch']:13} Starcast {r['starcast_ms']:6.1f} ms vs onnxruntime-web {r['onnxruntime_web_ms']:6.1f} ms, photo to probabilities: {r['starcast_ms'] / r['onnxruntime_web_ms']:.2f}x the time (goal <= 1.0); onnxruntime-web's forward pass alone {r['onnxruntime_web_forward_ms']:.1f} ms")
    elif "wllama_tokens_per_s" in r:
        print(f"generation    Starcast {r['starcast_tokens_per_s']:5.1f} tokens/s vs wllama {r['wllama_tokens_per_s']:5.1f}: {r['starcast_tokens_per_s'] / r['wllama_tokens_per_s']:.2f}x (goal >= 1.0); decoding alone {r['starcast_decode_tokens_per_s']:.1f} vs {r['wllama_decode_tokens_per_s']:.1f}")
    else:
        print(f"first visit   {r['first_visit_code_gzip_bytes'] / 1e6:.2f} MB of code (gzip) + {r['first_visit_weight_bytes'] / 1e6:.1f} MB of weights; first answer after {r['first_answer_s']:.1f} s")
PY
