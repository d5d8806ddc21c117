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
    parser.add_argument("--branch-from", default=None, metavar="EXPERIMENT",
                        help="copy each trial's finished level 0 from this experiment folder (e.g. "
                             "runs/lottery/<hash>) instead of training it; its level-0 settings must equal this "
                             "run's (only levels, criterion, mask1, mask0, control, the pruning rates and "
                             "early_stop may differ). Without it, level 0 is copied from any experiment under "
                             "--root that has it")
    add_run_arguments(parser)
    return parser


def main(argv=None, prog="python -m supermask.lottery"):
    args = build_parser(prog).parse_args(argv)
    config = config_from_args(LotteryConfig, args)
    return run(config, args.root, trials=args.trials, data_dir=args.data_dir, resume=args.resume,
               verbose=0 if args.quiet else 1, redo_level=args.redo_level, engine=args.engine,
               tensorboard=args.tensorboard, branch_from=args.branch_from)


if __name__ == "__main__":
    run_main(main)
