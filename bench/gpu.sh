#!/usr/bin/env bash
# Issue 6's GPU figures, run on the GPU machine (NVIDIA driver, PyTorch,
# no Rust): CPU and CUDA training give the same figures, and training
# throughput beside PyTorch on the same GPU, model and batch; and the
# served models answer on CUDA as on the CPU.
# BIN holds `starcast` and the `fine_tune` bench, built here by
# scripts/build-cuda.sh (README, "Training and serving on a GPU"), each xz-compressed,
# SmolLM2's tokenizer files in tokenizer/ and the packaged ImageNet
# MobileNetV2 folder in mobilenet-v2-imagenet/.
# Usage: bench/gpu.sh BIN OUT
set -euo pipefail
bin=$(realpath "$1")
out=$(realpath "$2")
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
step() { printf '\n==> %s\n' "$*"; }

for tool in starcast fine_tune; do
  python3 -c 'import lzma, sys; open(sys.argv[2], "wb").write(lzma.open(sys.argv[1]).read())' \
    "$bin/$tool.xz" "$work/$tool"
  chmod +x "$work/$tool"
done
# The CUDA 13 libraries the binaries link to, from PyTorch's NVIDIA wheels.
LD_LIBRARY_PATH=$(python3 -c '
import glob, os, nvidia
print(":".join(sorted({os.path.dirname(p) for root in nvidia.__path__
                      for p in glob.glob(os.path.join(root, "**", "lib*.so.*"), recursive=True)})))')
export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/usr/local/nvidia/lib64
nvidia-smi -L

step "SmolLM2-135M's architecture with seeded random weights (no weights travel to this machine)"
model=$work/smollm2-random
python3 - "$model" "$bin/tokenizer" <<'PY'
import shutil, sys
import torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                     rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
                     bos_token_id=1, eos_token_id=2,
                     # Wider than transformers' 0.02, so the next-token
                     # distributions are far from uniform and the CPU/CUDA
                     # comparison of perplexities means something.
                     initializer_range=0.1)
LlamaForCausalLM(config).save_pretrained(sys.argv[1])
for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(f"{sys.argv[2]}/{name}", sys.argv[1])
PY
python3 "$root/bench/horoscopes.py" "$work/small.csv" 48
python3 "$root/bench/horoscopes.py" "$work/large.csv" 1000

step "horoscope LoRA training, CPU against CUDA: the same figures"
for device in cpu cuda; do
  STARCAST_STEP_METRICS=$out/parity-$device.json "$work/starcast" train horoscope --device "$device" \
    --base "$model" --data "$work/small.csv" --out "$work/lora-$device" --epochs 1 --held-out 8 \
    --checkpoint "$work/checkpoint-$device" 2>&1 | grep -v '^\s*$' | tail -n 3
done

step "actor fine-tuning (every layer, MobileNetV2), CPU against CUDA: the same figures"
python3 - "$work/actors" <<'PY'
import os, random, sys
from PIL import Image, ImageDraw
random.seed(0)
for actor, colour in (("red", (200, 40, 40)), ("green", (40, 180, 60)), ("blue", (50, 70, 210))):
    os.makedirs(f"{sys.argv[1]}/{actor}", exist_ok=True)
    for i in range(12):
        photo = Image.new("RGB", (256, 256), tuple(random.randint(0, 255) for _ in range(3)))
        draw = ImageDraw.Draw(photo)
        x, y, r = random.randint(40, 150), random.randint(40, 150), random.randint(30, 80)
        draw.ellipse((x, y, x + r, y + r), fill=colour)
        photo.save(f"{sys.argv[1]}/{actor}/{i}.jpg")
PY
for device in cpu cuda; do
  STARCAST_STEP_METRICS=$out/actors-$device.json "$work/starcast" train actors --device "$device" --full \
    --base "$bin/mobilenet-v2-imagenet" --data "$work/actors" --out "$work/actors-$device" --epochs 2 \
    --batch 8 --checkpoint "$work/actors-checkpoint-$device" 2>&1 | grep -E 'epoch|accuracy' | tail -n 4
done

step "inference, CPU against CUDA: the same answers"
for device in cpu cuda; do
  "$work/starcast" predict actors --json --device "$device" --model "$work/actors-cpu" \
    "$work"/actors/*/0.jpg >"$out/predict-$device.jsonl"
  "$work/starcast" evaluate "$work/lora-cpu" --data "$work/small.csv" --held-out 8 --samples 1 \
    --settings 0.6:0.7 --device "$device" --json >"$out/evaluate-$device.json"
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def scores(device):
    return [{p["label"]: p["score"] for p in json.loads(line)["predictions"]}
            for line in open(f"{out}/predict-{device}.jsonl")]
worst = max(abs(cpu[label] - cuda[label])
            for cpu, cuda in zip(scores("cpu"), scores("cuda")) for label in cpu)
print(f"classifier: scores differ by at most {worst:.2e}")
cpu, cuda = (json.load(open(f"{out}/evaluate-{d}.json")) for d in ("cpu", "cuda"))
print(f"horoscope model: held-out perplexity {cpu['perplexity']} (CPU), {cuda['perplexity']} (CUDA)")
PY

step "horoscope LoRA training throughput on the GPU: 992 horoscopes, rank 8, batch 16"
STARCAST_STEP_METRICS=$out/text-starcast.json "$work/starcast" train horoscope --device cuda \
  --base "$model" --data "$work/large.csv" --out "$work/lora-large" --epochs 1 --held-out 8 --batch 16 \
  --checkpoint "$work/checkpoint-large" 2>&1 | tail -n 2
python3 "$root/bench/train_text.py" "$model" "$work/large.csv" 8 16 cuda 16 2>/dev/null |
  tee "$out/text-pytorch.json"

step "actor fine-tuning throughput on the GPU: every layer, batch 32, 30 steps"
for arch in resnet18 mobilenet_v2; do
  "$work/fine_tune" "$arch" 32 30 cuda | tee "$out/vision-starcast-$arch.json"
  python3 "$root/bench/train.py" "$arch" 32 30 16 cuda | tee "$out/vision-pytorch-$arch.json"
done
