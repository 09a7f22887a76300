#!/usr/bin/env python3
"""Writes a synthetic word-level tokenizer (tokenizer.json + tokenizer_config.json) of exactly N ids
into DIR, so a random-weight checkpoint from hf_reference.py make-model (which has no tokenizer) can
be served by `llmrt serve` for load tests: token i is the word "w<i>", id 0 is <unk>, 1 <s>, 2 </s>.
  python3 tools/gpu/synthetic_tokenizer.py DIR N [--bytes]
With --bytes it is a byte-level BPE instead (GPT-2's byte alphabet: ids 3..258 are the 256 bytes, the
rest words "w<i>" / "Ġw<i>", no merges): every text encodes (byte by byte) and JSON punctuation exists,
so guided decoding (xgrammar reads it as byte_level) can run on a random-weight checkpoint.
"""
import json, sys

out, n = sys.argv[1], int(sys.argv[2])
byte_level = "--bytes" in sys.argv[3:]
vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
if byte_level:
    # GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest map to U+0100 onwards.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs, k = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + k)
            k += 1
    for b, c in sorted(zip(bs, cs)):
        vocab[chr(c)] = len(vocab)
while len(vocab) < n:
    i = len(vocab)
    vocab[("\u0120" if byte_level and i % 2 else "") + f"w{i}"] = i
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
if byte_level:
    tok["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tok["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tok["model"] = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
                    "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": []}
with open(f"{out}/tokenizer.json", "w") as f:
    json.dump(tok, f)
with open(f"{out}/tokenizer_config.json", "w") as f:
    json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 131072,
               "chat_template": "{% for m in messages %}{{ m['content'] }} {% endfor %}"}, f)
