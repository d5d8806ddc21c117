"""Sweeps over grids of experiments: ``python -m supermask.sweep SPEC.toml``.

A spec (TOML, read with ``tomllib``) names the kind of run, the fields every point shares
and the fields to expand as a grid::

    kind = "lottery"                 # lottery | train_supermask | init_sweep
    root = "runs/sweep"              # results root (--root overrides)
    [fixed]                          # any config field, one value
    model = "fc"
    iterations = 2500
    levels = 7
    trials = 2                       # lottery: seeds seed .. seed + trials - 1
    [grid]                           # any config field, a list: every combination is a point
    criterion = ["large_final", "random"]
    mask1 = ["none", "signed_constant"]

Each point is an ordinary run in its ordinary hashed folder under the root (lottery:
``<root>/lottery/<hash>/trial_<seed>``, train_supermask: ``<root>/train_supermask/<hash>``,
init_sweep: ``<root>/init_sweep/<hash>.csv``), so finished points are skipped and interrupted
ones resume. Lottery points that share the architecture and budget (``--points-per-task`` of
them) are one task, their networks trained together level by level in one program; supermask
points that differ only in consecutive seeds likewise. Tasks run on an executor
(``supermask.executors``): ``local`` (default; ``--workers N`` processes) or ``ray``. A failed
point is reported with its error and log and does not stop the others; the sweep ends with a
table of done / skipped / failed, and writes ``<root>/<spec name>.csv`` (one row per point ×
level) and, for lottery grids, the report's figures across the grid.

A sweep runs at most ``MAX_POINTS`` points (grid combinations x trials); a larger grid is refused
in one line before anything is built or written: split it into several specs. ``--dry-run`` of
any grid, however large, prints its size and at most ``DRY_RUN_SHOWN`` points, expanded lazily.
"""

import dataclasses
import hashlib
import itertools
import math
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from supermask import paths, results, store
from supermask.config import LotteryConfig, SupermaskConfig, canonical_json, config_hash
from supermask.data import INPUT_SHAPES
from supermask.errors import ConfigError, SupermaskError

KINDS = ("lottery", "train_supermask", "init_sweep")
TRAIN_EXAMPLES = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000}
# A sweep of more points than this is refused: each point is a full training run, so a larger grid is
# a typo or a job for several specs (and its points and configs would be held in memory at once).
MAX_POINTS = 10_000
# A dry run lists at most this many points, then says how many more there are.
DRY_RUN_SHOWN = 100
INIT_SWEEP_FIELDS = ("run_dir", "criteria", "mask1", "prune_base", "powers", "layer_cutoffs", "split",
                     "max_examples", "seed", "batch_size")


@dataclass(frozen=True)
class Spec:
    """A parsed sweep spec: ``fixed`` fields and ``grid`` lists (each a dict of field -> value)."""

    name: str
    kind: str
    root: Path
    fixed: dict
    grid: dict


@dataclass
class Point:
    """One grid point: its fields, the run it is (or why it cannot be one), and its state."""

    fields: dict
    config: object = None  # a resolved LotteryConfig / SupermaskConfig, or the init_sweep kwargs
    error: str = None  # set when the point is invalid or its task failed
    log: Path = None
    status: str = "pending"  # pending | skipped (finished before) | done | failed

    def label(self, grid):
        names = list(grid) + (["seed"] if "seed" in self.fields and "seed" not in grid else [])
        return ", ".join(f"{k}={self.fields[k]}" for k in names) or "the only point"


