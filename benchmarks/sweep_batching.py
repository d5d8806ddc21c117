"""Sweep tasks: a grid's lottery points trained together in one program vs one task per point.

    SUPERMASK_DATA=../shared/data KERAS_BACKEND=jax .venv/bin/python benchmarks/sweep_batching.py

Runs the same grid (fc/MNIST, 4 criteria x 2 seeds, 2 levels of 500 iterations, no controls) with
``python -m supermask.sweep --points-per-task 8`` and ``--points-per-task 1`` (local executor, one
worker), side by side in fresh folders, ``--repeats`` times each, alternating; prints the median wall
times and their ratio, and the largest difference in test accuracy at early stop between the two
(batched networks match lone ones up to float rounding). Writes
``benchmarks/results/sweep_batching.json``.
"""

import argparse
import json
import os
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


def sweep(spec, root, per_task):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "supermask.sweep", str(spec), "--root", str(root),
                    "--points-per-task", str(per_task)], check=True, capture_output=True)
    return time.perf_counter() - start


def accuracies(root):
    return {str(p.relative_to(root)): json.loads(p.read_text())["summary"]["test_accuracy_at_early_stop"]
            for p in Path(root).rglob("metrics.json")}


def main():
    from speed import machine

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="timed sweeps per setting (default 1)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sweep_batching.json"))
    args = parser.parse_args()
    times = {8: [], 1: []}
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "grid.toml"
        spec.write_text(SPEC)
        for r in range(args.repeats):
            for per_task in times:
                times[per_task].append(sweep(spec, Path(tmp) / f"r{r}_{per_task}", per_task))
        a, b = accuracies(Path(tmp) / "r0_8"), accuracies(Path(tmp) / "r0_1")
        gap = max(abs(a[k] - b[k]) for k in a)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("| points per task | tasks | median wall s |\n| ---: | ---: | ---: |")
    print(f"| 8 | 1 | {med[8]:.1f} |\n| 1 | 8 | {med[1]:.1f} |")
    print(f"one task / eight tasks: {med[8] / med[1]:.2f}; largest |test accuracy difference|: {100 * gap:.2f} points")
    report = {"machine": machine(), "backend": os.environ.get("KERAS_BACKEND"), "repeats": args.repeats,
              "seconds": times, "median_seconds": med, "ratio": med[8] / med[1], "max_accuracy_gap": gap}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
