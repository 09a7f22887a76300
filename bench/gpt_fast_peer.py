#!/usr/bin/env python3
"""A gpt-fast-style batch-1 decode peer in plain PyTorch (issue 16): the Llama forward written out,
a static KV cache, the one-token decode step compiled with torch.compile(mode="reduce-overhead",
fullgraph=True) (CUDA graphs), bf16 weights, greedy. Same shapes as llmrt's benches.

  python3 bench/gpt_fast_peer.py [--model HF_DIR | --preset llama-3.2-1b] [--prompt 128] [--decode 256]

With --model, the weights come from the checkpoint's safetensors; otherwise random weights of the
preset's shapes. Prints one line `PEER_RESULT {json}` (tokens/s, the device-copy ceiling measured in
the same process, and the fraction of it).
"""
import argparse
import glob
import json
import math
import os
import time

import torch
import torch.nn.functional as F

PRESETS = {
    "llama-3.2-1b": dict(hidden=2048, inter=8192, layers=16, heads=32, kv=8, vocab=128256, theta=500000.0, eps=1e-5, tied=True),
    "llama-3.1-8b": dict(hidden=4096, inter=14336, layers=32, heads=32, kv=8, vocab=128256, theta=500000.0, eps=1e-5, tied=False),
}


def rope_llama3(hd, theta, scaling):
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    if scaling and scaling.get("rope_type") == "llama3":
        f, lf, hf, old = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"], scaling["original_max_position_embeddings"]
        wl = 2 * math.pi / inv
        lo_w, hi_w = old / lf, old / hf
        smooth = (old / wl - lf) / (hf - lf)
        inv = torch.where(wl > lo_w, inv / f, torch.where(wl < hi_w, inv, (1 - smooth) * inv / f + smooth * inv))
    return inv


class Llama(torch.nn.Module):
    def __init__(self, c, max_seq, dev):
        super().__init__()
        self.c = c
        H, I, nH, nKV = c["hidden"], c["inter"], c["heads"], c["kv"]
        hd = H // nH
        self.hd = hd
        e = lambda *s: torch.empty(*s, device=dev, dtype=torch.bfloat16)  # noqa: E731
        self.emb = e(c["vocab"], H)
        self.lm = self.emb if c["tied"] else e(c["vocab"], H)
        self.layers = [dict(ln1=e(H), wqkv=e((nH + 2 * nKV) * hd, H), wo=e(H, nH * hd), ln2=e(H), w13=e(2 * I, H), w2=e(H, I)) for _ in range(c["layers"])]
        self.lnf = e(H)
        self.kc = torch.zeros(c["layers"], 1, nKV, max_seq, hd, device=dev, dtype=torch.bfloat16)
        self.vc = torch.zeros_like(self.kc)
        inv = rope_llama3(hd, c["theta"], c.get("rope_scaling")).float().to(dev)
        t = torch.arange(max_seq, device=dev, dtype=torch.float32)
        fr = torch.outer(t, inv)
        self.cos, self.sin = torch.cos(fr).to(torch.bfloat16), torch.sin(fr).to(torch.bfloat16)
        self.mask = torch.tril(torch.ones(max_seq, max_seq, dtype=torch.bool, device=dev))

    def weight_bytes(self):
        n = self.emb.numel() + (0 if self.c["tied"] else self.lm.numel()) + self.lnf.numel()
        n += sum(sum(v.numel() for v in l.values()) for l in self.layers)
        return n * 2

    def norm(self, x, w):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.c["eps"])).to(x.dtype) * w

    def rope(self, x, pos):
        c, s = self.cos[pos][None, :, None, :], self.sin[pos][None, :, None, :]
        c, s = torch.cat([c, c], -1), torch.cat([s, s], -1)
        h = x.shape[-1] // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], -1)
        return x * c + rot * s

    def forward(self, ids, pos):
        """ids [1, T], pos [T] (int64) -> logits of the last token [1, vocab]."""
        c = self.c
        nH, nKV, hd = c["heads"], c["kv"], self.hd
        T = ids.shape[1]
        x = F.embedding(ids, self.emb)
        mask = self.mask[pos][None, None]
        for i, l in enumerate(self.layers):
            qkv = F.linear(self.norm(x, l["ln1"]), l["wqkv"])
            q, k, v = qkv.split([nH * hd, nKV * hd, nKV * hd], -1)
            q = self.rope(q.view(1, T, nH, hd), pos).transpose(1, 2)
            k = self.rope(k.view(1, T, nKV, hd), pos).transpose(1, 2)
            v = v.view(1, T, nKV, hd).transpose(1, 2)
            self.kc[i].index_copy_(2, pos, k)
            self.vc[i].index_copy_(2, pos, v)
            y = F.scaled_dot_product_attention(q, self.kc[i], self.vc[i], attn_mask=mask, enable_gqa=True)
            x = x + F.linear(y.transpose(1, 2).reshape(1, T, nH * hd), l["wo"])
            g, u = F.linear(self.norm(x, l["ln2"]), l["w13"]).chunk(2, -1)
            x = x + F.linear(F.silu(g) * u, l["w2"])
        return F.linear(self.norm(x[:, -1], self.lnf), self.lm)


