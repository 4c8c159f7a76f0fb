#!/usr/bin/env bash
# Builds the Space's image with podman, from the Dockerfile as it is: makes
# the base images first when missing (scripts/base-images.sh), tags the
# result starcast:latest, then prints the build's time, the image's size and
# what each layer of it weighs. Usage: scripts/build-image.sh [TAG]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tag=${1:-starcast:latest}
"$ROOT/scripts/base-images.sh" >/dev/null

step "building $tag from $ROOT/Dockerfile"
started=$(date +%s)
# The host's network: the registries answer inside the build as outside it.
pod build --pull=never --network host --layers -t "$tag" -f "$ROOT/Dockerfile" "$ROOT"
echo "build: $(($(date +%s) - started)) s"

step "$tag: $(podman image inspect --format '{{.Size}}' "$tag" | numfmt --to=si) bytes"
podman history --format '{{.Size}}\t{{.CreatedBy}}' "$tag" | cut -c1-150
