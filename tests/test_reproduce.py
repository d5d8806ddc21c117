"""benchmarks/reproduce.py end to end at a tiny budget: every row it writes equals the mean and
std computed here from the runs' own files, figures exist, a rerun trains nothing, bad input is
one clear error. The script only calls library entry points tested on every backend elsewhere,
so it runs on one backend: JAX for fc/MNIST, PyTorch for the conv rows (the fastest at each here;
a conv2 program takes minutes to compile on a 2-core CPU with XLA or TensorFlow)."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from supermask import paths
from supermask.errors import ConfigError, SupermaskError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import reproduce  # noqa: E402
import reproduce_tables  # noqa: E402
from tests.test_report import own_values  # noqa: E402  (a level's values, read straight from metrics.json)

on_jax = pytest.mark.skipif(keras.backend.backend() != "jax", reason="backend-independent script: run once, on JAX")
on_torch = pytest.mark.skipif(keras.backend.backend() != "torch",
                              reason="backend-independent script: its conv rows run once, on PyTorch")
PNG = b"\x89PNG\r\n\x1a\n"
TINY = reproduce.Budget("tiny", trials=2, iterations=40, levels=3, ablation_levels=3, eval_every=10,
                        criteria=("random",), mask1=("signed_constant",), sweep_powers="0,3",
                        supermask_epochs=0.05, conv_models=())


@pytest.fixture(scope="module")
def done(tmp_path_factory, mnist):
    base = tmp_path_factory.mktemp("reproduce")
    work, out = base / "work", base / "out"
    reproduce.main(["--quick", "--work", str(work), "--out", str(out), "--quiet"], budget=TINY)
    return work, out, (out / "REPRODUCTION.md").read_text()


def table_rows(text, heading):
    """The rows (lists of cells) of the first table after ``heading``."""
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not set(cells[0]) <= {"-", ":", " "}:
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header


def pm(values, scale=100, digits=2):
    values = np.asarray(values, dtype=np.float64)
    return f"{scale * values.mean():.{digits}f} ± {scale * values.std(ddof=1):.{digits}f}"


def only_experiment(work, name):
    (folder,) = [p for p in (work / "lottery" / name).iterdir() if p.is_dir()]
    return folder


@pytest.mark.slow
@on_jax
def test_imp_rows_equal_the_runs_own_numbers(done):
    work, _, text = done
    exp = only_experiment(work, "imp_large_final")
    rows = {r[1]: r for r in table_rows(text, "## 1. Lottery tickets")}
    assert set(rows) == {"0", "3"}  # the reported levels this budget reaches
    assert rows["3"][0] == "51.3"
    for level in (0, 3):
        ticket = own_values(exp, level, "test_accuracy_at_early_stop")
        assert rows[str(level)][2] == pm(ticket)
    control = own_values(exp, 3, "test_accuracy_at_early_stop", control=True)
    ticket = own_values(exp, 3, "test_accuracy_at_early_stop")
    assert rows["3"][3] == pm(control)
    assert rows["3"][4] == pm(np.subtract(ticket, control))
    assert "regresses" not in rows["3"][6] and "higher test accuracy" in rows["3"][6]
    stops = {r[0]: r for r in table_rows(text, "## 2. Early stopping")}
    dense = own_values(exp, 0, "early_stop_iteration")
    assert stops["51.3"][1] == pm(own_values(exp, 3, "early_stop_iteration"), 1, 0)
    assert stops["51.3"][3] == pm(np.divide(own_values(exp, 3, "early_stop_iteration"), dense), 1, 2)


@on_jax
def test_ablation_rows_come_from_their_experiments(done):
    work, _, text = done
    criteria = {r[0]: r for r in table_rows(text, "## 3. Mask criteria")}
    assert criteria["random"][2] == pm(own_values(only_experiment(work, "criterion_random"), 3,
                                                     "test_accuracy_at_early_stop"))
    mask1 = {r[0]: r for r in table_rows(text, "## 4. Mask-1 actions")}
    assert mask1["signed_constant"][1] == "yes" and mask1["random_reinit (the control)"][1] == "no"
    assert mask1["signed_constant"][2] == pm(own_values(only_experiment(work, "mask1_signed_constant"), 3,
                                                           "test_accuracy_at_early_stop"))


@on_jax
def test_init_sweep_and_learned_rows(done):
    work, _, text = done
    best = []
    for seed in (0, 1):
        with open(work / "init_sweep" / "fc_mnist" / f"trial_{seed}.csv") as f:
            rows = [r for r in csv.DictReader(f)
                    if r["criterion"] == "large_final_same_sign" and r["mask1"] == "signed_constant"]
        best.append(max(float(r["accuracy"]) for r in rows))
    sweep = {(r[0], r[1]): r for r in table_rows(text, "## 5. Masks at initialisation")}
    assert sweep[("large_final_same_sign", "signed_constant")][2] == pm(best)
    learned = {r[0]: r for r in table_rows(text, "## 6. Learned supermasks")}
    metrics = [json.loads((work / "supermask" / "fc_bernoulli_dwr" / f"seed_{s}" / "metrics.json").read_text())
               for s in (0, 1)]
    row = learned["Bernoulli + DWR"]
    assert row[2] == "0, 1"
    assert row[3] == pm([m["final"]["sampled"]["test_accuracy_mean"] for m in metrics])
    assert row[4] == pm([m["final"]["deterministic"]["test_accuracy"] for m in metrics])
    assert set(learned) == {"Bernoulli", "Bernoulli + DWR", "edge-popup, k = 0.5"}
    assert "Not run: the tiny budget runs fc/MNIST only" in text


@on_jax
def test_every_figure_linked_exists(done):
    _, out, text = done
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 6
    for link in links:
        assert (out / link).read_bytes().startswith(PNG), link


@pytest.mark.slow
@on_jax
def test_rerun_trains_nothing_and_report_only_reads_back(done, capsys):
    work, out, text = done
    level = paths.metrics(paths.level(only_experiment(work, "imp_large_final") / "trial_0", 3))
    stamp, timings = level.stat().st_mtime_ns, (work / "timings.json").read_text()
    reproduce.main(["--quick", "--work", str(work), "--out", str(out), "--quiet"], budget=TINY)
    assert level.stat().st_mtime_ns == stamp and (work / "timings.json").read_text() == timings
    said = capsys.readouterr().out
    assert "== lottery experiment imp_large_final: already finished" in said
    assert "levels, 2 trials" not in said and "== learned" not in said and "== init sweep" not in said
    reproduce.main(["--quick", "--report-only", "--work", str(work), "--out", str(out)], budget=TINY)
    again = (out / "REPRODUCTION.md").read_text()
    strip = lambda t: t.split("\n", 3)[3]  # the first paragraph names the commands
    assert strip(again) == strip(text)
    assert f"Runs by `python benchmarks/reproduce.py --quick --work {work}" in again  # the run, not the report
    assert "Report written by `python benchmarks/reproduce.py --quick --report-only" in again


@on_jax
def test_bad_inputs_are_one_clear_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="holds no reproduction yet"):
        reproduce.main(["--quick", "--report-only", "--work", str(tmp_path / "empty"), "--out", str(tmp_path)])
    assert not (tmp_path / "REPRODUCTION.md").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(SupermaskError, match="lies under the file"):
        reproduce.main(["--quick", "--work", str(tmp_path / "file" / "w"), "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="no reproduction markers"):
        reproduce.main(["--quick", "--work", str(tmp_path / "w"), "--out", str(tmp_path), "--readme",
                        str(tmp_path / "file")])
    assert not (tmp_path / "w").exists()
    with pytest.raises(SystemExit) as exc:
        reproduce.main(["--quick", "--full"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        reproduce.main([])
    assert "one of the arguments --quick --lth --full is required" in capsys.readouterr().err


@on_jax
def test_command_line_error_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce.py"), "--quick", "--report-only",
                           "--work", str(tmp_path / "none"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ") and "holds no reproduction" \
        in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@on_torch
def test_conv_rows_run_on_cifar_when_present(tmp_path, monkeypatch):
    from tests.test_data import write_tiny_cifar

    write_tiny_cifar(tmp_path / "data" / "cifar10" / "cifar-10-batches-py", per_batch=12)
    monkeypatch.setenv("SUPERMASK_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SUPERMASK_CACHE", str(tmp_path / "cache"))
    budget = reproduce.Budget("tiny-conv", trials=1, iterations=None, levels=1, ablation_levels=1, eval_every=2,
                              criteria=(), mask1=(), sweep_powers="1", supermask_epochs=1, conv_models=("conv2",),
                              conv_iterations=4, validation_size=10)
    rep = reproduce.Reproduction(budget, tmp_path / "work", verbose=0)
    conv = rep.conv()
    assert set(conv) == {"conv2"}
    text = "\n".join(reproduce_tables.conv_section(conv))
    rows = table_rows(text, "### conv2")
    exp = conv["conv2"]["imp"].path
    assert rows[0][1] == pm(own_values(exp, 0, "test_accuracy_at_early_stop") * 2)  # one trial: std 0
    assert len(rows) == 1  # level 1 is not a reported level
    assert "learned Bernoulli supermask with DWR" in text


@on_jax
def test_conv_rows_say_why_they_did_not_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERMASK_DATA", str(tmp_path))
    monkeypatch.setenv("SUPERMASK_CACHE", str(tmp_path / "cache"))
    budget = reproduce.Budget("tiny-conv", trials=1, iterations=None, levels=1, ablation_levels=1, eval_every=2,
                              criteria=(), mask1=(), sweep_powers="0", supermask_epochs=1, conv_models=("conv2",))
    reason = reproduce.Reproduction(budget, tmp_path / "work", verbose=0).conv()
    assert reason.startswith("not run: CIFAR-10 is not on this machine")
    assert not (tmp_path / "work").exists()


@on_jax
def test_a_second_reproduction_in_the_same_work_folder_refuses(tmp_path):
    from supermask import store

    with store.exclusive_lock(tmp_path / "work" / ".lock", "held by this test"):
        with pytest.raises(store.LockedError, match="The reproduction in .* is in use by another process"):
            reproduce.main(["--quick", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")], budget=TINY)
    assert not (tmp_path / "work" / "lottery").exists() and not (tmp_path / "out").exists()


@pytest.mark.slow
@on_jax
def test_the_lth_budget_runs_the_imp_section_alone_read_at_the_minimum_validation_loss(tmp_path, mnist):
    budget = reproduce.Budget("tiny-lth", trials=2, iterations=60, levels=1, ablation_levels=0, eval_every=10,
                              criteria=(), mask1=(), sweep_powers="0", supermask_epochs=0, conv_models=(),
                              studies=("imp",), out_subfolder="lth")
    work, out = tmp_path / "work", tmp_path / "out"
    reproduce.main(["--lth", "--work", str(work), "--out", str(out), "--quiet"], budget=budget)
    assert sorted(p.name for p in work.iterdir() if p.is_dir()) == ["lottery"]  # nothing but IMP ran
    assert [p.name for p in (work / "lottery").iterdir()] == ["imp_large_final"]
    text = (out / "lth" / "REPRODUCTION.md").read_text()
    assert not (out / "REPRODUCTION.md").exists()
    assert "Early-stop iteration: the iteration of minimum validation loss (Frankle & Carbin" in text
    # The early-stop iterations, recomputed here from each level's recorded history.
    exp = only_experiment(work, "imp_large_final")

    def stops(level):
        out = []
        for seed in (0, 1):
            history = json.loads(paths.metrics(paths.level(paths.trial(exp, seed), level)).read_text())["history"]
            out.append(min(history, key=lambda r: (r["val_loss"], r["iteration"]))["iteration"])
        return out

    rows = {r[0]: r for r in table_rows(text, "## 2. Early stopping")}
    assert rows["100.0"][1] == pm(stops(0), 1, 0)
    assert reproduce.LTH.iterations >= 10_000 and reproduce.LTH.studies == ("imp",)


@on_jax
def test_the_analyses_block_survives_a_rewrite_and_is_replaced_in_place(tmp_path):
    """benchmarks/analyses.py owns the block between its markers; reproduce.py keeps it (before the budget
    section) when it rewrites REPRODUCTION.md, and analyses.write_block replaces it where it is."""
    import analyses  # benchmarks/ is on the path (above)

    path = tmp_path / "REPRODUCTION.md"
    new = "# Reproduction\n\n## 7. Conv\n\nnew rows\n\n## Budget and deviations from the papers' protocol\n\nbudget\n"
    assert reproduce.keep_analyses(new, path) == new  # no old file: nothing to keep
    path.write_text(new)
    analyses.write_block(path, f"{analyses.START}\n## 8. first\n{analyses.END}")
    analyses.write_block(path, f"{analyses.START}\n## 8. second\n{analyses.END}")
    text = path.read_text()
    assert "## 8. first" not in text and text.count(analyses.START) == 1
    assert text.index("## 7. Conv") < text.index("## 8. second") < text.index("## Budget")
    kept = reproduce.keep_analyses(new.replace("new rows", "rewritten rows"), path)
    assert "rewritten rows" in kept and "## 8. second" in kept and kept.index("## 8. second") < kept.index("## Budget")
