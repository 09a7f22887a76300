#!/usr/bin/env python3
"""Trains llmrt's embedded default model, models/kjv-llama.

A byte-level BPE tokenizer and a small Llama-architecture model (GQA, RoPE,
SwiGLU, tied embeddings) trained on the King James Bible prepared by
prepare_data.sh, exported as a standard Hugging Face checkpoint, plus the
greedy reference fixture that llmrt's CPU backend is tested against.

    ./prepare_data.sh                      # here: writes data/{train,val}.txt, SOURCE.json
    PYTHONUNBUFFERED=1 python3 train.py --data data --out OUT_DIR 2>&1 | tee OUT_DIR/train.log

Needs a CUDA GPU, torch, transformers (5.x), tokenizers, safetensors; no network.
With --model-impl plain it needs only torch (1.13+), numpy and tokenizers (a built-in Llama with
LlamaForCausalLM's parameter names, written as safetensors directly), so a small model such as the
speculative-decoding draft models/kjv-llama-draft trains on a CPU:

    PYTHONUNBUFFERED=1 python3 train.py --data data --out OUT --model-impl plain --tokenizer-from ../../models/kjv-llama \
      --hidden-size 128 --intermediate-size 256 --num-layers 2 --num-heads 4 --num-kv-heads 2 --seq-len 128 \
      --max-positions 512 --batch-size 16 --steps 600 --autocast none --threads 2 --save-dtype float16
Writes to OUT_DIR: config.json, generation_config.json, model.safetensors,
tokenizer.json, tokenizer_config.json, reference_greedy.json, TRAINING.md.
Everything is seeded and the step count is fixed; GPU kernels (bf16 autocast,
SDPA) may still differ in the last bits between GPUs, drivers and versions.
"""
import argparse
import json
import math
import os
import platform
import random
import shutil
import sys
import tarfile
import time

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS

SPECIAL_TOKENS = ["<|bos|>", "<|eos|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]  # ids 0..4
BOS, EOS, PAD, IM_START, IM_END = SPECIAL_TOKENS
# ChatML-style; BOS is part of the template, so a rendered chat is encoded
# without adding special tokens (as transformers' apply_chat_template does).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
PROMPTS = ["In the beginning", "And the LORD said unto Moses,", "Blessed are the"]
CORE_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
              "tokenizer_config.json", "reference_greedy.json", "TRAINING.md", "train.log"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data", help="folder with train.txt, val.txt, SOURCE.json")
    p.add_argument("--out", required=True, help="output folder (the HF checkpoint)")
    p.add_argument("--seed", type=int, default=1611)
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--intermediate-size", type=int, default=320)
    p.add_argument("--num-layers", type=int, default=6)
    p.add_argument("--num-heads", type=int, default=8)
    p.add_argument("--num-kv-heads", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=512, help="training sequence length = max_position_embeddings")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per step")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--warmup-steps", type=int, default=80)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--min-lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--chat-every", type=int, default=24,
                   help="one chat example (verse -> next verse) per this many training verses")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--max-train-seconds", type=float, default=240.0,
                   help="safety stop; a run that hits it is recorded as such")
    p.add_argument("--new-tokens", type=int, default=48, help="greedy tokens per fixture prompt")
    p.add_argument("--model-impl", choices=["transformers", "plain"], default="transformers",
                   help="plain: the built-in Llama (torch only, no transformers), for CPU runs")
    p.add_argument("--tokenizer-from", default=None,
                   help="reuse tokenizer.json + tokenizer_config.json from this folder instead of training one")
    p.add_argument("--max-positions", type=int, default=None,
                   help="max_position_embeddings written to config.json (RoPE has no learned positions) @default --seq-len")
    p.add_argument("--autocast", choices=["bf16", "none"], default="bf16", help="none: float32 throughout")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--save-dtype", choices=["float32", "float16"], default="float32", help="dtype of model.safetensors")
    p.add_argument("--name", default="kjv-llama", help="model name in TRAINING.md and the fixture")
    p.add_argument("--init-from", default=None,
                   help="start from this checkpoint's model.safetensors (--model-impl plain; continue a run)")
    return p.parse_args()


def read_chapters(path):
    """data/*.txt: one verse per line, chapters separated by a blank line."""
    with open(path, encoding="utf-8") as f:
        blocks = f.read().strip("\n").split("\n\n")
    return [b.split("\n") for b in blocks if b.strip()]


