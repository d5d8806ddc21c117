"""Command-line plumbing shared by every ``python -m supermask.<verb>``.

Flags are generated from the fields of a config dataclass (name, type, default and
help text), so the CLI and the config can never disagree. Bad input ends the program
with one clear message and exit status 2, never a traceback.
"""

import argparse
import dataclasses
import sys
import typing

from supermask.errors import SupermaskError


def add_config_arguments(parser, config_cls):
    """Add one ``--flag`` per field of ``config_cls``."""
    hints = typing.get_type_hints(config_cls)
    group = parser.add_argument_group(f"hyperparameters ({config_cls.__name__})")
    for f in dataclasses.fields(config_cls):
        kind = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if f.default is not None:
            help_text += f" (default: {f.default})"
        if kind is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=f.default, help=help_text)
        else:
            group.add_argument(flag, dest=f.name, type=kind, default=f.default,
                               metavar=f.name.upper(), help=help_text)


def add_run_arguments(parser, out_default=None):
    """The flags every training command shares: --data-dir, --out (if ``out_default``), --quiet."""
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the dataset files (default: $SUPERMASK_DATA, then the cache, "
                             "then download)")
    if out_default is not None:
        parser.add_argument("--out", default=None, help=f"output folder (default: {out_default})")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def config_from_args(config_cls, args):
    """Build ``config_cls`` from parsed arguments (its validation runs here)."""
    return config_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)})


def run_config_command(argv, parser, config_cls, run, out_root):
    """Parse ``argv``, build ``config_cls`` and call ``run`` with its output folder.

    ``--out`` defaults to ``<out_root>/<config hash>``; ``--data-dir`` and ``--quiet`` are
    passed on. Shared by ``supermask.train`` and ``supermask.train_supermask``.
    """
    from supermask.config import config_hash

    args = parser.parse_args(argv)
    config = config_from_args(config_cls, args)
    out = args.out or f"{out_root}/{config_hash(config)}"
    return run(config, data_dir=args.data_dir, out=out, verbose=0 if args.quiet else 1)


def run_main(main_fn, argv=None):
    """Call ``main_fn(argv)``; turn a ``SupermaskError`` into a message and exit status 2."""
    try:
        return main_fn(argv)
    except SupermaskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