def load_hf(model, d):
    from safetensors.torch import load_file
    sd = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        sd.update(load_file(f, device="cuda"))
    g = lambda k: sd[k].to(torch.bfloat16)  # noqa: E731
    model.emb.copy_(g("model.embed_tokens.weight"))
    if not model.c["tied"]:
        model.lm.copy_(g("lm_head.weight"))
    model.lnf.copy_(g("model.norm.weight"))
    for i, l in enumerate(model.layers):
        p = f"model.layers.{i}."
        l["ln1"].copy_(g(p + "input_layernorm.weight"))
        l["ln2"].copy_(g(p + "post_attention_layernorm.weight"))
        l["wqkv"].copy_(torch.cat([g(p + "self_attn.q_proj.weight"), g(p + "self_attn.k_proj.weight"), g(p + "self_attn.v_proj.weight")]))
        l["wo"].copy_(g(p + "self_attn.o_proj.weight"))
        l["w13"].copy_(torch.cat([g(p + "mlp.gate_proj.weight"), g(p + "mlp.up_proj.weight")]))
        l["w2"].copy_(g(p + "mlp.down_proj.weight"))


def copy_bandwidth():
    n = 1 << 30
    a = torch.ones(n // 4, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        b.copy_(a)
    torch.cuda.synchronize()
    return 2 * n * 10 / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="")
    ap.add_argument("--preset", default="llama-3.2-1b")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--decode", type=int, default=256)
    a = ap.parse_args()
    torch.manual_seed(0)
    if a.model:
        hc = json.load(open(os.path.join(a.model, "config.json")))
        c = dict(hidden=hc["hidden_size"], inter=hc["intermediate_size"], layers=hc["num_hidden_layers"], heads=hc["num_attention_heads"],
                 kv=hc.get("num_key_value_heads", hc["num_attention_heads"]), vocab=hc["vocab_size"], theta=hc.get("rope_theta", 10000.0),
                 eps=hc.get("rms_norm_eps", 1e-5), tied=hc.get("tie_word_embeddings", False), rope_scaling=hc.get("rope_scaling"))
    else:
        c = PRESETS[a.preset]
    max_seq = a.prompt + a.decode + 8
    m = Llama(c, max_seq, "cuda")
    with torch.no_grad():
        if a.model:
            load_hf(m, a.model)
        else:
            for t in [m.emb, m.lnf] + [v for l in m.layers for v in l.values()] + ([] if c["tied"] else [m.lm]):
                t.normal_(0, 0.02) if t.dim() == 2 else t.fill_(1.0)
    bw = copy_bandwidth()
    wb = m.weight_bytes()
    decode = torch.compile(m.forward, mode="reduce-overhead", fullgraph=True)
    prefill = m.forward
    res = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, weight_bytes=wb, copy_Bps=bw)
    with torch.no_grad():
        ids = torch.randint(0, min(c["vocab"], 32000), (1, a.prompt), device="cuda")
        t0 = time.perf_counter()
        nxt = prefill(ids, torch.arange(a.prompt, device="cuda")).argmax(-1, keepdim=True)
        pos = a.prompt
        for _ in range(3):  # compile + capture (same positions are rewritten below)
            out = decode(nxt, torch.tensor([pos], device="cuda"))
        torch.cuda.synchronize()
        res["compile_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(a.decode):
            nxt = decode(nxt, torch.tensor([pos + i], device="cuda")).argmax(-1, keepdim=True).clone()
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    res["decode_tps"] = a.decode / dt
    res["ceiling_tps"] = bw / wb
    res["fraction"] = res["decode_tps"] / res["ceiling_tps"]
    print(f"gpt-fast-style peer on {res['gpu']}: {res['decode_tps']:.1f} tokens/s = {100 * res['fraction']:.1f}% of the copy ceiling "
          f"({bw / 1e12:.3f} TB/s, {wb / 1e9:.3f} GB of weights -> {res['ceiling_tps']:.0f} tokens/s); compile {res['compile_s']:.1f} s", flush=True)
    print("PEER_RESULT " + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
