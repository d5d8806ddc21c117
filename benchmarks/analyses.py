"""Instability and pruning at initialisation at a CPU budget, and their section of ``results/REPRODUCTION.md``.

    SUPERMASK_DATA=../shared/data KERAS_BACKEND=jax python benchmarks/analyses.py [--work runs/analyses]

Every run is an ordinary hashed run folder under ``--work`` (``instability/``, ``lottery/``,
``prune_init/``), so the script resumes: a finished run is read back, not trained again (a rerun of
a finished work folder only rewrites the section). It writes the block between the analyses markers of
``<out>/REPRODUCTION.md`` (``benchmarks/reproduce.py`` keeps that block when it rewrites the file)
and copies each run's figures to ``<out>/analyses/<run>/``.

The runs (``RUNS``), each a ``supermask.instability`` / ``supermask.lottery`` / ``supermask.prune_init``
command's settings:

* ``instability_fc``: LeNet-300-100 (fc) on MNIST, copies split off at k = 0, 100, 500, 2000 of a
  4000-iteration budget, 3 seeds, 30 points on test and 10 000 training examples.
* ``instability_conv``: a small conv net with BatchNorm (``benchmarks/inst_models.py``) on
  Fashion-MNIST, SGD with momentum 0.9 and learning rate 0.1, k = 0 ... 500 of 1500 iterations, 2 seeds,
  15 points; ``instability_conv_recompute`` the same with the BatchNorm statistics re-estimated on the
  path (k = 0, 25, 100); ``instability_conv_lr005`` at learning rate 0.05.
* ``imp_fc``: IMP with late rewinding to iteration 100 on fc/MNIST, global pruning of 50 % per level, six
  levels (50 % ... 1.56 %), 2 seeds: the comparison's IMP rows; ``instability_imp`` measures its tickets.
* ``prune_init_fc``: SNIP, GraSP, SynFlow, magnitude at init and random at the IMP levels' densities
  25 %, 6.25 % and 1.56 % (global), with the sanity checks (shuffle, reinit, invert), 2 seeds, and IMP's
  own shuffle / reinit checks.
* ``imp_conv`` and ``prune_init_conv``: the same comparison on the conv net with BatchNorm on
  Fashion-MNIST (1000 iterations, SGD; four IMP levels; densities 25 % and 6.25 %; shuffle only).
"""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # the repository, and inst_models for the conv net
os.environ.setdefault("KERAS_BACKEND", "jax")

from supermask import backend, instability, lottery, paths, prune_init, store  # noqa: E402
from supermask.settings import LotteryConfig  # noqa: E402
from supermask.sweep import kinds  # noqa: E402

START, END = "<!-- analyses: start (written by benchmarks/analyses.py) -->", "<!-- analyses: end -->"
FC = {"model": "fc", "dataset": "mnist"}
CONV = {"model": "inst_models:small_conv_bn", "dataset": "fashion-mnist", "validation_size": 1000}
IMP = dict(FC, iterations=3000, levels=6, pruning="global", global_rate=0.5, rewind_iteration=100, control=False)
CONV_SGD = dict(CONV, iterations=1500, eval_every=500, points=15, optimizer="sgd", momentum=0.9)
INSTABILITY = {
    "instability_fc": (dict(FC, ks="0,100,500,2000", iterations=4000, eval_every=1000, points=30,
                            splits="test,train", train_examples=10000), 3),
    "instability_conv": (dict(CONV_SGD, ks="0,25,100,250,500", learning_rate=0.1), 2),
    "instability_conv_recompute": (dict(CONV_SGD, ks="0,25,100", learning_rate=0.1, bn="recompute"), 2),
    "instability_conv_lr005": (dict(CONV_SGD, ks="0,25,100,250,500", learning_rate=0.05), 2),
}
PRUNE_INIT_FC = dict(FC, iterations=3000, trials=2, methods="snip,grasp,synflow,magnitude,random",
                     variants="none,shuffle,reinit,invert", densities="0.25,0.0625,0.015625")
CONV_TRAIN = dict(CONV, iterations=1000, eval_every=250, optimizer="sgd", momentum=0.9, learning_rate=0.05)
IMP_CONV = dict(CONV_TRAIN, levels=4, pruning="global", global_rate=0.5, rewind_iteration=100, control=False)
PRUNE_INIT_CONV = dict(CONV_TRAIN, trials=2, methods="snip,grasp,synflow,magnitude,random", variants="none,shuffle",
                       densities="0.25,0.0625")
NAMES = {"imp": "IMP (rewind 100)", "snip": "SNIP", "grasp": "GraSP", "synflow": "SynFlow",
         "magnitude": "magnitude at init", "random": "random"}
LMC = "Frankle, Dziugaite, Roy & Carbin 2020 (ICML), *Linear Mode Connectivity and the Lottery Ticket Hypothesis*"
MISSING = "Frankle, Dziugaite, Roy & Carbin 2021 (ICLR), *Pruning Neural Networks at Initialization: Why Are We " \
          "Missing the Mark?*"


