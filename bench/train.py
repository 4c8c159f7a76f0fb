"""Full fine-tuning throughput in PyTorch, the peer of train/benches/fine_tune.rs:
torchvision's network with a 3-class head in training mode, AdamW, random
224x224 batches. Prints one JSON object.

Usage: python bench/train.py ARCH BATCH STEPS THREADS
"""

import json
import resource
import sys
import time

import torch
import torchvision

arch, batch, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = getattr(torchvision.models, arch)(num_classes=3)
model.train()
optimiser = torch.optim.AdamW(model.parameters())
inputs = torch.randn(batch, 3, 224, 224)
targets = torch.arange(batch) % 3


def step():
    optimiser.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(inputs), targets)
    loss.backward()
    optimiser.step()


step()
start = time.perf_counter()
for _ in range(steps):
    step()
seconds = time.perf_counter() - start
print(json.dumps({
    "arch": arch,
    "batch": batch,
    "steps": steps,
    "images_per_s": batch * steps / seconds,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
