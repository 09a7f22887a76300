#!/usr/bin/env python3
"""Device-side FP8 packer (issue 14): a Llama-family bf16/f16/f32 Hugging Face checkpoint -> a
"compressed-tensors" float8 checkpoint that llmrt loads (lib/quantization/fp8_checkpoint.ts), quantized
with torch on the GPU (seconds for an 8B model, where llmrt's TypeScript quantize() takes minutes).

Schemes (config_groups.group_0 targets "Linear"; lm_head is kept in the checkpoint's dtype):
  static   weights strategy "tensor": one scale per linear, s = amax / 448, q = e4m3(w / s). The parts of a
           fused projection (q/k/v, gate/up) share one scale, the largest of theirs, so llmrt's fused linear is
           per-tensor (cuBLASLt applies it as a scalar). Activations static "tensor": input_scale =
           amax(calibration inputs of the linear) / 448 (q/k/v, gate/up share their input).
  dynamic  weights strategy "channel": s[n] = amax(row n) / 448; activations dynamic per "token".
Both write a kv_cache_scheme (static 8-bit float "tensor") unless --no-kv: self_attn.k_scale / v_scale =
amax / 448 of the keys after RoPE / the values over the calibration forward (transformers' own forward of
the float model), as llm-compressor calibrates them.

Scales are written as float32; q = e4m3 of the float32 quotient w / s (round to nearest even, the quotient
clamped to +-448 first). Every other tensor is copied unchanged; non-weight files (tokenizer, generation
config) are copied. Also writes fp8_pack_ref.json: per quantized linear two position-weighted checksums of
its e4m3 bytes, its scale(s) and input scale, and the KV scales, so a llmrt-side check
(tools/quant-packers/check_fp8_pack.ts) can show the engine holds exactly these bytes.

  python3 tools/quant-packers/pack_fp8_torch.py --model DIR --out DIR [--scheme static|dynamic] [--no-kv]
      [--calib-seqs 4] [--calib-len 256] [--seed 0]
"""
import argparse
import json
import os
import shutil
import time

LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
FUSED = [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["mlp.gate_proj", "mlp.up_proj"]]
E4M3_MAX = 448.0
# Checksum moduli: sum_i byte[i] * (i % M + 1) over the flat [N, K] bytes, exact in a float64 for < 2^53.
MODS = (251, 65521)


def checksums(q):
    import torch
    b = q.view(torch.uint8).reshape(-1).to(torch.int64)
    idx = torch.arange(b.numel(), device=b.device, dtype=torch.int64)
    return [int((b * (idx % m + 1)).sum().item()) for m in MODS]


def load_float_model(src, dev):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM
    cfg = AutoConfig.from_pretrained(src)
    files = sorted(f for f in os.listdir(src) if f.endswith(".safetensors"))
    state = {}
    for f in files:
        state.update(load_file(os.path.join(src, f), device=dev))
    dtype = next(iter(state.values())).dtype
    try:
        from transformers.modeling_utils import no_init_weights
        ctx = no_init_weights()
    except ImportError:  # older / newer transformers: random init, then overwritten
        import contextlib
        ctx = contextlib.nullcontext()
    with ctx, torch.device(dev):
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=dtype)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "lm_head.weight" or not cfg.tie_word_embeddings]
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing {missing[:4]}, unexpected {unexpected[:4]}")
    if cfg.tie_word_embeddings:
        model.tie_weights()
    return cfg, model.eval(), state


