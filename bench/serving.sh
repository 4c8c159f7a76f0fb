#!/usr/bin/env bash
# Classifier serving beside the course's Gradio app (bench/serving.py): a
# resnet18 model.pth at 8 concurrent clients for 30 s each, requests/s,
# p50/p99 and peak RSS. Gradio, PyTorch and torchvision are installed from
# PyPI into a virtual environment outside the repository; the release
# starcast is built when missing. Usage: bench/serving.sh [SECONDS] [CLIENTS]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

seconds=${1:-30}
clients=${2:-8}
bin=$(release_starcast)
"$ROOT/scripts/fetch-defaults.sh" "$ROOT/data" >/dev/null
peer_venv "torchvision, gradio, gradio_client" torch torchvision pillow gradio

step "resnet18 serving at $clients clients, $seconds s each ($(lscpu | sed -n 's/^Model name: *//p'))"
as_starcast "$PEER_VENV/bin/python" "$ROOT/bench/serving.py" "$bin" "$SITE" \
  "$ROOT/data/examples/obama3.jpg" "$seconds" "$clients"
