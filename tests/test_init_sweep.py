"""One-shot mask sweep at init, `python -m supermask.init_sweep` (run once per KERAS_BACKEND).

The real-data tests share one tiny trained run (fc, 10 Adam steps on MNIST, trained in
numpy to spare a Keras compile, saved as `supermask.train` saves it) and one small sweep
over it, evaluated on 500 test images.
"""

import csv
import itertools
import json
import math
import shutil

import keras
import numpy as np
import pytest

from supermask import init_sweep as S
from supermask.init_sweep import __main__ as cli
from supermask import masks as M
from supermask import paths, store
from supermask.actions import MASK1_ACTIONS
from supermask.cli import config_from_args, run_main
from supermask.criteria import CRITERIA, compute_scores
from supermask.engine import EVAL_BATCH_SIZE
from supermask.errors import ConfigError, SupermaskError
from supermask.models import build as build_model
from supermask.settings import TrainConfig, config_hash, to_dict
from supermask.settings.init_sweep import InitSweepConfig, bases_list, criteria_names, mask1_names, powers_list
from tests.conftest import shared_data_dir
from supermask.pruning import default_rates, keep_count, ones_like, prune, prune_level

LAYERS = ["fc1", "fc2", "output"]
SIZES = {"fc1": 784 * 300, "fc2": 300 * 100, "output": 100 * 10}
N = 500  # test images evaluated per point
GRID = dict(
    criteria_names=["large_final", "random", "large_final_same_sign"],
    mask1="none,signed_constant",
    powers="0,3,12",
    layer_cutoffs=["4,6", "6"],
    split="test",
    max_examples=N,
)


# --- pure functions (no data) ------------------------------------------------------


def test_spellings_parse_and_garbage_is_refused():
    assert powers_list("0:25") == tuple(range(25)) == S.DEFAULT_POWERS
    assert powers_list("0,5,10") == (0, 5, 10) and powers_list("0:6:2,9,4") == (0, 2, 4, 9)
    assert powers_list([3, 3, 1]) == (3, 1)
    for bad in ("", "a", "1:2:3:4", "-1", "5:5", "0:4:0", [1.5], [True]):
        with pytest.raises(ConfigError, match="powers must be"):
            powers_list(bad)
    with pytest.raises(ConfigError, match="Unknown criterion 'biggest'.*large_final_same_sign"):
        criteria_names("large_final,biggest")
    with pytest.raises(ConfigError, match="Unknown Mask-1 action 'flip'.*signed_constant"):
        mask1_names("none,flip")
    assert criteria_names("all") == criteria_names(["all"]) == "all"
    assert mask1_names("none,signed_constant,none") == "none,signed_constant"
    assert InitSweepConfig(mask1="all").mask1_names() == tuple(MASK1_ACTIONS)


def test_settings_store_one_canonical_form_and_hash_it():
    """Spellings of one sweep are one InitSweepConfig, one hash; the defaults hash as the empty settings."""
    a = InitSweepConfig(criteria="large_final, random,large_final", mask1=["none"], prune_base="0.8,0.9",
                        powers="0:3", layer_cutoffs="4,6", seed=0)
    b = InitSweepConfig(criteria=["large_final", "random"], prune_base=(0.8, 0.9), powers=[0, 1, 2],
                        layer_cutoffs=[[4, 6]])
    assert a == b and config_hash(a) == config_hash(b)
    assert (a.criteria, a.mask1, a.prune_base, a.powers, a.layer_cutoffs) == (
        "large_final,random", "none", (0.8, 0.9), (0, 1, 2), ((4, 6),))
    assert InitSweepConfig(layer_cutoffs=["4,6", "6", "4,6"]).layer_cutoffs == ((4, 6), (6,))
    assert config_hash(InitSweepConfig()) == config_hash(InitSweepConfig(criteria="all", mask1="none", split="test"))
    assert config_hash(InitSweepConfig(seed=1)) != config_hash(InitSweepConfig())
    default = InitSweepConfig()
    assert default.criterion_names() == tuple(CRITERIA) and default.mask1_names() == ("none",)
    assert default.power_list() == S.DEFAULT_POWERS and default.batch_size is None
    for bad, message in [(dict(max_examples=0), r"max_examples must be an integer > 0. Received: max_examples=0"),
                         (dict(batch_size=2.5), "batch_size must be an integer > 0"),
                         (dict(split="dev"), "split must be one of test, val, train. Received: split='dev'"),
                         (dict(seed=-1), r"seed must be an integer in \[0, 4294967295\]"),
                         (dict(layer_cutoffs="4,x"), "layer_cutoffs must be settings of integers"),
                         (dict(layer_cutoffs=[]), "at least one setting"),
                         (dict(criteria=""), "criteria must name at least one of large_final")]:
        with pytest.raises(ConfigError, match=message):
            InitSweepConfig(**bad)