def train_tokenizer(texts, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1", special_tokens=[(BOS, 0)])
    return tok


def save_tokenizer(tok, out, max_len):
    """Saves tokenizer.json + tokenizer_config.json the way transformers reads them."""
    cfg_path = os.path.join(out, "tokenizer_config.json")
    try:
        from transformers import PreTrainedTokenizerFast
        hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                     model_max_length=max_len, chat_template=CHAT_TEMPLATE)
        hf.save_pretrained(out)
        with open(cfg_path) as f:
            cfg = json.load(f)
    except Exception as e:  # write the standard files by hand rather than lose the run
        print("PreTrainedTokenizerFast.save_pretrained failed, writing the files directly:", repr(e))
        tok.save(os.path.join(out, "tokenizer.json"))
        cfg = {"added_tokens_decoder": {str(i): {"content": t, "lstrip": False, "normalized": False,
                                                 "rstrip": False, "single_word": False, "special": True}
                                        for i, t in enumerate(SPECIAL_TOKENS)}}
    # transformers 5 names its own backend class and puts the template in
    # chat_template.jinja; older readers (and llmrt) want the portable form.
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg.pop("auto_map", None)
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg["bos_token"], cfg["eos_token"], cfg["pad_token"] = BOS, EOS, PAD
    cfg["model_max_length"] = max_len
    cfg["clean_up_tokenization_spaces"] = False
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")
    for extra in ("chat_template.jinja", "special_tokens_map.json"):
        p = os.path.join(out, extra)
        if os.path.exists(p):
            os.remove(p)
    # the saved tokenizer.json must be the tokenizer we trained on
    from tokenizers import Tokenizer
    again = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    for s in PROMPTS + ["Hello, world!\n  Two  spaces."]:
        ids = again.encode(s).ids
        assert ids == tok.encode(s).ids and ids[0] == 0 and ids.count(0) == 1, (s, ids)


def build_streams(tok, train_chapters, val_chapters, chat_every):
    """Token streams: each chapter is BOS text EOS; chat examples follow their chapter."""
    import numpy as np
    eos_id = tok.token_to_id(EOS)
    plain_docs, chat_of_chapter = [], []
    verse_index = 0
    for verses in train_chapters:
        plain_docs.append("\n".join(verses))
        chats = []
        for i in range(len(verses) - 1):
            if verse_index % chat_every == 0:
                chats.append(f"{BOS}{IM_START}user\n{verses[i]}{IM_END}\n"
                             f"{IM_START}assistant\n{verses[i + 1]}{IM_END}\n")
            verse_index += 1
        verse_index += 1
        chat_of_chapter.append(chats)
    plain_ids = [e.ids + [eos_id] for e in tok.encode_batch(plain_docs)]  # post-processor adds BOS
    flat_chats = [c for cs in chat_of_chapter for c in cs]
    chat_ids = [e.ids + [eos_id] for e in tok.encode_batch(flat_chats, add_special_tokens=False)]
    train, plain_only, k = [], [], 0
    for ci, chats in enumerate(chat_of_chapter):
        train.extend(plain_ids[ci])
        plain_only.extend(plain_ids[ci])
        for _ in chats:
            train.extend(chat_ids[k])
            k += 1
    val = []
    for e in tok.encode_batch(["\n".join(v) for v in val_chapters]):
        val.extend(e.ids + [eos_id])
    stats = {"train_tokens": len(train), "train_plain_tokens": len(plain_only),
             "chat_examples": len(flat_chats), "chat_tokens": len(train) - len(plain_only),
             "val_tokens": len(val)}
    return (np.array(train, dtype=np.int64), np.array(plain_only, dtype=np.int64),
            np.array(val, dtype=np.int64), stats)


def autocast_ctx(device_type, mode):
    """bf16 autocast, or nothing (float32) with --autocast none."""
    import contextlib
    import torch
    return torch.autocast(device_type, dtype=torch.bfloat16) if mode == "bf16" else contextlib.nullcontext()


