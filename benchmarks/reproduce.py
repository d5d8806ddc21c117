"""Reproduce the papers' headline results and write ``results/REPRODUCTION.md`` with its figures.

    SUPERMASK_DATA=../shared/data KERAS_BACKEND=jax .venv/bin/python benchmarks/reproduce.py --quick
    SUPERMASK_DATA=/data KERAS_BACKEND=jax python benchmarks/reproduce.py --full      # a GPU machine

It runs, through the library's own entry points (``lottery.run``, ``init_sweep.sweep``,
``train_supermask.run``), on LeNet-300-100 (``fc``) / MNIST:

1. iterative magnitude pruning with resets to init and the random-reinit control of every level
   (Frankle & Carbin 2019): test accuracy at early stop and the early-stop iteration per level;
2. the mask criteria of Zhou et al. 2019 (large_final and four others) under the same IMP loop;
3. Mask-1 actions: the original init, random reinit / reshuffle and their sign-keeping variants;
4. masks at initialisation: the best untrained masked network per criterion, init values vs the
   signed constant (Zhou et al.'s "supermask" effect), from each trial's dense level 0;
5. learned supermasks: Bernoulli with and without Dynamic Weight Rescaling, and edge-popup;

and, with ``--full`` where CIFAR-10 is present, the same IMP, mask-at-init and supermask rows for
conv2 / conv4 / conv6. Every experiment runs ``trials`` seeds (0, 1, ...); the tables show mean ±
sample std over them. Only the papers' numbers (``reproduce_tables.PAPER``) are typed in, each with
its source; ``reproduce_tables`` draws the tables and figures from the runs.

The work folder (``--work``, default ``runs/reproduce/<budget>``) keeps every run: a killed
reproduction continues where it stopped (finished levels and runs are reused), and
``--report-only`` rewrites the Markdown and figures from what is there. Outputs are replaced as a
whole: ``<out>/REPRODUCTION.md`` and ``<out>/reproduction/*.png`` (default ``--out results``), and
with the default ``--out`` the summary table between the reproduction markers of ``README.md``.
"""

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _folder in (ROOT, ROOT / "benchmarks"):  # the library and speed.machine, from a checkout
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from reproduce_tables import (LEARNERS, by_seed, figures, headline, markdown, provenance, readme_parts,  # noqa: E402
                              update_readme)
from supermask import paths, results, store  # noqa: E402
from supermask.errors import ConfigError, DataError, SupermaskError  # noqa: E402

@dataclass(frozen=True)
class Budget:
    """How much of the papers' protocol a reproduction runs (every value explicit)."""

    name: str
    trials: int  # seeds 0 .. trials - 1 of every experiment and every learned supermask
    iterations: int | None  # per IMP level (None: the paper's, fc 50 000)
    levels: int  # IMP levels of the main experiment
    ablation_levels: int  # levels of the criteria and Mask-1 experiments
    eval_every: int  # iterations between validation/test evaluations (early stopping's grid)
    criteria: tuple  # besides large_final
    mask1: tuple  # besides none (the ticket) and random_reinit (the control)
    sweep_powers: str  # init sweep: prune powers (fc keeps 0.8**p hidden, 0.9**p output)
    supermask_epochs: float
    conv_models: tuple  # run on CIFAR-10 where it is present
    conv_iterations: int | None = None  # per level for the conv models (None: the paper's)
    validation_size: int = 5000  # training images held out for early stopping (the papers')
    studies: tuple = ("imp", "criteria", "mask1", "sweep", "learned", "conv")  # which of run() to run
    out_subfolder: str = ""  # below --out: where its REPRODUCTION.md and figures go ("" for results/ itself)


CRITERIA = ("magnitude_increase", "movement", "large_init_large_final", "random")
MASK1 = ("random_reshuffle", "signed_reinit", "signed_reshuffle", "signed_constant")
QUICK = Budget("quick", trials=3, iterations=2500, levels=15, ablation_levels=7, eval_every=100,
               criteria=CRITERIA, mask1=MASK1, sweep_powers="0:25", supermask_epochs=20, conv_models=())
FULL = Budget("full", trials=5, iterations=None, levels=20, ablation_levels=15, eval_every=100,
              criteria=CRITERIA, mask1=MASK1 + ("rand_signed_constant",), sweep_powers="0:25",
              supermask_epochs=2000, conv_models=("conv2", "conv4", "conv6"))