def calibrate(model, cfg, seqs, length, seed, dev):
    """amax of every decoder linear's input, of K after RoPE and of V, per layer, over one forward pass."""
    import torch
    import transformers.models.llama.modeling_llama as ml
    mods = {"llama": ml}
    try:
        import transformers.models.qwen2.modeling_qwen2 as mq
        mods["qwen2"] = mq
    except ImportError:
        pass
    L = cfg.num_hidden_layers
    inp = {}
    kmax = [0.0] * L
    kpre = [0.0] * L  # pre-RoPE amax of k_proj's output: the fallback bound sqrt(2) * kpre if the RoPE hook never ran
    vmax = [0.0] * L
    hooks = []
    for l, layer in enumerate(model.model.layers):
        for m in LINEARS:
            lin = layer.get_submodule(m)

            def pre(mod, args, key=f"model.layers.{l}.{m}"):
                inp[key] = max(inp.get(key, 0.0), float(args[0].detach().abs().max().float()))
            hooks.append(lin.register_forward_pre_hook(pre))

        def vhook(mod, args, out, l=l):
            vmax[l] = max(vmax[l], float(out.detach().abs().max().float()))
        hooks.append(layer.self_attn.v_proj.register_forward_hook(vhook))

        def khook(mod, args, out, l=l):
            kpre[l] = max(kpre[l], float(out.detach().abs().max().float()))
        hooks.append(layer.self_attn.k_proj.register_forward_hook(khook))
    # K after RoPE: wrap the module-level apply_rotary_pos_emb the attention forward calls; calls come in layer order.
    mod = mods.get(cfg.model_type, ml)
    orig = mod.apply_rotary_pos_emb
    calls = [0]

    def rope(*a, **k):
        qe, ke = orig(*a, **k)
        l = calls[0] % L
        calls[0] += 1
        kmax[l] = max(kmax[l], float(ke.detach().abs().max().float()))
        return qe, ke
    mod.apply_rotary_pos_emb = rope
    g = torch.Generator(device="cpu").manual_seed(seed)
    ids = torch.randint(0, min(cfg.vocab_size, 32000), (seqs, length), generator=g).to(dev)
    try:
        with torch.no_grad():
            model(ids, use_cache=False)
    finally:
        mod.apply_rotary_pos_emb = orig
        for h in hooks:
            h.remove()
    if calls[0] != L:
        # RoPE rotates pairs of k: |k_rot| <= sqrt(2) * amax(k), a safe (looser) K scale.
        print(f"calibration: apply_rotary_pos_emb ran {calls[0]} times for {L} layers; K scales from sqrt(2) * the pre-RoPE amax")
        kmax = [2 ** 0.5 * k for k in kpre]
    return inp, kmax, vmax


