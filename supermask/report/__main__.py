"""``python -m supermask.report PATH``: the command (see ``supermask.report`` for what it writes)."""

import supermask.report as package
from supermask.cli import ArgumentParser, run_main
from supermask.report import FORMATS, report


def build_parser(prog=None):
    parser = ArgumentParser(prog=prog or "python -m supermask.report", description=package.__doc__.split("\n\n")[0])
    parser.add_argument("path", help="experiment folder, root of experiments, run folder, or init-sweep CSV")
    parser.add_argument("--out", default=None, help="folder for the figures and report.md (default: PATH/report, "
                                                    "or <name>_report beside a CSV); replaced as a whole")
    parser.add_argument("--format", choices=FORMATS, default="png", help="file format of the figures (default png)")
    return parser


def main(argv=None, prog=None):
    args = build_parser(prog).parse_args(argv)
    out, files = report(args.path, args.out, args.format)
    print(f"Wrote {len(files)} files to {out}:")
    for name in files:
        print(f"  {out / name}")
    return out


if __name__ == "__main__":
    run_main(main)
