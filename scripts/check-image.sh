#!/usr/bin/env bash
# Runs the image as a Space runs it and drives it from the host: UID 1000,
# PORT=7860, a read-only filesystem but for HOME (a volume, as a Space's
# storage would be), no network but loopback. Checks, in headless Chromium
# and with curl from inside the container's network namespace: /healthz,
# the Actors page names Obama in a real photo, a horoscope streams and is
# flagged, /metrics answers, the flag is stored under the data folder, and a
# new container on the same volume still has it. Prints the container's log
# when a step fails. Usage: scripts/check-image.sh [IMAGE]
set -Eeuo pipefail
source "$(dirname "$0")/lib.sh"

image=${1:-starcast:latest}
name=starcast-check
volume=starcast-check-home
screenshots="$ROOT/target/image-screenshots"

"$ROOT/scripts/setup.sh" --test >/dev/null
"$ROOT/scripts/fetch-defaults.sh" "$ROOT/data" >/dev/null

failed() {
  echo "check-image: failed; the container's log:" >&2
  podman logs "$name" 2>&1 | tail -n 60 >&2 || true
}
cleanup() { podman rm -f "$name" >/dev/null 2>&1 || true; }
trap failed ERR
trap cleanup EXIT

start() {
  cleanup
  pod run -d --name "$name" --user 1000 --env PORT=7860 \
    --read-only --read-only-tmpfs=false --network none \
    --volume "$volume:/home/user" "$image" >/dev/null
}

# Runs a host command in the container's network namespace, where the
# app's port is on loopback.
in_net() { nsenter --net="/proc/$(podman inspect --format '{{.State.Pid}}' "$name")/ns/net" "$@"; }

wait_healthy() {
  for _ in $(seq 300); do
    in_net curl -fsS -o /dev/null http://127.0.0.1:7860/healthz 2>/dev/null && return
    [[ $(podman inspect --format '{{.State.Running}}' "$name") == true ]] || { echo "the container exited" >&2; return 1; }
    sleep 0.2
  done
  echo "no answer on /healthz within 60 s" >&2
  return 1
}

# The review queue's size, as the daily loop's flag step reads it.
flags_stored() {
  podman exec "$name" /app/starcast dataset flags --data /home/user/data --out /home/user/flagged-check |
    awk '/flags in the review queue/ { print $1 }'
}

podman volume rm -f "$volume" >/dev/null
step "starting $image as a Space would (UID 1000, read-only but HOME, loopback only)"
start
wait_healthy
in_net curl -fsS http://127.0.0.1:7860/healthz
echo

step "driving it in Chromium"
(cd "$ROOT/e2e" && in_net node image-check.mjs http://127.0.0.1:7860 "$ROOT/data/examples/obama3.jpg" "$screenshots")

step "/metrics"
in_net curl -fsS http://127.0.0.1:7860/metrics | grep -m 3 '^starcast_'

step "the flag is stored in the data folder's records"
stored=$(flags_stored)
[[ $stored -ge 1 ]] || { echo "no flag in /home/user/data/records.db" >&2; false; }
echo "$stored flag(s)"

step "a new container on the same volume keeps it"
start
wait_healthy
[[ $(flags_stored) -eq $stored ]] || { echo "the flag is gone after the restart" >&2; false; }
echo "$stored flag(s) after the restart"
step "image check passed"
