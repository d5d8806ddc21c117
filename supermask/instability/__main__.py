"""``python -m supermask.instability`` (``supermask instability``): flags -> ``InstabilityConfig`` -> ``run``."""

from supermask.cli import ArgumentParser, add_config_arguments, config_from_args, run_main
from supermask.engine import ENGINES
from supermask.instability.runner import DEFAULT_ROOT, run
from supermask.settings.instability import InstabilityConfig
from supermask.specs import DEFAULT_ENGINE

PROG = "python -m supermask.instability"


def build_parser(prog=PROG):
    parser = ArgumentParser(
        prog=prog,
        description="Instability analysis (Frankle et al. 2020, linear mode connectivity): two copies of a "
                    "network trained from iteration k on different data orders; the error on the straight line "
                    "between them, and its barrier height (max error on the path minus the endpoints' mean). "
                    "Over a list of k, or over the levels of a lottery experiment (--experiment). The backend "
                    "is chosen by KERAS_BACKEND.",
    )
    add_config_arguments(parser, InstabilityConfig)
    parser.add_argument("--k", dest="ks_alias", default=None, metavar="KS", help="the same as --ks")
    parser.add_argument("--trials", type=int, default=None,
                        help="seeds --seed ... --seed + trials - 1 (default 1; with --experiment: every trial "
                             "of the experiment from --seed on)")
    parser.add_argument("--root", default=DEFAULT_ROOT, help=f"results root (default: {DEFAULT_ROOT})")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the dataset files (default: $SUPERMASK_DATA, then the cache, then "
                             "download)")
    parser.add_argument("--engine", choices=ENGINES, default=DEFAULT_ENGINE, help="training engine (default: "
                                                                                   f"{DEFAULT_ENGINE})")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv=None, prog=PROG):
    """Parse ``argv`` and run; returns the ``Result``."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.ks_alias is not None:
        args.ks = args.ks_alias
    config = config_from_args(InstabilityConfig, args)
    trials = args.trials
    if trials is None:
        trials = None if config.experiment is not None else 1
    return run(config, root=args.root, data_dir=args.data_dir, verbose=0 if args.quiet else 1, trials=trials,
               engine=args.engine)


if __name__ == "__main__":
    run_main(main)
