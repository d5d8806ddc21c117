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


def model(run_dir):
    """The trained model (masks included) as a ``.keras`` file, for export."""
    return Path(run_dir) / "model.keras"


def metrics(run_dir):
    """Metrics history and summary as JSON."""
    return Path(run_dir) / "metrics.json"


def weights_rewind(run_dir):
    """Weights at the late-rewinding iteration of level 0."""
    return Path(run_dir) / "weights_rewind.h5"


# --- lottery experiments: <root>/<hash>/trial_<seed>/level_<L>/[control/] -------------
def experiment(root, config_hash):
    return Path(root) / config_hash


def experiment_summary(experiment_dir):
    """One row per level: mean and std over the experiment's trials."""
    return Path(experiment_dir) / "summary.csv"


def trial(experiment_dir, seed):
    return Path(experiment_dir) / f"trial_{seed}"


def lock(trial_dir):
    """The lock file a process holds while it runs a trial."""
    return Path(trial_dir) / ".lock"


def level(trial_dir, level_index):
    return Path(trial_dir) / f"level_{level_index}"


def control(level_dir):
    """The random-reinit control trained with the level's masks."""
    return Path(level_dir) / "control"


def summary(trial_dir):
    """One row per level: density, accuracies, early-stop iteration."""
    return Path(trial_dir) / "summary.csv"


# --- instability runs: <root>/<hash>/trial_<seed>/{k_<k>,level_<L>}.json, path.csv, summary.csv, report/ ------
def instability_point(run_dir, seed, k, level=None):
    """One (seed, start) result of an instability run: the path's errors per split, as JSON."""
    name = f"k_{k}.json" if level is None else f"level_{level}.json"
    return trial(run_dir, seed) / name


def path_table(run_dir):
    """Every point of every path of an instability run, one row each."""
    return Path(run_dir) / "path.csv"


def report_dir(run_dir):
    """Figures and report.md of a run."""
    return Path(run_dir) / "report"
