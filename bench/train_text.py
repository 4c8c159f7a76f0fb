"""LoRA fine-tuning throughput of SmolLM2 in PyTorch + PEFT: the peer of
train/benches/fine_tune_language.rs, with the same GGUF weights
(dequantized to F32 by transformers), adapters (rank 8, alpha 16 on q_proj
and v_proj), prompt format, batch, token limit and threads.

Usage: python bench/train_text.py MODEL_FOLDER HOROSCOPES.csv HELD_OUT THREADS [cpu|cuda] [BATCH]
The folder holds model.gguf, or a transformers checkpoint (safetensors).
Prints one JSON object."""

import csv
import json
import os
import resource
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

folder, data, held_out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
device = sys.argv[5] if len(sys.argv) > 5 else "cpu"
batch_size = int(sys.argv[6]) if len(sys.argv) > 6 else 4
torch.set_num_threads(threads)
gguf = {"gguf_file": "model.gguf"} if os.path.exists(os.path.join(folder, "model.gguf")) else {}
tokenizer = AutoTokenizer.from_pretrained(folder, **gguf)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **gguf)
model = get_peft_model(
    model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
).to(device)
rows = list(csv.DictReader(open(data)))[:-held_out]
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
end = tokenizer.convert_tokens_to_ids("<|im_end|>")


def example(row):
    prompt = tokenizer(f"{row['sign']} | {row['date']}\n", add_special_tokens=False).input_ids
    answer = tokenizer(row["text"], add_special_tokens=False).input_ids + [end]
    return (prompt + answer)[:192], ([-100] * len(prompt) + answer)[:192]


model.train()
tokens, losses = 0, []
start = time.time()
for i in range(0, len(rows), batch_size):
    batch = [example(r) for r in rows[i : i + batch_size]]
    width = max(len(ids) for ids, _ in batch)
    ids = torch.tensor([x + [0] * (width - len(x)) for x, _ in batch], device=device)
    labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch], device=device)
    loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    tokens += sum(len(x) for x, _ in batch)
    losses.append(loss.item())
seconds = time.time() - start
print(
    json.dumps(
        {
            "tokens_per_s": tokens / seconds,
            "train_loss": sum(losses) / len(losses),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )
)