def load_spec(path, root=None):
    """Read a spec file; ConfigError (one line) on a missing file, bad TOML or bad layout."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"Cannot read the sweep spec {path}: {exc.strerror}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.") from None
    unknown = set(data) - {"kind", "root", "fixed", "grid"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; a spec has kind, root, "
                          "[fixed] and [grid].")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{path}: kind must be one of {', '.join(KINDS)}. Received: kind={kind!r}")
    fixed, grid = data.get("fixed", {}), data.get("grid", {})
    if not isinstance(fixed, dict) or not isinstance(grid, dict):
        raise ConfigError(f"{path}: [fixed] and [grid] must be tables of field = value.")
    for field, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid field {field} must be a non-empty list. Received: {field}={values!r}")
    both = set(fixed) & set(grid)
    if both:
        raise ConfigError(f"{path}: {', '.join(sorted(both))} in both [fixed] and [grid]; keep one.")
    allowed = set(INIT_SWEEP_FIELDS) if kind == "init_sweep" else \
        {f.name for f in dataclasses.fields(LotteryConfig if kind == "lottery" else SupermaskConfig)} | {"trials"}
    unknown = (set(fixed) | set(grid)) - allowed
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {', '.join(sorted(unknown))} for kind {kind}. "
                          f"Valid fields: {', '.join(sorted(allowed))}.")
    return Spec(path.stem, kind, Path(root or data.get("root", "runs/sweep")), fixed, grid)


def count_points(spec):
    """How many points ``spec``'s grid names, without expanding it: the product of the grid lists'
    lengths, times ``trials`` (an invalid ``trials`` value counts as one, invalid, point). Points
    named twice (a ``seed`` list overlapping ``trials``) are counted twice here and run once."""
    names = [n for n in spec.grid if n != "trials"]
    combos = math.prod(len(spec.grid[n]) for n in names)
    if spec.kind == "init_sweep":
        return combos
    trials = spec.grid.get("trials", [spec.fixed.get("trials", 1)])
    return combos * sum(t if _valid_trials(t) else 1 for t in trials)


def _valid_trials(trials):
    return isinstance(trials, int) and not isinstance(trials, bool) and trials >= 1


def check_size(spec, limit=None):
    """ConfigError (one line) if ``spec`` names more than ``limit`` (default ``MAX_POINTS``) points."""
    limit = MAX_POINTS if limit is None else limit
    n = count_points(spec)
    if n > limit:
        raise ConfigError(f"The sweep {spec.name} has {n} points (grid combinations x trials), more than the "
                          f"{limit} a sweep runs; split the grid into specs of at most {limit} points each (or "
                          "move fields from [grid] to [fixed]).")
    return n


def iter_points(spec):
    """The grid's points one at a time, in grid order (a ``trials`` field becomes one point per
    seed), configs built and resolved; a point whose values are invalid carries the error instead.
    A point named twice (e.g. seed = [0, 1] with trials = 2 names seed 1 twice) is yielded once.
    Lazy: only the keys of the points yielded so far are held."""
    names = list(spec.grid)
    seen = set()
    for values in itertools.product(*(spec.grid[n] for n in names)):
        fields = {**spec.fixed, **dict(zip(names, values))}
        if spec.kind == "init_sweep":
            built = [_build(spec, fields)]
        else:
            trials = fields.pop("trials", 1)
            if not _valid_trials(trials):
                yield Point(fields, error=f"trials must be an integer >= 1. Received: trials={trials!r}")
                continue
            seed = fields.get("seed", 0)
            built = (_build(spec, {**fields, "seed": seed + t} if isinstance(seed, int) else fields)
                     for t in range(trials))
        for p in built:
            key = None if p.config is None else \
                canonical_json(p.config) if spec.kind == "init_sweep" else config_hash(p.config)
            if key is None or key not in seen:
                seen.add(key)
                yield p


def expand(spec, limit=None):
    """Every point of ``spec`` as a list (see ``iter_points``); ConfigError, before building any,
    if the grid names more than ``limit`` (default ``MAX_POINTS``) points."""
    check_size(spec, limit)
    return list(iter_points(spec))


def _build(spec, fields):
    point = Point(fields)
    try:
        if spec.kind == "init_sweep":
            if "run_dir" not in fields:
                raise ConfigError("init_sweep points need run_dir (a trained run or a lottery level_0 folder)")
            point.config = {**fields, "run_dir": str(Path(fields["run_dir"]).resolve())}
        else:
            cls = LotteryConfig if spec.kind == "lottery" else SupermaskConfig
            config = cls(**fields)
            n = TRAIN_EXAMPLES[config.dataset] - config.validation_size
            point.config = _with_fingerprint(config.resolve(n))
    except SupermaskError as exc:
        point.error = str(exc)
    except TypeError as exc:  # a value of the wrong kind for a field
        point.error = f"bad value in {point.fields}: {exc}"
    return point


_FINGERPRINTS = {}  # (kind, settings but the seed) -> fingerprint: one build per architecture


def _with_fingerprint(config):
    """``config`` with the fingerprint that names the folder of your own model (a builder), as
    ``lottery.run`` / ``train_supermask.run`` fill it in (``supermask.identity``): the model is built
    once per architecture on the dataset's input shape. Built-in models keep theirs out of the hash."""
    from supermask import identity, models

    if not models.is_builder(config.model):
        return config
    key = config_hash(dataclasses.replace(config, seed=0))
    if key not in _FINGERPRINTS:
        shape = INPUT_SHAPES[config.dataset]
        if isinstance(config, LotteryConfig):
            model = models.build(config.model, shape, 10, seed=config.seed)
        else:
            from supermask import train_supermask

            model = train_supermask.build(config, shape, 10)
        _FINGERPRINTS[key] = identity.model_fingerprint(model)
    return dataclasses.replace(config, model_fingerprint=_FINGERPRINTS[key])


