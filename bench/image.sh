#!/usr/bin/env bash
# The Space's image beside the course's Gradio app's (bench/gradio-space),
# both built with podman from base images made the same way, in one run:
# each image's size, and cold start from `podman run` to the first 200 on
# `/` and, for Starcast, to the models loaded (the first 200 on /healthz);
# medians of RUNS, the two images alternating, each container on loopback
# only. Builds starcast:latest when missing. Usage: bench/image.sh [RUNS]
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

# Milliseconds from `podman run` to the first 200 on `/` in the container,
# then to the first 200 on READY_PATH (Starcast's /healthz answers 200 once
# the models are loaded; Gradio answers nothing before its model is).
cold_start() {
  local image=$1 ready_path=$2 started pid first
  podman rm -f -t 0 cold-start >/dev/null 2>&1 || true
  started=$(date +%s%N)
  pod run -d --name cold-start --user 1000 --env PORT=7860 --network none "$image" >/dev/null
  pid=$(podman inspect --format '{{.State.Pid}}' cold-start)
  for path in / "$ready_path"; do
    until nsenter --net="/proc/$pid/ns/net" curl -fs -o /dev/null "http://127.0.0.1:7860$path" 2>/dev/null; do
      [[ $(( ($(date +%s%N) - started) / 1000000 )) -lt 300000 ]] || { echo "$image: no 200 on $path within 300 s" >&2; exit 1; }
      sleep 0.02
    done
    [[ -n ${first:-} ]] || first=$(( ($(date +%s%N) - started) / 1000000 ))
  done
  echo "$first $(( ($(date +%s%N) - started) / 1000000 ))"
  podman rm -f -t 0 cold-start >/dev/null
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

step "cold start, $runs runs each, alternating ($(lscpu | sed -n 's/^Model name: *//p'))"
ours=() ours_ready=() theirs=()
for _ in $(seq "$runs"); do
  read -r first ready < <(cold_start starcast:latest /healthz)
  ours+=("$first") ours_ready+=("$ready")
  read -r first _ < <(cold_start starcast-gradio:latest /)
  theirs+=("$first")
done
ours_size=$(podman image inspect --format '{{.Size}}' starcast:latest)
theirs_size=$(podman image inspect --format '{{.Size}}' starcast-gradio:latest)
ours_ms=$(printf '%s\n' "${ours[@]}" | median)
ready_ms=$(printf '%s\n' "${ours_ready[@]}" | median)
theirs_ms=$(printf '%s\n' "${theirs[@]}" | median)
printf '%-26s %8s %14s  %s\n' image size "median (ms)" "runs (ms)"
printf '%-26s %8s %14s  %s\n' "starcast, first 200 on /" "$(numfmt --to=si "$ours_size")B" "$ours_ms" "${ours[*]}"
printf '%-26s %8s %14s  %s\n' "starcast, models loaded" "" "$ready_ms" "${ours_ready[*]}"
printf '%-26s %8s %14s  %s\n' "gradio, first 200 on /" "$(numfmt --to=si "$theirs_size")B" "$theirs_ms" "${theirs[*]}"
awk -v a="$ours_size" -v b="$theirs_size" -v c="$ours_ms" -v r="$ready_ms" -v d="$theirs_ms" \
  'BEGIN { printf "starcast/gradio: size %.3f, first 200 on / %.3f, models loaded %.3f (goals: at most 0.1)\n", a / b, c / d, r / d }'
