#!/usr/bin/env python3
"""Packs a Hugging Face bf16/fp16/fp32 Llama-family checkpoint into a public pre-quantized layout, on the GPU
with torch (the TypeScript packers in this folder are for small models: quantizing llama-3.1-8b's 7 B linear
weights in TypeScript takes minutes).

  python3 tools/quant-packers/pack_awq_torch.py --model DIR --out DIR[,DIR] [--format awq|gptq8|awq,gptq8]
      [--group-size 128] [--check FILE[,FILE]] [--device cuda]

Several formats (comma lists, one --out and --check per format) are written from one read of the checkpoint.

--format awq (default): AutoAWQ "GEMM" (config.json quantization_config {quant_method "awq", version "gemm",
  bits 4, group_size G, zero_point true}; AutoAWQ's own quant_config.json {w_bit 4, q_group_size G,
  zero_point true, version "GEMM"} beside it). Per linear with in-features K and out-features N:
    qweight int32 [K, N/8]   word (k, c) holds q[k, 8c + ORDER[i]] in bits 4i..4i+3, ORDER = 0 2 4 6 1 3 5 7
    qzeros  int32 [K/G, N/8] the integer zero points, same packing
    scales  fp16  [K/G, N]   w = (q - z) * s
--format gptq8: AutoGPTQ v1 8-bit symmetric (quant_method "gptq", bits 8, sym true, desc_act false,
  checkpoint_format "gptq"; --group-size 0 = per channel, group_size -1):
    qweight int32 [K/4, N]   word (r, n) holds q[4r + j, n] in bits 8j
    qzeros  int32 [K/G, N/4] z - 1 = 127 in every byte (the v1 off-by-one)
    scales  fp16  [K/G, N];  g_idx int32 [K] = k / G

Rounding is plain round-to-nearest per group (AWQ: asymmetric, scale (max - min) / 15 and an integer zero point
as AutoAWQ computes them, without AWQ's activation-aware scale search; GPTQ: symmetric, scale 2 amax / 255, without
GPTQ's Hessian updates): enough for speed measurements on random weights, not a real AWQ/GPTQ calibration. The scales
are rounded to fp16 first and the integers computed with the rounded scales, so (q - z) * s in fp32 is exactly the
dequantized weight. The decoder linears (q/k/v/o, gate/up/down) are quantized; every other tensor (embedding, norms,
lm_head, biases) is copied as it is.

--check FILE writes the packer's dequantized weights (fp32, (q - z) * s) of three linears to FILE (safetensors,
named as the model's `<module>.weight`), for tools/quant-packers/check_prequantized.ts to compare bit for bit with
what llmrt dequantizes from the written checkpoint.
"""
import argparse
import json
import os
import re
import shutil
import sys
import time

import torch
from safetensors import safe_open
from safetensors.torch import save_file

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
LINEAR = re.compile(r"^model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$")


def to_i32(words64):
    """int64 holding unsigned 32-bit values -> int32 with the same bits."""
    return torch.where(words64 >= 2**31, words64 - 2**32, words64).to(torch.int32)