def point_folder(spec, point):
    """Where a point's results live (lottery: its trial folder)."""
    c = point.config
    if spec.kind == "lottery":
        return paths.trial(paths.experiment(spec.root / "lottery", c.experiment_hash()), c.seed)
    if spec.kind == "train_supermask":
        return spec.root / "train_supermask" / config_hash(c)
    return spec.root / "init_sweep" / f"{_digest(c)}.csv"


def _digest(fields):
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()[:12]


def is_finished(spec, point):
    folder = point_folder(spec, point)
    if spec.kind == "lottery":
        return paths.level(folder, point.config.levels).is_dir()
    if spec.kind == "train_supermask":
        return results.is_run(folder)
    return folder.is_file()


# --- tasks: points that one call runs together ------------------------------------------------------


def tasks(spec, points, per_task=8):
    """Group pending points into tasks. Lottery: up to ``per_task`` points that share the
    architecture and budget (``lottery.SHARED_FIELDS``) train together, level by level, in one
    program; train_supermask: a run of consecutive seeds of otherwise equal configs; init_sweep:
    one point each."""
    from supermask.lottery import SHARED_FIELDS

    pending = [p for p in points if p.status == "pending" and p.error is None]
    if spec.kind == "init_sweep":
        return [[p] for p in pending]
    if spec.kind == "lottery":
        groups = {}
        for p in pending:
            groups.setdefault(tuple(getattr(p.config, f) for f in SHARED_FIELDS), []).append(p)
        return [group[i:i + per_task] for group in groups.values() for i in range(0, len(group), per_task)]
    groups = {}
    for p in pending:
        groups.setdefault(config_hash(dataclasses.replace(p.config, seed=0)), []).append(p)
    out = []
    for group in groups.values():
        group.sort(key=lambda p: p.config.seed)
        run = [group[0]]
        for p in group[1:]:
            if p.config.seed == run[-1].config.seed + 1:
                run.append(p)
            else:
                out.append(run)
                run = [p]
        out.append(run)
    return out


def task_payload(spec, task):
    """A task as plain JSON data, for another process or a Ray worker."""
    configs = [p.config if spec.kind == "init_sweep" else dataclasses.asdict(p.config) for p in task]
    if spec.kind == "train_supermask":
        configs = configs[:1]  # the first seed; "seeds" says how many follow it
    return {"kind": spec.kind, "root": str(spec.root.resolve()), "configs": configs, "seeds": len(task),
            "out": str(point_folder(spec, task[0]).resolve())}


def run_task(payload):
    """Run one task in this process (what an executor calls)."""
    kind, root = payload["kind"], Path(payload["root"])
    if kind == "lottery":
        from supermask import lottery

        lottery.run_many([LotteryConfig(**c) for c in payload["configs"]], root / "lottery")
    elif kind == "train_supermask":
        from supermask import train_supermask

        train_supermask.run(SupermaskConfig(**payload["configs"][0]), out_root=root / "train_supermask",
                            seeds=payload["seeds"], overwrite=True)
    else:
        from supermask import init_sweep

        fields = dict(payload["configs"][0])
        init_sweep.sweep(fields.pop("run_dir"), out=payload["out"],
                         **{("criteria_names" if k == "criteria" else k): v for k, v in fields.items()})


# --- the sweep ----------------------------------------------------------------------------------


