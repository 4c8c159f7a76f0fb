#!/usr/bin/env bash
# Fills the examples gallery with real labelled photos from the
# face_recognition package (MIT) on PyPI, fetched by name. Photos are never
# committed to this repository. Usage: scripts/fetch-examples.sh DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"

dest=${1:?usage: scripts/fetch-examples.sh DIR}
photos=(biden.jpg obama.jpg obama2.jpg obama3.jpg)
missing=false
for photo in "${photos[@]}"; do [[ -f "$dest/$photo" ]] || missing=true; done
$missing || exit 0

step "fetching example photos (face_recognition 1.3.0 from PyPI)"
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
python3 -m pip download --quiet --no-deps --no-binary :all: face_recognition==1.3.0 -d "$download"
mkdir -p "$dest"
python3 - "$download"/face_recognition-1.3.0.tar.gz "$dest" "${photos[@]}" <<'PY'
import pathlib, sys, tarfile
archive, dest, names = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3:]
with tarfile.open(archive) as tar:
    for name in names:
        member = tar.extractfile(f"face_recognition-1.3.0/tests/test_images/{name}")
        (dest / name).write_bytes(member.read())
PY
