"""Full fine-tuning throughput in PyTorch, the peer of train/benches/fine_tune.rs:
torchvision's network with a 3-class head in training mode, AdamW, random
224x224 batches. Prints one JSON object.

Usage: python bench/train.py ARCH BATCH STEPS THREADS [cpu|cuda]
"""

import json
import resource
import sys
import time

import torch
import torchvision

arch, batch, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
device = sys.argv[5] if len(sys.argv) > 5 else "cpu"
torch.set_num_threads(threads)
torch.manual_seed(0)
model = getattr(torchvision.models, arch)(num_classes=3).to(device)
model.train()
optimiser = torch.optim.AdamW(model.parameters())
inputs = torch.randn(batch, 3, 224, 224, device=device)
targets = torch.arange(batch, device=device) % 3


def synchronize():
    if device == "cuda":
        torch.cuda.synchronize()


def step():
    optimiser.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(inputs), targets)
    loss.backward()
    optimiser.step()


step()
synchronize()
start = time.perf_counter()
for _ in range(steps):
    step()
synchronize()
seconds = time.perf_counter() - start
print(json.dumps({
    "arch": arch,
    "batch": batch,
    "steps": steps,
    "device": device,
    "images_per_s": batch * steps / seconds,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