def run_all(work, verbose, say):
    """Run (or read back) every analysis; returns ``{name: result}`` and ``{name: seconds}``."""
    results, seconds = {}, {}

    def step(name, fn):
        started = time.perf_counter()
        say(f"== {name}")
        results[name] = fn()
        seconds[name] = time.perf_counter() - started

    for name, (fields, trials) in INSTABILITY.items():
        step(name, lambda f=fields, t=trials: instability.run(root=work / "instability", trials=t, verbose=verbose,
                                                              **f))
    for name, imp, pai in (("fc", IMP, PRUNE_INIT_FC), ("conv", IMP_CONV, PRUNE_INIT_CONV)):
        # The folder lottery.run writes: its settings resolved as a sweep resolves them.
        experiment = paths.experiment(work / "lottery", kinds.get("lottery").build(imp).experiment_hash())
        step(f"imp_{name}", lambda i=imp, e=experiment: lottery.run(LotteryConfig(**i), root=work / "lottery",
                                                                    trials=2, resume=e.is_dir(), verbose=verbose))
        if name == "fc":
            step("instability_imp", lambda e=experiment: instability.run(
                root=work / "instability", experiment=str(e), points=30, trials=None, verbose=verbose))
        step(f"prune_init_{name}", lambda p=pai, e=experiment: prune_init.run(
            root=work / "prune_init", imp=str(e), verbose=verbose, **p))
    return results, seconds


def pm(mean, std, scale=1.0):
    return "–" if mean is None else f"{scale * mean:.2f} ± {scale * std:.2f}"


def instability_table(summary, splits=("test",), levels=False):
    head = (["level"] if levels else []) + ["k", "% weights remaining", "seeds"]
    head += [f"instability, {s} (pp)" for s in splits] + [f"endpoints' error, {s} (%)" for s in splits]
    lines = ["| " + " | ".join(head) + " |", "|" + " ---: |" * len(head)]
    for r in summary:
        cells = ([str(r["level"])] if levels else []) + [str(r["k"]), f"{r['remaining']:.1f}", str(r["seeds"])]
        cells += [pm(r[f"instability_{s}"], r[f"instability_{s}_std"]) for s in splits]
        cells += [f"{r[f'endpoint_error_{s}']:.2f}" for s in splits]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def prune_init_table(summary):
    """Test accuracy at early stop (%) per method x variant (rows) and density (columns)."""
    densities = sorted({s["density"] for s in summary if s["method"] != "imp"}, reverse=True)

    def at(method, variant, density):  # IMP's levels keep round(size * 0.5 ** L): within 2 % of the density
        return next((s for s in summary if s["method"] == method and s["variant"] == variant
                     and abs(s["density"] - density) <= 0.02 * density), None)

    lines = ["| method | check | " + " | ".join(f"{100 * d:.3g} %" for d in densities) + " |",
             "| --- | --- |" + " ---: |" * len(densities)]
    methods = ["imp"] + [m for m in NAMES if m != "imp"]
    for method in methods:
        for variant in ("none", "shuffle", "reinit", "invert"):
            found = [at(method, variant, d) for d in densities]
            if not any(found):
                continue
            values = [pm(s["test_accuracy_at_early_stop_mean"], s["test_accuracy_at_early_stop_std"], 100)
                      if s else "–" for s in found]
            lines.append(f"| {NAMES[method]} | {variant} | " + " | ".join(values) + " |")
    return lines


def recorded_minutes(results):
    """Training and evaluation time the runs recorded (instability points, prune-init networks), in minutes:
    what they cost when they ran, whether this call ran them or read them back."""
    total = sum(r.get("seconds", 0.0) for name, res in results.items() if name.startswith("instability")
                for r in instability.read_points(res.path))
    total += sum(r.get("seconds") or 0.0 for name in ("prune_init_fc", "prune_init_conv") for r in results[name].rows)
    return total / 60