def test_flags_are_generated_from_the_settings():
    args = cli.build_parser().parse_args(["run", "--criteria", "random,large_final", "--mask1", "all", "--powers",
                                        "0:2", "--layer-cutoffs", "4,6", "6", "--prune-base", "0.8,0.9",
                                        "--max-examples", "7", "--seed", "3"])
    assert config_from_args(InitSweepConfig, args) == InitSweepConfig(
        criteria="random,large_final", mask1="all", powers=(0, 1), layer_cutoffs=((4, 6), (6,)), prune_base=(0.8, 0.9),
        max_examples=7, seed=3)
    defaults = config_from_args(InitSweepConfig, cli.build_parser().parse_args(["run"]))
    assert defaults == InitSweepConfig() and args.run_dir == "run"
    text = " ".join(cli.build_parser().format_help().split())
    assert "one of: test, val, train" in text and f"EVAL_BATCH_SIZE, {EVAL_BATCH_SIZE})" in text


@pytest.mark.parametrize("model, bases, cutoffs", [
    # print_train_lottery_iterative_command.sh: prune_base / layer_cutoff per network
    ("fc", (0.8, 0.9), (4, 6)),
    ("conv2", (0.9, 0.8, 0.9), (4, 8, 10)),
    ("conv4", (0.9, 0.8, 0.9), (8, 12, 14)),
    ("conv6", (0.85, 0.8, 0.9), (12, 16, 18)),
])
def test_default_schedule_is_the_reference_one(model, bases, cutoffs):
    convs = {"fc": 0, "conv2": 2, "conv4": 4, "conv6": 6}[model]
    layers = [f"conv{i}" for i in range(1, convs + 1)] + LAYERS
    assert S.default_schedule(model, layers) == (bases, cutoffs)
    rates = S.layer_rates(layers, bases, cutoffs)
    expected = default_rates(model, layers)
    assert rates == pytest.approx(expected, abs=1e-12)
    # Counts equal those of the iterative schedule at every power.
    sizes = {layer: 1000 + 37 * i for i, layer in enumerate(layers)}
    for power in (0, 1, 7, 24):
        assert S.keep_counts(sizes, rates, power) == {
            layer: keep_count(sizes[layer], expected[layer], power) for layer in layers}


def test_layer_cutoffs_group_layers_and_bad_settings_are_clear_errors():
    assert S.layer_rates(LAYERS, (0.8, 0.9), (4, 6)) == pytest.approx({"fc1": 0.2, "fc2": 0.2, "output": 0.1})
    assert S.layer_rates(LAYERS, (0.8, 0.9), (2, 6)) == pytest.approx({"fc1": 0.2, "fc2": 0.1, "output": 0.1})
    assert S.layer_rates(LAYERS, (0.8, 0.9), (6,)) == pytest.approx({"fc1": 0.2, "fc2": 0.2, "output": 0.2})
    bases, settings = S.resolve_schedule("fc", LAYERS, "0.7", None)
    assert bases == (0.7,) and settings == [(6,)]  # one base: one group
    assert S.resolve_schedule("fc", LAYERS, None, ["4,6", "6", "4,6"]) == ((0.8, 0.9), [(4, 6), (6,)])
    for bad in ("3,6", "4,5", "4", "6,4", "4,4,6", "0,6"):
        with pytest.raises(ConfigError, match="even numbers ending at 6"):
            S.resolve_schedule("fc", LAYERS, None, bad)
    with pytest.raises(ConfigError, match="one base per group"):
        S.resolve_schedule("fc", LAYERS, "0.8", "2,4,6")
    with pytest.raises(ConfigError, match="3 prune bases"):
        S.resolve_schedule("fc", LAYERS, "0.8,0.9,0.7", None)
    for bad in ("0", "1.5", "x", ""):
        with pytest.raises(ConfigError, match=r"prune_base must be numbers in \(0, 1\]"):
            bases_list(bad)


