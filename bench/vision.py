"""PyTorch's side of bench/vision.sh: the same photo, preprocessing and
networks as model/benches/classifier.rs, eager mode, inference_mode, the
same number of threads. Prints one JSON object per architecture."""

import io
import json
import sys
import time

import torch
import torchvision
from PIL import Image
from torchvision import transforms


def median(values):
    return sorted(values)[len(values) // 2]


def main(photo: str, runs: int, threads: int) -> None:
    torch.set_num_threads(threads)
    data = open(photo, "rb").read()
    preprocess = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    for arch in ["resnet18", "mobilenet_v2"]:
        model = getattr(torchvision.models, arch)(num_classes=3).eval()
        x = preprocess(Image.open(io.BytesIO(data)).convert("RGB")).unsqueeze(0)
        with torch.inference_mode():
            for _ in range(3):
                model(x)
            forward, end_to_end = [], []
            for _ in range(runs):
                start = time.perf_counter()
                model(x)
                forward.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                image = Image.open(io.BytesIO(data)).convert("RGB")
                model(preprocess(image).unsqueeze(0)).softmax(1).tolist()
                end_to_end.append((time.perf_counter() - start) * 1000)
        print(json.dumps({
            "peer": f"pytorch {torch.__version__}",
            "arch": arch,
            "forward_ms": median(forward),
            "end_to_end_ms": median(end_to_end),
            "runs": runs,
        }))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