def e4m3(x):
    import torch
    return x.clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--scheme", choices=["static", "dynamic"], default="static")
    ap.add_argument("--no-kv", action="store_true")
    ap.add_argument("--calib-seqs", type=int, default=4)
    ap.add_argument("--calib-len", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    import torch
    from safetensors.torch import save_file
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.time()
    cfg, model, state = load_float_model(a.model, dev)
    t_load = time.time() - t0
    need_calib = a.scheme == "static" or not a.no_kv
    inp, kmax, vmax = calibrate(model, cfg, a.calib_seqs, a.calib_len, a.seed, dev) if need_calib else ({}, [], [])
    del model
    t_calib = time.time() - t0 - t_load
    L = cfg.num_hidden_layers
    out = {}
    ref = {"scheme": a.scheme, "mods": list(MODS), "linears": {}, "kv": None}
    with torch.no_grad():
        linears = {f"model.layers.{l}.{m}.weight" for l in range(cfg.num_hidden_layers) for m in LINEARS}
        for name, t in state.items():
            if name not in linears:
                out[name] = t.contiguous()
        for l in range(L):
            p = f"model.layers.{l}"
            amax = {m: float(state[f"{p}.{m}.weight"].abs().max().float()) for m in LINEARS}
            wscale = {}
            if a.scheme == "static":
                for m in LINEARS:
                    group = next((f for f in FUSED if m in f), [m])
                    a_ = max(amax[g] for g in group)
                    wscale[m] = torch.tensor([a_ / E4M3_MAX if a_ > 0 else 1.0], dtype=torch.float32, device=dev)
            for m in LINEARS:
                w = state[f"{p}.{m}.weight"].float()
                if a.scheme == "static":
                    s = wscale[m]
                    q = e4m3(w / s)
                    sc = s.clone()  # shape [1]
                else:
                    r = w.abs().amax(dim=1, keepdim=True)
                    s = torch.where(r > 0, r / E4M3_MAX, torch.ones_like(r))
                    q = e4m3(w / s)
                    sc = s  # [N, 1]
                out[f"{p}.{m}.weight"] = q.contiguous()
                out[f"{p}.{m}.weight_scale"] = sc.contiguous()
                entry = {"shape": list(q.shape), "checksums": checksums(q), "scale_first": float(sc.reshape(-1)[0]),
                         "scale_last": float(sc.reshape(-1)[-1]), "scale_sum": float(sc.double().sum())}
                if a.scheme == "static":
                    group = next((f for f in FUSED if m in f), [m])
                    x = max(inp[f"{p}.{g}"] for g in group)
                    isc = x / E4M3_MAX if x > 0 else 1.0
                    out[f"{p}.{m}.input_scale"] = torch.tensor([isc], dtype=torch.float32, device=dev)
                    entry["input_scale"] = float(out[f"{p}.{m}.input_scale"][0])
                ref["linears"][f"{p}.{m}"] = entry
            if not a.no_kv:
                for kind, v in (("k_scale", kmax[l]), ("v_scale", vmax[l])):
                    out[f"{p}.self_attn.{kind}"] = torch.tensor([v / E4M3_MAX if v > 0 else 1.0], dtype=torch.float32, device=dev)
        if not a.no_kv:
            ref["kv"] = [[float(out[f"model.layers.{l}.self_attn.k_scale"][0]), float(out[f"model.layers.{l}.self_attn.v_scale"][0])]
                         for l in range(L)]
    t_quant = time.time() - t0 - t_load - t_calib
    os.makedirs(a.out, exist_ok=True)
    save_file({k: v.cpu() for k, v in out.items()}, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    for f in os.listdir(a.model):
        if not f.endswith(".safetensors") and not f.endswith(".safetensors.index.json") and f != "config.json" \
                and os.path.isfile(os.path.join(a.model, f)):
            shutil.copy(os.path.join(a.model, f), os.path.join(a.out, f))
    conf = json.load(open(os.path.join(a.model, "config.json")))
    conf["quantization_config"] = quantization_config(a.scheme, not a.no_kv)
    json.dump(conf, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    ref["seconds"] = {"load": round(t_load, 2), "calibrate": round(t_calib, 2), "quantize": round(t_quant, 2),
                      "write": round(time.time() - t0 - t_load - t_calib - t_quant, 2)}
    json.dump(ref, open(os.path.join(a.out, "fp8_pack_ref.json"), "w"))
    print(json.dumps({"out": a.out, "scheme": a.scheme, "kv": not a.no_kv, "linears": len(ref["linears"]),
                      "seconds": ref["seconds"]}))


def quantization_config(scheme, kv):
    def args(strategy, dynamic, observer):
        return {"num_bits": 8, "type": "float", "symmetric": True, "group_size": None, "strategy": strategy,
                "block_structure": None, "dynamic": dynamic, "actorder": None, "observer": observer, "observer_kwargs": {}}
    static = scheme == "static"
    return {
        "quant_method": "compressed-tensors",
        "format": "float-quantized",
        "quantization_status": "compressed",
        "global_compression_ratio": None,
        "config_groups": {"group_0": {
            "targets": ["Linear"],
            "weights": args("tensor" if static else "channel", False, "minmax"),
            "input_activations": args("tensor", False, "minmax") if static else args("token", True, None),
            "output_activations": None,
            "format": "float-quantized",
        }},
        "ignore": ["lm_head"],
        "kv_cache_scheme": args("tensor", False, "minmax") if kv else None,
        "sparsity_config": {},
    }


if __name__ == "__main__":
    main()
