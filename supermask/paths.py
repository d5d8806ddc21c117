"""Where things are written: the only module that spells file and folder names."""

from pathlib import Path


def hparams(run_dir):
    """The readable hyperparameters of a run or experiment."""
    return Path(run_dir) / "hparams.json"


def weights_init(run_dir):
    """Weights before training, ``{"layer/var": array}`` in HDF5."""
    return Path(run_dir) / "weights_init.h5"


def weights_final(run_dir):
    """Weights after training."""
    return Path(run_dir) / "weights_final.h5"


def masks(run_dir):
    """Masks the run trained with, ``{"layer": bool array}`` in HDF5."""
    return Path(run_dir) / "masks.h5"


def metrics(run_dir):
    """Metrics history and summary as JSON."""
    return Path(run_dir) / "metrics.json"
