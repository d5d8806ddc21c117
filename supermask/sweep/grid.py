"""A sweep's spec and its grid: parsing, counting, lazy expansion into points, and tasks.

Everything kind-specific is asked of the spec's ``Kind`` (``supermask.sweep.kinds``).
"""

import itertools
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from supermask.errors import ConfigError, SupermaskError
from supermask.sweep.kinds import KINDS, digest, get

# A sweep of more points than this is refused: each point is a full training run, so a larger grid is
# a typo or a job for several specs (and its points and configs would be held in memory at once).
MAX_POINTS = 10_000


@dataclass(frozen=True)
class Spec:
    """A parsed sweep spec: ``fixed`` fields and ``grid`` lists (each a dict of field -> value)."""

    name: str
    kind: str  # a name in ``KINDS``
    root: Path
    fixed: dict
    grid: dict


@dataclass
class Point:
    """One grid point: its fields, the run it is (or why it cannot be one), and its state."""

    fields: dict
    config: object = None  # what its Kind's ``build`` made of the fields (resolved settings)
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
    if not isinstance(kind, str) or kind not in KINDS:
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
    allowed = KINDS[kind].fields()
    unknown = (set(fixed) | set(grid)) - allowed
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {', '.join(sorted(unknown))} for kind {kind}. "
                          f"Valid fields: {', '.join(sorted(allowed))}.")
    return Spec(path.stem, kind, Path(root or data.get("root", "runs/sweep")), fixed, grid)


def count_points(spec):
    """How many points ``spec``'s grid names, without expanding it: the product of the grid lists'
    lengths, times ``trials`` where the kind has trials (an invalid ``trials`` value counts as one,
    invalid, point). Points named twice (a ``seed`` list overlapping ``trials``) are counted twice
    here and run once."""
    names = [n for n in spec.grid if n != "trials"]
    combos = math.prod(len(spec.grid[n]) for n in names)
    if not get(spec.kind).trials:
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
    seed), configs built by the kind; a point whose values are invalid carries the error instead.
    A point named twice (e.g. seed = [0, 1] with trials = 2 names seed 1 twice) is yielded once.
    Lazy: only the keys of the points yielded so far are held."""
    kind = get(spec.kind)
    names = list(spec.grid)
    seen = set()
    for values in itertools.product(*(spec.grid[n] for n in names)):
        fields = {**spec.fixed, **dict(zip(names, values))}
        if not kind.trials:
            built = [_build(kind, fields)]
        else:
            trials = fields.pop("trials", 1)
            if not _valid_trials(trials):
                yield Point(fields, error=f"trials must be an integer >= 1. Received: trials={trials!r}")
                continue
            seed = fields.get("seed", 0)
            built = (_build(kind, {**fields, "seed": seed + t} if isinstance(seed, int) else fields)
                     for t in range(trials))
        for p in built:
            key = None if p.config is None else kind.key(p.config)
            if key is None or key not in seen:
                seen.add(key)
                yield p


def expand(spec, limit=None):
    """Every point of ``spec`` as a list (see ``iter_points``); ConfigError, before building any,
    if the grid names more than ``limit`` (default ``MAX_POINTS``) points."""
    check_size(spec, limit)
    return list(iter_points(spec))


def _build(kind, fields):
    point = Point(fields)
    try:
        point.config = kind.build(fields)
    except SupermaskError as exc:
        point.error = str(exc)
    except TypeError as exc:  # a value of the wrong kind for a field
        point.error = f"bad value in {point.fields}: {exc}"
    return point


def point_folder(spec, point):
    """Where a point's results live (lottery: its trial folder; init_sweep: its CSV file)."""
    kind = get(spec.kind)
    return kind.folder(spec.root / kind.name, point.config)


def is_finished(spec, point):
    """Whether the point's results are complete (it is skipped)."""
    return get(spec.kind).is_finished(point_folder(spec, point), point.config)


def tasks(spec, points, per_task=8, workers=1):
    """Group the pending, valid points into tasks, each run by one call (``Kind.group``): lottery
    points that share the architecture and budget, up to ``per_task`` of them, train together level
    by level in one program; train_supermask points of consecutive seeds learn together;
    init_sweep points run one each. Then, while there are fewer tasks than ``workers`` (and than
    points), the largest are split evenly (``spread``), so that no worker waits while another runs
    a group of points."""
    pending = [p for p in points if p.status == "pending" and p.error is None]
    return spread(get(spec.kind).group(pending, per_task), workers)


def spread(groups, workers):
    """``groups`` (lists of points) split into consecutive, even parts until there are at least
    ``min(workers, points)`` of them: each step gives one more part to the group whose parts are
    largest. A part of a group is still a valid task (points that may run together still may)."""
    parts = [1] * len(groups)
    target = min(workers, sum(map(len, groups)))
    while sum(parts) < target:
        i = max(range(len(groups)), key=lambda i: math.ceil(len(groups[i]) / parts[i]))
        parts[i] += 1
    out = []
    for group, k in zip(groups, parts):
        size, extra = divmod(len(group), k)
        start = 0
        for j in range(k):
            end = start + size + (j < extra)
            out.append(group[start:end])
            start = end
    return out


def task_payload(spec, task):
    """A task as plain JSON data, for another process or a Ray worker (``kinds.run_task``)."""
    kind = get(spec.kind)
    return {"kind": kind.name, "root": str(spec.root.resolve()), "configs": kind.encode([p.config for p in task]),
            "seeds": len(task), "out": str(point_folder(spec, task[0]).resolve())}


def task_log(spec, task):
    """The log file of a task: ``<root>/.sweep/logs/<spec name>-<digest of its payload>.log``."""
    return spec.root.resolve() / ".sweep" / "logs" / f"{spec.name}-{digest(task_payload(spec, task))}.log"
