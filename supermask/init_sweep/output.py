"""The init sweep's rows, their summary for people, and the CSV + JSON files they are written to."""

import csv
import math
from pathlib import Path

from supermask import pruning, store
from supermask.init_sweep.schedule import join
from supermask.results import percent


def row(criterion, mask1, power, cutoffs, bases, masks, loss, accuracy) -> dict:
    """One result row, flat (the CSV and the JSON hold the same fields): criterion, mask1, power,
    layer_cutoff ("4,6"), prune_base (the bases the cutoffs use, "0.8,0.9"), density (kept fraction
    of all kernels), density_<layer> per layer, accuracy (fraction), loss (nats; None if not finite)."""
    out = {
        "criterion": criterion, "mask1": mask1, "power": int(power),
        "layer_cutoff": join(cutoffs), "prune_base": join(bases[:len(cutoffs)]),
        "density": pruning.overall_density(masks),
    }
    out.update({f"density_{layer}": d for layer, d in pruning.density(masks).items()})
    out["accuracy"] = accuracy
    out["loss"] = loss if math.isfinite(loss) else None
    return out


def best_points(rows) -> tuple[dict, dict]:
    """``({criterion: best row}, best row overall)``: highest accuracy, first on ties."""
    best = {}
    for r in rows:
        if r["criterion"] not in best or r["accuracy"] > best[r["criterion"]]["accuracy"]:
            best[r["criterion"]] = r
    overall = max(best.values(), key=lambda r: r["accuracy"]) if best else None
    return best, overall


def summary_lines(rows) -> list[str]:
    """Human-readable best point per criterion and overall."""
    best, overall = best_points(rows)
    if overall is None:
        return []

    def describe(r):
        return (f"accuracy {percent(r['accuracy'])} at density {percent(r['density'])} (power {r['power']}, "
                f"mask1 {r['mask1']}, cutoffs {r['layer_cutoff']})")

    width = max(len(name) for name in best)
    lines = ["Best point per criterion:"]
    lines += [f"  {name:<{width}}  {describe(r)}" for name, r in best.items()]
    lines.append(f"Best overall: {overall['criterion']}, {describe(overall)}")
    return lines


def output_paths(out, run_dir) -> tuple[Path, Path]:
    """``(csv, json)`` paths: ``out`` with its .csv/.json suffix replaced, or both added;
    default ``RUN_DIR/init_sweep.csv`` and ``.json``."""
    stem = Path(run_dir) / "init_sweep" if out is None else Path(out)
    if stem.suffix in (".csv", ".json"):
        stem = stem.with_suffix("")
    return stem.parent / f"{stem.name}.csv", stem.parent / f"{stem.name}.json"


def write_results(rows, meta, out, run_dir) -> tuple[Path, Path]:
    """Write the rows as CSV and (with ``meta``) as JSON, each atomically; returns both paths."""
    csv_path, json_path = output_paths(out, run_dir)
    fields = list(dict.fromkeys(key for r in rows for key in r))
    with store.atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    store.write_json(json_path, {**meta, "rows": rows})
    return csv_path, json_path
