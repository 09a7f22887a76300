#!/usr/bin/env python3
"""Summary of a bench/throughput.ts log run with BUN_JSC_logGC=1 and --mem (session 15, helper tput).

  python3 tools/gpu/s15_tput_gc.py OUT NAME...   (reads OUT/t_NAME.log and OUT/t_NAME.json)

Per run: median output tok/s and each rep, memory after load / warm-up / runs (MiB), the main VM's GC cycles (the VM
whose heap is largest: the bench's thread; kernel-compile workers have VMs of their own) in all and inside the timed runs
(between the `bench: run R start` / `end` markers on stderr): count, summed and largest pauses (p=), largest heap after a
collection; and the timed run's steps by phase (--profile-steps).
"""
import json
import re
import sys

out = sys.argv[1]
for name in sys.argv[2:]:
    try:
        text = open(f"{out}/t_{name}.log", errors="replace").read()
    except OSError as e:
        print(name, "no log", e)
        continue
    try:
        r = json.load(open(f"{out}/t_{name}.json"))
    except (OSError, ValueError):
        r = {}
    runs = r.get("runsTps", [])
    print(f"{name}: {r.get('outputTps', 0):.1f} tok/s (median of {len(runs)}: {', '.join(f'{x:.0f}' for x in runs)})")
    for phase, m in (r.get("memory") or {}).items():
        print(f"  mem after {phase}: rss {m.get('rss')} MiB (peak {m.get('maxRss')}), heapUsed {m.get('heapUsed')}, external {m.get('external')}")
    # GC chunks: each starts at a "[GC<addr>: " tag.
    marks = [(m.start(), int(m.group(1)), m.group(2)) for m in re.finditer(r"bench: run (\d+) (start|end)", text)]
    windows = []
    for pos, run, kind in marks:
        if kind == "start":
            windows.append([run, pos, len(text)])
        elif windows and windows[-1][0] == run:
            windows[-1][2] = pos
    chunks = []
    starts = [m for m in re.finditer(r"\[GC<(0x[0-9a-f]+)>: ", text)]
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        body = text[m.end():end]
        chunks.append((m.start(), m.group(1), body))
    heap = {}
    for _, a, b in chunks:
        for kb in re.findall(r"=> (\d+)kb,", b):
            heap[a] = max(heap.get(a, 0), int(kb))
    if not heap:
        print("  GC: no log lines")
    else:
        main = max(heap, key=heap.get)
        mine = [(p, b) for p, a, b in chunks if a == main]
        cyc = sum(1 for _, b in mine if b.startswith("START"))
        full = sum(1 for _, b in mine if b.startswith("START") and "FullCollection" in b)
        pauses = [(p, float(x)) for p, b in mine for x in re.findall(r" p=([\d.]+)ms", b)]
        print(f"  GC main VM: {cyc} cycles ({full} full), pauses {len(pauses)} sum {sum(x for _, x in pauses):.1f} ms max "
              f"{max((x for _, x in pauses), default=0):.2f} ms; largest heap after a cycle {heap[main] / 1024:.0f} MiB; "
              f"other VMs {len(heap) - 1}")
        for run, s, e in windows:
            inside = [x for p, x in pauses if s <= p < e]
            cin = sum(1 for p, b in mine if s <= p < e and b.startswith("START"))
            print(f"    timed run {run}: {cin} cycles, pauses {len(inside)} sum {sum(inside):.2f} ms max {max(inside, default=0):.2f} ms")
    ph = (r.get("phases") or {}).get("phases") or []
    if ph:
        print("  phases (last run): " + "; ".join(f"{p['phase']} {p['steps']} steps {p['stepMs']:.1f} ms (median {p['medianStepMs']:.3f})" for p in ph)
              + f"; outside {r['phases'].get('outsideMs', 0):.1f} ms")