def plain_llama(cfg):
    """LlamaForCausalLM without transformers (--model-impl plain): the same math (RMSNorm, RoPE with
    rotate_half, GQA, SwiGLU, tied embeddings) and the same parameter names, so the state dict is a
    standard HF checkpoint. cfg: the config.json dict."""
    import torch
    nn, F = torch.nn, torch.nn.functional
    H, nh, nkv, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(H))

        def forward(self, x):
            xf = x.float()
            return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + cfg["rms_norm_eps"])).to(x.dtype) * self.weight

    def rotate_half(x):
        return torch.cat((-x[..., hd // 2:], x[..., :hd // 2]), dim=-1)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = nn.Linear(H, nh * hd, bias=False)
            self.k_proj = nn.Linear(H, nkv * hd, bias=False)
            self.v_proj = nn.Linear(H, nkv * hd, bias=False)
            self.o_proj = nn.Linear(nh * hd, H, bias=False)

        def forward(self, x, cos, sin, mask):
            B, T, _ = x.shape
            q = self.q_proj(x).view(B, T, nh, hd).transpose(1, 2)
            k = self.k_proj(x).view(B, T, nkv, hd).transpose(1, 2)
            v = self.v_proj(x).view(B, T, nkv, hd).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k, v = k.repeat_interleave(nh // nkv, dim=1), v.repeat_interleave(nh // nkv, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask
            y = F.softmax(att.float(), dim=-1).to(q.dtype) @ v
            return self.o_proj(y.transpose(1, 2).reshape(B, T, nh * hd))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            I = cfg["intermediate_size"]
            self.gate_proj, self.up_proj = nn.Linear(H, I, bias=False), nn.Linear(H, I, bias=False)
            self.down_proj = nn.Linear(I, H, bias=False)

        def forward(self, x):
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn, self.mlp = Attention(), Mlp()
            self.input_layernorm, self.post_attention_layernorm = RMSNorm(), RMSNorm()

        def forward(self, x, cos, sin, mask):
            x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
            return x + self.mlp(self.post_attention_layernorm(x))

    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(cfg["vocab_size"], H)
            self.layers = nn.ModuleList([Layer() for _ in range(cfg["num_hidden_layers"])])
            self.norm = RMSNorm()

    class Out:
        def __init__(self, logits):
            self.logits = logits

    class PlainLlamaForCausalLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = Inner()
            self.lm_head = nn.Linear(H, cfg["vocab_size"], bias=False)
            self.lm_head.weight = self.model.embed_tokens.weight  # tied
            for m in self.modules():  # transformers' init: normal(0, initializer_range), norms 1
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, mean=0.0, std=cfg["initializer_range"])

        def forward(self, input_ids, use_cache=False):
            T = input_ids.shape[1]
            pos = torch.arange(T, device=input_ids.device, dtype=torch.float32)
            inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, device=input_ids.device).float() / hd))
            ang = torch.outer(pos, inv)
            ang = torch.cat((ang, ang), dim=-1)
            x = self.model.embed_tokens(input_ids)
            cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
            mask = torch.full((T, T), float("-inf"), device=input_ids.device).triu(1)
            for layer in self.model.layers:
                x = layer(x, cos, sin, mask)
            return Out(self.lm_head(self.model.norm(x)))

    return PlainLlamaForCausalLM()


