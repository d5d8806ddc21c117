"""Running a sweep: its tasks on an executor, progress, the final table, ``<root>/<spec name>.csv``."""

import itertools
import time

from supermask import executors, store
from supermask.sweep.grid import (MAX_POINTS, count_points, expand, is_finished, iter_points, point_folder,
                                  task_log, task_payload, tasks)
from supermask.sweep.kinds import get, run_task

# A dry run lists at most this many points, then says how many more there are.
DRY_RUN_SHOWN = 100


def run_sweep(spec, executor="local", workers=1, dry_run=False, ray_address=None, cpus_per_task=1,
              gpus_per_task=0, per_task=8, say=print):
    """Run every unfinished point of ``spec``; returns the points with their status. ConfigError
    before anything runs if the grid has more than ``MAX_POINTS`` points. ``dry_run``: see
    ``dry_run_sweep`` (returns only the points it lists)."""
    if dry_run:
        return dry_run_sweep(spec, say)
    points = expand(spec)
    for p in points:
        _check_state(spec, p)
    names = list(spec.grid)
    todo = tasks(spec, points, per_task, workers)
    for task in todo:
        log = task_log(spec, task)
        for p in task:
            p.log = log
    total, done, start = len(points), sum(p.status != "pending" for p in points), time.monotonic()
    say(f"Sweep {spec.name} ({spec.kind}): {total} points, {done} finished or invalid, {len(todo)} task(s) to run "
        f"on {executor}" + (f" with {workers} workers" if executor == "local" else "") + f"; results under {spec.root}")

    def finished(task, error):
        nonlocal done
        for p in task:
            p.status, p.error = ("failed", error) if error else ("done", None)
        elapsed = time.monotonic() - start
        ran = sum(p.status in ("done", "failed") and p.log is not None for p in points)
        left = sum(p.status == "pending" for p in points)
        eta = f", ~{elapsed / ran * left / 60:.1f} min left" if ran and left else ""
        together = f"; {len(task)} points trained together" if len(task) > 1 else ""
        for p in task:  # one line per point: what it was and where it went
            done += 1
            where = f"-> {point_folder(spec, p)}" if not error else f"{error} (log: {p.log})"
            say(f"[{done}/{total} points] {'FAILED' if error else 'done'}: {p.label(names)} {where}{together}; "
                f"{elapsed / 60:.1f} min elapsed{eta}")

    if todo:
        run = executors.get(executor)
        logs = todo[0][0].log.parent
        logs.mkdir(parents=True, exist_ok=True)
        # One sweep of a spec at a time (a second stops here with the holder's PID); other sweeps
        # on the same root meet each trial's own lock, reported as that point's failure.
        with store.exclusive_lock(logs.parent / f"{spec.name}.lock", f"The sweep {spec.name} under {spec.root}",
                                  rerun="run the sweep again (it continues where it stopped)"):
            run(run_task, [(task_payload(spec, t), t[0].log) for t in todo], lambda i, error: finished(todo[i], error),
                workers=workers, ray_address=ray_address, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task)
    say(summary(points, names))
    csv_path = write_grid_csv(spec, points, say)
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
    """The closing lines: done / skipped / failed counts, and each failure with its error and log."""
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
    """The grid table: for each finished point (in grid order), its ``Kind.rows`` (lottery: one per
    level; train_supermask: one; init_sweep: one per row of its CSV), each led by the point's grid
    fields, seed and ``folder`` (``Kind.where``: the lottery experiment folder, the supermask run
    folder, the init_sweep CSV)."""
    kind, rows = get(spec.kind), []
    for p in points:
        if p.status not in ("done", "skipped"):
            continue
        folder = point_folder(spec, p)
        base = {k: p.fields.get(k) for k in spec.grid} | {"seed": p.fields.get("seed"), "folder": str(kind.where(folder))}
        rows += [{**base, **row} for row in kind.rows(folder, p.config)]
    return rows


def write_grid_csv(spec, points, say=print):
    """Write ``<root>/<spec name>.csv`` (``grid_rows``) and, for a kind with figures (lottery), the
    figures across the grid into ``<root>/<spec name>_report``; returns the CSV's path, or None when
    no point is finished."""
    rows = grid_rows(spec, points)
    if not rows:
        return None
    path = spec.root / f"{spec.name}.csv"
    fields = list(dict.fromkeys(k for r in rows for k in r))
    store.write_csv(path, [{k: r.get(k) for k in fields} for r in rows])
    kind = get(spec.kind)
    if kind.figures is not None:
        folders = [point_folder(spec, p) for p in points if p.status in ("done", "skipped")]
        figures = kind.figures(folders, spec.root / f"{spec.name}_report", f"sweep {spec.name}")
        say(f"Figures across the grid: {figures}")
    return path
