"""The trained dense run an init sweep starts from: its folder, ``hparams.json`` and weights."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from supermask import paths, store
from supermask.errors import ConfigError, SupermaskError

Weights = dict[str, np.ndarray]

HPARAMS_KEYS = ("model", "dataset", "validation_size")
HPARAMS_SEARCH_DEPTH = 3  # parents of RUN_DIR searched for hparams.json
PRODUCER = ("`python -m supermask.train --out RUN_DIR` (or a lottery experiment, "
            "whose level_0 folder holds them)")


@dataclass(frozen=True)
class Run:
    """A trained dense run: ``hparams`` (dict from ``hparams_path``), ``init`` and
    ``final`` weights (``{"layer/var": array}`` as written by ``masks.get_weights``)."""

    run_dir: Path
    hparams_path: Path
    hparams: dict
    init: Weights
    final: Weights


def find_hparams(run_dir) -> Path:
    """``hparams.json`` in ``run_dir`` or one of its first 3 parents; SupermaskError if none."""
    run_dir = Path(run_dir)
    candidates = [run_dir, *list(run_dir.resolve().parents)[:HPARAMS_SEARCH_DEPTH]]
    for folder in candidates:
        if paths.hparams(folder).is_file():
            return paths.hparams(folder)
    raise SupermaskError(
        f"No hparams.json in {run_dir} or its {HPARAMS_SEARCH_DEPTH} parent folders. "
        f"It is written by {PRODUCER}."
    )


def load_trained(run_dir) -> Run:
    """The weights and hparams of the trained dense run in ``run_dir`` (see ``Run``; a run's metrics are
    ``supermask.results.load_run``'s); clear SupermaskError for anything missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SupermaskError(
            f"Run folder {run_dir} does not exist. Pass the output folder of {PRODUCER}."
        )
    for path in (paths.weights_init(run_dir), paths.weights_final(run_dir)):
        if not path.is_file():
            raise SupermaskError(
                f"Missing {path}: {run_dir} must hold weights_init.h5 and weights_final.h5, "
                f"which are written by {PRODUCER}."
            )
    hparams_path = find_hparams(run_dir)
    hparams = store.read_json(hparams_path)
    missing = [key for key in HPARAMS_KEYS if not isinstance(hparams, dict) or key not in hparams]
    if missing:
        raise SupermaskError(f"{hparams_path} lacks {', '.join(missing)}; it must name "
                             f"{', '.join(HPARAMS_KEYS)} (as supermask.train writes it).")
    check_dense(run_dir)
    return Run(run_dir, hparams_path, hparams,
               store.load_arrays(paths.weights_init(run_dir)),
               store.load_arrays(paths.weights_final(run_dir)))


def check_dense(run_dir) -> None:
    """ConfigError if the run trained with pruned weights (the sweep starts from dense)."""
    if not paths.masks(run_dir).is_file():
        return
    pruned = {k: int(np.size(m) - np.count_nonzero(m))
              for k, m in store.load_arrays(paths.masks(run_dir)).items()}
    if any(pruned.values()):
        raise ConfigError(
            f"The sweep needs a dense run (a supermask.train output or a lottery experiment's level_0). "
            f"Received: {paths.masks(run_dir)} with pruned weights {pruned}"
        )
