"""Writes model/tests/fixtures/gemma3_reference.json: what transformers
makes of the Gemma 3 270M GGUF (weights dequantized to F32, tokenizer built
from the file): the token ids of a Russian and an English sentence and of
some tokenizer edge cases, per position the six most likely next tokens
with their logits, and the sentence's mean negative log-likelihood. Beside
it, how far llama.cpp (llama-cpp-python, which runs the file as stored,
with 8-bit activations) is from those logits: the bar Starcast's quantized
serving is held to. model/tests/gemma3.rs checks Starcast's
quantized Gemma 3 and its SentencePiece tokenizer against it.

Run once with PyTorch, transformers, gguf, accelerate and llama-cpp-python
installed (CI does not run it):
    python scripts/reference/gemma3_logits.py data/models/gemma-3-270m/model.gguf \
        model/tests/fixtures/gemma3_reference.json
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from llama_cpp import Llama
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf = Path(sys.argv[1])
out = Path(sys.argv[2])

SENTENCES = {
    "ru": "Сегодня звёзды советуют Овнам не спешить с важными решениями и больше отдыхать.",
    "en": "Today the stars advise Aries not to rush important decisions and to rest more.",
}
# Spaces in runs, newlines, emoji and characters only byte fallback can
# spell, user-defined tokens, a control token written in the text.
TOKENIZER_CASES = [
    "Гороскоп на 2 декабря 2026 года для знака Лев:\n\nЛьвам",
    "  two  spaces,\tand a tab\n\n\nthree newlines",
    "Ёлка, ёж и щёки — «кавычки» 😀 ü ß 中文 \u0001",
    "<start_of_turn>user\nПривет<end_of_turn>",
    "",
]

torch.set_grad_enabled(False)
tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, torch_dtype=torch.float32)
model.eval()

llama_cpp = Llama(model_path=str(gguf), logits_all=True, n_ctx=256, n_threads=2, verbose=False)


def llama_cpp_distance(ids, top_ids, top_logits):
    """llama.cpp's error on the reference's five most likely tokens
    (relative to the position's largest logit): its largest over the
    positions and the mean of each position's largest; and at how many
    positions its most likely token is the reference's."""
    llama_cpp.reset()
    llama_cpp.eval(ids)
    scores = np.array(llama_cpp.scores[: len(ids)])
    errors, agree = [], 0
    for row, want_ids, want in zip(scores, top_ids, top_logits):
        scale = max(abs(want[0]), 1.0)
        errors.append(max(abs(row[i] - w) / scale for i, w in zip(want_ids[:5], want[:5])))
        agree += int(np.argmax(row) == want_ids[0])
    return float(max(errors)), float(np.mean(errors)), agree


reference = {"sentences": {}, "tokenizer": []}
for lang, text in SENTENCES.items():
    ids = tokenizer(text).input_ids
    logits = model(torch.tensor([ids])).logits[0]
    top = torch.topk(logits, 6, dim=-1)
    nll = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]))
    top_ids, top_logits = top.indices.tolist(), top.values.tolist()
    worst, mean, agree = llama_cpp_distance(ids, top_ids, top_logits)
    reference["sentences"][lang] = {
        "text": text,
        "ids": ids,
        "mean_nll": nll.item(),
        "top_ids": top_ids,
        "top_logits": top_logits,
        "llama_cpp_worst": worst,
        "llama_cpp_mean": mean,
        "llama_cpp_top_agree": agree,
    }
for text in TOKENIZER_CASES:
    reference["tokenizer"].append({"text": text, "ids": tokenizer(text).input_ids})
out.write_text(json.dumps(reference, ensure_ascii=False) + "\n")
print(f"wrote {out}")
