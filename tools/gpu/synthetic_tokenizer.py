#!/usr/bin/env python3
"""Writes a synthetic word-level tokenizer (tokenizer.json + tokenizer_config.json) of exactly N ids
into DIR, so a random-weight checkpoint from hf_reference.py make-model (which has no tokenizer) can
be served by `llmrt serve` for load tests: token i is the word "w<i>", id 0 is <unk>, 1 <s>, 2 </s>.
  python3 tools/gpu/synthetic_tokenizer.py DIR N
"""
import json, sys

out, n = sys.argv[1], int(sys.argv[2])
vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for i in range(3, n):
    vocab[f"w{i}"] = i
tok = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [
        {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for c, i in (("<unk>", 0), ("<s>", 1), ("</s>", 2))
    ],
    "normalizer": None,
    "pre_tokenizer": {"type": "WhitespaceSplit"},
    "post_processor": None,
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": False},
    "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
}
with open(f"{out}/tokenizer.json", "w") as f:
    json.dump(tok, f)
with open(f"{out}/tokenizer_config.json", "w") as f:
    json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 131072,
               "chat_template": "{% for m in messages %}{{ m['content'] }} {% endfor %}"}, f)
