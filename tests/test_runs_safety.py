"""Run folders and experiments under bad inputs, concurrency and faults.

Experiment identity (resolved hyperparameters), one process per trial (locks), run folders
written as one unit, output checks before any work, damaged levels, one-line errors, full
disks and read-only folders, and ``--help`` listing every valid choice.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from supermask import recipes
from supermask import lottery, paths, store, train_supermask
from supermask import train as train_lib
from supermask.train import __main__ as train_cli
from supermask.train_supermask import __main__ as supermask_cli
from supermask.lottery import __main__ as lottery_cli
from supermask.cli import run_main
from supermask.settings import LotteryConfig, SupermaskConfig
from supermask.errors import SupermaskError
from tests.conftest import once, shared_data_dir

REPO = Path(__file__).resolve().parents[1]


def mnist_dir():
    return str(shared_data_dir() / "mnist")


def python_m(module, *args, **kwargs):
    """Start ``python -m module args`` from the repository with this backend."""
    return subprocess.Popen([sys.executable, "-m", module, *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}, **kwargs)


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def error_lines(err):
    """The lines a failed command printed to stderr, less the backends' own log noise."""
    return [line for line in err.splitlines()
            if line.strip() and not line.startswith(("WARNING: All log messages", "I0000", "W0000", "E0000"))]


def cli_error(main, argv, capsys):
    """Run a CLI main in-process; return its single error line (exit status 2 asserted)."""
    with pytest.raises(SystemExit) as exc:
        run_main(main, [str(a) for a in argv])
    assert exc.value.code == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# --- experiment identity --------------------------------------------------------------------------


