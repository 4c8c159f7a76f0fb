"""The networks bench/browser.sh runs in the browser: torchvision's resnet18
and mobilenet_v2 (ImageNet heads, seeded random weights: the values don't
change the speed), each as a Starcast model folder (model.pth, the state
dict as torch saves it) and as ONNX exported by torch from the same module,
for onnxruntime-web. Also writes the photo resized to 256x256 as JPEG."""

import json
import sys
from pathlib import Path

import torch
import torchvision
from PIL import Image


def main(out: str, photo: str) -> None:
    root = Path(out)
    torch.manual_seed(0)
    for arch in ["resnet18", "mobilenet_v2"]:
        model = getattr(torchvision.models, arch)().eval()
        folder = root / arch
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), folder / "model.pth")
        (folder / "config.json").write_text(json.dumps({"task": "image-classification", "architecture": arch, "name": arch}))
        torch.onnx.export(model, torch.zeros(1, 3, 224, 224), root / f"{arch}.onnx", input_names=["input"], output_names=["logits"], opset_version=17, dynamo=False)
    Image.open(photo).convert("RGB").resize((256, 256)).save(root / "photo.jpg", quality=90)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