def test_rankings_give_the_same_masks_as_prune():
    rng = np.random.default_rng(0)
    scores = {"a": rng.integers(0, 5, (30, 20)).astype(float),  # many ties
              "b": rng.standard_normal((3, 3, 4, 8))}
    shapes = {k: v.shape for k, v in scores.items()}
    ranked = S.rankings(scores)
    for keep in ({"a": 0, "b": 288}, {"a": 123, "b": 17}, {"a": 600, "b": 1}):
        got = S.masks_from_rankings(ranked, shapes, keep)
        want = prune(scores, ones_like(scores), keep)
        for layer in scores:
            np.testing.assert_array_equal(got[layer], want[layer])
            assert got[layer].sum() == keep[layer]


def test_output_paths(tmp_path):
    assert S.output_paths(None, tmp_path) == (tmp_path / "init_sweep.csv", tmp_path / "init_sweep.json")
    for out in ("r/sweep", "r/sweep.csv", "r/sweep.json"):
        assert S.output_paths(tmp_path / out, "x") == (tmp_path / "r/sweep.csv", tmp_path / "r/sweep.json")
    assert S.output_paths(tmp_path / "s.v2", "x")[0] == tmp_path / "s.v2.csv"


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ["RUN_DIR", "--criteria", "--mask1", "--prune-base", "--powers", "--layer-cutoffs",
                 "--split", "--max-examples", "--batch-size", "--seed", "--data-dir", "--out", "--quiet"]:
        assert flag in text
    assert "signed_constant" in text and "magnitude_increase_same_sign" in text


# --- errors about the run folder -------------------------------------------------------


