"""supermask.sweep: grids of experiments on the local executor and on a local Ray.

The sweep only orchestrates library calls tested on every backend elsewhere, so the grids run
on JAX alone; spec parsing and grid expansion run everywhere.
"""

import csv
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import keras
import numpy as np
import pytest

from supermask import instability, lottery, paths, store, sweep, train
from supermask.sweep import __main__ as sweep_cli
from supermask.errors import ConfigError
from supermask.settings import LotteryConfig, TrainConfig

on_jax = pytest.mark.skipif(keras.backend.backend() != "jax", reason="orchestration only: run once, on JAX")
ROOT = Path(__file__).resolve().parents[1]

SPEC = """
kind = "lottery"
[fixed]
model = "fc"
iterations = 20
eval_every = 10
levels = 1
trials = 2
[grid]
criterion = ["large_final", "random", "no_such_criterion"]
"""


def write_spec(folder, text=SPEC, name="grid"):
    path = Path(folder) / f"{name}.toml"
    path.write_text(text)
    return path


def test_grid_expands_trials_into_seeds_and_groups_them(tmp_path):
    spec = sweep.load_spec(write_spec(tmp_path), root=tmp_path / "out")
    points = sweep.expand(spec)
    assert [(p.fields["criterion"], p.fields["seed"]) for p in points] == [
        ("large_final", 0), ("large_final", 1), ("random", 0), ("random", 1),
        ("no_such_criterion", 0), ("no_such_criterion", 1)]
    assert all(p.error is None for p in points[:4])
    assert "Unknown mask criterion" in points[4].error or "criterion" in points[4].error
    tasks = sweep.tasks(spec, points)  # same architecture and budget: one program, level by level,
    assert [[(p.fields["criterion"], p.config.seed) for p in t] for t in tasks] == [  # one level 0 side by side
        [("large_final", 0), ("random", 0), ("large_final", 1), ("random", 1)]]
    assert [len(t) for t in sweep.tasks(spec, points, per_task=3)] == [3, 1]
    folders = {sweep.point_folder(spec, p) for p in points[:4]}
    assert len(folders) == 4 and all(f.name in ("trial_0", "trial_1") for f in folders)


def test_a_sweep_has_at_least_as_many_tasks_as_workers(tmp_path):
    spec = sweep.load_spec(write_spec(tmp_path, SPEC.replace(', "no_such_criterion"', ', "movement", "magnitude_increase"')))
    points = sweep.expand(spec)  # 4 criteria x 2 seeds, one architecture and budget
    assert len(sweep.tasks(spec, points)) == 1

    def seeds_and_sizes(tasks):
        return [({p.config.seed for p in t}, len(t)) for t in tasks]

    # Split evenly; with two workers each task holds one seed's points: one level 0 each.
    assert seeds_and_sizes(sweep.tasks(spec, points, workers=2)) == [({0}, 4), ({1}, 4)]
    assert [len(t) for t in sweep.tasks(spec, points, workers=3)] == [3, 3, 2]
    assert [len(t) for t in sweep.tasks(spec, points, workers=20)] == [1] * 8  # never more tasks than points
    assert [len(t) for t in sweep.tasks(spec, points, per_task=3, workers=2)] == [3, 3, 2]  # an upper bound
    assert [len(t) for t in sweep.tasks(spec, points, per_task=3, workers=5)] == [2, 1, 2, 1, 2]
    for workers in range(1, 10):
        tasks = sweep.tasks(spec, points, workers=workers)
        assert len(tasks) >= min(workers, 8) and sorted(id(p) for t in tasks for p in t) == sorted(map(id, points))
    supermask = sweep.load_spec(write_spec(tmp_path, 'kind = "train_supermask"\n[fixed]\nepochs = 1\ntrials = 5\n'))
    runs = sweep.tasks(supermask, sweep.expand(supermask), workers=2)  # consecutive seeds, split in two runs
    assert [[p.config.seed for p in t] for t in runs] == [[0, 1, 2], [3, 4]]