def run_sweep(spec, executor="local", workers=1, dry_run=False, ray_address=None, cpus_per_task=1,
              gpus_per_task=0, per_task=8, say=print):
    """Run every unfinished point of ``spec``; returns the points with their status. ConfigError
    before anything runs if the grid has more than ``MAX_POINTS`` points. ``dry_run``: see
    ``dry_run_sweep`` (returns only the points it lists)."""
    from supermask import executors

    if dry_run:
        return dry_run_sweep(spec, say)
    points = expand(spec)
    for p in points:
        _check_state(spec, p)
    names = list(spec.grid)
    todo = tasks(spec, points, per_task)
    logs = spec.root.resolve() / ".sweep" / "logs"
    for task in todo:
        log = logs / f"{spec.name}-{_digest(task_payload(spec, task))}.log"
        for p in task:
            p.log = log
    total, done, start = len(points), sum(p.status != "pending" for p in points), time.monotonic()
    say(f"Sweep {spec.name} ({spec.kind}): {total} points, {done} finished or invalid, {len(todo)} task(s) to run "
        f"on {executor}" + (f" with {workers} workers" if executor == "local" else "") + f"; results under {spec.root}")

    def finished(task, error):
        nonlocal done
        for p in task:
            p.status, p.error = ("failed", error) if error else ("done", None)
        done += len(task)
        elapsed = time.monotonic() - start
        ran = sum(p.status in ("done", "failed") and p.log is not None for p in points)
        left = sum(p.status == "pending" for p in points)
        eta = f", ~{elapsed / ran * left / 60:.1f} min left" if ran and left else ""
        say(f"[{done}/{total} points] {'FAILED' if error else 'done'}: {task[0].label(names)}"
            + (f" and {len(task) - 1} more point(s) trained with it" if len(task) > 1 else "")
            + f"; {elapsed / 60:.1f} min elapsed{eta}")

    if todo:
        run = executors.get(executor)
        logs.mkdir(parents=True, exist_ok=True)
        # One sweep of a spec at a time (a second stops here with the holder's PID); other sweeps
        # on the same root meet each trial's own lock, reported as that point's failure.
        with store.exclusive_lock(logs.parent / f"{spec.name}.lock", f"The sweep {spec.name} under {spec.root}",
                                  rerun="run the sweep again (it continues where it stopped)"):
            run([(task_payload(spec, t), t[0].log) for t in todo], lambda i, error: finished(todo[i], error),
                workers=workers, ray_address=ray_address, cpus_per_task=cpus_per_task,
                gpus_per_task=gpus_per_task)
    say(summary(points, names))
    csv_path = write_grid_csv(spec, points)
    if csv_path:
        say(f"Grid table: {csv_path}")
    return points


def _check_state(spec, point):
    if point.error is not None:
        point.status = "failed"
    elif is_finished(spec, point):
        point.status = "skipped"


def dry_run_sweep(spec, say=print, shown=None):
    """Print the first ``shown`` (default ``DRY_RUN_SHOWN``) points and whether each is finished, then
    the counts; runs and writes nothing. A grid within ``MAX_POINTS`` is checked point by point
    (finished / to run / invalid) without holding its points; a larger one is only counted, and
    the last line says it is too large to run. Returns the points listed."""
    shown = DRY_RUN_SHOWN if shown is None else shown
    names, listed = list(spec.grid), []
    counts = {"skipped": 0, "pending": 0, "failed": 0}
    total = count_points(spec)
    points = iter_points(spec)
    if total > MAX_POINTS:
        points = itertools.islice(points, shown)
    n = 0
    for n, p in enumerate(points, 1):
        _check_state(spec, p)
        counts[p.status] += 1
        if n <= shown:
            listed.append(p)
            state = {"skipped": "finished", "pending": "to run", "failed": f"invalid: {p.error}"}[p.status]
            say(f"{p.label(names)}: {state}" + (f" ({point_folder(spec, p)})" if p.error is None else ""))
    if total > MAX_POINTS:
        say(f"... and {total - n} more points, not checked.")
        say(f"{total} points (grid combinations x trials): more than the {MAX_POINTS} a sweep runs; split the "
            f"grid into specs of at most {MAX_POINTS} points each before running.")
        return listed
    if n > shown:
        say(f"... and {n - shown} more points.")
    say(f"{n} points: {counts['skipped']} finished, {counts['pending']} to run, {counts['failed']} invalid")
    return listed


