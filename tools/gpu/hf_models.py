#!/usr/bin/env python3
"""Makes the random-weight checkpoints the CUDA session tests compare with transformers, and their
float32 references, in one Python process (one torch import): for each preset,
`hf_reference.py make-model` (bf16 weights) into OUT/<preset>, then `hf_reference.py reference`
(float32 forward, full last-position logits, 8 greedy ids) into OUT/<preset>/reference.json and
reference.logits.f32.

  python3 tools/gpu/hf_models.py --hf-reference .gpucuda/hf_reference.py --out /tmp/hfmodels [--presets a,b]
"""
import argparse, importlib.util, json, os, sys, time
from types import SimpleNamespace

# Prompts shared by every preset (ids < 4000 fit every vocabulary); lengths 5, 17 and 60.
PROMPTS = [
    [1, 15, 300, 2000, 77],
    [(i * 37 + 11) % 4000 for i in range(17)],
    [(i * 101 + 7) % 4000 for i in range(60)],
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf-reference", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--presets", default="tiny-llama,tiny-qwen2,qwen3-0.6b,llama-3.2-1b")
    a = ap.parse_args()
    spec = importlib.util.spec_from_file_location("hf_reference", a.hf_reference)
    hf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hf)
    for preset in a.presets.split(","):
        d = os.path.join(a.out, preset)
        t = time.time()
        try:
            if not os.path.exists(os.path.join(d, "config.json")):
                hf.make_model(SimpleNamespace(preset=preset, out=d, dtype="bfloat16", seed=0))
            hf.reference(SimpleNamespace(model=d, prompt_ids=[",".join(map(str, p)) for p in PROMPTS], max_new=8, dtype="float32",
                                         out=os.path.join(d, "reference.json"), full_logits=True, stop_at_eos=False))
            print(json.dumps(dict(preset=preset, seconds=round(time.time() - t, 1))), flush=True)
        except Exception as e:  # one preset failing leaves the others
            print(f"{preset}: FAILED {type(e).__name__}: {e}", flush=True)
        import torch
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
