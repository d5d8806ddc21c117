"""The package's structure: floors, no import circle, no hidden imports, small modules, a Keras-free check.

The import graph is read from the source (``ast``), so these tests need no backend and run once.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import on_jax

PACKAGE = Path(__file__).resolve().parents[1] / "supermask"
MAX_LINES = 400

# Floors, lowest first: a module imports only from its own floor or lower ones (longest prefix wins).
FLOORS = [
    ("supermask.errors", "supermask.paths", "supermask.seeds", "supermask.specs", "supermask.early_stop"),
    ("supermask.criteria", "supermask.actions", "supermask.pruning", "supermask.data", "supermask.store"),
    ("supermask.settings",),
    ("supermask.recipes",),
    ("supermask.backend", "supermask.schedules", "supermask.layers", "supermask.convert", "supermask.zoo",
     "supermask.identity", "supermask.masks", "supermask.models"),
    ("supermask.engine",),
    ("supermask.optimizers", "supermask.results", "supermask.runs", "supermask.tickets", "supermask.callbacks"),
    ("supermask.train", "supermask.lottery", "supermask.train_supermask", "supermask.init_sweep",
     "supermask.custom_training", "supermask.instability", "supermask.prune_init"),
    ("supermask.sweep", "supermask.executors", "supermask.report", "supermask.export"),
    ("supermask.cli", "supermask.check", "supermask.worker", "supermask.__main__"),
]
# The only imports of the package's own modules inside functions, each for a reason.
LAZY = {
    # The backends are optional installs: only the running one is imported.
    ("supermask.engine.driver", "supermask.engine.jax"),
    ("supermask.engine.driver", "supermask.engine.tensorflow"),
    ("supermask.engine.driver", "supermask.engine.torch"),
    # supermask.export's names load on first use, so that supermask.check never loads Keras.
    ("supermask.export", "supermask.convert"),
    # supermask.__main__ imports only the chosen command.
}


def _modules():
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _target(name):
    """The package module ``name`` refers to (``supermask.a.b.func`` -> ``supermask.a.b``), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name, path):
    """``[(target module, at module level?)]`` of ``supermask`` modules that ``name`` imports."""
    is_package = path.name == "__init__.py"
    base = name if is_package else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body)) | {id(n) for stmt in tree.body if isinstance(stmt, ast.If)
                                     and "__name__" not in ast.unparse(stmt.test) for n in stmt.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = ".".join(base.split(".")[:len(base.split(".")) - node.level + 1] + ([module] if module else []))
            names = [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        for target in {_target(n) for n in names if n.startswith("supermask")} - {None, name}:
            out.append((target, id(node) in top))
    return out


def _floor(name):
    if name == "supermask":  # the package itself: __version__, and the layers registered when Keras loads
        return 0
    if name.endswith((".__main__", ".cli")):  # a command's thin command line sits on the top floor
        return len(FLOORS) - 1
    best = max(((len(prefix), i) for i, floor in enumerate(FLOORS) for prefix in floor
                if name == prefix or name.startswith(prefix + ".")), default=None)
    assert best is not None, f"{name} is on no floor: add it to FLOORS in tests/test_structure.py"
    return best[1]


def _graph():
    return {name: _imports(name, path) for name, path in MODULES.items() if name != "supermask"}


@on_jax
def test_every_import_goes_down_or_sideways_and_none_hides_in_a_function():
    upward, hidden = [], []
    for name, imports in _graph().items():
        for target, at_top in imports:
            if _floor(target) > _floor(name):
                upward.append(f"{name} -> {target}")
            if not at_top and (name, target) not in LAZY:
                hidden.append(f"{name} -> {target}")
    assert not upward, f"imports from a lower floor up: {upward}"
    assert not hidden, f"imports inside functions (move them to the top, or justify them in LAZY): {hidden}"


@on_jax
def test_no_import_circle():
    graph = {name: {t for t, _ in imports} for name, imports in _graph().items()}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


@on_jax
def test_no_module_over_the_limit():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@on_jax
@pytest.mark.parametrize("code", [
    "import supermask.check",
    "import supermask.__main__ as m; m.usage()",
    "import supermask.cli, supermask.settings, supermask.recipes, supermask.specs",
])
def test_the_check_the_command_list_and_the_settings_never_load_keras(code):
    probe = f"import sys; {code}; print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


@on_jax
def test_importing_supermask_registers_the_layers_when_keras_loads():
    probe = ("import sys, supermask; assert 'keras' not in sys.modules; import keras; "
             "print(keras.saving.get_registered_object('supermask>MaskedDense').__name__)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert out.returncode == 0 and out.stdout.strip() == "MaskedDense", out.stderr[-2000:]
