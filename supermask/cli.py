"""Command-line plumbing shared by every ``python -m supermask.<verb>`` (and ``supermask <verb>``).

Keras-free (``supermask.check`` uses it on machines with onnxruntime only).

Flags are generated from the fields of a config dataclass (name, type, default and
help text), so the CLI and the config can never disagree. Bad input ends the program
with one clear message and exit status 2, never a traceback.
"""

import argparse
import dataclasses
import sys
import typing

from supermask.specs import DEFAULT_ENGINE, ENGINES
from supermask.errors import SupermaskError


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line (no usage dump), exit status 2."""

    def error(self, message):
        self.exit(2, f"error: {message.rstrip('.')}. See {self.prog} --help.\n")


def add_config_arguments(parser, config_cls):
    """Add one ``--flag`` per field of ``config_cls``.

    A field whose metadata has ``choices`` (a function returning the valid names) gets
    argparse ``choices``, listed in ``--help``; ``normalize`` maps accepted spellings
    (``fashion-mnist``) to the canonical name before the check.
    """
    hints = typing.get_type_hints(config_cls)
    group = parser.add_argument_group(f"hyperparameters ({config_cls.__name__})")
    for f in dataclasses.fields(config_cls):
        if not f.metadata.get("cli", True):  # filled in by the run itself (a fingerprint)
            continue
        kind = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        choices = f.metadata.get("choices")
        choices = tuple(choices()) if callable(choices) else choices
        if choices:
            help_text += f"; one of: {', '.join(choices)}"
        if f.default not in (None, ()):
            help_text += f" (default: {f.default})"
        help_text = help_text.replace("%", "%%")
        if kind is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=f.default, help=help_text)
        else:
            group.add_argument(flag, dest=f.name, type=_parse_with(f.metadata.get("normalize", kind)),
                               default=f.default, choices=choices, metavar=f.name.upper(), help=help_text)


def _parse_with(fn):
    """``fn`` as an argparse type whose own error message (a ``SupermaskError``) reaches the user."""
    def parse(text):
        try:
            return fn(text)
        except SupermaskError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = getattr(fn, "__name__", "value")  # argparse names the type in its default message
    return parse


def add_run_arguments(parser, out_default=None):
    """The flags every training command shares: --data-dir, --out and --overwrite (if
    ``out_default``), --engine, --tensorboard, --quiet."""
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the dataset files (default: $SUPERMASK_DATA, then the cache, "
                             "then download)")
    if out_default is not None:
        parser.add_argument("--out", default=None, help=f"output folder (default: {out_default})")
        parser.add_argument("--overwrite", action="store_true",
                            help="replace an existing, non-empty --out folder (swapped in only once the new "
                                 "run is complete)")
    parser.add_argument("--engine", choices=ENGINES, default=DEFAULT_ENGINE,
                        help="compiled: each chunk between record points (and the evaluation) runs as one "
                             "compiled program; fit: Keras fit per chunk, the reference (default: "
                             f"{DEFAULT_ENGINE})")
    parser.add_argument("--tensorboard", default=None, metavar="DIR",
                        help="write TensorBoard scalars (train/val/test loss and accuracy at each record point; "
                             "mask densities) to DIR, one run per network: DIR/<hash>[/trial_<seed>/level_<L>"
                             "[/control]]; view with tensorboard --logdir DIR (default: off)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def config_from_args(config_cls, args):
    """Build ``config_cls`` from parsed arguments (its validation runs here)."""
    return config_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls) if hasattr(args, f.name)})


def run_config_command(argv, parser, config_cls, run, out_root, extra=()):
    """Parse ``argv``, build ``config_cls`` and call ``run`` with its output folder.

    ``--out`` defaults to ``<out_root>/<hash of the resolved config>`` (``run`` resolves
    it once the data is loaded); ``--data-dir``, ``--overwrite``, ``--quiet``,
    ``--engine`` and ``--tensorboard`` are passed on, and the flags named in ``extra``. Shared by
    ``supermask.train`` and ``supermask.train_supermask``.
    """
    args = parser.parse_args(argv)
    config = config_from_args(config_cls, args)
    return run(config, data_dir=args.data_dir, out=args.out, out_root=None if args.out else out_root,
               overwrite=args.overwrite, verbose=0 if args.quiet else 1, engine=args.engine,
               tensorboard=args.tensorboard,
               **{name: getattr(args, name) for name in extra})


def run_main(main_fn, argv=None):
    """Call ``main_fn(argv)``; turn a ``SupermaskError`` into a message and exit status 2."""
    try:
        return main_fn(argv)
    except SupermaskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # an environment problem no library call turned into a SupermaskError
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"error: {exc.strerror or exc}{where}. Check the disk and the paths given, then rerun.",
              file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
