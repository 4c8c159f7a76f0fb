#!/usr/bin/env bash
# Full fine-tuning throughput beside PyTorch: images/s of training steps
# (forward in training mode, backward, AdamW) and peak memory, same
# network, batch and threads, in one run. PyTorch comes from the same
# virtual environment as bench/vision.sh.
# Usage: bench/train.sh [BATCH] [STEPS]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

threads=${THREADS:-2}
batch=${1:-32}
steps=${2:-3}

peer_venv "torchvision" torch torchvision pillow

cd "$ROOT"
for arch in resnet18 mobilenet_v2; do
  step "$arch, batch $batch, $threads threads"
  ours=$(RAYON_NUM_THREADS=$threads as_starcast cargo bench -q -p starcast-train --bench fine_tune -- "$arch" "$batch" "$steps")
  theirs=$(OMP_NUM_THREADS=$threads "$PEER_VENV/bin/python" bench/train.py "$arch" "$batch" "$steps" "$threads")
  python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"Starcast {ours['images_per_s']:6.2f} images/s, peak {ours['peak_rss_mb']:6.0f} MB")
print(f"PyTorch  {theirs['images_per_s']:6.2f} images/s, peak {theirs['peak_rss_mb']:6.0f} MB")
print(f"ratio (Starcast / PyTorch): speed {ours['images_per_s'] / theirs['images_per_s']:.2f}, memory {ours['peak_rss_mb'] / theirs['peak_rss_mb']:.2f}")
PY
done