def section(results, seconds, command):
    fc, conv = results["instability_fc"].summary, results["instability_conv"].summary
    stable_conv = instability.first_stable(conv)
    lines = [START, "## 8. Instability and pruning at initialisation", "",
             f"Runs by `{command}` (backend `{backend.name()}`, AMD EPYC, 2 cores, no GPU): this call "
             f"{sum(seconds.values()) / 60:.1f} min (finished runs are read back); the runs recorded "
             f"{recorded_minutes(results):.0f} min of training and path evaluation (IMP's own levels not "
             "counted), on a machine shared with other jobs. Instability = the highest test error on "
             "the linear path between two copies trained from one start on different data orders, minus the "
             "mean of the two endpoints' errors (30 evenly spaced points unless stated; percentage points, pp), "
             "mean ± std over seeds; \"stable\" below 2 pp.", "",
             "### 8.1 Instability of the dense network vs the iteration k where the copies split", "",
             "Rows: the iteration k at which the two copies split off the network's own training run.", "",
             f"LeNet-300-100 on MNIST, 4000 iterations (the paper: 50 000), Adam 1.2e-3, batch 60. Paper: "
             f"LeNet-300-100 is stable at initialisation (k = 0) ({LMC}, Sec. 3, Fig. 3).", ""]
    lines += instability_table(fc, ("test", "train"))
    lines += ["", f"A small conv net with BatchNorm (conv8-BN-pool, conv16-BN-pool, dense; "
              "`benchmarks/inst_models.py`; conv2 and ResNet-20 do not fit this CPU's budget) on Fashion-MNIST, "
              "SGD momentum 0.9, batch 60, 1500 iterations, 15 points. Paper: standard vision networks "
              "(ResNet-20, VGG-16 on CIFAR-10) are unstable at initialisation and become stable early in "
              f"training ({LMC}, Sec. 3, Fig. 3). Ours, learning rate 0.1: first k with instability below 2 pp: "
              f"{'none measured' if stable_conv is None else stable_conv}, the first k > 0 measured (BatchNorm "
              "statistics interpolated; re-estimated at every point of the path, the barrier at k = 0 stays far "
              "above 2 pp). At learning rate 0.05 the network is close to stable at initialisation already.", "",
              "Learning rate 0.1, BatchNorm statistics interpolated:", ""]
    lines += instability_table(conv)
    lines += ["", "Learning rate 0.1, BatchNorm statistics re-estimated at every point (`--bn recompute`):", ""]
    lines += instability_table(results["instability_conv_recompute"].summary)
    lines += ["", "Learning rate 0.05, BatchNorm statistics interpolated:", ""]
    lines += instability_table(results["instability_conv_lr005"].summary)
    lines += ["", "![error along the path, fc](analyses/instability_fc/error_vs_alpha_test.png)",
              "![instability vs k, conv](analyses/instability_conv/instability.png)", "",
              "### 8.2 Are IMP's tickets stable?", "",
              "The tickets of `imp_fc` (IMP with rewinding to iteration 100, global pruning 50 % per level), "
              f"two copies of each from k = 100. Paper: IMP subnetworks reach full accuracy only where they are "
              f"stable; on LeNet-300-100 they are stable from initialisation ({LMC}, Sec. 4).", ""]
    lines += instability_table(results["instability_imp"].summary, levels=True)
    lines += ["", "### 8.3 Pruning at initialisation vs IMP, with the sanity checks", "",
              "fc on MNIST, global pruning, 3000 iterations, 2 seeds; test accuracy (%) at early stop (minimum "
              "validation loss). Checks: *shuffle* permutes each layer's mask, *reinit* draws the kept weights "
              "afresh, *invert* keeps the weights the method would prune. Paper: the methods at initialisation "
              "are insensitive to shuffling and reinitialisation (they learn per-layer densities), while IMP "
              f"tickets with rewinding lose accuracy under both; inversion hurts SNIP and SynFlow but not GraSP "
              f"({MISSING}, Secs. 5–6).", ""]
    lines += prune_init_table(results["prune_init_fc"].summary)
    lines += ["", "The conv net with BatchNorm of 8.1 on Fashion-MNIST (SGD momentum 0.9, learning rate 0.05, 1000 "
              "iterations, 2 seeds), against IMP with rewinding to iteration 100 (global, 50 % per level):", ""]
    lines += prune_init_table(results["prune_init_conv"].summary)
    lines += ["", "![accuracy vs weights remaining, fc](analyses/prune_init_fc/accuracy.png)",
              "![the sanity checks, fc](analyses/prune_init_fc/sanity.png)",
              "![accuracy vs weights remaining, conv](analyses/prune_init_conv/accuracy.png)", END]
    return "\n".join(lines)


def copy_figures(results, out):
    for name, result in results.items():
        report = Path(getattr(result, "path", result)) / "report"
        if report.is_dir():
            target = out / "analyses" / name
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for png in report.glob("*.png"):
                shutil.copy2(png, target / png.name)


def write_block(path, block):
    """Replace (or append before the budget section) the analyses block of ``path``."""
    text = Path(path).read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        marker = "## Budget and deviations"
        head, sep, tail = text.partition(marker)
        text = head + block + "\n\n" + sep + tail if sep else text.rstrip("\n") + "\n\n" + block + "\n"
    with store.atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=str(ROOT / "runs" / "analyses"), help="folder of the runs")
    parser.add_argument("--out", default=str(ROOT / "results"), help="folder holding REPRODUCTION.md")
    parser.add_argument("--quiet", action="store_true", help="only the step headers")
    args = parser.parse_args(argv)
    work, out = Path(args.work), Path(args.out)
    results, seconds = run_all(work, 0 if args.quiet else 1, print)
    command = "python benchmarks/analyses.py" + ("" if argv is None else " " + " ".join(argv))
    copy_figures({k: v for k, v in results.items() if not k.startswith("imp_")}, out)
    write_block(out / "REPRODUCTION.md", section(results, seconds, command))
    print(f"Wrote the analyses section of {out / 'REPRODUCTION.md'} and {out / 'analyses'}")


if __name__ == "__main__":
    main()
