#!/usr/bin/env python3
"""Per-phase GPU clock / power from an nvidia-smi sample log (read only) and a bench log's PHASE lines.

  nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,clocks_throttle_reasons.active,total_energy_consumption \
    --format=csv,noheader -lms 10 > smi.csv
  python3 tools/gpu/clock_phases.py smi.csv bench.log

A PHASE line is `PHASE name startEpochMs endEpochMs [steps]` (bench/prefill_ttft.ts --subsets / --idle). For each phase: the
samples inside it, the median / min SM clock, the median / max power and the share of samples with the SW power cap
(throttle reason bit 0x4) or a HW slowdown (0x8 | 0x40 | 0x80) active; with the energy counter (mJ), the mean power
over the phase from its first to its last sample (power.draw itself may be a windowed average) and, given the phase's
steps, that mean power times the phase's time a step (mJ a step).
"""
import datetime, statistics, sys

samples = []
for line in open(sys.argv[1]):
    f = [x.strip() for x in line.split(",")]
    try:
        t = datetime.datetime.strptime(f[0], "%Y/%m/%d %H:%M:%S.%f").timestamp() * 1000
        e = float(f[4].split()[0]) if len(f) > 4 else float("nan")
        samples.append((t, float(f[1].split()[0]), float(f[2].split()[0]), int(f[3], 16), e))
    except (ValueError, IndexError):
        continue
print(f"clock log: {len(samples)} samples" + (f", SM clock {min(s[1] for s in samples):.0f}-{max(s[1] for s in samples):.0f} MHz, power max {max(s[2] for s in samples):.0f} W" if samples else ""))
for line in open(sys.argv[2]):
    if not line.startswith("PHASE "):
        continue
    _, name, a, b, *rest = line.split()
    steps = int(rest[0]) if rest else 0
    inside = [s for s in samples if float(a) <= s[0] <= float(b)]
    if not inside:
        print(f"phase {name:10s} {float(b) - float(a):6.0f} ms: no samples")
        continue
    sm = [s[1] for s in inside]
    pw = [s[2] for s in inside]
    cap = sum(1 for s in inside if s[3] & 0x4) / len(inside)
    hw = sum(1 for s in inside if s[3] & 0xC8) / len(inside)
    de, dt = inside[-1][4] - inside[0][4], inside[-1][0] - inside[0][0]
    mean = f", energy-counter mean {de / dt:.0f} W" if dt > 0 and de == de else ""
    if mean and steps:
        mean += f" = {de / dt * (float(b) - float(a)) / steps:.1f} mJ a step"
    print(f"phase {name:10s} {float(b) - float(a):6.0f} ms, {len(inside):3d} samples: SM clock median {statistics.median(sm):.0f} (min {min(sm):.0f}) MHz, "
          f"power median {statistics.median(pw):.0f} (max {max(pw):.0f}) W, SW power cap {100 * cap:.0f}%, HW slowdown {100 * hw:.0f}%{mean}")
