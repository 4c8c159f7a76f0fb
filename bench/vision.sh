#!/usr/bin/env bash
# Classifier latency beside PyTorch: resnet18 and mobilenet_v2 at batch 1,
# decode + preprocess + forward on the same photo with the same threads,
# in one run. PyTorch and torchvision are installed from PyPI into a
# virtual environment under ~/.cache/starcast-peers (a large download, once).
# Usage: bench/vision.sh [RUNS]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

threads=${THREADS:-2}
runs=${1:-30}
photo="$ROOT/data/samples/chelsea.png"

"$ROOT/scripts/fetch-defaults.sh" "$ROOT/data"
peer_venv "torchvision" torch torchvision pillow

cd "$ROOT"
step "Starcast (candle + its own convolution kernels), $threads threads"
starcast=$(RAYON_NUM_THREADS=$threads as_starcast cargo bench -q -p starcast-model --bench classifier -- "$photo" "$runs")
echo "$starcast"
step "PyTorch eager, $threads threads"
pytorch=$(OMP_NUM_THREADS=$threads "$PEER_VENV/bin/python" "$ROOT/bench/vision.py" "$photo" "$runs" "$threads")
echo "$pytorch"

step "ratios (Starcast / PyTorch; below 1 means Starcast is faster)"
python3 - "$starcast" "$pytorch" <<'PY'
import json, sys
ours = {r["arch"]: r for r in map(json.loads, sys.argv[1].splitlines())}
theirs = {r["arch"]: r for r in map(json.loads, sys.argv[2].splitlines())}
for arch in ours:
    for key in ("forward_ms", "end_to_end_ms"):
        print(f"{arch:13} {key:14} {ours[arch][key]:7.1f} ms vs {theirs[arch][key]:7.1f} ms  ratio {ours[arch][key] / theirs[arch][key]:.2f}")
PY
