"""``python -m supermask.train`` (``supermask train``): flags -> ``TrainConfig`` -> ``supermask.train.run``."""

from supermask.cli import ArgumentParser, add_config_arguments, add_run_arguments, run_config_command, run_main
from supermask.settings import TrainConfig
from supermask.train import run


def build_parser(prog="python -m supermask.train"):
    parser = ArgumentParser(
        prog=prog,
        description="Train a network densely on MNIST, Fashion-MNIST or CIFAR-10 and save its "
                    "initial weights, final weights and metrics. The backend is chosen by KERAS_BACKEND.",
    )
    add_config_arguments(parser, TrainConfig)
    add_run_arguments(parser, out_default="runs/train/<config hash>")
    return parser


def main(argv=None, prog="python -m supermask.train"):
    return run_config_command(argv, build_parser(prog), TrainConfig, run, "runs/train")


if __name__ == "__main__":
    run_main(main)