def summary(points, names):
    counts = {s: sum(p.status == s for p in points) for s in ("done", "skipped", "failed")}
    lines = [f"Done {counts['done']}, skipped (finished before) {counts['skipped']}, failed {counts['failed']} "
             f"of {len(points)} points."]
    for p in points:
        if p.status == "failed":
            lines.append(f"  FAILED {p.label(names)}: {p.error}" + (f" (log: {p.log})" if p.log else ""))
    if counts["failed"]:
        lines.append("Fix the cause and run the sweep again: only what is missing runs.")
    return "\n".join(lines)


def grid_rows(spec, points):
    """One row per finished point × level (lottery) / point (train_supermask) / sweep row (init_sweep)."""
    rows = []
    for p in points:
        if p.status not in ("done", "skipped"):
            continue
        base = {k: p.fields.get(k) for k in spec.grid} | {"seed": getattr(p.config, "seed", p.fields.get("seed"))}
        folder = point_folder(spec, p)
        if spec.kind == "lottery":
            rows += [{**base, **row} for row in results.trial_rows(folder)]
        elif spec.kind == "train_supermask":
            _, m = results.load_run(folder)
            final = m.get("final", {})
            rows.append({**base, "test_accuracy": final.get("deterministic", {}).get("test_accuracy"),
                         "sampled_test_accuracy": final.get("sampled", {}).get("test_accuracy_mean"),
                         "density": m.get("density", {}).get("total", {}).get("inference"),
                         "folder": str(folder)})
        else:
            rows += [{**base, **row} for row in results.read_init_sweep(folder)]
    return rows


def write_grid_csv(spec, points):
    rows = grid_rows(spec, points)
    if not rows:
        return None
    path = spec.root / f"{spec.name}.csv"
    fields = list(dict.fromkeys(k for r in rows for k in r))
    store.write_csv(path, [{k: r.get(k) for k in fields} for r in rows])
    if spec.kind == "lottery":
        from supermask import report

        folders = sorted({point_folder(spec, p).parent for p in points if p.status in ("done", "skipped")})
        out, _ = report.lottery_report([results.load_experiment(f) for f in folders], spec.root / f"{spec.name}_report",
                                       subject=f"sweep {spec.name}")
        print(f"Figures across the grid: {out}")
    return path


def build_parser():
    from supermask.cli import ArgumentParser

    parser = ArgumentParser(prog="python -m supermask.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="the sweep spec (TOML)")
    parser.add_argument("--root", default=None, help="results root (default: the spec's root, else runs/sweep)")
    parser.add_argument("--dry-run", action="store_true",
                        help=f"print the number of points and the first {DRY_RUN_SHOWN} (which are finished); "
                             "run nothing")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="local processes (default) or Ray tasks")
    parser.add_argument("--workers", type=int, default=1, help="local: tasks run at once (default 1)")
    parser.add_argument("--ray-address", default=None,
                        help="ray: address of an existing cluster (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--cpus-per-task", type=float, default=1, help="ray: CPUs reserved per task (default 1)")
    parser.add_argument("--gpus-per-task", type=float, default=0, help="ray: GPUs reserved per task (default 0)")
    parser.add_argument("--points-per-task", type=int, default=8,
                        help="lottery: at most this many points (same architecture and budget) train together in "
                             "one program, level by level (default 8; 1: one point per task)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    for flag in ("workers", "points_per_task"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1. Received: {getattr(args, flag)}")
    spec = load_spec(args.spec, args.root)
    if not args.dry_run:
        check_size(spec)  # before anything is built, checked or written
    store.check_output_dir(spec.root, "the sweep's results root")
    points = run_sweep(spec, args.executor, args.workers, args.dry_run, args.ray_address, args.cpus_per_task,
                       args.gpus_per_task, args.points_per_task)
    if any(p.status == "failed" for p in points) and not args.dry_run:
        sys.exit(1)
    return points


if __name__ == "__main__":
    if sys.argv[1:2] == ["--task"]:  # a local executor's worker process: run one task, then exit
        from supermask.executors import task_main

        task_main(sys.argv[2])
    else:
        from supermask.cli import run_main

        run_main(main)
