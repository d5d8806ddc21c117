"""Sweeps over grids of experiments: ``python -m supermask.sweep SPEC.toml``.

A spec (TOML, read with ``tomllib``) names the kind of run, the fields every point shares
and the fields to expand as a grid::

    kind = "lottery"                 # lottery | train_supermask | init_sweep | instability | prune_init
    root = "runs/sweep"              # results root (--root overrides)
    [fixed]                          # any settings field of the kind, one value
    model = "fc"
    iterations = 2500
    levels = 7
    trials = 2                       # lottery, train_supermask: seeds seed .. seed + trials - 1
    [grid]                           # any such field, a list: every combination is a point
    criterion = ["large_final", "random"]
    mask1 = ["none", "signed_constant"]

The fields are those of the kind's settings (``LotteryConfig``, ``SupermaskConfig``,
``InitSweepConfig``, ``InstabilityConfig``, ``PruneInitConfig``: the flags of its command, with
underscores), and ``trials`` (lottery, train_supermask, instability; prune_init has its own
``trials`` field) or ``run_dir`` (init_sweep, required). Each point is an ordinary run in its
ordinary hashed folder under the root (lottery: ``<root>/lottery/<hash>/trial_<seed>``,
train_supermask: ``<root>/train_supermask/<hash>``, init_sweep: ``<root>/init_sweep/<hash>.csv``),
so finished points are skipped and interrupted ones resume. Lottery points that share the
architecture and budget (``--points-per-task`` of them at most) are one task, their networks trained
together level by level in one program, and points that differ only in how the later levels are
made (criterion, Mask-1, Mask-0, rates...) share one trained level 0 per seed
(``supermask.lottery.trunk``); supermask points that differ only in consecutive seeds are one task
likewise. Where that makes fewer tasks than ``--workers``, the largest are split evenly
(``grid.spread``). Tasks run on an executor (``supermask.executors``): ``local`` (default;
``--workers N`` processes, each ``python -m supermask.worker``) or ``ray``. Each finished point is
one line on the console (what it was and where it went); a failed point is reported with its
error and log and does not stop the others; the sweep ends with a table of done / skipped /
failed, and writes ``<root>/<spec name>.csv`` (one row per point x level, with the point's
experiment folder, run folder or CSV) and, for lottery grids, the report's figures across the grid.

A sweep runs at most ``MAX_POINTS`` points (grid combinations x trials); a larger grid is refused
in one line before anything is built or written: split it into several specs. ``--dry-run`` of
any grid, however large, prints its size and at most ``DRY_RUN_SHOWN`` points, expanded lazily.

Modules, each importing only those before it: ``kinds`` (the ``Kind`` of each kind of run: the
only place that knows them), ``grid`` (spec, points, tasks), ``runner`` (the sweep on an
executor, its table), and ``__main__``, the command (``build_parser``, ``main``).
"""

from supermask.sweep.grid import (MAX_POINTS, Point, Spec, check_size, count_points, expand, is_finished,
                                  iter_points, load_spec, point_folder, spread, task_log, task_payload, tasks)
from supermask.sweep.kinds import KINDS, Kind, run_task
from supermask.sweep.runner import (DRY_RUN_SHOWN, dry_run_sweep, grid_rows, run_sweep, summary,
                                    write_grid_csv)

__all__ = [
    "DRY_RUN_SHOWN", "KINDS", "MAX_POINTS", "Kind", "Point", "Spec", "check_size", "count_points",
    "dry_run_sweep", "expand", "grid_rows", "is_finished", "iter_points", "load_spec", "point_folder",
    "run_sweep", "run_task", "spread", "summary", "task_log", "task_payload", "tasks", "write_grid_csv",
]
