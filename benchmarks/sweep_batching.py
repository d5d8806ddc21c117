"""Sweep tasks: a grid's lottery points trained together in one program vs one task per point.

    SUPERMASK_DATA=../shared/data KERAS_BACKEND=jax .venv/bin/python benchmarks/sweep_batching.py

Runs the same grid (fc/MNIST, 4 criteria x 2 seeds, 2 levels of 500 iterations, no controls) with
``python -m supermask.sweep --points-per-task 8`` (one task), ``--points-per-task 1`` (eight tasks),
both on one local worker, and the default grouping with ``--workers 2`` (split into two tasks, one
per worker), side by side in fresh folders, ``--repeats`` times each, alternating; prints the median
wall times, the ratio of the first two, the level-0 networks each trained (the criteria share one
level 0 per seed: 2 in every setting, from the task logs), and the largest difference in test
accuracy at early stop between one task and eight (batched networks match lone ones up to float
rounding). Writes ``benchmarks/results/sweep_batching.json``.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
SPEC = """kind = "lottery"
[fixed]
model = "fc"
iterations = 500
levels = 2
trials = 2
control = false
[grid]
criterion = ["large_final", "magnitude_increase", "movement", "random"]
"""


SETTINGS = {"one task": (8, 1), "eight tasks": (1, 1), "two workers": (8, 2)}  # (points per task, workers)


def sweep(spec, root, per_task, workers):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "supermask.sweep", str(spec), "--root", str(root),
                    "--points-per-task", str(per_task), "--workers", str(workers)], check=True, capture_output=True)
    return time.perf_counter() - start


def level0_networks(root):
    """Level-0 networks the sweep's tasks trained, from their logs' progress lines."""
    found = re.findall(r"^Level 0/\d+: .*? iterations, (\d+) network", "".join(
        p.read_text() for p in (Path(root) / ".sweep" / "logs").glob("*.log")), flags=re.M)
    return sum(map(int, found))


def accuracies(root):
    return {str(p.relative_to(root)): json.loads(p.read_text())["summary"]["test_accuracy_at_early_stop"]
            for p in Path(root).rglob("metrics.json")}


def main():
    from speed import machine

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="timed sweeps per setting (default 1)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sweep_batching.json"))
    args = parser.parse_args()
    times, level0 = {name: [] for name in SETTINGS}, {}
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "grid.toml"
        spec.write_text(SPEC)
        for r in range(args.repeats):
            for name, (per_task, workers) in SETTINGS.items():
                root = Path(tmp) / f"r{r}_{name.replace(' ', '_')}"
                times[name].append(sweep(spec, root, per_task, workers))
                level0[name] = level0_networks(root)
        a, b = accuracies(Path(tmp) / "r0_one_task"), accuracies(Path(tmp) / "r0_eight_tasks")
        gap = max(abs(a[k] - b[k]) for k in a)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("| setting | points per task | workers | median wall s | level-0 networks trained |\n"
          "| --- | ---: | ---: | ---: | ---: |")
    for name, (per_task, workers) in SETTINGS.items():
        print(f"| {name} | {per_task} | {workers} | {med[name]:.1f} | {level0[name]} |")
    ratio = med["one task"] / med["eight tasks"]
    print(f"one task / eight tasks: {ratio:.2f}; largest |test accuracy difference|: {100 * gap:.2f} points")
    report = {"machine": machine(), "backend": os.environ.get("KERAS_BACKEND"), "repeats": args.repeats,
              "settings": SETTINGS, "seconds": times, "median_seconds": med, "level0_networks": level0,
              "ratio": ratio, "max_accuracy_gap": gap}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