# The LTH section alone, long enough for early stopping to show (Frankle & Carbin 2019, Fig. 4a). At
# 2 500 iterations per level the dense network's validation loss is still falling at the end, so no
# ticket can stop earlier; measured on the 2-core CPU (fc/MNIST, seed 0, JAX, evaluated every 250
# iterations of 20 000), the dense minimum of the validation loss falls at iteration 5 750, with
# the loss rising after ~7 000 as the network overfits. 10 000 iterations per level put it well
# inside the run: about an hour for 3 trials × 16 levels (ticket and control) on that CPU.
LTH = Budget("lth", trials=3, iterations=10_000, levels=15, ablation_levels=0, eval_every=100, criteria=(),
             mask1=(), sweep_powers="0:25", supermask_epochs=0, conv_models=(), studies=("imp",),
             out_subfolder="lth")
BUDGETS = {"quick": QUICK, "full": FULL, "lth": LTH}


# --- running (every step reuses what the work folder already holds) ---------------------------------


class Missing(ConfigError):
    """A study that ``--report-only`` finds no runs of."""


class Reproduction:
    """The runs of one budget in one work folder. ``read_only``: run nothing, read back what is
    there (``Missing`` for a study without runs); ``verbose`` prints the libraries' progress."""

    def __init__(self, budget, work, verbose=1, read_only=False):
        self.budget, self.work, self.verbose, self.read_only = budget, Path(work), verbose, read_only
        self.timings_path = self.work / "timings.json"

    def say(self, text):
        if not self.read_only:
            print(text, flush=True)

    def timed(self, name, fn):
        """Run step ``name`` (``Missing`` in read-only mode); record its first completed wall time."""
        if self.read_only:
            raise Missing(f"{self.work} holds no finished {name}")
        timings = store.read_json(self.timings_path) if self.timings_path.is_file() else {}
        start = time.perf_counter()
        out = fn()
        if name not in timings:
            timings[name] = round(time.perf_counter() - start, 1)
            store.write_json(self.timings_path, timings)
        return out

    def lottery(self, name, model="fc", dataset="mnist", levels=None, **fields):
        """One lottery experiment in ``work/lottery/<name>``, resumed if started; its Experiment."""
        from supermask import lottery
        from supermask.settings import LotteryConfig

        iterations = self.budget.iterations if model == "fc" else self.budget.conv_iterations
        config = LotteryConfig(model=model, dataset=dataset, iterations=iterations, eval_every=self.budget.eval_every,
                               validation_size=self.budget.validation_size,
                               levels=self.budget.levels if levels is None else levels, **fields)
        root = self.work / "lottery" / name
        started = any(root.glob("*/hparams.json"))
        if started and self.finished(root, config.levels):
            self.say(f"== lottery experiment {name}: already finished in {root}")
        elif not (self.read_only and started):
            self.say(f"== lottery experiment {name}: {model}/{dataset}, {config.levels} levels, "
                     f"{self.budget.trials} trials ({root})")
            self.timed(f"lottery/{name}", lambda: lottery.run(
                config, root, trials=self.budget.trials, resume=started, verbose=self.verbose))
        return experiment_in(root)

    def finished(self, root, levels):
        """Whether the experiment in ``root`` has level ``levels`` in each of this budget's trials."""
        exp = experiment_in(root)
        return all(by_seed(exp, levels, "level").get(seed) == levels for seed in range(self.budget.trials))

    def init_sweep(self, name, experiment):
        """The one-shot masks at init of every trial's level 0; ``{seed: rows}``."""
        from supermask import init_sweep

        rows = {}
        for seed in experiment.seeds:
            out = self.work / "init_sweep" / name / f"trial_{seed}.csv"
            if not out.is_file():
                self.say(f"== init sweep {name}, trial {seed} -> {out}")
                self.timed(f"init_sweep/{name}/{seed}", lambda: init_sweep.sweep(
                    paths.level(experiment.trial_dir(seed), 0), criteria_names="all",
                    mask1="none,signed_constant", powers=self.budget.sweep_powers, out=out,
                    verbose=self.verbose))
            rows[seed] = results.read_init_sweep(out)
        return rows

    def supermask(self, name, model="fc", dataset="mnist", **fields):
        """Learned supermasks of seeds 0 .. trials-1 (learned together); ``[(hparams, metrics)]``."""
        from supermask import train_supermask
        from supermask.settings import SupermaskConfig

        out = self.work / "supermask" / name
        folders = [out / f"seed_{s}" for s in range(self.budget.trials)] if self.budget.trials > 1 else [out]
        if not all(results.is_run(f) for f in folders):
            config = SupermaskConfig(model=model, dataset=dataset, epochs=self.budget.supermask_epochs,
                                     validation_size=self.budget.validation_size, **fields)
            self.say(f"== learned supermask {name}: {model}/{dataset}, {self.budget.trials} seeds ({out})")
            self.timed(f"supermask/{name}", lambda: train_supermask.run(
                config, out=out, seeds=self.budget.trials, overwrite=True, verbose=self.verbose))
        return [results.load_run(f) for f in folders]

    def optional(self, fn, *args, **kwargs):
        """``fn(...)``, or None for a study ``--report-only`` finds no runs of."""
        try:
            return fn(*args, **kwargs)
        except Missing:
            return None

    def run(self):
        """Run (or read back) every study; ``{study: its results}``."""
        b = self.budget
        try:
            found = {"imp": self.lottery("imp_large_final")}
        except Missing:
            raise ConfigError(f"{self.work} holds no reproduction yet (no finished IMP experiment): run "
                              "without --report-only first, or pass the --work folder of an earlier run.") from None
        criteria = [self.optional(self.lottery, f"criterion_{c}", criterion=c, control=False,
                                  levels=b.ablation_levels) for c in b.criteria]
        mask1 = [self.optional(self.lottery, f"mask1_{m}", mask1=m, control=False, levels=b.ablation_levels)
                 for m in b.mask1]
        found["criteria"] = [e for e in criteria if e is not None]
        found["mask1"] = [e for e in mask1 if e is not None]
        found["sweep"] = self.optional(self.init_sweep, "fc_mnist", found["imp"]) or {} \
            if "sweep" in b.studies else {}
        learned = {name: self.optional(self.supermask, name, **fields) for name, (_, fields) in LEARNERS.items()} \
            if "learned" in b.studies else {}
        found["learned"] = {name: runs for name, runs in learned.items() if runs}
        found["conv"] = self.conv() if "conv" in b.studies else \
            f"not run: the {b.name} budget runs the LTH section (IMP on fc/MNIST) alone"
        return found

    def conv(self):
        """conv2/4/6 on CIFAR-10 where present: ``{model: {...}}``, or the reason they did not run."""
        from supermask.data import resolve_source

        if not self.budget.conv_models:
            return f"not run: the {self.budget.name} budget runs fc/MNIST only (conv rows are part of `--full`)"
        if not self.read_only:
            try:
                resolve_source("cifar10", download=False)
            except DataError as exc:
                return f"not run: CIFAR-10 is not on this machine ({exc})"
        out = {}
        for model in self.budget.conv_models:
            exp = self.optional(self.lottery, f"imp_{model}", model=model, dataset="cifar10")
            if exp is None:
                continue
            out[model] = {"imp": exp, "sweep": self.optional(self.init_sweep, f"{model}_cifar10", exp) or {},
                          "learned": self.optional(self.supermask, f"{model}_bernoulli_dwr", model=model,
                                                   dataset="cifar10", dwr=True) or []}
        return out or "not run: the work folder holds no conv experiment"