def test_missing_run_folder_and_files_are_clear_errors(tmp_path, capsys):
    with pytest.raises(SupermaskError, match="does not exist.*supermask.train"):
        S.load_trained(tmp_path / "nope")
    store.save_arrays(paths.weights_init(tmp_path), {"fc1/kernel": np.zeros((2, 2))})
    with pytest.raises(SupermaskError) as exc:
        S.load_trained(tmp_path)
    assert str(paths.weights_final(tmp_path)) in str(exc.value) and "supermask.train" in str(exc.value)
    store.save_arrays(paths.weights_final(tmp_path), {"fc1/kernel": np.zeros((2, 2))})
    with pytest.raises(SupermaskError, match="No hparams.json in .*supermask.train"):
        S.load_trained(tmp_path)
    store.write_json(paths.hparams(tmp_path), {"model": "fc"})
    with pytest.raises(SupermaskError, match="lacks dataset, validation_size"):
        S.load_trained(tmp_path)
    # Through the CLI: one line, exit status 2, no traceback.
    with pytest.raises(SystemExit) as exit_info:
        run_main(cli.main, [str(tmp_path / "nope"), "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Run folder") and err.count("\n") == 1


def test_unknown_names_fail_before_any_work(tmp_path, capsys):
    # The run folder does not even exist: name errors come first.
    with pytest.raises(ConfigError, match="Valid criteria: large_final, small_final"):
        S.sweep(tmp_path, criteria_names="large_final,huge", out=False, verbose=0)
    with pytest.raises(ConfigError, match="Valid Mask-1 actions: none, random_reinit"):
        S.sweep(tmp_path, mask1="signed", out=False, verbose=0)
    with pytest.raises(ConfigError, match="split must be one of test, val, train"):
        S.sweep(tmp_path, split="dev", out=False, verbose=0)
    with pytest.raises(ConfigError, match="max_examples must be an integer > 0"):
        S.sweep(tmp_path, max_examples=0, out=False, verbose=0)
    with pytest.raises(ConfigError, match=r"seed must be an integer in \[0, 4294967295\]"):
        S.sweep(tmp_path, seed=-1, out=False, verbose=0)
    with pytest.raises(SystemExit) as exc:
        run_main(cli.main, [str(tmp_path), "--criteria", "huge"])
    assert exc.value.code == 2 and "Unknown criterion 'huge'" in capsys.readouterr().err


# --- real data -----------------------------------------------------------------------


def _train_numpy(weights, x, y, steps=10, batch=600, lr=3e-3, seed=0):
    """The fc net trained with Adam on softmax cross-entropy in plain float64 numpy: a real
    trained run without compiling a Keras training step. Few large batches, because tiny
    BLAS calls are slow when the CPU is shared."""
    w = {k: np.asarray(v, np.float64).copy() for k, v in weights.items()}
    m1 = {k: np.zeros_like(v) for k, v in w.items()}
    m2 = {k: np.zeros_like(v) for k, v in w.items()}
    rng = np.random.default_rng(seed)
    for t in range(1, steps + 1):
        idx = rng.choice(len(x), batch, replace=False)
        a0, labels = x[idx].reshape(batch, -1).astype(np.float64), y[idx]
        h1 = a0 @ w["fc1/kernel"] + w["fc1/bias"]
        h2 = np.maximum(h1, 0) @ w["fc2/kernel"] + w["fc2/bias"]
        logits = np.maximum(h2, 0) @ w["output/kernel"] + w["output/bias"]
        g3 = np.exp(S.log_softmax(logits))
        g3[np.arange(batch), labels] -= 1.0
        g3 /= batch
        g2 = (g3 @ w["output/kernel"].T) * (h2 > 0)
        g1 = (g2 @ w["fc2/kernel"].T) * (h1 > 0)
        grads = {"output/kernel": np.maximum(h2, 0).T @ g3, "output/bias": g3.sum(0),
                 "fc2/kernel": np.maximum(h1, 0).T @ g2, "fc2/bias": g2.sum(0),
                 "fc1/kernel": a0.T @ g1, "fc1/bias": g1.sum(0)}
        for k, g in grads.items():  # Adam with Keras's defaults
            m1[k] = 0.9 * m1[k] + 0.1 * g
            m2[k] = 0.999 * m2[k] + 0.001 * g * g
            step = lr * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            w[k] -= step * m1[k] / (np.sqrt(m2[k]) + 1e-7)
    return {k: v.astype(np.float32) for k, v in w.items()}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, mnist):
    """A dense fc run folder as supermask.train writes it: hparams.json, weights_init.h5
    (the model's Glorot init) and weights_final.h5 (10 Adam steps of 600 MNIST images)."""
    out = tmp_path_factory.mktemp("init_sweep") / "run"
    init = M.get_weights(build_model("fc", (28, 28, 1), seed=0))
    final = _train_numpy(init, mnist.x_train, mnist.y_train)
    store.write_json(paths.hparams(out), to_dict(TrainConfig(iterations=10, batch_size=600, learning_rate=3e-3)))
    store.save_arrays(paths.weights_init(out), init)
    store.save_arrays(paths.weights_final(out), final)
    return out


@pytest.fixture(scope="module")
def swept(run_dir, mnist, tmp_path_factory):
    """(rows, output folder) of the GRID sweep, written to a fresh folder."""
    out_dir = tmp_path_factory.mktemp("sweep_out")
    rows = S.sweep(run_dir, data=mnist, out=out_dir / "grid", verbose=0, **GRID)
    return rows, out_dir


def _key(row):
    return row["criterion"], row["mask1"], row["power"], row["layer_cutoff"]


def _fresh_model(weights, masks=None):
    model = build_model("fc", (28, 28, 1))
    M.set_weights(model, weights)
    if masks is not None:
        M.set_masks(model, masks)
    return model


def _accuracy_and_loss(model, x, y):
    """Independent of the sweep's predict + numpy path: an eager call of the model and
    Keras's own loss and accuracy metric."""
    logits = model(keras.ops.convert_to_tensor(x), training=False)
    accuracy = keras.metrics.SparseCategoricalAccuracy()
    accuracy.update_state(y, logits)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    return float(accuracy.result()), float(keras.ops.convert_to_numpy(loss))


