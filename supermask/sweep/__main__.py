"""``python -m supermask.sweep SPEC.toml`` (``supermask sweep``): flags -> spec -> ``runner.run_sweep``."""

import sys

from supermask import store
from supermask.cli import ArgumentParser, run_main
from supermask.errors import ConfigError
from supermask.sweep.grid import check_size, load_spec
from supermask.sweep.runner import DRY_RUN_SHOWN, run_sweep

PROG = "python -m supermask.sweep"


def build_parser(prog=PROG):
    parser = ArgumentParser(prog=prog, description=f"Sweeps over grids of experiments: ``{PROG} SPEC.toml``.")
    parser.add_argument("spec", help="the sweep spec (TOML)")
    parser.add_argument("--root", default=None, help="results root (default: the spec's root, else runs/sweep)")
    parser.add_argument("--dry-run", action="store_true",
                        help=f"print the number of points and the first {DRY_RUN_SHOWN} (which are finished); "
                             "run nothing")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="local processes (default) or Ray tasks")
    parser.add_argument("--workers", type=int, default=1,
                        help="local: tasks run at once (default 1); with either executor, the points are split "
                             "into at least this many tasks where there are as many points")
    parser.add_argument("--ray-address", default=None,
                        help="ray: address of an existing cluster (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--cpus-per-task", type=float, default=1, help="ray: CPUs reserved per task (default 1)")
    parser.add_argument("--gpus-per-task", type=float, default=0, help="ray: GPUs reserved per task (default 0)")
    parser.add_argument("--points-per-task", type=int, default=8,
                        help="lottery: at most this many points (same architecture and budget) train together in "
                             "one program, level by level (default 8; 1: one point per task); groups are split "
                             "further to give every worker a task")
    return parser


def main(argv=None, prog=PROG):
    """Parse ``argv`` and run (or dry-run) the sweep; returns its points. Exit status 1 when a
    point failed, 2 (``cli.run_main``) on a bad spec or flag."""
    args = build_parser(prog).parse_args(argv)
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
    run_main(main)
