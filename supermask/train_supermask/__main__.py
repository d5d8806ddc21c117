"""``python -m supermask.train_supermask`` (``supermask train_supermask``): flags -> ``SupermaskConfig`` ->
``supermask.train_supermask.run``."""

import argparse

from supermask.cli import ArgumentParser, add_config_arguments, add_run_arguments, run_config_command, run_main
from supermask.errors import ConfigError
from supermask.settings import SupermaskConfig
from supermask.train_supermask import run


def build_parser(prog="python -m supermask.train_supermask"):
    parser = ArgumentParser(
        prog=prog,
        description="Learn a supermask (Zhou et al. 2019: Bernoulli; Ramanujan et al. 2020: edge-popup) "
                    "over frozen random weights and save the weights, scores, masks and metrics. "
                    "The backend is chosen by KERAS_BACKEND.",
    )
    add_config_arguments(parser, SupermaskConfig)
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="learn the masks of seeds SEED .. SEED+N-1 together (one program on JAX); each "
                             "is written as if it had run alone, to OUT/seed_<seed> (default 1)")
    add_run_arguments(parser, out_default="runs/supermask/<config hash>")
    # Flags of the dense trainer's recipe that this trainer never had a use for (before the settings were
    # split they were inherited and refused): still refused with the reason, not hidden behind "unrecognized".
    for flag in NOT_APPLICABLE:
        parser.add_argument(flag, dest=flag[2:].replace("-", "_"), default=None, help=argparse.SUPPRESS,
                            **({"action": argparse.BooleanOptionalAction} if flag == "--augment" else {}))
    return parser


NOT_APPLICABLE = ("--milestones", "--gamma", "--warmup", "--augment")


def main(argv=None, prog="python -m supermask.train_supermask"):
    parser = build_parser(prog)
    args, _ = parser.parse_known_args(argv)
    for flag in NOT_APPLICABLE:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            raise ConfigError(f"{flag[2:]} does not apply to the supermask trainer (its schedules are constant or "
                              f"cosine, without augmentation). Received: {flag[2:]}={value!r}")
    return run_config_command(argv, parser, SupermaskConfig, run, "runs/supermask", extra=("seeds",))


if __name__ == "__main__":
    run_main(main)
