"""supermask: lottery tickets and supermasks for Keras 3 (TensorFlow, JAX or PyTorch).

Importing the package registers its Keras layers (masked, supermask), so that any
``model.keras`` it wrote loads with ``keras.saving.load_model`` after ``import supermask``.
The registration happens when Keras itself is imported (now, if it already is): a machine
that only checks exported ONNX files (``python -m supermask.check``: onnxruntime and numpy)
never loads Keras, nor needs it installed.

Quiet start-up: Keras imports TensorFlow when it is installed, under every backend (to seed
it, in ``keras.utils.set_random_seed``), and TensorFlow's C++ libraries print their start-up
lines on stderr as they load ("oneDNN custom operations are on", "cpu_feature_guard", absl's
"WARNING: All log messages before absl::InitializeLog()", CUDA factory registrations,
"TF-TRT Warning"). When ``tensorflow`` is first imported after ``supermask``, its import runs
with file descriptor 2 captured; the lines above are dropped and every other line (Python
warnings, errors) is written back to stderr. TensorFlow's kernels are untouched
(``TF_ENABLE_ONEDNN_OPTS`` is not set), and ``TF_CPP_MIN_LOG_LEVEL`` defaults to 1 (hide
TensorFlow's INFO lines, keep its warnings and errors) unless set. ``SUPERMASK_TF_LOG=1``
turns the filter off.
"""

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

__version__ = "0.1.0"

# TensorFlow's start-up lines: C++ INFO / WARNING lines ("I0000 00:00:17... 123 port.cc:153] ..."),
# absl's notice, cpu_feature_guard's second line, and the CUDA plugin registrations logged as errors.
TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+\s+\d+ \S+\.(cc|h):\d+\] .*"
    r"|E\d{4} [\d:.]+\s+\d+ \S+\.(cc|h):\d+\] (Unable to register cu\w+ factory|.*already been registered|"
    r"computation placer already registered).*"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\."
    r"|.*TF-TRT Warning: .*)$")


class _RegisterLayersWithKeras(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``keras`` is first imported, it lets the real finder load it and
    then imports ``supermask.layers`` (which registers the layers), once."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            importlib.import_module("supermask.layers")

        spec.loader.exec_module = exec_then_register
        return spec


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``tensorflow`` is first imported, its import runs with stderr
    (file descriptor 2) captured, and the captured lines but ``TF_NOISE`` are written back."""

    searching = False

    def find_spec(self, name, path=None, target=None):
        # Stays installed until the import runs: ``importlib.util.find_spec("tensorflow")`` (an
        # availability check, as torch's and Keras's) asks too, and discards the spec.
        if name != "tensorflow" or self.searching:
            return None
        self.searching = True
        try:
            spec = importlib.util.find_spec("tensorflow")
        finally:
            self.searching = False
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_quietly(module):
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            with tempfile.TemporaryFile() as captured:
                sys.stderr.flush()
                saved = os.dup(2)
                os.dup2(captured.fileno(), 2)
                try:
                    exec_module(module)
                finally:
                    sys.stderr.flush()
                    os.dup2(saved, 2)
                    os.close(saved)
                    captured.seek(0)
                    lines = captured.read().decode(errors="replace").splitlines()
                    kept = [line for line in lines if not TF_NOISE.match(line)]
                    if kept:
                        sys.stderr.write("\n".join(kept) + "\n")
                        sys.stderr.flush()

        spec.loader.exec_module = exec_quietly
        return spec


def _quiet_tensorflow():
    """Install ``_QuietTensorFlow`` (once) unless TensorFlow is loaded already or ``SUPERMASK_TF_LOG=1``."""
    if os.environ.get("SUPERMASK_TF_LOG") == "1" or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if not any(isinstance(finder, _QuietTensorFlow) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())


_quiet_tensorflow()
if "keras" in sys.modules:
    importlib.import_module("supermask.layers")
elif not any(isinstance(finder, _RegisterLayersWithKeras) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterLayersWithKeras())

# The Keras-native verbs, ``supermask.prune(model, ...)`` and friends, are looked up on first use: importing
# them here would load Keras with ``import supermask`` (``supermask.check`` runs where Keras is not installed).
_VERBS = {**dict.fromkeys(("prune", "rewind", "sparsity", "strip", "snapshot", "masked"), "supermask.tickets"),
          "imp": "supermask.custom_training",
          **dict.fromkeys(("GradualPruning", "PolynomialDecay", "ConstantSparsity"), "supermask.callbacks")}
__all__ = ["__version__", *_VERBS]


def __getattr__(name):
    if name in _VERBS:
        return getattr(importlib.import_module(_VERBS[name]), name)
    raise AttributeError(f"module 'supermask' has no attribute {name!r}")