def experiment_in(root):
    """The one experiment under ``root`` (a study's folder holds exactly one)."""
    found = results.find_experiments(root)
    if len(found) != 1:
        raise SupermaskError(f"{root} should hold exactly one experiment, found {len(found)}: delete the folder "
                             "and rerun, or pass another --work.")
    return results.load_experiment(found[0])




# --- the command ----------------------------------------------------------------------------------


def run_record(work, command, ran):
    """The work folder's record of the last command that ran experiments (``ran``: this one did,
    so it is written now); the report cites it, not the command that only wrote the report."""
    from speed import machine

    from supermask import backend

    path = work / "run.json"
    if ran or not path.is_file():
        record = {"command": command, "date": time.strftime("%Y-%m-%d"), "backend": backend.name(),
                  "machine": machine()}
        if ran:
            store.write_json(path, record)
        return record
    return store.read_json(path)


ANALYSES = ("<!-- analyses: start", "<!-- analyses: end -->")  # the block benchmarks/analyses.py writes


def keep_analyses(text, old_path):
    """``text`` with the analyses block of the file at ``old_path`` (if it has one) put back before the
    budget section: ``benchmarks/analyses.py`` owns that block, this script the rest of the file."""
    old = Path(old_path).read_text() if Path(old_path).is_file() else ""
    start, end = ANALYSES
    if start not in old or end not in old:
        return text
    block = start + old.split(start, 1)[1].split(end, 1)[0] + end
    head, sep, tail = text.partition("## Budget and deviations")
    return f"{head}{block}\n\n{sep}{tail}" if sep else f"{text}\n\n{block}"


