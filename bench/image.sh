#!/usr/bin/env bash
# The Space's image beside the course's Gradio app's (bench/gradio-space),
# both built with podman from base images made the same way, in one run:
# each image's size, and cold start from `podman run` to the first 200 on
# `/` (median of RUNS, the two images alternating), each container on
# loopback only. Builds starcast:latest when missing. Usage: bench/image.sh [RUNS]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

runs=${1:-5}
podman image exists starcast:latest || "$ROOT/scripts/build-image.sh" >/dev/null
"$ROOT/scripts/base-images.sh" >/dev/null

if ! podman image exists starcast-gradio:latest; then
  step "building the Gradio Space's image (gradio, torch, torchvision from PyPI)"
  peer_venv "torchvision" torch torchvision
  context=$(mktemp -d)
  trap 'rm -rf "$context"' EXIT
  cp "$ROOT/bench/gradio-space/"{Dockerfile,app.py} "$context/"
  "$PEER_VENV/bin/python" -c "
import torch, torchvision
torch.manual_seed(0)
torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), '$context/model.pth')"
  pod build --pull=never --network host -t starcast-gradio:latest "$context" >/dev/null
fi

# Milliseconds from `podman run` to the first 200 on `/` in the container.
cold_start() {
  local image=$1 started pid
  podman rm -f -t 0 cold-start >/dev/null 2>&1 || true
  started=$(date +%s%N)
  pod run -d --name cold-start --user 1000 --env PORT=7860 --network none "$image" >/dev/null
  pid=$(podman inspect --format '{{.State.Pid}}' cold-start)
  until nsenter --net="/proc/$pid/ns/net" curl -fs -o /dev/null http://127.0.0.1:7860/ 2>/dev/null; do
    [[ $(( ($(date +%s%N) - started) / 1000000 )) -lt 300000 ]] || { echo "$image: no 200 on / within 300 s" >&2; exit 1; }
    sleep 0.02
  done
  echo $(( ($(date +%s%N) - started) / 1000000 ))
  podman rm -f -t 0 cold-start >/dev/null
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

step "cold start, $runs runs each, alternating ($(lscpu | sed -n 's/^Model name: *//p'))"
ours=() theirs=()
for _ in $(seq "$runs"); do
  ours+=("$(cold_start starcast:latest)")
  theirs+=("$(cold_start starcast-gradio:latest)")
done
ours_size=$(podman image inspect --format '{{.Size}}' starcast:latest)
theirs_size=$(podman image inspect --format '{{.Size}}' starcast-gradio:latest)
ours_ms=$(printf '%s\n' "${ours[@]}" | median)
theirs_ms=$(printf '%s\n' "${theirs[@]}" | median)
printf '%-16s %10s %18s  %s\n' image size "cold start median" "runs (ms)"
printf '%-16s %10s %15s ms  %s\n' starcast "$(numfmt --to=si "$ours_size")B" "$ours_ms" "${ours[*]}"
printf '%-16s %10s %15s ms  %s\n' gradio "$(numfmt --to=si "$theirs_size")B" "$theirs_ms" "${theirs[*]}"
awk -v a="$ours_size" -v b="$theirs_size" -v c="$ours_ms" -v d="$theirs_ms" \
  'BEGIN { printf "starcast/gradio: size %.3f, cold start %.3f (goals: at most 0.1 each)\n", a / b, c / d }'
