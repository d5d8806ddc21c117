"""``python -m supermask.prune_init`` (``supermask prune_init``): flags -> ``PruneInitConfig`` -> ``core.run``."""

from supermask.cli import ArgumentParser, add_config_arguments, config_from_args, run_main
from supermask.engine import ENGINES
from supermask.prune_init.core import run
from supermask.settings.prune_init import PruneInitConfig

PROG = "python -m supermask.prune_init"


def build_parser(prog=PROG):
    parser = ArgumentParser(
        prog=prog,
        description="Pruning at initialisation (SNIP, GraSP, SynFlow, magnitude, random) and the sanity checks of "
                    "Frankle et al. 2021 (shuffle, reinit, invert), each pruned network trained with the model's "
                    "recipe; optionally compared with IMP with rewinding (--imp). The backend is chosen by "
                    "KERAS_BACKEND.")
    add_config_arguments(parser, PruneInitConfig)
    parser.add_argument("--root", default="runs/prune_init", help="experiments root; the run writes <root>/<hash>")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the dataset files (default: $SUPERMASK_DATA, then the cache, then "
                             "download)")
    parser.add_argument("--engine", choices=ENGINES, default=None, help="training engine (default: compiled)")
    parser.add_argument("--no-report", action="store_true", help="skip report/ (the figures need matplotlib)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv=None, prog=PROG):
    """Parse ``argv``, run, return the ``PruneInitResult``."""
    args = build_parser(prog).parse_args(argv)
    config = config_from_args(PruneInitConfig, args)
    return run(config, root=args.root, data_dir=args.data_dir, verbose=0 if args.quiet else 1, engine=args.engine,
               report=not args.no_report)


if __name__ == "__main__":
    run_main(main)