def pack_awq(w, group):
    """w [N, K] on the device -> (qweight, qzeros, scales, dequantized fp32 [N, K])."""
    N, K = w.shape
    if K % group or N % 8:
        raise SystemExit(f"AWQ: [{N}, {K}] does not take group {group} / out-features % 8")
    g = w.float().reshape(N, K // group, group)
    mx, mn = g.amax(dim=2), g.amin(dim=2)
    s16 = ((mx - mn).clamp(min=1e-5) / 15).to(torch.float16)
    s = s16.float()
    z = (-torch.round(mn / s)).clamp(0, 15)
    q = (torch.round(g / s[:, :, None]) + z[:, :, None]).clamp(0, 15)
    deq = ((q - z[:, :, None]) * s[:, :, None]).reshape(N, K)
    q = q.reshape(N, K).to(torch.int64)
    shifts = torch.arange(0, 32, 4, device=w.device, dtype=torch.int64)
    order = torch.tensor(AWQ_ORDER, device=w.device)

    def pack_cols(t):  # t [N, R] ints -> [R, N/8] words (nibble i = row 8c + ORDER[i])
        tt = t.t().contiguous().reshape(t.shape[1], N // 8, 8)[:, :, order]
        return to_i32((tt << shifts).sum(dim=2))

    qweight = pack_cols(q)
    qzeros = pack_cols(z.to(torch.int64))
    scales = s16.t().contiguous()
    return qweight, qzeros, scales, deq


def pack_gptq8(w, group):
    """w [N, K] -> (qweight, qzeros, scales, g_idx, dequantized fp32) for 8-bit symmetric GPTQ v1."""
    N, K = w.shape
    G = group or K
    if K % G or K % 4 or N % 4:
        raise SystemExit(f"GPTQ 8-bit: [{N}, {K}] does not take group {G}")
    g = w.float().reshape(N, K // G, G)
    amax = g.abs().amax(dim=2)
    s16 = (2 * amax.clamp(min=1e-5) / 255).to(torch.float16)
    s = s16.float()
    q = (torch.round(g / s[:, :, None]) + 128).clamp(0, 255)
    deq = ((q - 128) * s[:, :, None]).reshape(N, K)
    qT = q.reshape(N, K).t().contiguous().to(torch.int64).reshape(K // 4, 4, N)
    shifts = torch.arange(0, 32, 8, device=w.device, dtype=torch.int64)[None, :, None]
    qweight = to_i32((qT << shifts).sum(dim=1))
    qzeros = torch.full((K // G, N // 4), 0x7F7F7F7F, dtype=torch.int32, device=w.device)
    scales = s16.t().contiguous()
    g_idx = (torch.arange(K, dtype=torch.int32, device=w.device) // G).to(torch.int32)
    return qweight, qzeros, scales, g_idx, deq


def shards(model_dir):
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            return sorted(set(json.load(f)["weight_map"].values()))
    return ["model.safetensors"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--format", default="awq", help="awq, gptq8, or a comma list")
    ap.add_argument("--group-size", type=int, default=None, help="awq: 128 (default); gptq8: 0 = per channel (default)")
    ap.add_argument("--check", default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    formats, outs = a.format.split(","), a.out.split(",")
    checks = a.check.split(",") if a.check else [None] * len(formats)
    if any(f not in ("awq", "gptq8") for f in formats) or len(outs) != len(formats) or len(checks) != len(formats):
        raise SystemExit("--format: awq / gptq8, with one --out (and --check) per format")
    groups = [a.group_size if a.group_size is not None else (128 if f == "awq" else 0) for f in formats]
    t0 = time.time()
    with open(os.path.join(a.model, "config.json")) as f:
        cfg0 = json.load(f)
    L = cfg0["num_hidden_layers"]
    check_names = {
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.mlp.down_proj.weight" if L > 1 else "model.layers.0.mlp.down_proj.weight",
        f"model.layers.{L - 1}.mlp.gate_proj.weight",
    }
    for o in outs:
        os.makedirs(o, exist_ok=True)
    files = shards(a.model)
    F = len(formats)
    weight_map, check = [{} for _ in range(F)], [{} for _ in range(F)]
    nq, nbytes = 0, [0] * F
    t_read = t_pack = t_write = 0.0
    for fname in files:
        out_t = [{} for _ in range(F)]
        tr = time.time()
        with safe_open(os.path.join(a.model, fname), framework="pt", device="cpu") as f:
            for name in list(f.keys()):
                x = f.get_tensor(name)
                m = LINEAR.match(name)
                if not m:
                    for ot in out_t:
                        ot[name] = x.contiguous()
                    continue
                t_read += time.time() - tr
                tp = time.time()
                base = name[: -len(".weight")]
                w = x.to(a.device)
                for fi, (fmt, group) in enumerate(zip(formats, groups)):
                    ot = out_t[fi]
                    if fmt == "awq":
                        qweight, qzeros, scales, deq = pack_awq(w, group)
                    else:
                        qweight, qzeros, scales, g_idx, deq = pack_gptq8(w, group)
                        ot[f"{base}.g_idx"] = g_idx.cpu()
                    ot[f"{base}.qweight"], ot[f"{base}.qzeros"], ot[f"{base}.scales"] = qweight.cpu(), qzeros.cpu(), scales.cpu()
                    if name in check_names and checks[fi]:
                        check[fi][name] = deq.cpu().contiguous()
                    del qweight, qzeros, scales, deq
                nq += 1
                t_pack += time.time() - tp
                tr = time.time()
        t_read += time.time() - tr
        tw = time.time()
        out_name = fname if len(files) > 1 else "model.safetensors"
        for fi in range(F):
            save_file(out_t[fi], os.path.join(outs[fi], out_name), metadata={"format": "pt"})
            for n, t in out_t[fi].items():
                weight_map[fi][n] = out_name
                nbytes[fi] += t.numel() * t.element_size()
        t_write += time.time() - tw
        del out_t
    for fi, (fmt, group, out) in enumerate(zip(formats, groups, outs)):
        cfg = dict(cfg0)
        if len(files) > 1:
            with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {"total_size": nbytes[fi]}, "weight_map": weight_map[fi]}, f, indent=2)
        if fmt == "awq":
            cfg["quantization_config"] = {
                "quant_method": "awq", "version": "gemm", "bits": 4, "group_size": group, "zero_point": True,
                "modules_to_not_convert": None,
            }
            with open(os.path.join(out, "quant_config.json"), "w") as f:
                json.dump({"zero_point": True, "q_group_size": group, "w_bit": 4, "version": "GEMM"}, f, indent=2)
        else:
            cfg["quantization_config"] = {
                "quant_method": "gptq", "bits": 8, "group_size": group or -1, "sym": True, "desc_act": False,
                "checkpoint_format": "gptq", "damp_percent": 0.01, "true_sequential": True, "static_groups": False,
            }
        for extra in os.listdir(a.model):
            if extra.endswith(".safetensors") or extra in ("config.json", "model.safetensors.index.json"):
                continue
            src = os.path.join(a.model, extra)
            if os.path.isfile(src):
                shutil.copy(src, os.path.join(out, extra))
        if checks[fi]:
            save_file(check[fi], checks[fi])
        with open(os.path.join(out, "config.json"), "w") as f:  # last: its presence marks a complete checkpoint
            json.dump(cfg, f, indent=2)
    print(json.dumps({
        "out": outs, "format": formats, "group_size": groups, "linears": nq, "bytes": nbytes,
        "seconds": round(time.time() - t0, 1), "read_s": round(t_read, 1), "pack_s": round(t_pack, 1),
        "write_s": round(t_write, 1),
    }))


if __name__ == "__main__":
    sys.exit(main())