@pytest.mark.slow
def test_spelled_out_defaults_reuse_the_folder_and_hparams_are_resolved(tmp_path, mnist, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_cli.main(["--epochs", "0.02", "--eval-every", "9", "--data-dir", mnist_dir(), "--quiet"])
    (run,) = [p for p in (tmp_path / "runs" / "train").iterdir() if p.is_dir()]
    hparams = json.loads(paths.hparams(run).read_text())
    assert (hparams["iterations"], hparams["epochs"], hparams["batch_size"], hparams["learning_rate"]) == \
        (18, None, 60, 1.2e-3)  # 0.02 epochs of 55 000 images at batch 60
    message = cli_error(train_cli.main, ["--iterations", "18", "--batch-size", "60", "--learning-rate", "0.0012",
                                         "--eval-every", "9", "--data-dir", mnist_dir(), "--quiet"], capsys)
    assert f"runs/train/{run.name} already exists and is not empty. Pass --overwrite" in message
    assert [p.name for p in (tmp_path / "runs" / "train").iterdir() if p.is_dir()] == [run.name]


@pytest.mark.slow
@once
def test_lottery_spellings_share_an_experiment_and_resume_says_when_nothing_finished(tmp_path, mnist, capsys):
    root = tmp_path / "root"
    lottery.run(LotteryConfig(epochs=0.02, eval_every=9, levels=0, control=False), root,
                data_dir=mnist_dir(), resume=True, verbose=1)
    assert "Nothing to resume yet: no level of this experiment has finished. Starting it." in capsys.readouterr().out
    # The same experiment, defaults spelled out, one level further: resumes it.
    lottery.run(LotteryConfig(iterations=18, batch_size=60, learning_rate=1.2e-3, rate_fc=0.2, rate_output=0.1,
                              eval_every=9, levels=1, control=False), root, data_dir=mnist_dir(), resume=True,
                verbose=1)
    out = capsys.readouterr().out
    assert "Level 0: already finished, skipping" in out and "Nothing to resume" not in out
    (experiment,) = [p for p in root.iterdir() if p.is_dir()]
    assert sorted(p.name for p in paths.trial(experiment, 0).glob("level_*")) == ["level_0", "level_1"]
    hparams = json.loads(paths.hparams(experiment).read_text())
    assert (hparams["iterations"], hparams["batch_size"], hparams["learning_rate"], hparams["rate_fc"],
            hparams["rate_output"], hparams["rate_conv"], hparams["epochs"]) == (18, 60, 1.2e-3, 0.2, 0.1, None, None)


# --- one process per trial ------------------------------------------------------------------------

HOLD = """
import sys, time
from supermask import store
with store.exclusive_lock(sys.argv[1], "trial"):
    print("locked", flush=True)
    time.sleep(120)
"""


def _hold_lock(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.slow
@once
def test_a_second_process_cannot_touch_a_running_trial_and_kill_9_frees_it(tmp_path, small_mnist):
    config = recipes.resolve(LotteryConfig(iterations=20, eval_every=10, levels=1, control=False), len(small_mnist.x_train))
    trial = tmp_path / "trial_0"
    trial.mkdir()
    in_progress = trial / ".level_1.abc123.tmp"  # the first process's level being built
    in_progress.mkdir()
    (in_progress / "weights_init.h5").write_bytes(b"being written")
    holder = _hold_lock(paths.lock(trial))
    try:
        with pytest.raises(store.LockedError, match=rf"Trial {trial} is in use by another process \(PID {holder.pid}\)"):
            lottery.run_trial(config, small_mnist, trial, verbose=0)
        assert in_progress.is_dir() and not (trial / "level_0").exists()  # nothing deleted, nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    rows = lottery.run_trial(config, small_mnist, trial, verbose=0)  # kill -9 left no stale lock
    assert [r["level"] for r in rows] == [0, 1] and not in_progress.exists()


@pytest.mark.slow
@once
@pytest.mark.timeout(600)
def test_two_fresh_starts_at_the_same_moment_leave_one_intact_experiment(tmp_path, mnist):
    args = ["--iterations", "60", "--eval-every", "30", "--levels", "1", "--data-dir", mnist_dir(),
            "--root", tmp_path, "--quiet"]
    procs = [python_m("supermask.lottery", *args) for _ in range(2)]
    results = [finish(p) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    # Normally one runs and the other stops at the lock (or, if it came late, at the finished
    # levels); a second process that got the lock only after the first had finished finds
    # nothing left to do and exits 0, which is harmless too.
    assert codes in ([0, 2], [0, 0]), results
    for _, _, err in [r for r in results if r[0] == 2]:
        lines = error_lines(err)
        assert len(lines) == 1 and ("is in use by another process (PID" in lines[0]
                                    or "already has finished levels" in lines[0]), lines
    (experiment,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    for folder in [paths.level(paths.trial(experiment, 0), L) for L in (0, 1)]:
        for run in (folder, paths.control(folder) if folder.name != "level_0" else folder):
            for fn in (paths.weights_init, paths.weights_final, paths.masks):
                store.load_arrays(fn(run))
            store.read_json(paths.metrics(run))["summary"]
    assert not list(tmp_path.rglob(".*.tmp*"))


# --- a run folder is written as one unit ----------------------------------------------------------


@pytest.mark.slow
@once
def test_overwrite_replaces_the_whole_folder_and_a_kill_while_saving_keeps_the_old_one(tmp_path, mnist):
    out = tmp_path / "run"
    base = ["--iterations", "6", "--eval-every", "3", "--data-dir", mnist_dir(), "--out", out, "--quiet"]
    assert finish(python_m("supermask.train", *base))[0] == 0
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    # A run killed (SIGKILL) in the middle of saving its folder leaves the old folder whole.
    killer = ("import os, signal, sys\nfrom supermask import store\nfrom supermask.train import __main__ as train\n"
              "real = store.save_model\n"
              "def save_then_die(path, model):\n    real(path, model)\n    os.kill(os.getpid(), signal.SIGKILL)\n"
              "store.save_model = save_then_die\n"
              "train.main(sys.argv[1:])\n")
    proc = subprocess.run([sys.executable, "-c", killer, *map(str, base), "--seed", "5", "--overwrite"], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old
    assert list(tmp_path.glob(".run.*.tmp"))  # the killed run's half-built folder, beside it
    (out / "stray.txt").write_text("from an older run")
    assert finish(python_m("supermask.train", *base, "--seed", "7", "--overwrite"))[0] == 0
    assert json.loads(paths.hparams(out).read_text())["seed"] == 7
    assert store.read_json(paths.metrics(out))["config_hash"] != json.loads(old["metrics.json"])["config_hash"]
    assert not (out / "stray.txt").exists()  # replaced whole, not file by file
    assert not list(tmp_path.glob(".run.*.tmp"))  # the next run on that folder cleaned up


def test_atomic_dir_replace_keeps_the_old_folder_on_failure(tmp_path):
    with store.atomic_dir(tmp_path / "run") as tmp:
        (tmp / "a.json").write_text("old")
    with pytest.raises(RuntimeError), store.atomic_dir(tmp_path / "run", replace=True) as tmp:
        (tmp / "a.json").write_text("new")
        raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["run"] and (tmp_path / "run" / "a.json").read_text() == "old"
    with store.atomic_dir(tmp_path / "run", replace=True) as tmp:
        (tmp / "b.json").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["b.json"]


# --- the output location is checked before any work -----------------------------------------------


def test_bad_output_locations_fail_before_training(tmp_path, mnist, capsys, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    trained = []
    monkeypatch.setattr(train_lib, "train_model", lambda *a, **k: trained.append(1))
    for out, expected in [(a_file, f"Cannot use {a_file} as the output folder: it is a file"),
                          (a_file / "run", f"it lies under the file {a_file}")]:
        message = cli_error(train_cli.main, ["--iterations", "5", "--out", out, "--data-dir", mnist_dir()], capsys)
        assert expected in message
    message = cli_error(lottery_cli.main, ["--iterations", "5", "--root", a_file / "x", "--data-dir", mnist_dir()], capsys)
    assert "lies under the file" in message

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store.tempfile, "mkstemp", refuse)  # a folder this user cannot write to
    message = cli_error(train_cli.main, ["--iterations", "5", "--out", tmp_path / "ro" / "run",
                                         "--data-dir", mnist_dir()], capsys)
    assert f"{tmp_path} is not writable (permission denied)" in message
    assert not trained and not (tmp_path / "ro").exists()


def test_export_destination_is_checked_before_loading_the_run(tmp_path, capsys):
    pytest.importorskip("onnx")
    from supermask.export import __main__ as export_cli

    (tmp_path / "file").write_text("x")
    message = cli_error(export_cli.main, [tmp_path / "no_such_run", "--out", tmp_path / "file" / "t.onnx"], capsys)
    assert f"Cannot use {tmp_path / 'file'} as the folder of the ONNX file: it is a file" in message
    message = cli_error(export_cli.main, [tmp_path / "no_such_run", "--out", tmp_path / "file" / "a" / "t.onnx"],
                        capsys)
    assert f"lies under the file {tmp_path / 'file'}" in message


# --- damaged levels ----------------------------------------------------------------------------


@pytest.mark.slow
@once
def test_a_damaged_level_names_the_folder_and_redo_level_recovers(tmp_path, small_mnist):
    config = recipes.resolve(LotteryConfig(iterations=20, eval_every=10, levels=2), len(small_mnist.x_train))
    trial = tmp_path / "trial_0"
    lottery.run_trial(config, small_mnist, trial, verbose=0)
    level1 = paths.level(trial, 1)
    before = {(f, L): store.load_arrays(getattr(paths, f)(paths.level(trial, L)))
              for f in ("masks", "weights_final") for L in (1, 2)}
    paths.metrics(paths.control(level1)).write_text("{ truncated")
    with pytest.raises(SupermaskError) as exc:
        lottery.run_trial(config, small_mnist, trial, verbose=0)
    assert f"The finished level folder {level1} is damaged: rerun with --redo-level 1" in str(exc.value)
    paths.metrics(paths.control(level1)).unlink()  # deleting the file is no dead end either
    with pytest.raises(SupermaskError, match=r"Missing file .*--redo-level 1"):
        lottery.run_trial(config, small_mnist, trial, verbose=0)
    rows = lottery.run_trial(config, small_mnist, trial, verbose=0, redo_level=1)
    assert [r["level"] for r in rows] == [0, 1, 2]
    for f in ("masks", "weights_final"):
        for L in (1, 2):
            after = store.load_arrays(getattr(paths, f)(paths.level(trial, L)))
            for key, value in before[f, L].items():
                np.testing.assert_array_equal(after[key], value)


# --- one clear line for bad input ------------------------------------------------------------------


@pytest.mark.parametrize("module", [train_cli, lottery_cli, supermask_cli])
@pytest.mark.parametrize("flags, expected", [
    (["--seed", "-1"], "seed must be an integer in [0, 4294967295]"),
    (["--seed", str(2**32)], "seed must be an integer in [0, 4294967295]"),
    (["--epochs", "inf"], "epochs must be a finite number > 0. Received: epochs=inf"),
    (["--epochs", "nan"], "epochs must be a finite number > 0. Received: epochs=nan"),
    (["--learning-rate", "inf"], "learning_rate must be a finite number > 0"),
])
def test_bad_numbers_are_one_line(module, flags, expected, tmp_path, capsys):
    out = ["--root", tmp_path / "r"] if module is lottery_cli else ["--out", tmp_path / "r"]
    assert expected in cli_error(module.main, [*flags, *out], capsys)
    assert not (tmp_path / "r").exists()


def test_the_largest_seed_trains_on_this_backend(small_mnist):
    from supermask.models import build as build_model
    from supermask.models import supermask_layers
    from supermask.seeds import derive_seed
    from supermask.train import compile_model, make_optimizer, train_model

    assert derive_seed(2_147_482, 647) == 2_147_482_647  # the historical seed * 1000 + index
    seeds = {derive_seed(2**32 - 1, i) for i in range(600)}
    assert len(seeds) == 600 and all(0 < s < 2**31 for s in seeds)
    keras.backend.clear_session()
    model = build_model("fc", (28, 28, 1), seed=2**32 - 1)
    compile_model(model, make_optimizer(1e-3))
    keras.utils.set_random_seed(2**32 - 1)
    result = train_model(model, small_mnist, iterations=4, batch_size=60, seed=2**32 - 1, eval_every=2, verbose=0)
    assert result.history[-1]["test_accuracy"] is not None
    sm = train_supermask.build(recipes.resolve(SupermaskConfig(seed=2**32 - 1), 55_000), (28, 28, 1))
    assert all(0 < layer.seed < 2**31 for layer in supermask_layers(sm).values())


def test_trial_seeds_past_the_range_are_refused(tmp_path, capsys):
    message = cli_error(lottery_cli.main, ["--seed", str(2**32 - 1), "--trials", "2", "--root", tmp_path], capsys)
    assert "trial seeds 4294967295 .. 4294967296 must stay <= 4294967295" in message


# --- full disks and read-only folders (real file systems, where this user may mount one) ----------------


def _in_small_fs(where, size, command, read_only=False):
    """Run ``command`` (argv) with a fresh tmpfs of ``size`` mounted at where/fs, in a private
    mount namespace (``unshare -m``), so the mount vanishes with the process."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    fs = where / "fs"
    fs.mkdir(parents=True)
    options = f"size={size}" + (",ro" if read_only else "")
    script = 'mount -t tmpfs -o "$1" tmpfs "$2" || exit 99; shift 2; exec "$@"'
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", options, str(fs), *map(str, command)],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode == 99 or "unshare failed" in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[:200]}")
    return proc, fs


@pytest.mark.slow
@once
def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path, mnist):
    base = ["--iterations", "4", "--eval-every", "2", "--data-dir", mnist_dir(), "--quiet"]
    # train: the 1 MB weight files do not fit in 256 KiB.
    script = ("cd \"$0\" && PYTHONPATH=" + str(REPO) + " " + sys.executable + ' -m supermask.train "$@"; rc=$?; '
              "find fs -mindepth 1 | sort; exit $rc")
    proc, fs = _in_small_fs(tmp_path, "256k", ["sh", "-c", script, tmp_path, *base, "--out", tmp_path / "fs" / "run"])
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "Could not write" in lines[0] and "the disk is full" in lines[0]
    assert proc.stdout.strip().splitlines() == ["fs/.run.lock"]  # no run folder, no temporary
    # lottery: level 0 cannot be saved; no level folder and no temporary remain.
    script = ("cd \"$0\" && PYTHONPATH=" + str(REPO) + " " + sys.executable + ' -m supermask.lottery "$@"; rc=$?; '
              "find fs -name 'level_*' -o -name '*.tmp*' | sort; exit $rc")
    proc, _ = _in_small_fs(tmp_path / "lot", "256k", ["sh", "-c", script, tmp_path / "lot", *base, "--levels",
                                                      "1", "--root", tmp_path / "lot" / "fs"])
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1 and "the disk is full" in lines[0], proc.stderr
    assert proc.stdout.strip() == ""


@pytest.mark.slow
@once
def test_a_full_disk_during_export_and_read_only_folders_are_one_line(tmp_path, mnist):
    pytest.importorskip("onnx")
    run = tmp_path / "run"
    assert finish(python_m("supermask.train", "--iterations", "4", "--eval-every", "2", "--data-dir",
                           mnist_dir(), "--out", run, "--quiet"))[0] == 0
    full = tmp_path / "full"
    script = ("cd \"$0\" && PYTHONPATH=" + str(REPO) + " " + sys.executable + ' -m supermask.export "$@"; rc=$?; '
              "find fs -mindepth 1 | sort; exit $rc")
    proc, _ = _in_small_fs(full, "128k", ["sh", "-c", script, full, run, "--out", full / "fs" / "t.onnx",
                                          "--storage", "dense", "--quiet"])
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1 and "the disk is full" in lines[0], proc.stderr
    assert proc.stdout.strip() == ""  # no ONNX file, no temporary
    ro = tmp_path / "ro"
    proc, _ = _in_small_fs(ro, "1m", [sys.executable, "-m", "supermask.export", run, "--out",
                                      ro / "fs" / "t.onnx"], read_only=True)
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1 and "is not writable (the file system is read-only)" in lines[0]
    proc, _ = _in_small_fs(tmp_path / "ro2", "1m", [sys.executable, "-m", "supermask.train", "--iterations", "50000",
                                                    "--data-dir", mnist_dir(), "--out", tmp_path / "ro2" / "fs" / "run"],
                           read_only=True)
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1 and "read-only" in lines[0], proc.stderr
    assert "Training" not in proc.stdout  # refused before any training


# --- --help lists every valid choice; accuracies are printed for people ----------------------------


def test_help_lists_every_valid_choice():
    from supermask import check
    from supermask.init_sweep import __main__ as init_sweep_cli
    from supermask.actions import MASK0_ACTIONS, MASK1_ACTIONS
    from supermask.criteria import CRITERIA
    from supermask.data import DATASETS
    from supermask.models import MODELS

    def help_of(module):
        return " ".join(module.build_parser().format_help().split())

    for module in (train_cli, lottery_cli, supermask_cli):
        text = help_of(module)
        for name in (*MODELS, *DATASETS):
            assert name in text, (module.__name__, name)
        assert "see criteria" not in text
    lot = help_of(lottery_cli)
    for name in (*CRITERIA, *MASK1_ACTIONS, *MASK0_ACTIONS):
        assert name in lot, name
    sm = help_of(supermask_cli)
    for name in ("bernoulli", "edge-popup", "init", "signed_constant", "deterministic", "sampled", "sgd", "adam",
                 "constant", "cosine"):
        assert name in sm, name
    sweep = help_of(init_sweep_cli)
    for name in (*CRITERIA, *MASK1_ACTIONS):
        assert name in sweep, name
    assert all(name in help_of(check) for name in DATASETS)


def test_choices_accept_the_documented_spellings_and_reject_others(capsys):
    args = lottery_cli.build_parser().parse_args(["--dataset", "fashion-mnist", "--criterion", "movement"])
    assert (args.dataset, args.criterion) == ("fashion_mnist", "movement")
    assert supermask_cli.build_parser().parse_args(["--learner", "edge_popup"]).learner == "edge-popup"
    with pytest.raises(SystemExit) as exc:
        lottery_cli.build_parser().parse_args(["--criterion", "largest"])
    assert exc.value.code == 2 and "Unknown criterion 'largest'. Valid criteria: large_final" in capsys.readouterr().err


@pytest.mark.slow
def test_printed_accuracies_are_rounded_percentages(tmp_path, mnist, capsys):
    train_cli.main(["--iterations", "4", "--eval-every", "2", "--data-dir", mnist_dir(), "--out", str(tmp_path / "r")])
    done = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Done in")]
    assert len(done) == 1
    import re

    assert re.search(r"final test accuracy \d{1,3}\.\d\d %; early stop \(min\. val\. loss\) at iteration \d+: "
                     r"test accuracy \d{1,3}\.\d\d %", done[0])
    assert not re.search(r"\d\.\d{5,}", done[0]), done[0]