def test_one_row_per_point_with_exact_densities(swept):
    rows, _ = swept
    crits, mask1s, powers, cutoffs = GRID["criteria_names"], ["none", "signed_constant"], [0, 3, 12], ["4,6", "6"]
    assert len(rows) == len(crits) * len(mask1s) * len(powers) * len(cutoffs) == 36
    assert {_key(r) for r in rows} == set(itertools.product(crits, mask1s, powers, cutoffs))
    for row in rows:
        base = {"4,6": {"fc1": 0.8, "fc2": 0.8, "output": 0.9}, "6": dict.fromkeys(LAYERS, 0.8)}[row["layer_cutoff"]]
        assert row["prune_base"] == {"4,6": "0.8,0.9", "6": "0.8"}[row["layer_cutoff"]]
        kept = {layer: keep_count(SIZES[layer], 1 - base[layer], row["power"]) for layer in LAYERS}
        for layer in LAYERS:
            assert row[f"density_{layer}"] == kept[layer] / SIZES[layer]
        assert row["density"] == pytest.approx(sum(kept.values()) / sum(SIZES.values()), abs=1e-12)
        assert 0.0 <= row["accuracy"] <= 1.0 and math.isfinite(row["loss"]) and row["loss"] > 0
    # Power 12 with the output layer in its own group keeps more of it (0.9**12 vs 0.8**12).
    row = next(r for r in rows if _key(r) == ("large_final", "none", 12, "4,6"))
    assert row["density_output"] == keep_count(1000, 0.1, 12) / 1000 == 0.282
    assert row["density_fc1"] == keep_count(235200, 0.2, 12) / 235200


def test_power_zero_with_none_is_the_unpruned_init_network(swept, run_dir, mnist):
    rows, _ = swept
    init = store.load_arrays(paths.weights_init(run_dir))
    acc, loss = _accuracy_and_loss(_fresh_model(init), mnist.x_test[:N], mnist.y_test[:N])
    dense = [r for r in rows if r["power"] == 0 and r["mask1"] == "none"]
    assert len(dense) == 6  # every criterion and cutoff setting: all masks full
    for row in dense:
        assert row["density"] == 1.0
        assert row["accuracy"] == pytest.approx(acc, abs=1e-6)
        assert row["loss"] == pytest.approx(loss, rel=1e-4)
    # The trained network is much better than its init: the sweep did not use final weights.
    final = store.load_arrays(paths.weights_final(run_dir))
    final_acc, _ = _accuracy_and_loss(_fresh_model(final), mnist.x_test[:N], mnist.y_test[:N])
    assert final_acc > acc + 0.3


def test_the_evaluation_batch_changes_no_number(run_dir, mnist):
    model = S.build_eval_model("fc", (28, 28, 1), 10, store.load_arrays(paths.weights_final(run_dir)))
    x, y = mnist.x_test[:N], mnist.y_test[:N]
    assert S.evaluate(model, x, y, 100) == S.evaluate(model, x, y, N) == S.evaluate(model, x, y)  # EVAL_BATCH_SIZE


def test_one_point_recomputed_independently(swept, run_dir, mnist):
    """large_final_same_sign, signed_constant, power 3, reference cutoffs: masks from the
    pruning module's iterative schedule (the sweep's seeded tie-break of the excluded
    weights), weights sign(init) * std of the layer's init written by hand."""
    rows, _ = swept
    init = store.load_arrays(paths.weights_init(run_dir))
    final = store.load_arrays(paths.weights_final(run_dir))
    init_k, final_k = M.kernels(init), M.kernels(final)
    scores = compute_scores("large_final_same_sign", init_k, final_k, S.point_rng(0, "scores", "large_final_same_sign"))
    masks = prune_level(scores, ones_like(init_k), default_rates("fc", LAYERS), 3)
    weights = dict(init)
    for layer, mask in masks.items():
        weights[f"{layer}/kernel"] = np.where(mask, np.sign(init_k[layer]) * np.std(init_k[layer]), 0.0)
    acc, loss = _accuracy_and_loss(_fresh_model(weights, masks), mnist.x_test[:N], mnist.y_test[:N])
    row = next(r for r in rows if _key(r) == ("large_final_same_sign", "signed_constant", 3, "4,6"))
    assert row["density"] == pytest.approx(np.mean(np.concatenate([m.ravel() for m in masks.values()])))
    assert row["accuracy"] == pytest.approx(acc, abs=1e-6)
    assert row["loss"] == pytest.approx(loss, rel=1e-4)
    # The supermask effect (Zhou et al.): this untrained masked network is far above chance
    # and far above a random mask of the same density.
    random_row = next(r for r in rows if _key(r) == ("random", "signed_constant", 3, "4,6"))
    assert random_row["density"] == row["density"]
    assert acc > 0.4 and acc > random_row["accuracy"] + 0.3


