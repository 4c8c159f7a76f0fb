"""SmolLM2-135M generation speed in transformers on the F32 weights: the
peer of model/benches/text_generation.rs's F32 figures. The packaged GGUF
is dequantized to F32 by transformers; the prompt is the same 64 token ids,
then 64 greedy tokens with the key/value cache, medians of RUNS.

Usage: python bench/text.py MODEL_FOLDER RUNS THREADS
Prints one JSON object."""

import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM

folder, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file="model.gguf", dtype=torch.float32).eval()
prompt = torch.tensor([[300 + (i * 7) % 600 for i in range(64)]])
prompt_tps, generation_tps = [], []
with torch.inference_mode():
    for _ in range(runs):
        start = time.perf_counter()
        out = model(prompt, use_cache=True)
        prompt_tps.append(64 / (time.perf_counter() - start))
        past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        start = time.perf_counter()
        for _ in range(64):
            out = model(token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        generation_tps.append(64 / (time.perf_counter() - start))
median = lambda v: sorted(v)[len(v) // 2]
print(json.dumps({"prompt_tokens_per_s": median(prompt_tps), "generation_tokens_per_s": median(generation_tps)}))
