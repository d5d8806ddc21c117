"""``python -m supermask.lottery`` (``supermask lottery``): flags -> ``LotteryConfig`` -> ``supermask.lottery.run``."""

from supermask.cli import ArgumentParser, add_config_arguments, add_run_arguments, config_from_args, run_main
from supermask.lottery import run
from supermask.settings import LotteryConfig


def build_parser(prog="python -m supermask.lottery"):
    parser = ArgumentParser(
        prog=prog,
        description="Iterative magnitude pruning with resets to init (or late rewinding), any mask "
                    "criterion and Mask-1/Mask-0 action, and the random-reinit control of each level. "
                    "The backend is chosen by KERAS_BACKEND.")
    add_config_arguments(parser, LotteryConfig)
    parser.add_argument("--trials", type=int, default=1, help="number of trials: seeds SEED, SEED+1, ... (default 1)")
    parser.add_argument("--root", default="runs/lottery", help="experiments folder (default runs/lottery)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted experiment")
    parser.add_argument("--redo-level", type=int, default=None, metavar="L",
                        help="delete level L and every later level of each trial, then run them again "
                             "(implies --resume); e.g. after a level's files were damaged")
    add_run_arguments(parser)
    return parser


def main(argv=None, prog="python -m supermask.lottery"):
    args = build_parser(prog).parse_args(argv)
    config = config_from_args(LotteryConfig, args)
    return run(config, args.root, trials=args.trials, data_dir=args.data_dir, resume=args.resume,
               verbose=0 if args.quiet else 1, redo_level=args.redo_level, engine=args.engine,
               tensorboard=args.tensorboard)


if __name__ == "__main__":
    run_main(main)