def test_random_criterion_is_seeded(swept, run_dir, mnist):
    rows, _ = swept
    kwargs = dict(criteria_names="random,large_final", mask1="none", powers="3", layer_cutoffs="4,6",
                  max_examples=N, data=mnist, out=False, verbose=0)
    again = S.sweep(run_dir, seed=0, **kwargs)
    other = S.sweep(run_dir, seed=1, **kwargs)
    first = {_key(r): r for r in rows}
    for a, b in zip(again, other):
        assert a == first[_key(a)]  # same seed, same point: identical row
        if a["criterion"] == "large_final":
            assert a == b  # a deterministic criterion ignores the seed
    # A different seed draws another random mask: another network (its loss differs).
    assert again[0]["criterion"] == "random" and again[0]["loss"] != other[0]["loss"]


def test_csv_and_json_written_atomically(swept):
    rows, out_dir = swept
    assert sorted(p.name for p in out_dir.iterdir()) == ["grid.csv", "grid.json"]  # no temp files
    with open(out_dir / "grid.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows)
    assert list(table[0]) == ["criterion", "mask1", "power", "layer_cutoff", "prune_base", "density",
                              "density_fc1", "density_fc2", "density_output", "accuracy", "loss"]
    for line, row in zip(table, rows):
        assert (line["criterion"], line["mask1"], int(line["power"]), line["layer_cutoff"]) == _key(row)
        assert float(line["accuracy"]) == row["accuracy"] and float(line["density"]) == row["density"]
    data = json.loads((out_dir / "grid.json").read_text())
    assert data["rows"] == rows
    assert data["split"] == "test" and data["num_examples"] == N and data["model"] == "fc"
    assert data["prune_base"] == [0.8, 0.9] and data["layer_cutoffs"] == [[4, 6], [6]]
    assert data["powers"] == [0, 3, 12] and data["seconds_per_point"] > 0


def test_cli_default_output_progress_and_best_points(run_dir, capsys, tmp_path):
    rows = run_main(cli.main, [str(run_dir), "--criteria", "large_final,small_final", "--powers", "0:2",
                             "--split", "val", "--max-examples", "300",
                             "--data-dir", str(shared_data_dir() / "mnist")])
    out = capsys.readouterr().out
    assert len(rows) == 4
    assert "[1/4] large_final none power 0" in out and "[4/4] small_final none power 1" in out
    assert "300 examples" in out and "val split" in out
    best = max(rows, key=lambda r: r["accuracy"])
    assert f"Best overall: {best['criterion']}, accuracy {100 * best['accuracy']:.2f} %" in out
    assert "  large_final " in out.split("Best point per criterion:")[1]
    json_rows = store.read_json(run_dir / "init_sweep.json")["rows"]
    assert json_rows == rows and (run_dir / "init_sweep.csv").is_file()
    assert not list(run_dir.glob(".*tmp"))


def test_hparams_found_in_a_parent_folder(run_dir, mnist, tmp_path):
    level0 = tmp_path / "experiment" / "level_0"
    level0.mkdir(parents=True)
    for name in ("weights_init.h5", "weights_final.h5"):
        shutil.copy(run_dir / name, level0 / name)
    shutil.copy(paths.hparams(run_dir), paths.hparams(tmp_path / "experiment"))
    rows = S.sweep(level0, criteria_names="large_final", powers=[0], max_examples=100, data=mnist,
                   verbose=0)
    assert len(rows) == 1 and rows[0]["density"] == 1.0
    assert sorted(p.name for p in level0.iterdir()) == [
        "init_sweep.csv", "init_sweep.json", "weights_final.h5", "weights_init.h5"]


def test_pruned_runs_are_refused(run_dir, tmp_path):
    for name in ("weights_init.h5", "weights_final.h5", "hparams.json"):
        shutil.copy(run_dir / name, tmp_path / name)
    masks = {layer: np.ones(shape, bool) for layer, shape in
             (("fc1", (784, 300)), ("fc2", (300, 100)), ("output", (100, 10)))}
    masks["fc2"][0, 0] = False
    store.save_arrays(paths.masks(tmp_path), masks)
    with pytest.raises(ConfigError, match="needs a dense run"):
        S.load_trained(tmp_path)
