"""``python -m supermask.init_sweep RUN_DIR`` (``supermask init_sweep``): flags -> ``InitSweepConfig`` ->
``core.run``."""

import dataclasses

from supermask.cli import ArgumentParser, add_config_arguments, config_from_args, run_main
from supermask.init_sweep.core import run
from supermask.settings.init_sweep import InitSweepConfig

PROG = "python -m supermask.init_sweep"


def build_parser(prog=PROG):
    parser = ArgumentParser(
        prog=prog,
        description="One-shot mask sweep at init (Zhou et al. 2019): for every mask criterion x "
                    "prune power x layer-cutoff setting, the accuracy and loss of the masked, "
                    "untrained network built from a trained run's initial and final weights. "
                    "The backend is chosen by KERAS_BACKEND.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="folder with weights_init.h5 and weights_final.h5 (a supermask.train "
                             "--out folder or a lottery level_0); hparams.json there or up to 3 parents up")
    add_config_arguments(parser, InitSweepConfig)
    # One flag, several settings (nargs="+"): the only field the generated flags cannot express.
    cutoffs = next(f for f in dataclasses.fields(InitSweepConfig) if f.name == "layer_cutoffs")
    parser.add_argument("--layer-cutoffs", nargs="+", default=None, metavar="CUTOFFS",
                        help=cutoffs.metadata["help"])
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the dataset files (default: $SUPERMASK_DATA, then the cache, then "
                             "download)")
    parser.add_argument("--out", default=None,
                        help="output path; .csv and .json are written (default: RUN_DIR/init_sweep.csv and .json)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv=None, prog=PROG):
    """Parse ``argv``, sweep, return the rows (progress and the best points printed unless --quiet)."""
    args = build_parser(prog).parse_args(argv)
    config = config_from_args(InitSweepConfig, args)
    return run(args.run_dir, config, data_dir=args.data_dir, out=args.out, verbose=0 if args.quiet else 1)


if __name__ == "__main__":
    run_main(main)