def write_outputs(budget, found, out, work, command, run, readme=None):
    """Replace ``out/REPRODUCTION.md`` and ``out/reproduction/`` with this reproduction's (and the
    summary block of ``readme``, if given)."""
    timings = store.read_json(work / "timings.json") if (work / "timings.json").is_file() else {}
    out = Path(out)
    store.check_output_dir(out / "reproduction", "the figures folder", overwrite=True)
    with store.atomic_dir(out / "reproduction", replace=True) as tmp:
        figures(found, tmp)
    text = keep_analyses(markdown(budget, found, run, timings, command), out / "REPRODUCTION.md")
    with store.atomic_path(out / "REPRODUCTION.md") as tmp:
        Path(tmp).write_text(text + "\n")
    if readme is not None:
        relative = lambda path: os.path.relpath(path, Path(readme).parent)  # noqa: E731
        block = [provenance(budget, run, command) + f" Full tables: [{relative(out / 'REPRODUCTION.md')}]"
                 f"({relative(out / 'REPRODUCTION.md')}).", "", *headline(found, relative(out / "reproduction") + "/")]
        update_readme(readme, "\n".join(block))
    return out / "REPRODUCTION.md"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python benchmarks/reproduce.py", description=__doc__.split("\n\n")[0],
        epilog="Datasets come from $SUPERMASK_DATA (a folder with mnist/ and cifar10/ subfolders), the cache, or a "
               "download. The backend is chosen by KERAS_BACKEND (jax is fastest).")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--quick", action="store_const", const="quick", dest="budget",
                       help=f"{QUICK.trials} trials, {QUICK.iterations} iterations per level, fc/MNIST only: "
                            "about 25 minutes on a 2-core CPU")
    which.add_argument("--lth", action="store_const", const="lth", dest="budget",
                       help=f"the LTH section alone at {LTH.iterations} iterations per level ({LTH.trials} trials, "
                            f"{LTH.levels} levels), long enough for early stopping to show: about an hour on a "
                            f"2-core CPU; writes <out>/{LTH.out_subfolder}/REPRODUCTION.md")
    which.add_argument("--full", action="store_const", const="full", dest="budget",
                       help=f"the papers' budget ({FULL.trials} trials, 50 000 iterations per level, "
                            f"{FULL.supermask_epochs} supermask epochs, conv models on CIFAR-10 if present): "
                            "for a GPU, many hours")
    parser.add_argument("--work", default=None, help="folder for the runs (default runs/reproduce/<budget>); "
                                                     "an interrupted reproduction continues there")
    parser.add_argument("--out", default=str(ROOT / "results"),
                        help="where REPRODUCTION.md and reproduction/ are written (default: the repository's "
                             "results/)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the report from the runs already in --work, running nothing")
    parser.add_argument("--readme", default=None,
                        help="also replace the summary table between the reproduction markers of this file "
                             "(default: the repository's README.md when --out is the default)")
    parser.add_argument("--no-readme", action="store_true", help="leave every README alone")
    parser.add_argument("--quiet", action="store_true", help="only the step headers, not each level's progress")
    return parser


def main(argv=None, budget=None):
    """The command; ``budget`` (a ``Budget``) replaces the flag's, for tests."""
    args = build_parser().parse_args(argv)
    budget = budget or BUDGETS[args.budget]
    work = Path(args.work) if args.work else ROOT / "runs" / "reproduce" / budget.name
    store.check_output_dir(work, "the work folder (--work)")
    store.check_output_dir(args.out, "the output folder (--out)")
    readme = None if args.no_readme or budget.out_subfolder else args.readme or (
        ROOT / "README.md" if Path(args.out).resolve() == (ROOT / "results").resolve() else None)
    args.out = str(Path(args.out) / budget.out_subfolder) if budget.out_subfolder else args.out
    if readme is not None:
        readme_parts(readme)  # its markers are checked before any work
    rep = Reproduction(budget, work, verbose=0 if args.quiet else 1, read_only=args.report_only)
    command = "python benchmarks/reproduce.py " + " ".join(argv if argv is not None else sys.argv[1:])
    # One reproduction per work folder runs at a time; --report-only only reads it.
    lock = contextlib.nullcontext() if args.report_only else store.exclusive_lock(
        work / ".lock", f"The reproduction in {work}", rerun="run it again (it continues where it stopped)")
    with lock:
        found = rep.run()
        path = write_outputs(budget, found, args.out, work, command,
                             run_record(work, command, not args.report_only), readme)
    print(f"Wrote {path} and its figures in {Path(args.out) / 'reproduction'}")
    return path


if __name__ == "__main__":
    from supermask.cli import run_main

    run_main(main)