@pytest.mark.parametrize("text, message", [
    ("kind = 'nope'", "kind must be one of"),
    ("kind = 'lottery'\n[grid]\ncriterion = 'large_final'", "must be a non-empty list"),
    ("kind = 'lottery'\n[fixed]\nlevels = 1\n[grid]\nlevels = [1, 2]", "in both [fixed] and [grid]"),
    ("kind = 'lottery'\n[grid]\ncritrion = ['random']", "unknown field(s) critrion"),
    ("kind = 'lottery'\nextra = 1", "unknown top-level key"),
    ("kind = lottery", "not valid TOML"),
])
def test_bad_specs_are_one_clear_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        sweep.load_spec(write_spec(tmp_path, text))


def test_experiments_run_together_must_share_architecture_and_budget(tmp_path):
    with pytest.raises(ConfigError, match="differ in iterations"):
        lottery.run_many([LotteryConfig(iterations=10), LotteryConfig(iterations=20, criterion="random")], tmp_path)
    assert not any(tmp_path.iterdir())


def test_missing_spec(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read the sweep spec"):
        sweep.load_spec(tmp_path / "none.toml")


def run(spec_path, root, *extra):
    """The sweep command in a fresh process (as a user runs it): (exit status, output)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-m", "supermask.sweep", str(spec_path), "--root", str(root), *extra],
                          capture_output=True, text=True, timeout=900, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def level_files(root):
    return sorted(p for p in Path(root).rglob("metrics.json") if "trial_" in str(p))


def outcome(root):
    """Every point's masks and summary metrics, keyed by experiment hash / trial / level."""
    out = {}
    for metrics in level_files(root):
        folder = metrics.parent
        key = str(folder.relative_to(root))
        summary = json.loads(metrics.read_text())["summary"]
        masks = {k: v for k, v in store.load_arrays(paths.masks(folder)).items()}
        out[key] = (summary, masks)
    return out


@pytest.fixture(scope="module")
def local_grid(tmp_path_factory, mnist):
    base = tmp_path_factory.mktemp("sweep_local")
    spec = write_spec(base)
    code, said = run(spec, base / "root")
    return spec, base / "root", code, said


@pytest.mark.slow
@on_jax
def test_local_grid_runs_reports_failure_and_resumes(local_grid):
    spec, root, code, said = local_grid
    assert code == 1, said  # the invalid points are failures
    assert "Done 4, skipped (finished before) 0, failed 2 of 6 points." in said
    assert "FAILED criterion=no_such_criterion, seed=0" in said and "FAILED criterion=no_such_criterion, seed=1" in said
    experiments = sorted((root / "lottery").iterdir())
    assert len(experiments) == 2  # one experiment per valid criterion, each with both seeds exactly once
    for exp in experiments:
        assert sorted(p.name for p in exp.glob("trial_*")) == ["trial_0", "trial_1"]
        assert all(paths.level(exp / f"trial_{s}", 1).is_dir() for s in (0, 1))
    for seed in (0, 1):  # the two criteria share one trained level 0 per seed (hard links)
        a, b = (paths.weights_final(paths.level(exp / f"trial_{seed}", 0)) for exp in experiments)
        assert os.path.samefile(a, b) or a.read_bytes() == b.read_bytes()
    logs = "".join(p.read_text() for p in (root / ".sweep" / "logs").glob("*.log"))
    assert "Level 0/1: 100.0% of weights remaining (20 iterations, 2 networks trained together: " in logs
    assert "shared with 2 more trial(s)" in logs
    with open(root / "grid.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 2  # 4 points x levels 0, 1
    assert {r["criterion"] for r in rows} == {"large_final", "random"}
    assert {r["folder"] for r in rows} == {str(e) for e in experiments}  # each point's experiment folder
    spec_ = sweep.load_spec(spec, root=root)
    for p in sweep.expand(spec_)[:4]:  # one line per finished point: what it was and where it went
        assert f"done: {p.label(list(spec_.grid))} -> {sweep.point_folder(spec_, p)}; 4 points trained together" \
            in said, said
    assert (root / "grid_report" / "accuracy_vs_remaining.png").is_file()

    # A second run does nothing; deleting one point recomputes only that point (in a copy: the
    # recomputed point trains alone, not batched, so it may differ by float rounding from the
    # original, which the Ray test compares against).
    shutil.copytree(root, root.with_name("copy"))
    root = root.with_name("copy")
    experiments = sorted((root / "lottery").iterdir())
    before = {p: p.stat().st_mtime_ns for p in level_files(root)}
    code, said = run(spec, root)
    assert "skipped (finished before) 4" in said and "Done 0" in said
    assert {p: p.stat().st_mtime_ns for p in level_files(root)} == before
    victim = experiments[1] / "trial_1"
    store.remove_dir(victim)
    code, said = run(spec, root, "--dry-run")
    assert code == 0 and said.count(": to run") == 1 and "3 finished, 1 to run, 2 invalid" in said
    code, said = run(spec, root)
    assert "Done 1, skipped (finished before) 3" in said
    after = {p: p.stat().st_mtime_ns for p in level_files(root)}
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed and all(str(victim) in str(p) for p in changed)


@pytest.mark.slow
@on_jax
def test_ray_grid_gives_the_local_results(local_grid, tmp_path):
    ray = pytest.importorskip("ray")
    spec, local_root, _, _ = local_grid
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {k: os.environ[k] for k in ("KERAS_BACKEND", "SUPERMASK_DATA") if k in os.environ}})
    try:
        loaded = sweep.load_spec(spec, root=tmp_path / "ray_root")
        points = sweep.run_sweep(loaded, executor="ray", say=lambda *_: None)
        assert sorted(p.status for p in points) == ["done"] * 4 + ["failed"] * 2
        again = sweep.run_sweep(loaded, executor="ray", say=lambda *_: None)
        assert sorted(p.status for p in again) == ["failed"] * 2 + ["skipped"] * 4
    finally:
        ray.shutdown()
    ours, theirs = outcome(tmp_path / "ray_root"), outcome(local_root)
    assert ours.keys() == theirs.keys() and len(ours) == 4 * 3  # levels 0, 1 and the control of 1
    for key in ours:
        (s1, m1), (s2, m2) = ours[key], theirs[key]
        assert s1 == s2, key
        assert m1.keys() == m2.keys() and all(np.array_equal(m1[k], m2[k]) for k in m1), key


