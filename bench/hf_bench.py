#!/usr/bin/env python3
"""The transformers side of bench/latency.ts and bench/throughput.ts: the same workload through
Hugging Face transformers + PyTorch on the same GPU, printed as one `HF_RESULT {json}` line.

  python3 bench/hf_bench.py latency    --model DIR --prompt-lens 128,2048 --decode 128 [--compile]
  python3 bench/hf_bench.py throughput --model DIR --batch 64 --input 128 --output 128 [--compile]

latency: device-copy bandwidth (torch copy_ of 1 GiB, read + write counted), TTFT per prompt length
(one forward with logits_to_keep=1 + argmax, synchronized; median of 5), batch-1 decode tokens/s
(greedy generate of `decode` tokens after a 128-token prompt; time between the first and the last
new token, taken by a streamer that synchronizes; --decode 0 skips it). Eager with the dynamic cache, and with
`--compile` also static cache (which makes generate torch.compile the decode step).
throughput: one greedy generate of `batch` prompts × `input` tokens → `output` new tokens each.
"""
import argparse, json, os, statistics, sys, time

import torch
from transformers import AutoModelForCausalLM

try:
    from transformers.generation.streamers import BaseStreamer
except ImportError:  # older layouts
    BaseStreamer = object


def load(d):
    try:
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16)
    except TypeError:
        m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.bfloat16)
    return m.cuda().eval()


def copy_bandwidth():
    n = 1 << 28  # 1 GiB of f32
    x = torch.empty(n, dtype=torch.float32, device="cuda").uniform_()
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(20):
        y.copy_(x)
    e.record()
    torch.cuda.synchronize()
    ms = s.elapsed_time(e) / 20
    del x, y
    torch.cuda.empty_cache()
    return 2 * n * 4 / (ms * 1e-3)


class Clock(BaseStreamer):
    """A generate streamer that synchronizes and timestamps each new token (the first put is the prompt)."""

    def __init__(self):
        self.times = []
        self.first = True

    def put(self, value):
        value.cpu()
        if self.first:
            self.first = False
            return
        self.times.append(time.perf_counter())

    def end(self):
        pass


def decode_rate(m, ids, n, static):
    kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
    if static:
        kw["cache_implementation"] = "static"
    c = Clock()
    with torch.no_grad():
        m.generate(ids, streamer=c, **kw)
    return (len(c.times) - 1) / (c.times[-1] - c.times[0])


def latency(a):
    m = load(a.model)
    if a.wait_file:  # loaded (imports, weights on the GPU); time only once the job's other GPU work is done
        while not os.path.exists(a.wait_file):
            time.sleep(0.05)
    g = torch.Generator().manual_seed(0)
    V = m.config.vocab_size
    out = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, transformers=__import__("transformers").__version__)
    out["copy_bandwidth_Bps"] = copy_bandwidth()
    out["weight_bytes"] = sum(p.numel() * p.element_size() for p in m.parameters())
    ttft = {}
    for L in [int(x) for x in a.prompt_lens.split(",")]:
        ids = torch.randint(0, min(V, 32000), (1, L), generator=g).cuda()
        ts = []
        with torch.no_grad():
            for i in range(7):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                logits = m(ids, logits_to_keep=1).logits[:, -1]
                logits.argmax(-1).item()
                if i >= 2:
                    ts.append(time.perf_counter() - t0)
        ttft[str(L)] = statistics.median(ts) * 1e3
    out["ttft_ms"] = ttft
    ids = torch.randint(0, min(V, 32000), (1, 128), generator=g).cuda()
    if a.decode > 0:  # --decode 0: TTFT only
        decode_rate(m, ids, 8, False)  # warm-up
        out["decode_tps_eager"] = decode_rate(m, ids, a.decode, False)
    if a.compile and a.decode > 0:
        t0 = time.time()
        try:
            decode_rate(m, ids, a.decode, True)  # compiles the decode step
            decode_rate(m, ids, a.decode, True)
            out["compile_warmup_s"] = time.time() - t0
            out["decode_tps_static_compile"] = decode_rate(m, ids, a.decode, True)
        except Exception as e:  # report, keep the eager figures
            out["compile_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    print("HF_RESULT " + json.dumps(out), flush=True)


def throughput(a):
    m = load(a.model)
    g = torch.Generator().manual_seed(0)
    V = m.config.vocab_size
    ids = torch.randint(0, min(V, 32000), (a.batch, a.input), generator=g).cuda()
    out = dict(gpu=torch.cuda.get_device_name(), batch=a.batch, input=a.input, output=a.output)

    def run(n, static):
        kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0, attention_mask=torch.ones_like(ids))
        if static:
            kw["cache_implementation"] = "static"
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            r = m.generate(ids, **kw)
        torch.cuda.synchronize()
        assert r.shape[1] == a.input + n
        return time.perf_counter() - t0

    run(4, False)
    t = run(a.output, False)
    out["seconds_eager"] = t
    out["output_tps_eager"] = a.batch * a.output / t
    if a.compile:
        try:
            run(a.output, True)
            t = run(a.output, True)
            out["output_tps_static_compile"] = a.batch * a.output / t
        except Exception as e:
            out["compile_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    print("HF_RESULT " + json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["latency", "throughput"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-lens", default="128,2048")
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--input", type=int, default=128)
    ap.add_argument("--output", type=int, default=128)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--wait-file", default=None, help="latency: after loading, wait until this file exists before timing")
    a = ap.parse_args()
    latency(a) if a.mode == "latency" else throughput(a)


if __name__ == "__main__":
    sys.exit(main())
