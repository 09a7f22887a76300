#!/usr/bin/env python3
"""One line per profiled kernel of an `ncu` log (session 14, helper nvfp4): duration, DRAM / SM throughput, warp cycles
per issued instruction, scheduler issue rate, occupancy and the warp stall reasons >= 0.2 cycles an issue (smsp__average_warps_issue_stalled_*), largest
first. Usage: s14_ncu_summary.py NCU.LOG"""
import re
import sys

rows, cur = [], None
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"^  (\w+) \((\d+), 1, 1\)x\((\d+), 1, 1\)", line)
    if m:
        cur = {"name": m.group(1), "grid": m.group(2), "stalls": {}}
        rows.append(cur)
        continue
    if "==ERROR==" in line or "==WARNING==" in line:
        print(line.strip()[:160])
    if cur is None:
        continue
    f = line.split()
    if not f:
        continue
    val = f[-1].replace(",", "")
    if line.strip().startswith("Duration"):
        cur["us"] = f"{val}{f[-2]}"
    elif line.strip().startswith("DRAM Throughput"):
        cur["dram"] = val
    elif line.strip().startswith("Compute (SM) Throughput"):
        cur["sm"] = val
    elif line.strip().startswith("Warp Cycles Per Issued Instruction"):
        cur["cpi"] = val
    elif line.strip().startswith("SM Frequency"):
        cur["clk"] = val
    elif line.strip().startswith("Issued Warp Per Scheduler"):
        cur["iss"] = val
    elif line.strip().startswith("No Eligible"):
        cur["noel"] = val
    elif line.strip().startswith("Achieved Occupancy"):
        cur["occ"] = val
    elif line.strip().startswith("Theoretical Occupancy"):
        cur["tocc"] = val
    else:
        m = re.match(r"smsp__average_warps_issue_stalled_(\w+)_per_issue_active\.ratio", f[0])
        if m:
            try:
                cur["stalls"][m.group(1)] = float(val)
            except ValueError:
                pass
for r in rows:
    st = " ".join(f"{k} {v:.2f}" for k, v in sorted(r["stalls"].items(), key=lambda kv: -kv[1]) if v >= 0.2)
    print(f"{r['name']} g{r['grid']}: {r.get('us', '?')} dram {r.get('dram', '?')}% sm {r.get('sm', '?')}% clk {r.get('clk', '?')} "
          f"cyc/issue {r.get('cpi', '?')} issued/sched {r.get('iss', '?')} no-eligible {r.get('noel', '?')}% occ {r.get('occ', '?')}/{r.get('tocc', '?')}% | {st}")
