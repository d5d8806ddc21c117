"""An instability run's files: one JSON per (seed, start), ``path.csv``, ``summary.csv``, ``report.md``.

A point's JSON (``paths.instability_point``) holds ``seed``, ``k``, ``level`` (None for a dense run),
``remaining`` (% of prunable weights kept), ``alphas`` and, per split, the ``errors`` (%), ``losses``
(nats) and ``instability`` (percentage points) of its path; it is written atomically once the point
is measured, so a killed run keeps every finished point and a rerun measures only the rest.
"""

from pathlib import Path

from supermask import paths, store
from supermask.instability.core import STABLE_BELOW
from supermask.results import mean_std


def point_record(seed, k, level, remaining, measured, seconds):
    """The JSON of one measured point; ``measured``: ``{split: path.Path}``."""
    first = next(iter(measured.values()))
    return {"seed": int(seed), "k": int(k), "level": None if level is None else int(level),
            "remaining": float(remaining), "alphas": [float(a) for a in first.alphas], "seconds": float(seconds),
            "splits": {split: {"errors": [float(e) for e in p.errors], "losses": [float(v) for v in p.losses],
                               "instability": float(p.instability)} for split, p in measured.items()}}


def read_points(run_dir):
    """Every finished point of a run, ordered by level, k and seed."""
    records = [store.read_json(p) for p in sorted(Path(run_dir).glob("trial_*/*.json"))]
    return sorted(records, key=lambda r: (-1 if r["level"] is None else r["level"], r["k"], r["seed"]))


def path_rows(records):
    """One row per (seed, start, split, alpha): seed, level, k, remaining, split, alpha, error (%), loss."""
    rows = []
    for r in records:
        for split, values in r["splits"].items():
            for alpha, error, loss in zip(r["alphas"], values["errors"], values["losses"]):
                rows.append({"seed": r["seed"], "level": r["level"], "k": r["k"], "remaining": r["remaining"],
                             "split": split, "alpha": alpha, "error": error, "loss": loss})
    return rows


def summary_rows(records):
    """One row per start (level, k), over its seeds: level, k, remaining, seeds, and per split
    ``instability_<split>`` (mean, percentage points), ``instability_<split>_std`` (sample std over
    the seeds, 0 for one: ``results.mean_std``, as every table of the project),
    ``endpoint_error_<split>`` (mean of both endpoints' errors, %), ``max_error_<split>`` (mean of the
    path's maxima, %), ``stable_<split>`` (mean instability below ``core.STABLE_BELOW``)."""
    groups = {}
    for r in records:
        groups.setdefault((r["level"], r["k"]), []).append(r)
    rows = []
    for (level, k), group in groups.items():
        row = {"level": level, "k": k, "remaining": group[0]["remaining"], "seeds": len(group)}
        for split in group[0]["splits"]:
            values = [g["splits"][split] for g in group if split in g["splits"]]
            mean, std = mean_std([v["instability"] for v in values])
            row[f"instability_{split}"], row[f"instability_{split}_std"] = mean, std
            row[f"endpoint_error_{split}"] = mean_std([(v["errors"][0] + v["errors"][-1]) / 2 for v in values])[0]
            row[f"max_error_{split}"] = mean_std([max(v["errors"]) for v in values])[0]
            row[f"stable_{split}"] = bool(mean < STABLE_BELOW)
        rows.append(row)
    return rows


def first_stable(summary, split="test"):
    """The smallest k whose mean instability on ``split`` is below ``STABLE_BELOW``, or None."""
    ks = [r["k"] for r in summary if r.get(f"instability_{split}") is not None
          and r[f"instability_{split}"] < STABLE_BELOW]
    return min(ks) if ks else None


def format_table(summary):
    """A Markdown table of ``summary_rows``: start, % remaining, seeds, and per split the instability
    (mean ± std) and the endpoints' mean error."""
    if not summary:
        return "(no finished points)"
    splits = [key[len("instability_"):] for key in summary[0]
              if key.startswith("instability_") and not key.endswith("_std")]
    lottery = summary[0]["level"] is not None
    head = (["level"] if lottery else []) + ["k", "% remaining", "seeds"]
    for split in splits:
        head += [f"instability {split} (pp)", f"endpoint error {split} (%)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary:
        cells = ([str(r["level"])] if lottery else []) + [str(r["k"]), f"{r['remaining']:.1f}", str(r["seeds"])]
        for split in splits:
            cells += [f"{r[f'instability_{split}']:.2f} ± {r[f'instability_{split}_std']:.2f}",
                      f"{r[f'endpoint_error_{split}']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_tables(run_dir, records):
    """``path.csv`` and ``summary.csv`` of the run's finished points, atomically; returns the summary."""
    summary = summary_rows(records)
    store.write_csv(paths.path_table(run_dir), path_rows(records))
    store.write_csv(paths.experiment_summary(run_dir), summary)
    return summary


def write_markdown(run_dir, summary, hparams, figures):
    """``report/report.md``: what was measured, the table and the figures."""
    what = (f"the tickets of {hparams['experiment']} (levels, from iteration k)" if hparams.get("experiment")
            else f"{hparams['model']} on {hparams['dataset']}")
    text = [f"# Instability analysis: {what}", "",
            f"Two copies trained from each start to iteration {hparams.get('total_iterations')} on different data "
            f"orders; error on the linear path between them at {hparams['points']} points; instability = max error "
            f"on the path minus the mean of the endpoints' errors, in percentage points (stable: below "
            f"{STABLE_BELOW:g}). BatchNorm statistics: {hparams['bn']}.", "", format_table(summary), ""]
    stable = first_stable(summary)
    if summary and summary[0]["level"] is None:
        text += [f"First k with test instability below {STABLE_BELOW:g} pp: "
                 f"{'none' if stable is None else stable}.", ""]
    text += [f"![{name}]({name})" for name in figures]
    folder = paths.report_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with store.atomic_path(folder / "report.md") as tmp:
        tmp.write_text("\n".join(text) + "\n")
    return folder / "report.md"
