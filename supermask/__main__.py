"""``supermask <command> [flags]`` (the console script ``pip install .`` puts on PATH) and
``python -m supermask <command>``: the same commands as ``python -m supermask.<command>``."""

import importlib
import inspect
import sys

from supermask.cli import run_main

# command -> (module holding its ``main(argv)``, what it does). Only the chosen command's module is
# imported, so ``supermask check`` never loads Keras and ``--help`` here loads nothing heavy.
COMMANDS = {
    "train": ("supermask.train.__main__", "train one network densely"),
    "lottery": ("supermask.lottery.__main__", "iterative magnitude pruning (lottery tickets), with controls"),
    "train_supermask": ("supermask.train_supermask.__main__", "learn a supermask over frozen random weights"),
    "init_sweep": ("supermask.init_sweep.__main__", "masked-but-untrained accuracy over criteria and densities"),
    "instability": ("supermask.instability.__main__", "linear mode connectivity: error barrier between two copies"),
    "prune_init": ("supermask.prune_init.__main__", "prune at initialisation (SNIP, GraSP, SynFlow...), sanity checks"),
    "sweep": ("supermask.sweep.__main__", "run a grid of experiments (local processes or Ray)"),
    "report": ("supermask.report.__main__", "tables and figures of finished experiments"),
    "export": ("supermask.export.__main__", "export a trained ticket or supermask to ONNX"),
    "check": ("supermask.check", "run an exported ONNX file in onnxruntime: accuracy, speed"),
}


def usage():
    width = max(map(len, COMMANDS))
    lines = ["usage: supermask <command> [flags]   (supermask <command> --help for its flags)", "", "commands:"]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name = argv[0].replace("-", "_")
    if name not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}. Valid commands: {', '.join(COMMANDS)}. See supermask --help.",
              file=sys.stderr)
        return 2
    command = importlib.import_module(COMMANDS[name][0]).main
    if "prog" in inspect.signature(command).parameters:
        return run_main(lambda args: command(args, prog=f"supermask {argv[0]}"), argv[1:])
    return run_main(command, argv[1:])


def console():
    """The ``supermask`` console script: exit status 0 on success, 2 on bad input."""
    result = main()
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    console()
