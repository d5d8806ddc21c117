"""Iterative magnitude pruning: levels, actions, rewinding, controls, resume after kill -9."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from supermask import early_stop, identity, lottery, paths, recipes, runs, store
from supermask.lottery import trunk
from supermask.models import build
from supermask.settings import LotteryConfig
from supermask.errors import ConfigError
from supermask.pruning import keep_count
from supermask.results import load_experiment
from tests.conftest import once

REPO = Path(__file__).resolve().parents[1]
FC_SIZES = {"fc1": 784 * 300, "fc2": 300 * 100, "output": 100 * 10}


def _level(trial_dir, level, control=False):
    folder = paths.level(trial_dir, level)
    folder = paths.control(folder) if control else folder
    return {name: store.load_arrays(fn(folder)) for name, fn in
            (("init", paths.weights_init), ("final", paths.weights_final), ("masks", paths.masks))}


@pytest.mark.slow
def test_levels_prune_exactly_reset_to_init_and_train_controls(tmp_path, small_mnist):
    config = LotteryConfig(iterations=30, eval_every=15, levels=2)
    rows = lottery.run_trial(config, small_mnist, tmp_path / "trial_0", verbose=0)
    trial = tmp_path / "trial_0"
    w0 = _level(trial, 0)["init"]
    assert all(m.all() for m in _level(trial, 0)["masks"].values())
    previous = _level(trial, 0)["masks"]
    for level in (1, 2):
        run, control = _level(trial, level), _level(trial, level, control=True)
        for layer, rate in {"fc1": 0.2, "fc2": 0.2, "output": 0.1}.items():
            mask = run["masks"][layer]
            assert mask.sum() == keep_count(FC_SIZES[layer], rate, level)
            assert not (mask & ~previous[layer]).any()  # pruned weights stay pruned
            np.testing.assert_array_equal(control["masks"][layer], mask)
            kernel = run["init"][f"{layer}/kernel"]
            np.testing.assert_array_equal(kernel[mask], w0[f"{layer}/kernel"][mask])  # reset to init
            assert not kernel[~mask].any()  # Mask-0 "mask": pruned weights are zero
            assert not np.array_equal(control["init"][f"{layer}/kernel"][mask], kernel[mask])
            np.testing.assert_array_equal(run["final"][f"{layer}/kernel"][~mask], 0.0)
            np.testing.assert_array_equal(run["init"][f"{layer}/bias"], w0[f"{layer}/bias"])
        previous = run["masks"]
    assert [r["level"] for r in rows] == [0, 1, 2]
    assert rows[0]["control_best_val_accuracy"] is None and rows[2]["control_best_val_accuracy"] > 0.5
    assert rows[2]["percent_remaining"] == pytest.approx(
        100 * sum(keep_count(n, 0.1 if k == "output" else 0.2, 2) for k, n in FC_SIZES.items()) / 266200, abs=0.01)
    assert paths.summary(trial).read_text().startswith("level,percent_remaining,best_val_accuracy")


@pytest.mark.slow
def test_late_rewinding_and_freeze_init(tmp_path, small_mnist):
    config = LotteryConfig(iterations=30, eval_every=10, levels=1, rewind_iteration=10,
                           mask0="freeze_init", control=False)
    lottery.run_trial(config, small_mnist, tmp_path, verbose=0)
    rewind = store.load_arrays(paths.weights_rewind(paths.level(tmp_path, 0)))
    w0 = _level(tmp_path, 0)["init"]
    run = _level(tmp_path, 1)
    mask = run["masks"]["fc1"]
    np.testing.assert_array_equal(run["init"]["fc1/kernel"][mask], rewind["fc1/kernel"][mask])
    assert not np.array_equal(rewind["fc1/kernel"], w0["fc1/kernel"])
    # freeze_init: pruned weights are frozen at the reset point, bit-identical after training.
    np.testing.assert_array_equal(run["final"]["fc1/kernel"][~mask], rewind["fc1/kernel"][~mask])
    history = store.read_json(paths.metrics(paths.level(tmp_path, 1)))["history"]
    assert [r["iteration"] for r in history] == [10, 20, 30]
    assert not paths.control(paths.level(tmp_path, 1)).exists()


def test_bad_configs_and_existing_experiments(tmp_path, small_mnist):
    for bad, message in [({"criterion": "largest"}, "Valid criteria"), ({"mask1": "x"}, "large_final|none"),
                         ({"mask0": "x"}, "mask"), ({"rate_fc": 1.0}, r"rate_fc must be in \[0, 1\)"),
                         ({"levels": -1}, "levels must be an integer >= 0")]:
        with pytest.raises(ConfigError, match=message):
            LotteryConfig(**bad)
    with pytest.raises(ConfigError, match="rewind_iteration"):
        lottery.run_trial(LotteryConfig(iterations=5, rewind_iteration=5), small_mnist, tmp_path, verbose=0)
    assert LotteryConfig(seed=3).experiment_hash() == LotteryConfig().experiment_hash()
    assert LotteryConfig(levels=3).experiment_hash() == LotteryConfig().experiment_hash()
    assert LotteryConfig(criterion="movement").experiment_hash() != LotteryConfig().experiment_hash()
    assert recipes.layer_rates(LotteryConfig(model="conv6", rate_conv=0.3), ["conv1", "fc1", "output"]) == {
        "conv1": 0.3, "fc1": 0.2, "output": 0.1}


# --- kill -9 and resume -------------------------------------------------------------------
ARGS = ["--iterations", "40", "--eval-every", "20", "--levels", "3", "--quiet"]


def _start(root):
    data = Path(os.environ["SUPERMASK_DATA"]) / "mnist"
    cmd = [sys.executable, "-m", "supermask.lottery", *ARGS, "--data-dir", str(data), "--root", str(root), "--resume"]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def _strip_times(value):
    if isinstance(value, dict):
        return {k: _strip_times(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_strip_times(v) for v in value]
    return value


def _finished_levels(root):
    """Every level folder must be complete and readable; returns their contents."""
    out = {}
    for folder in sorted(Path(root).glob("*/trial_*/level_*")) + sorted(Path(root).glob("*/trial_*/level_*/control")):
        files = {"masks": store.load_arrays(paths.masks(folder)),
                 "final": store.load_arrays(paths.weights_final(folder)),
                 "metrics": _strip_times(store.read_json(paths.metrics(folder)))}
        store.load_arrays(paths.weights_init(folder))
        out[str(folder.relative_to(root))] = files
    return out


@pytest.mark.slow
@once
@pytest.mark.timeout(900)
def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path, mnist):
    reference = _start(tmp_path / "a")
    assert reference.wait(timeout=600) == 0, reference.stderr.read().decode()
    expected = _finished_levels(tmp_path / "a")
    assert len(expected) == 4 + 3  # levels 0..3 and three controls

    rng = np.random.default_rng(int(time.time()))
    kills = 0
    while kills < 4:
        proc = _start(tmp_path / "b")
        time.sleep(rng.uniform(2.0, 10.0))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        partial = _finished_levels(tmp_path / "b")  # raises if any level folder is half-written
        assert set(partial) <= set(expected)
    final = _start(tmp_path / "b")
    assert final.wait(timeout=600) == 0, final.stderr.read().decode()
    assert kills >= 1
    got = _finished_levels(tmp_path / "b")
    assert set(got) == set(expected)
    for key in expected:
        for layer, mask in expected[key]["masks"].items():
            np.testing.assert_array_equal(got[key]["masks"][layer], mask)
        for name, value in expected[key]["final"].items():
            np.testing.assert_array_equal(got[key]["final"][name], value)
        assert got[key]["metrics"] == expected[key]["metrics"]
    assert not list((tmp_path / "b").rglob(".*.tmp*"))


def test_resuming_with_another_backend_is_refused(tmp_path, small_mnist):
    store.write_json(paths.metrics(paths.level(tmp_path, 0)), {"backend": "not-this-one", "summary": {},
                                                               "overall_density": 1.0})
    with pytest.raises(ConfigError, match="trained with KERAS_BACKEND=not-this-one; resume it with that backend"):
        lottery.run_trial(LotteryConfig(iterations=5), small_mnist, tmp_path, verbose=0)


# --- branches off a trunk: one trained level 0 for every experiment that shares it --------------
TINY = dict(iterations=20, eval_every=10, levels=1, control=False)


def _counting(monkeypatch):
    """Patch the level trainer: returns the list of (level, networks) it was called with."""
    calls, train = [], lottery.train_jobs

    def counted(jobs, data, level, *args, **kwargs):
        calls.append((level, len(jobs)))
        return train(jobs, data, level, *args, **kwargs)

    monkeypatch.setattr(lottery, "train_jobs", counted)
    return calls


def _same_file(a, b):
    return a.read_bytes() == b.read_bytes() and (os.path.samefile(a, b) or a.stat().st_nlink == 1)


def test_level0_identity_leaves_out_only_what_shapes_later_levels():
    base = LotteryConfig(**TINY)
    later = dict(levels=3, criterion="random", mask1="signed_constant", mask0="freeze_init", control=True,
                 pruning="global", global_rate=0.3, prune_ignore="output", early_stop="val_accuracy")
    for field, value in later.items():
        changed = LotteryConfig(**{**TINY, field: value, **({"pruning": "global"} if field == "global_rate" else {})})
        assert trunk.level0_differences(base, changed) == [], field
        assert trunk.level0_key(base) == trunk.level0_key(changed), field
    assert trunk.level0_differences(base, LotteryConfig(**TINY, rate_fc=0.5, layer_rates="fc1=0.3")) == []
    for field, value in dict(learning_rate=0.01, rewind_iteration=10, batch_size=30, eval_every=5, optimizer="sgd",
                             weight_decay=1e-4, augment=True, validation_size=100, model="conv2").items():
        assert trunk.level0_differences(base, LotteryConfig(**{**TINY, field: value})) == [field], field
    assert trunk.level0_key(base) != trunk.level0_key(LotteryConfig(**TINY, seed=1))
    hparams = {k: v for k, v in json.loads(json.dumps(dataclasses.asdict(base))).items() if k != "seed"}
    assert trunk.level0_identity(hparams) == trunk.level0_identity(base)  # as hparams.json records it


@pytest.mark.slow
def test_trials_that_share_a_level0_train_it_once(tmp_path, small_mnist, monkeypatch):
    calls = _counting(monkeypatch)
    trials = {f"{name}/trial_0": (LotteryConfig(**TINY, criterion=criterion), tmp_path / name / "trial_0")
              for name, criterion in (("a", "large_final"), ("b", "random"))}
    lottery.run_trials(trials, small_mnist, verbose=0)
    assert calls == [(0, 1), (1, 2)]  # level 0 once for both experiments; level 1: one ticket each
    for name in paths.level(tmp_path / "a" / "trial_0", 0).iterdir():
        assert _same_file(name, paths.level(tmp_path / "b" / "trial_0", 0) / name.name), name
    a, b = _level(tmp_path / "a" / "trial_0", 1), _level(tmp_path / "b" / "trial_0", 1)
    assert any(not np.array_equal(a["masks"][k], b["masks"][k]) for k in a["masks"])  # two criteria


@pytest.mark.slow
def test_a_branch_copies_the_finished_level0_and_continues_as_a_fresh_run(tmp_path, small_mnist, monkeypatch):
    lottery.run(data=small_mnist, root=tmp_path / "r1", verbose=0, **TINY)
    (trunk_dir,) = [p for p in (tmp_path / "r1").iterdir() if p.is_dir()]
    calls = _counting(monkeypatch)
    branch = dict(TINY, criterion="random", early_stop="val_accuracy")
    lottery.run(data=small_mnist, root=tmp_path / "r2", verbose=0, branch_from=trunk_dir, **branch)
    assert calls == [(1, 1)]  # no level 0 trained
    (branch_dir,) = [p for p in (tmp_path / "r2").iterdir() if p.is_dir()]
    ours, theirs = paths.level(branch_dir / "trial_0", 0), paths.level(trunk_dir / "trial_0", 0)
    for name in ("weights_init.h5", "weights_final.h5", "masks.h5", "model.keras"):
        assert _same_file(ours / name, theirs / name)
    metrics = store.read_json(paths.metrics(ours))  # read under the branch's own early stop
    assert metrics["history"] == store.read_json(paths.metrics(theirs))["history"]
    assert metrics["summary"] == early_stop.summarize(metrics["history"], "val_accuracy")

    # A fresh run of the branch given the same level 0 (copied by hand) makes the same level 1.
    fresh = tmp_path / "r3" / branch_dir.name / "trial_0"
    fresh.mkdir(parents=True)
    shutil.copytree(ours, paths.level(fresh, 0))
    lottery.run(data=small_mnist, root=tmp_path / "r3", resume=True, verbose=0, **branch)
    got, want = _level(branch_dir / "trial_0", 1), _level(fresh, 1)
    for layer, mask in want["masks"].items():
        np.testing.assert_array_equal(got["masks"][layer], mask)
    assert load_experiment(branch_dir).summary  # results read it as any experiment

    # Resume and --redo-level 1 build on the copied level 0 like on a trained one.
    lottery.run(data=small_mnist, root=tmp_path / "r2", resume=True, redo_level=1, verbose=0, **branch)
    for layer, mask in want["masks"].items():
        np.testing.assert_array_equal(_level(branch_dir / "trial_0", 1)["masks"][layer], mask)
    assert calls == [(1, 1), (1, 1), (1, 1)]

    # Under the same root a new criterion shares the trunk's level 0 without being told; a change to a
    # level-0 field does not.
    shared = dict(TINY, criterion="magnitude_increase", levels=0)
    lottery.run(data=small_mnist, root=tmp_path / "r1", verbose=0, **shared)
    assert calls[-1] == (1, 1)
    trunks = trunk.Trunks.under(tmp_path / "r1")
    config = recipes.resolve(runs.load_data(LotteryConfig(**TINY), small_mnist)[1], small_mnist)
    config = identity.identify(config, build("fc", small_mnist.input_shape, small_mnist.num_classes), small_mnist)
    assert trunks.find(config, tmp_path / "elsewhere" / "trial_0") == theirs
    for field, value in (("learning_rate", 0.5), ("rewind_iteration", 10), ("seed", 1)):
        other = dataclasses.replace(config, **{field: value})
        assert trunks.find(other, tmp_path / "elsewhere" / f"trial_{other.seed}") is None, field


@pytest.mark.slow
def test_branch_from_with_another_level0_is_refused_in_one_line(tmp_path, small_mnist):
    lottery.run(data=small_mnist, root=tmp_path / "r1", verbose=0, **dict(TINY, levels=0))
    (trunk_dir,) = [p for p in (tmp_path / "r1").iterdir() if p.is_dir()]
    for bad, named in ((dict(learning_rate=0.5), "learning_rate (0.0012 there, 0.5 here)"),
                       (dict(iterations=30, eval_every=5), "eval_every (10 there, 5 here), iterations (20 there, 30")):
        with pytest.raises(ConfigError) as err:
            lottery.run(data=small_mnist, root=tmp_path / "r2", verbose=0, branch_from=trunk_dir, **{**TINY, **bad})
        assert named in str(err.value) and "\n" not in str(err.value), str(err.value)
    with pytest.raises(ConfigError, match="not a lottery experiment folder"):
        lottery.run(data=small_mnist, root=tmp_path / "r2", verbose=0, branch_from=tmp_path, **TINY)
    with pytest.raises(ConfigError, match="no finished level 0 for seed"):
        lottery.run(data=small_mnist, root=tmp_path / "r2", verbose=0, branch_from=trunk_dir, seed=5, **TINY)
    assert not (tmp_path / "r2").exists()
    from supermask.lottery.__main__ import build_parser
    assert build_parser().parse_args(["--branch-from", str(trunk_dir)]).branch_from == str(trunk_dir)
