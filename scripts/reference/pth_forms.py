"""Writes the .pth test fixtures of model/tests/fixtures/pth: one small
network saved in every form students use, plus the tensors each must yield.

Run once with PyTorch installed (CI does not run it):
    python scripts/reference/pth_forms.py model/tests/fixtures/pth
"""

import json
import sys
from pathlib import Path

import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.bn1 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = Tiny()
    model.bn1.running_mean.uniform_(-1, 1)
    model.bn1.running_var.uniform_(0.5, 2)
    sd = model.state_dict()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    torch.save(sd, out / "state_dict.pth")
    torch.save(sd, out / "state_dict_legacy.pth", _use_new_zipfile_serialization=False)
    torch.save({"epoch": 3, "model_state_dict": sd, "optimizer_state_dict": optimizer.state_dict()},
               out / "checkpoint.pth")
    torch.save({"state_dict": sd}, out / "checkpoint_legacy.pth", _use_new_zipfile_serialization=False)
    torch.save({f"module.{k}": v for k, v in sd.items()}, out / "data_parallel.pth")
    torch.save(model, out / "whole_module.pth")
    torch.save(model, out / "whole_module_legacy.pth", _use_new_zipfile_serialization=False)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, out / "half.pth")
    # A transposed (non-contiguous) view keeps its strides in the file.
    transposed = dict(sd)
    transposed["fc.weight"] = sd["fc.weight"].t().contiguous().t()
    torch.save(transposed, out / "transposed.pth")

    expected = {
        k: {"shape": list(v.shape), "values": v.flatten().tolist()}
        for k, v in sd.items()
        if v.is_floating_point()
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=0))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
