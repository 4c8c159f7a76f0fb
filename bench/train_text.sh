#!/usr/bin/env bash
# LoRA fine-tuning throughput of the horoscope model beside PyTorch + PEFT:
# tokens/s over one epoch and peak memory, same SmolLM2 weights, adapters,
# horoscopes, batch and threads, in one run. The horoscopes are a
# synthetic house-style corpus made here (no real corpus ships offline).
# Usage: bench/train_text.sh
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

threads=${THREADS:-2}
peer_venv "transformers, peft, gguf" torch transformers peft gguf

cd "$ROOT"
data=$(mktemp --suffix=.csv)
trap 'rm -f "$data"' EXIT
python3 bench/horoscopes.py "$data"

step "SmolLM2-135M, rank-8 LoRA, batch 4, 40 horoscopes, $threads threads"
ours=$(RAYON_NUM_THREADS=$threads as_starcast cargo bench -q -p starcast-train --bench fine_tune_language -- "$data" 8)
theirs=$(OMP_NUM_THREADS=$threads "$PEER_VENV/bin/python" bench/train_text.py data/models/smollm2-135m-instruct "$data" 8 "$threads" 2>/dev/null)
python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name, r in (("Starcast", ours), ("PyTorch ", theirs)):
    print(f"{name} {r['tokens_per_s']:6.1f} tokens/s, mean loss {r['train_loss']:.3f}, peak {r['peak_rss_mb']:6.0f} MB")
print(f"ratio (Starcast / PyTorch): speed {ours['tokens_per_s'] / theirs['tokens_per_s']:.2f}, memory {ours['peak_rss_mb'] / theirs['peak_rss_mb']:.2f}")
PY