def save_safetensors(tensors, path):
    """Writes a safetensors file (8-byte little-endian header length, JSON header, raw data)."""
    import numpy as np
    names = {np.float32: "F32", np.float16: "F16"}
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": names[a.dtype.type], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """Reads a safetensors file (F32/F16) into float32 numpy arrays."""
    import numpy as np
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        data = f.read()
    header.pop("__metadata__", None)
    np_dtypes = {"F32": np.float32, "F16": np.float16}
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype=np_dtypes[v["dtype"]])
            .astype(np.float32).reshape(v["shape"]) for k, v in header.items()}


def windows(stream, seq, starts):
    import torch
    ar = torch.arange(seq + 1, device=stream.device)
    return stream[starts.to(stream.device)[:, None] + ar]  # [B, seq+1]


def mean_loss(model, stream, seq, starts, batch=64, autocast="bf16"):
    """Mean next-token cross-entropy (nats) over the windows at `starts`, bf16 autocast (or none)."""
    import torch
    F = torch.nn.functional
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad(), autocast_ctx(stream.device.type, autocast):
        for i in range(0, len(starts), batch):
            x = windows(stream, seq, starts[i:i + batch])
            logits = model(input_ids=x[:, :-1], use_cache=False).logits
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                   reduction="sum")
            total += loss.item()
            count += x[:, 1:].numel()
    model.train()
    return total / count


def main():
    args = parse_args()
    t0 = time.time()
    import numpy as np
    import tokenizers
    import torch
    try:
        import safetensors
    except ImportError:  # --model-impl plain writes safetensors itself
        safetensors = None
    plain = args.model_impl == "plain"
    if plain:
        transformers = None
    else:
        import transformers
        from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    F = torch.nn.functional
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    elif plain:  # a small model on the CPU (e.g. the draft model)
        gpu = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    else:  # a CPU run is only a smoke test of this script (use --steps 20)
        gpu = "CPU (no CUDA GPU: smoke test only)"
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__ if transformers else "none (--model-impl plain)",
                "tokenizers": tokenizers.__version__,
                "safetensors": safetensors.__version__ if safetensors else "none (written directly)",
                "numpy": np.__version__}
    print("versions:", json.dumps(versions))
    print("gpu:", gpu)
    print("args:", json.dumps(vars(args)))
    os.makedirs(args.out, exist_ok=True)

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.cuda.manual_seed_all(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # ---- data + tokenizer -------------------------------------------------------
    with open(os.path.join(args.data, "SOURCE.json")) as f:
        source = json.load(f)
    train_chapters = read_chapters(os.path.join(args.data, "train.txt"))
    val_chapters = read_chapters(os.path.join(args.data, "val.txt"))
    print(f"data: {len(train_chapters)} train chapters, {len(val_chapters)} val chapters;",
          ", ".join(f"{p['package']} {p['version']}" for p in source["packages"]))
    t_tok = time.time()
    if args.tokenizer_from:  # the same tokenizer as another model (a draft model must share it)
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(args.tokenizer_from, "tokenizer.json"))
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(os.path.join(args.tokenizer_from, f), os.path.join(args.out, f))
    else:
        tok = train_tokenizer(["\n".join(v) for v in train_chapters], args.vocab_size)
        save_tokenizer(tok, args.out, args.seq_len)
    vocab = tok.get_vocab_size()
    print(f"tokenizer: vocab {vocab}, trained in {time.time() - t_tok:.1f}s;",
          "sample:", tok.encode(PROMPTS[1]).tokens)
    train_np, plain_np, val_np, stats = build_streams(tok, train_chapters, val_chapters, args.chat_every)
    print("tokens:", json.dumps(stats), f"(train text {source['files']['train.txt']['bytes']} bytes,",
          f"{source['files']['train.txt']['bytes'] / stats['train_plain_tokens']:.2f} bytes/token)")
    train_t, plain_t, val_t = (torch.from_numpy(a).to(dev) for a in (train_np, plain_np, val_np))

    seq = args.seq_len
    val_starts = torch.arange(0, len(val_np) - seq - 1, seq)                   # all of val, no overlap
    g_eval = torch.Generator().manual_seed(args.seed + 1)
    train_eval_starts = torch.randint(0, len(plain_np) - seq - 1, (256,), generator=g_eval)

    # ---- model --------------------------------------------------------------------
    head_dim = args.hidden_size // args.num_heads
    max_positions = args.max_positions or seq
    plain_cfg = {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 0, "dtype": args.save_dtype, "eos_token_id": 1, "head_dim": head_dim, "hidden_act": "silu",
        "hidden_size": args.hidden_size, "initializer_range": 0.02, "intermediate_size": args.intermediate_size,
        "max_position_embeddings": max_positions, "mlp_bias": False, "model_type": "llama",
        "num_attention_heads": args.num_heads, "num_hidden_layers": args.num_layers,
        "num_key_value_heads": args.num_kv_heads, "pad_token_id": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "tie_word_embeddings": True,
        "use_cache": True, "vocab_size": vocab, "rope_theta": 10000.0, "torch_dtype": args.save_dtype,
    }
    config = plain_cfg if plain else LlamaConfig(
        vocab_size=vocab, hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
        num_hidden_layers=args.num_layers, num_attention_heads=args.num_heads,
        num_key_value_heads=args.num_kv_heads, head_dim=head_dim, hidden_act="silu",
        max_position_embeddings=seq, rms_norm_eps=1e-5, initializer_range=0.02,
        tie_word_embeddings=True, attention_bias=False, mlp_bias=False, attention_dropout=0.0,
        bos_token_id=0, eos_token_id=1, pad_token_id=2, use_cache=True)
    if plain:
        pass
    elif isinstance(getattr(config, "rope_parameters", None), dict):   # transformers 5
        config.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
    else:
        config.rope_theta = 10000.0
    model = (plain_llama(config) if plain else LlamaForCausalLM(config)).to(dev)
    if args.init_from:
        init = {k: torch.from_numpy(v) for k, v in
                load_safetensors(os.path.join(args.init_from, "model.safetensors")).items()}
        init.setdefault("lm_head.weight", init["model.embed_tokens.weight"])
        model.load_state_dict(init)
        print(f"initialized from {args.init_from}/model.safetensors")
    assert model.lm_head.weight is model.model.embed_tokens.weight, "embeddings are not tied"
    num_params = sum(p.numel() for p in model.parameters())
    print(f"model: {num_params:,} parameters ({num_params * 4 / 1e6:.2f} MB float32),",
          f"attn={'plain' if plain else getattr(model.config, '_attn_implementation', '?')}")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
                            **({"fused": True} if dev.type == "cuda" else {}))  # torch 1.13 has no `fused`

    def lr_at(step):
        if step < args.warmup_steps:
            return args.lr * (step + 1) / args.warmup_steps
        t = (step - args.warmup_steps) / max(1, args.steps - args.warmup_steps)
        return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * t))

    # ---- train --------------------------------------------------------------------
    g_train = torch.Generator().manual_seed(args.seed)
    tokens_per_step = args.batch_size * seq
    curve, evals = [], []
    best = {"val": float("inf"), "step": -1, "state": None}
    running = torch.zeros((), device=dev)
    stopped_early = False
    model.train()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    t_train = time.time()
    step = 0
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        starts = torch.randint(0, len(train_np) - seq - 1, (args.batch_size,), generator=g_train)
        x = windows(train_t, seq, starts)
        with autocast_ctx(dev.type, args.autocast):
            logits = model(input_ids=x[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        running += loss.detach()
        done = step + 1
        if done % args.log_every == 0 or done == args.steps:
            n = args.log_every if done % args.log_every == 0 else done % args.log_every
            avg = (running / n).item()
            running.zero_()
            el = time.time() - t_train
            curve.append({"step": done, "loss": round(avg, 4), "lr": lr_at(step), "seconds": round(el, 1)})
            print(f"step {done:5d}/{args.steps}  loss {avg:.4f}  lr {lr_at(step):.2e}  "
                  f"{el:6.1f}s  {done * tokens_per_step / el / 1e6:.2f}M tok/s", flush=True)
        if done % args.eval_every == 0 or done == args.steps:
            v = mean_loss(model, val_t, seq, val_starts, autocast=args.autocast)
            evals.append({"step": done, "val_loss": round(v, 4)})
            mark = ""
            if v < best["val"]:
                best = {"val": v, "step": done,
                        "state": {k: t.detach().clone() for k, t in model.state_dict().items()}}
                mark = "  (best)"
            print(f"eval step {done:5d}  val loss {v:.4f}{mark}", flush=True)
        if time.time() - t_train > args.max_train_seconds and done < args.steps:
            stopped_early = True
            print(f"time guard: stopping after {done} steps ({args.max_train_seconds}s)", flush=True)
            break
    sync()
    train_seconds = time.time() - t_train
    steps_done = step + 1
    if best["state"] is not None and best["step"] != steps_done:
        print(f"restoring the best validation checkpoint (step {best['step']})")
        model.load_state_dict(best["state"])
    final_val = mean_loss(model, val_t, seq, val_starts, autocast=args.autocast)
    final_train = mean_loss(model, plain_t, seq, train_eval_starts, autocast=args.autocast)
    print(f"final (step {best['step']}): train loss {final_train:.4f}  val loss {final_val:.4f}  "
          f"(nats/token; train = 256 fixed windows of the plain train text)  "
          f"train time {train_seconds:.1f}s  tokens seen {steps_done * tokens_per_step:,}")

    # ---- export -------------------------------------------------------------------
    model = model.float().cpu().eval()
    cfg_path = os.path.join(args.out, "config.json")
    if plain:
        save_dtype = {"float32": np.float32, "float16": np.float16}[args.save_dtype]
        save_safetensors({k: v.detach().numpy().astype(save_dtype) for k, v in model.state_dict().items()
                          if k != "lm_head.weight"}, os.path.join(args.out, "model.safetensors"))
        with open(cfg_path, "w") as f:
            json.dump(plain_cfg, f, indent=2)
        with open(os.path.join(args.out, "generation_config.json"), "w") as f:
            json.dump({"bos_token_id": 0, "eos_token_id": [1, 4], "pad_token_id": 2}, f, indent=2)
            f.write("\n")
    else:
        model.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=[1, 4], pad_token_id=2)
        model.save_pretrained(args.out, safe_serialization=True)
    with open(cfg_path) as f:
        cfg = json.load(f)
    # transformers 5 writes rope_parameters and dtype; keep the classic keys too.
    cfg.setdefault("rope_theta", 10000.0)
    cfg.setdefault("torch_dtype", "float32")
    cfg["architectures"] = ["LlamaForCausalLM"]
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print("config.json:", json.dumps(cfg))
    with open(os.path.join(args.out, "model.safetensors"), "rb") as f:  # the header, read directly
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    header.pop("__metadata__", None)
    names = list(header)
    dtypes = sorted({v["dtype"] for v in header.values()})
    print(f"model.safetensors: {len(names)} tensors, dtypes {dtypes},",
          f"{os.path.getsize(os.path.join(args.out, 'model.safetensors')):,} bytes; e.g. {names[:3]}")

    # ---- fixture: transformers, reloaded from the saved files, float32 on the CPU --
    fixture_ok, samples = False, {}
    try:
        from tokenizers import Tokenizer
        raw_tok = Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))
        if plain:  # the built-in model with the saved (possibly float16) weights, in float32
            ref = plain_llama(config).eval()
            state = {k: torch.from_numpy(v) for k, v in
                     load_safetensors(os.path.join(args.out, "model.safetensors")).items()}
            state["lm_head.weight"] = state["model.embed_tokens.weight"]
            ref.load_state_dict(state)
            cuda_ref, hf_tok = ref, None
        else:
            from transformers import AutoTokenizer
            ref = LlamaForCausalLM.from_pretrained(args.out).float().eval()
            hf_tok = AutoTokenizer.from_pretrained(args.out)
            cuda_ref = LlamaForCausalLM.from_pretrained(args.out).float().eval().to(dev)
        cases = []
        for i, prompt in enumerate(PROMPTS):
            ids = raw_tok.encode(prompt).ids
            hf_ids = hf_tok(prompt)["input_ids"] if hf_tok else ids
            assert ids == hf_ids, f"tokenizer.json and AutoTokenizer disagree: {ids} vs {hf_ids}"
            assert ids[0] == 0 and ids.count(0) == 1, ids
            cur = torch.tensor([ids])
            new, margins, first_logits = [], [], None
            with torch.no_grad():
                for _ in range(args.new_tokens):
                    logits = ref(input_ids=cur, use_cache=False).logits[0, -1].float()
                    if first_logits is None:
                        first_logits = logits.clone()
                    top2 = torch.topk(logits, 2).values
                    margins.append((top2[0] - top2[1]).item())
                    nxt = int(torch.argmax(logits))
                    new.append(nxt)
                    cur = torch.cat([cur, torch.tensor([[nxt]])], dim=1)
                gen = new if plain else ref.generate(
                    torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                    do_sample=False, max_new_tokens=args.new_tokens)[0, len(ids):].tolist()
                cuda_cur = torch.tensor([ids], device=dev)
                for _ in range(args.new_tokens):
                    nxt = int(torch.argmax(cuda_ref(input_ids=cuda_cur, use_cache=False).logits[0, -1]))
                    cuda_cur = torch.cat([cuda_cur, torch.tensor([[nxt]], device=dev)], dim=1)
                cuda_new = cuda_cur[0, len(ids):].tolist()
            case = {"prompt": prompt, "prompt_ids": ids, "new_ids": new,
                    "text": raw_tok.decode(new, skip_special_tokens=False),
                    "min_top2_margin": round(min(margins), 6),
                    "generate_agrees": gen == new[:len(gen)], "generate_len": len(gen),
                    "cuda_float32_agrees": cuda_new == new}
            if i == 0:
                case["last_logits"] = [float(f"{v:.9g}") for v in first_logits.tolist()]
                case["last_logits_top5"] = torch.topk(first_logits, 5).indices.tolist()
            cases.append(case)
            print(f"greedy {prompt!r} -> {case['text']!r}  (ids {ids} + {new}; margin {min(margins):.4f};"
                  f" generate agrees {case['generate_agrees']} len {len(gen)}; cuda agrees {case['cuda_float32_agrees']})")
        fixture = {
            "model": args.name,
            "about": "transformers greedy continuation (argmax at every step for new_tokens steps, EOS does not stop "
                     "it), LlamaForCausalLM loaded from this folder in float32 on the CPU. prompt_ids are the "
                     "tokenizer's ids with special tokens added (BOS id 0 prepended by the post-processor). "
                     "text = decode(new_ids). last_logits (first case only) = logits at the last prompt "
                     "position, all vocab entries. min_top2_margin = smallest top-1 minus top-2 logit gap "
                     "over the steps.",
            "transformers": transformers.__version__ if transformers else "none (--model-impl plain: train.py's own Llama)",
            "torch": torch.__version__,
            "dtype": "float32", "device": "cpu", "add_bos": True, "bos_token_id": 0,
            "new_tokens": args.new_tokens, "cases": cases,
        }
        with open(os.path.join(args.out, "reference_greedy.json"), "w") as f:
            json.dump(fixture, f, indent=1)
            f.write("\n")
        fixture_ok = True

        # readable samples for the log and TRAINING.md
        if not plain:  # samples need transformers' generate
            torch.manual_seed(args.seed)
            with torch.no_grad():
                out = ref.generate(torch.tensor([raw_tok.encode("And it came to pass").ids]), do_sample=True,
                                   temperature=0.8, top_k=40, max_new_tokens=120)
            samples["sampled"] = ("And it came to pass", raw_tok.decode(out[0, 1:].tolist()))
            chat = hf_tok.apply_chat_template([{"role": "user", "content": "Blessed are the meek: for they shall inherit the earth."}],
                                              tokenize=False, add_generation_prompt=True)
            chat_ids = raw_tok.encode(chat, add_special_tokens=False).ids
            with torch.no_grad():
                out = ref.generate(torch.tensor([chat_ids]), do_sample=False, max_new_tokens=80)
            samples["chat"] = (chat, raw_tok.decode(out[0, len(chat_ids):].tolist(), skip_special_tokens=False))
            for k, (p, t) in samples.items():
                print(f"sample ({k}): {p!r} -> {t!r}")
    except Exception as e:  # keep the checkpoint and the report even if this part fails
        import traceback
        traceback.print_exc()
        print("fixture/sample step failed:", e)

    # ---- TRAINING.md --------------------------------------------------------------
    total_seconds = time.time() - t0
    pkgs = "; ".join(f"`{p['package']}` {p['version']} (`{p['file']}`, sha256 {p['sha256'][:16]}…)"
                     for p in source["packages"])
    lines = [
        f"# {args.name}: how it was trained",
        "",
        *(["llmrt's embedded default model: a small Llama-architecture model trained on the King James Bible,",
           "so that `generate` works on a machine with nothing but the checkout. It writes KJV-flavoured English;",
           "it knows nothing else."] if args.name == "kjv-llama" else
          [f"`{args.name}`: a small Llama-architecture model trained on the King James Bible with the tokenizer of",
           f"`{args.tokenizer_from}` (the speculative-decoding draft model of the embedded default model)."]),
        "",
        "## Data",
        f"- Source: King James Version (1611, public domain) from Debian 12's packages {pkgs}.",
        f"- Prepared by `tools/train-default-model/prepare_data.sh`: {source['format']}.",
        f"- Split: {source['split']} ({len(train_chapters)} train chapters, {len(val_chapters)} validation chapters).",
        f"- Train text {source['files']['train.txt']['bytes']:,} bytes (sha256 {source['files']['train.txt']['sha256'][:16]}…),",
        f"  validation {source['files']['val.txt']['bytes']:,} bytes (sha256 {source['files']['val.txt']['sha256'][:16]}…).",
        f"- Training stream: each chapter is `{BOS}` + verses joined by newlines + `{EOS}`; after each chapter,",
        f"  chat examples (one per {args.chat_every} verses: user = a verse, assistant = the next verse, in the chat",
        f"  template, ending `{IM_END}` then `{EOS}`). Tokens: {json.dumps(stats)}.",
        "",
        "## Tokenizer",
        f"- Byte-level BPE (`tokenizers` {tokenizers.__version__}) trained on the train text: vocabulary {vocab},",
        "  ByteLevel pre-tokenizer (GPT-2 regex, add_prefix_space false), ByteLevel decoder, no normalizer.",
        f"- Special tokens (ids 0-4): {', '.join(f'`{t}`' for t in SPECIAL_TOKENS)}. The post-processor",
        f"  (TemplateProcessing) prepends `{BOS}` (id 0) when special tokens are added; nothing is appended.",
        "- Chat template (ChatML style, `tokenizer_config.json` `chat_template`): starts with the BOS token, so a",
        "  rendered chat is encoded without adding special tokens. Generation stops at `<|eos|>` (1) or `<|im_end|>` (4).",
        "",
        "## Model",
        f"- `LlamaForCausalLM`: hidden {args.hidden_size}, {args.num_layers} layers, {args.num_heads} heads of dim {head_dim},",
        f"  {args.num_kv_heads} KV heads (GQA), SwiGLU intermediate {args.intermediate_size}, RoPE theta 10000,",
        f"  RMSNorm eps 1e-5, max positions {max_positions} (trained on windows of {seq}), tied input/output embeddings, no biases.",
        f"- Parameters: {num_params:,}; stored in {args.save_dtype} (`model.safetensors`, "
        f"{os.path.getsize(os.path.join(args.out, 'model.safetensors')):,} bytes).",
        "",
        "## Training",
        f"- AdamW (betas 0.9/0.95, eps 1e-8, weight decay {args.weight_decay} on matrices), peak lr {args.lr},"
        f" linear warmup {args.warmup_steps} steps, cosine to {args.min_lr}; gradient clip {args.grad_clip}.",
        f"- {args.batch_size} random windows of {seq} tokens per step ({tokens_per_step:,} tokens), "
        f"{steps_done} steps{' (STOPPED EARLY by the time guard)' if stopped_early else ''} = "
        f"{steps_done * tokens_per_step:,} tokens seen "
        f"(~{steps_done * tokens_per_step / stats['train_tokens']:.0f} passes over the train stream).",
        f"- {'bf16 autocast' if args.autocast == 'bf16' else 'float32 (no autocast)'}, float32 master weights,"
        f" seed {args.seed}; validation every {args.eval_every} steps;"
        f" the checkpoint with the lowest validation loss is kept (step {best['step']}).",
        f"- Final loss (nats/token, evaluated after training): train {final_train:.4f} "
        f"(256 fixed windows of the plain train text), validation {final_val:.4f} (all {len(val_starts)} windows).",
        f"- Wall time: training {train_seconds:.1f} s, whole script {total_seconds:.1f} s on one {gpu}.",
        f"- Software: {', '.join(f'{k} {v}' for k, v in versions.items())}.",
        "",
        "Loss curve (mean training loss over each logging interval; validation loss at evaluations):",
        "",
        "| step | train loss | lr | seconds |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {c['step']} | {c['loss']:.4f} | {c['lr']:.2e} | {c['seconds']} |"
              for c in curve if c["step"] % (args.log_every * 2) == 0 or c["step"] == curve[-1]["step"]]
    lines += ["", "| step | val loss |", "|---:|---:|"]
    lines += [f"| {e['step']} | {e['val_loss']:.4f} |" for e in evals]
    lines += ["", "## Reproduce", "",
              "```sh",
              "apt-get update   # once, on Debian 12 x86-64",
              "tools/train-default-model/prepare_data.sh",
              "cd tools/train-default-model && PYTHONUNBUFFERED=1 python3 train.py --data data --out OUT 2>&1 | tee OUT/train.log",
              "```",
              "",
              f"This run's arguments: `{' '.join(sys.argv[1:])}` (the rest are train.py's defaults, listed in",
              "train.log). The run is seeded with a fixed step count;",
              "GPU kernels may still differ in the last bits between GPUs, drivers and library versions.",
              "",
              "## Reference fixture",
              "",
              "`reference_greedy.json`: for three prompts, transformers' greedy continuation "
              f"({args.new_tokens} new tokens, argmax each step, EOS does not stop), computed on the CPU in float32 from "
              "the saved files; llmrt's CPU backend must produce the same ids. "
              + ("" if fixture_ok else "**The fixture step FAILED in this run; see train.log.**"),
              ""]
    if samples:
        lines += ["## Samples", ""]
        for k, (p, t) in samples.items():
            lines += [f"{k} — prompt {json.dumps(p)}:", "", "```", t, "```", ""]
    with open(os.path.join(args.out, "TRAINING.md"), "w") as f:
        f.write("\n".join(lines))

    # at most 8 files come back from the GPU host: bundle any extras into one tar
    extras = sorted(n for n in os.listdir(args.out) if n not in CORE_FILES)
    if extras:
        print("extra files:", extras)
        if len(os.listdir(args.out)) > 8:
            with tarfile.open(os.path.join(args.out, "extras.tar"), "w") as tf:
                for n in extras:
                    tf.add(os.path.join(args.out, n), arcname=n)
            for n in extras:
                p = os.path.join(args.out, n)
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    print("out:", {n: os.path.getsize(os.path.join(args.out, n)) for n in sorted(os.listdir(args.out))})
    print(f"done in {total_seconds:.1f}s")


if __name__ == "__main__":
    main()