@pytest.mark.slow
@on_jax
def test_a_failing_task_is_reported_with_its_log_and_others_finish(tmp_path, mnist):
    trained = tmp_path / "trained"
    train.run(TrainConfig(iterations=20, eval_every=10), out=trained, verbose=0)
    spec = write_spec(tmp_path, f"""
kind = "init_sweep"
[fixed]
criteria = "large_final,random"
powers = "0,2"
max_examples = 500
[grid]
run_dir = ["{trained}", "{tmp_path / 'missing'}"]
""", name="sweeps")
    points = sweep.run_sweep(sweep.load_spec(spec, root=tmp_path / "root"), say=lambda *_: None)
    ok, bad = points
    assert ok.status == "done" and Path(sweep.point_folder(sweep.load_spec(spec, root=tmp_path / "root"), ok)).is_file()
    assert bad.status == "failed" and "missing" in bad.error and bad.log.is_file()
    with open(tmp_path / "root" / "sweeps.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2 * 2  # 2 criteria x 2 powers of the good point


def test_a_second_sweep_of_the_same_spec_refuses(tmp_path):
    spec = sweep.load_spec(write_spec(tmp_path), root=tmp_path / "root")
    with store.exclusive_lock(tmp_path / "root" / ".sweep" / "grid.lock", "held by this test"):
        with pytest.raises(store.LockedError, match=f"The sweep grid under {tmp_path / 'root'} is in use"):
            sweep.run_sweep(spec, say=lambda *_: None)
    assert not (tmp_path / "root" / "lottery").exists()  # nothing started


# --- grid size: counted without expanding; too large to run is refused, a dry run stays bounded ---

MILLION = f"""
kind = "lottery"
[fixed]
model = "fc"
levels = 1
[grid]
seed = {list(range(100))}
iterations = {list(range(100, 200))}
eval_every = {list(range(1, 101))}
"""


def test_count_points_multiplies_the_grid_by_trials(tmp_path):
    spec = sweep.load_spec(write_spec(tmp_path))  # 3 criteria x trials 2
    assert sweep.count_points(spec) == 6 == len(sweep.expand(spec))
    spec = sweep.load_spec(write_spec(tmp_path, "kind = 'lottery'\n[grid]\nmask1 = ['none', 'signed_constant']\n"
                                                "trials = [1, 3, 0]"))
    assert sweep.count_points(spec) == 2 * (1 + 3 + 1)  # an invalid trials value is one invalid point
    points = sweep.expand(spec)  # trials 1 and 3 both name seed 0: it runs once per mask1
    assert len(points) == 8 and sum(p.error is not None for p in points) == 2
    assert sweep.count_points(sweep.load_spec(write_spec(tmp_path, MILLION))) == 10**6


def test_dry_run_lists_at_most_the_first_points_then_counts(tmp_path):
    spec = sweep.load_spec(write_spec(tmp_path), root=tmp_path / "root")
    said = []
    listed = sweep.dry_run_sweep(spec, said.append, shown=2)
    assert [p.fields["criterion"] for p in listed] == ["large_final", "large_final"]
    assert len(said) == 4 and said[0].startswith("criterion=large_final, seed=0: to run (")
    assert said[2:] == ["... and 4 more points.", "6 points: 0 finished, 4 to run, 2 invalid"]
    assert not (tmp_path / "root").exists()


def test_a_million_point_grid_dry_run_is_quick_and_bounded(tmp_path, capsys):
    spec = write_spec(tmp_path, MILLION)
    start = time.monotonic()
    listed = sweep_cli.main([str(spec), "--root", str(tmp_path / "root"), "--dry-run"])
    took = time.monotonic() - start
    lines = capsys.readouterr().out.splitlines()
    assert took < 20, took  # about 0.1 s: the first 100 points are built, the rest only counted
    assert len(listed) == sweep.DRY_RUN_SHOWN and len(lines) == sweep.DRY_RUN_SHOWN + 2
    assert lines[0].startswith("seed=0, iterations=100, eval_every=1: to run (")
    assert lines[-2] == f"... and {10**6 - sweep.DRY_RUN_SHOWN} more points, not checked."
    assert lines[-1].startswith("1000000 points (grid combinations x trials): more than the 10000 a sweep runs; "
                                "split the grid")
    assert not (tmp_path / "root").exists()


@pytest.mark.slow
def test_a_million_point_grid_is_refused_in_one_line_and_writes_nothing(tmp_path):
    spec_path = write_spec(tmp_path, MILLION)
    spec = sweep.load_spec(spec_path, root=tmp_path / "root")
    message = ("The sweep grid has 1000000 points (grid combinations x trials), more than the 10000 a sweep runs; "
               "split the grid into specs of at most 10000 points each (or move fields from [grid] to [fixed]).")
    for call in (lambda: sweep.expand(spec), lambda: sweep.run_sweep(spec, say=lambda *_: None),
                 lambda: sweep_cli.main([str(spec_path), "--root", str(tmp_path / "root")])):
        with pytest.raises(ConfigError) as err:
            call()
        assert str(err.value) == message
    code, said = run(spec_path, tmp_path / "root")  # the command: one line, exit status 2
    ours = [line for line in said.splitlines() if line.startswith("error") or "1000000" in line]  # not TF's log
    assert code == 2 and ours == [f"error: {message}"] and "Traceback" not in said, said
    assert not (tmp_path / "root").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.toml"]


def test_points_are_expanded_lazily(tmp_path):
    spec = sweep.load_spec(write_spec(tmp_path, MILLION))
    start = time.monotonic()
    first = list(itertools.islice(sweep.iter_points(spec), 3))
    assert time.monotonic() - start < 10
    assert [(p.fields["seed"], p.fields["eval_every"]) for p in first] == [(0, 1), (0, 2), (0, 3)]
    dup = sweep.load_spec(write_spec(tmp_path, SPEC.replace("[grid]", "[grid]\nseed = [0, 1]")))
    points = list(sweep.iter_points(dup))  # seeds 0, 1 and 1, 2 per criterion: seed 1 runs once
    assert sweep.count_points(dup) == 12 and len(points) == 10
    assert sorted((p.fields["criterion"], p.fields["seed"]) for p in points if p.error is None) == [
        ("large_final", 0), ("large_final", 1), ("large_final", 2), ("random", 0), ("random", 1), ("random", 2)]
    assert [p.fields for p in points] == [p.fields for p in sweep.expand(dup)]


@pytest.mark.slow
def test_an_own_model_point_names_the_folder_lottery_writes(tmp_path, monkeypatch, mnist):
    """A builder's folder hash holds its architecture's fingerprint (supermask.identity): the sweep
    predicts it as lottery.run_many writes it, so a finished own-model point is skipped, and a builder
    whose width changed is another point."""
    (tmp_path / "sweep_models.py").write_text(
        "import keras\nWIDTH = 16\n"
        "def net(input_shape, num_classes):\n"
        "    inputs = keras.Input(input_shape)\n"
        "    x = keras.layers.Dense(WIDTH, activation='relu')(keras.layers.Flatten()(inputs))\n"
        "    return keras.Model(inputs, keras.layers.Dense(num_classes, name='logits')(x))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sweep_models", raising=False)
    monkeypatch.setattr(sweep.kinds, "_FINGERPRINTS", {})
    text = 'kind = "lottery"\n[fixed]\nmodel = "sweep_models:net"\niterations = 10\neval_every = 10\nlevels = 0\n' \
           '[grid]\nseed = [0]\n'
    spec = sweep.load_spec(write_spec(tmp_path, text), root=tmp_path / "out")
    (point,) = sweep.expand(spec)
    assert point.error is None and len(point.config.model_fingerprint) == 16
    lottery.run_many([point.config], spec.root / "lottery", data_dir=os.environ["SUPERMASK_DATA"], verbose=0)
    assert sweep.is_finished(spec, point)
    monkeypatch.setattr(sys.modules["sweep_models"], "WIDTH", 32)  # the builder the sweep imported
    monkeypatch.setattr(sweep.kinds, "_FINGERPRINTS", {})
    (wider,) = sweep.expand(spec)
    assert wider.config.model_fingerprint != point.config.model_fingerprint and not sweep.is_finished(spec, wider)


# --- the Kind interface: one registration per kind of run; folders as before it ---------------------

GOLDEN = {  # folders the sweep named before the Kind interface (commit c4880cd): finished points stay found
    "lottery": (SPEC.replace(', "no_such_criterion"', ""),
                ["lottery/4fd304a94bc5/trial_0", "lottery/4fd304a94bc5/trial_1", "lottery/008de6679744/trial_0",
                 "lottery/008de6679744/trial_1"]),
    "train_supermask": ('kind = "train_supermask"\n[fixed]\nepochs = 2\ntrials = 2\n[grid]\n'
                        'learner = ["bernoulli", "edge-popup"]\n',
                        ["train_supermask/8978f6f60199", "train_supermask/37e5c7ab57b3",
                         "train_supermask/a12d19734968", "train_supermask/a68cf12e90e1"]),
    "init_sweep": ('kind = "init_sweep"\n[fixed]\npowers = "0,2"\n[grid]\nrun_dir = ["/supermask-golden/run"]\n'
                   'criteria = ["large_final,random", "all"]\n',
                   ["init_sweep/3763f957564b.csv", "init_sweep/1b132a05bbca.csv"]),
}


@pytest.mark.parametrize("kind", sorted(GOLDEN))
def test_points_keep_their_folders(tmp_path, kind):
    text, folders = GOLDEN[kind]
    spec = sweep.load_spec(write_spec(tmp_path, text), root=Path("/r"))
    assert [str(sweep.point_folder(spec, p).relative_to("/r")) for p in sweep.expand(spec)] == folders


def test_five_kinds_each_one_registration():
    assert list(sweep.KINDS) == ["lottery", "train_supermask", "init_sweep", "instability", "prune_init"]
    assert all(isinstance(k, sweep.Kind) and k.name == name for name, k in sweep.KINDS.items())
    assert [k.trials for k in sweep.KINDS.values()] == [True, True, False, True, False]
    assert {"ks", "bn", "trials"} <= sweep.KINDS["instability"].fields()
    assert {"methods", "imp", "trials"} <= sweep.KINDS["prune_init"].fields()  # its own field: one point, K seeds
    assert "run_dir" in sweep.KINDS["init_sweep"].fields() and "trials" not in sweep.KINDS["init_sweep"].fields()
    assert {"criterion", "trials", "seed"} <= sweep.KINDS["lottery"].fields()


def test_supermask_points_of_consecutive_seeds_are_one_task(tmp_path):
    spec = sweep.load_spec(write_spec(tmp_path, 'kind = "train_supermask"\n[fixed]\nepochs = 1\n[grid]\n'
                                                'seed = [0, 1, 2, 5, 6]\nlearner = ["bernoulli", "edge-popup"]\n'))
    tasks = sweep.tasks(spec, sweep.expand(spec))
    assert [[(p.config.learner, p.config.seed) for p in t] for t in tasks] == [
        [("bernoulli", 0), ("bernoulli", 1), ("bernoulli", 2)], [("bernoulli", 5), ("bernoulli", 6)],
        [("edge-popup", 0), ("edge-popup", 1), ("edge-popup", 2)], [("edge-popup", 5), ("edge-popup", 6)]]
    payload = sweep.task_payload(spec, tasks[0])  # JSON data: the first seed, and how many points
    assert json.loads(json.dumps(payload)) == payload
    assert (payload["kind"], payload["seeds"], len(payload["configs"])) == ("train_supermask", 3, 1)
    assert payload["out"] == str(sweep.point_folder(spec, tasks[0][0]).resolve())


def test_init_sweep_points_are_checked_by_their_settings(tmp_path):
    spec = sweep.load_spec(write_spec(tmp_path, 'kind = "init_sweep"\n[grid]\nrun_dir = ["a"]\n'
                                                'criteria = ["large_final", "huge"]\nmax_examples = [10, 0]\n'))
    points = sweep.expand(spec)
    assert [p.error is None for p in points] == [True, False, False, False]
    assert "Unknown criterion 'huge'" in points[2].error and "max_examples must be an integer > 0" in points[1].error
    assert points[0].config == {"run_dir": str(Path("a").resolve()), "criteria": "large_final", "max_examples": 10}
    missing = sweep.load_spec(write_spec(tmp_path, 'kind = "init_sweep"\n[grid]\nseed = [1]\n'))
    (point,) = sweep.expand(missing)
    assert point.error.startswith("An init_sweep point needs run_dir")
    assert sweep.tasks(spec, points) == [[points[0]]]


@on_jax
def test_the_analysis_specs_load_and_the_comparison_names_the_imp_experiment(tmp_path, monkeypatch):
    """benchmarks/specs: every spec loads; prune_init_fc.toml's imp is the folder imp_fc.toml writes (its hash);
    instability.toml's points share one folder, the one instability.run writes; a prune_init point whose IMP
    experiment does not exist yet is invalid alone, in one line."""
    folder = ROOT / "benchmarks" / "specs"
    specs = {p.stem: sweep.load_spec(p, root=tmp_path) for p in folder.glob("*.toml")}
    assert {"imp_fc", "prune_init_fc", "instability"} <= set(specs)
    imp_spec, pai_spec = (tomllib.loads((folder / f"{n}.toml").read_text()) for n in ("imp_fc", "prune_init_fc"))
    imp = sweep.KINDS["lottery"].build({k: v for k, v in imp_spec["fixed"].items() if k != "trials"})
    assert pai_spec["fixed"]["imp"] == f"{imp_spec['root']}/lottery/{imp.experiment_hash()}"
    points = sweep.expand(specs["instability"])
    assert len(points) == 3 and len({sweep.point_folder(specs["instability"], p) for p in points}) == 1
    assert sweep.point_folder(specs["instability"], points[0]) == \
        instability.folder(tmp_path / "instability", points[0].config)
    monkeypatch.chdir(tmp_path)
    [point] = sweep.expand(specs["prune_init_fc"])
    assert point.error.startswith("imp=runs/pai/lottery/") and "run its lottery sweep or command first" in point.error
