#!/usr/bin/env python3
"""Tabulate an Nsight Compute per-kernel summary (ncu --print-summary per-kernel).

    python3 scripts/ncu_table.py LOG STEPS [--top N]

LOG is what scripts/gpu_check.sh writes (ncu_smnist_n256.log,
ncu_scifar_1block.log); STEPS the profiled steps the invocation counts
cover (gpu_check: 6 for both: 4 warm-up steps and 2 timed ones, of which
ncu sees the kernels of the eager steps and of the graph replays).
One row per kernel name and launch shape, sorted by GPU time per step:
  us/step   launches/step   us per launch   DRAM MB per launch and TB/s
  SM% / MEM%   (sm__throughput and gpu__compute_memory_throughput, percent
                of peak: which of the two bounds the kernel)
  occ%         (sm__warps_active: achieved occupancy)
where the log has those metrics. Kernel times are each kernel replayed
alone with caches flushed, so their sum exceeds the graphed step's time.
Standard library only.
"""
import argparse
import re
import sys

HEADER = re.compile(r"^  (\S.*?) \((\d+), (\d+), (\d+)\)x\((\d+), (\d+), (\d+)\), Device \d+, CC [\d.]+, "
                    r"Invocations (\d+)\s*$")
METRIC = re.compile(r"^\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")
TIME_UNITS = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3, "s": 1e6}
BYTE_UNITS = {"byte": 1e-6, "Kbyte": 1e-3, "Mbyte": 1.0, "Gbyte": 1e3, "Tbyte": 1e6}


def number(text):
    return float(text.replace(",", ""))


def parse(path):
    """[(name, grid, block, invocations, {metric: (unit, average)})]"""
    kernels = []
    with open(path, errors="replace") as log:
        for line in log:
            header = HEADER.match(line)
            if header:
                grid = "({},{},{})".format(*header.group(2, 3, 4))
                block = "({},{},{})".format(*header.group(5, 6, 7))
                kernels.append((header.group(1), grid, block, int(header.group(8)), {}))
                continue
            metric = METRIC.match(line)
            if metric and kernels and metric.group(1) not in ("Metric", "----------------------"):
                try:
                    kernels[-1][4][metric.group(1)] = (metric.group(2), number(metric.group(5)))
                except ValueError:
                    pass
    return kernels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("steps", type=float)
    parser.add_argument("--top", type=int, default=0, help="print only the N most expensive kernels")
    args = parser.parse_args()
    if args.steps <= 0:
        sys.exit("ncu_table.py: STEPS must be positive")
    try:
        kernels = parse(args.log)
    except OSError as error:
        sys.exit(f"ncu_table.py: cannot read {args.log}: {error.strerror}")
    if not kernels:
        sys.exit(f"ncu_table.py: {args.log}: no per-kernel summary (ncu --print-summary per-kernel) found")
    rows = []
    for name, grid, block, invocations, metrics in kernels:
        if "gpu__time_duration.sum" not in metrics:
            continue
        unit, value = metrics["gpu__time_duration.sum"]
        us = value * TIME_UNITS.get(unit, float("nan"))
        mb = None
        if "dram__bytes.sum" in metrics:
            unit, value = metrics["dram__bytes.sum"]
            mb = value * BYTE_UNITS.get(unit, float("nan"))
        pct = [metrics.get(key, (None, None))[1] for key in (
            "sm__throughput.avg.pct_of_peak_sustained_elapsed",
            "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed",
            "sm__warps_active.avg.pct_of_peak_sustained_active")]
        rows.append((invocations * us / args.steps, invocations / args.steps, us, mb, pct, name, grid, block))
    rows.sort(key=lambda row: -row[0])
    total = sum(row[0] for row in rows)
    print(f"{args.log}: {total:.1f} us of kernel time per step over {len(rows)} kernels (each alone, caches flushed)")
    print(f"{'us/step':>9} {'n/step':>6} {'us each':>8} {'MB each':>8} {'TB/s':>5} {'SM%':>4} {'MEM%':>4} "
          f"{'occ%':>4}  kernel grid x block")
    for per_step, launches, us, mb, pct, name, grid, block in rows[:args.top or None]:
        bandwidth = f"{mb / us:5.2f}" if mb is not None and us > 0 else " " * 5
        mb_text = f"{mb:8.1f}" if mb is not None else " " * 8
        pct_text = " ".join(f"{p:4.0f}" if p is not None else " " * 4 for p in pct)
        print(f"{per_step:9.1f} {launches:6.1f} {us:8.2f} {mb_text} {bandwidth} {pct_text}  {name[:100]} {grid}x{block}")


if __name__ == "__main__":
    main()
