"""Print the package's import graph by floor (the floors and checks of tests/test_structure.py).

    .venv/bin/python scripts/import_graph.py        # one line per module: its floor, lines, imports

Each module lists the package modules it imports (at module level; a trailing * marks one of the
few justified imports inside a function). tests/test_structure.py asserts that every import goes
down or sideways, none hides in a function unless justified, no circle exists, no module passes
400 lines.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_structure import FLOORS, MODULES, _floor, _graph  # noqa: E402


def main():
    graph = _graph()
    short = lambda name: name.removeprefix("supermask.")  # noqa: E731
    for floor in range(len(FLOORS)):
        names = sorted(n for n in graph if _floor(n) == floor)
        print(f"floor {floor}")
        for name in names:
            lines = len(MODULES[name].read_text().splitlines())
            imports = sorted({short(t) + ("" if top else "*") for t, top in graph[name]})
            print(f"  {short(name):<28} {lines:>4}  {' '.join(imports)}")


if __name__ == "__main__":
    main()
