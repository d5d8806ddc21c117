"""``supermask.prune`` / ``rewind`` / ``sparsity`` / ``strip`` on models in memory, your own criteria (every
backend), and the README's one-shot example."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import supermask
from supermask import convert, criteria, identity
from supermask import masks as M
from supermask.errors import ConfigError
from supermask.settings import LotteryConfig
from tests.conftest import on_jax

REPO = Path(__file__).resolve().parents[1]


def plain_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(20, activation="tanh", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, name="out")(hidden))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def kernel(model, name):
    return keras.ops.convert_to_numpy(model.get_layer(name).kernel)


def top_k_mask(values, k):
    """Reference: the k largest of ``values`` (ties to the lower flat index), as a bool array."""
    flat = values.ravel()
    order = sorted(range(flat.size), key=lambda i: (-flat[i], i))[:k]
    out = np.zeros(flat.size, bool)
    out[order] = True
    return out.reshape(values.shape)


def test_prune_a_plain_model_returns_a_masked_copy_keeping_the_largest_weights():
    model = plain_model()
    before = {name: kernel(model, name) for name in ("hidden", "out")}
    pruned = supermask.prune(model, sparsity=0.75)
    assert pruned is not model and pruned.compiled
    assert type(model.get_layer("hidden")) is keras.layers.Dense  # yours is left as it was
    np.testing.assert_array_equal(kernel(model, "hidden"), before["hidden"])
    masks = M.get_masks(pruned)
    for name, w in before.items():
        assert masks[name].sum() == round(w.size * 0.25)
        np.testing.assert_array_equal(masks[name], top_k_mask(np.abs(w), round(w.size * 0.25)))
    # A masked model is pruned in place: one IMP round of rate 0.5 from what is left.
    again = supermask.prune(pruned, rate=0.5, ignore="out")
    assert again is pruned
    assert M.get_masks(again)["hidden"].sum() == round(30 * 0.5) and M.get_masks(again)["out"].sum() == 20


def test_training_the_pruned_copy_leaves_the_original_readable_and_unchanged():
    """On JAX ``fit`` donates (deletes) the buffers of the model it trains: the copy must own its own."""
    model = plain_model()
    before = supermask.snapshot(model)
    pruned = supermask.prune(model, sparsity=0.5)
    x, y = np.random.default_rng(0).normal(size=(32, 6)).astype("float32"), np.arange(32) % 4
    pruned.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for key, value in supermask.snapshot(model).items():
        np.testing.assert_array_equal(value, before[key])


def test_global_scope_ranks_all_layers_together_and_respects_ignore():
    model = supermask.masked(plain_model())
    weights = {name: np.abs(kernel(model, name)) for name in ("hidden", "out")}
    supermask.prune(model, sparsity=0.9, scope="global", ignore=["out"])
    assert M.get_masks(model)["out"].all()
    np.testing.assert_array_equal(M.get_masks(model)["hidden"], top_k_mask(weights["hidden"], 12))
    fresh = supermask.masked(plain_model())
    supermask.prune(fresh, sparsity=0.5, scope="global")
    both = np.concatenate([np.abs(kernel(fresh, n)).ravel() for n in ("hidden", "out")])
    threshold = np.sort(both)[::-1][round(both.size * 0.5) - 1]
    kept = np.concatenate([M.get_masks(fresh)[n].ravel() for n in ("hidden", "out")])
    assert kept.sum() == round(both.size * 0.5) and (both[kept] >= threshold).all()


def test_criteria_that_read_the_initial_weights_take_a_reference():
    model = plain_model()
    w0 = supermask.snapshot(model)
    rng = np.random.default_rng(1)
    trained = {f"{n}/kernel": kernel(model, n) + rng.normal(size=kernel(model, n).shape).astype("float32")
               for n in ("hidden", "out")}
    M.set_weights(model, trained)
    with pytest.raises(ConfigError, match="reference="):
        supermask.prune(model, rate=0.5, criterion="magnitude_increase")
    for reference in (w0, {n: w0[f"{n}/kernel"] for n in ("hidden", "out")}):
        pruned = supermask.prune(model, rate=0.5, criterion="magnitude_increase", reference=reference)
        increase = np.abs(trained["hidden/kernel"]) - np.abs(w0["hidden/kernel"])
        np.testing.assert_array_equal(M.get_masks(pruned)["hidden"], top_k_mask(increase, 60))


def test_rewind_restores_every_weight_keeps_the_masks_and_resets_the_optimizer(tmp_path):
    model = plain_model()
    w0 = supermask.snapshot(model)
    x, y = np.random.default_rng(0).normal(size=(64, 6)).astype("float32"), np.arange(64) % 4
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model = supermask.prune(model, sparsity=0.5)
    masks = M.get_masks(model)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 4
    supermask.rewind(model, to=w0)
    for key, value in w0.items():
        np.testing.assert_array_equal(M.get_weights(model)[key], value)
    assert all((M.get_masks(model)[n] == masks[n]).all() for n in masks)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
    with pytest.raises(ConfigError, match="lack"):
        supermask.rewind(model, to={"hidden/kernel": w0["hidden/kernel"]})


def test_sparsity_table_reads_masks_and_stripped_zeros_alike():
    model = supermask.prune(plain_model(), sparsity=0.6)
    table = supermask.sparsity(model)
    assert [(r["layer"], r["kept"], r["total"]) for r in table.rows] == [("hidden", 48, 120), ("out", 32, 80)]
    assert table.kept == 80 and table.total == 200 and table.density == 0.4 and table["out"]["kept"] == 32
    assert "total" in str(table).splitlines()[-1]
    plain = supermask.strip(model)
    assert [r["kept"] for r in supermask.sparsity(plain).rows] == [48, 32]
    x = np.ones((2, 6), "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(plain(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of sparsity"),
    ({"sparsity": 0.5, "rate": 0.2}, "exactly one of sparsity"),
    ({"sparsity": 1.0}, r"sparsity must be a number in \[0, 1\)"),
    ({"rate": 0.2, "scope": "everything"}, "scope must be one of"),
    ({"rate": 0.2, "ignore": ["nope"]}, "not prunable layers"),
    ({"rate": 0.2, "criterion": "nope"}, "Unknown criterion"),
    ({"rate": {"hidden": 0.5}, "scope": "global"}, "one fraction"),
    ({"rate": 0.2, "scope": "global", "criterion": "large_init_large_final", "reference": {}}, "cannot prune globally"),
])
def test_bad_arguments_are_one_clear_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        supermask.prune(plain_model(), **kwargs)


def test_pruning_never_revives_weights():
    model = supermask.prune(plain_model(), sparsity=0.8)
    with pytest.raises(ConfigError, match="never revives"):
        supermask.prune(model, sparsity=0.5)


def test_supermask_layers_are_refused():
    learned = convert.supermask(plain_model())
    with pytest.raises(ConfigError, match="learn their masks"):
        supermask.prune(learned, rate=0.2)


# --- your own criteria -------------------------------------------------------------------------
@on_jax
def test_a_registered_criterion_prunes_and_names_the_experiment():
    @criteria.register("test_smallest_first", comparable_across_layers=True, uses_init=False)
    def smallest_first(w_init, w_final, rng=None, mask=None):
        return -np.abs(w_final)

    try:
        model = plain_model()
        pruned = supermask.prune(model, rate=0.5, criterion="test_smallest_first", scope="global")
        w = np.abs(kernel(model, "hidden"))
        assert (w[M.get_masks(pruned)["hidden"]].max() <= w[~M.get_masks(pruned)["hidden"]].min())
        assert criteria.fingerprint("test_smallest_first").startswith("sha256:")
        assert criteria.fingerprint("large_final") is None
        # The fingerprint is part of the experiment's hash: built-ins keep their folders.
        config = LotteryConfig(criterion="test_smallest_first", criterion_fingerprint="sha256:a")
        assert config.experiment_hash() != LotteryConfig(criterion="test_smallest_first",
                                                         criterion_fingerprint="sha256:b").experiment_hash()
        assert LotteryConfig().experiment_hash() == "9f77d335d10b"
        with pytest.raises(ConfigError, match="built-in"):
            criteria.register("large_final")
        with pytest.raises(ConfigError, match=r"w_init, w_final, rng=None, mask=None"):
            criteria.register("test_bad")(lambda w: w)
        # A function passed directly is registered under module:qualname.
        name = criteria.name_of(smallest_first)
        assert name == "test_smallest_first"
    finally:
        criteria.unregister("test_smallest_first")
    assert "test_smallest_first" not in criteria.CRITERIA


@on_jax
def test_identify_fills_the_fingerprint_of_your_criterion(tmp_path, monkeypatch):
    (tmp_path / "mycrit.py").write_text("import numpy as np\n\ndef score(w_init, w_final, rng=None, mask=None):\n"
                                        "    return np.abs(w_final)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        config = identity.identify(LotteryConfig(criterion="mycrit:score"), plain_model(), _tiny_dataset())
        assert config.criterion_fingerprint.startswith("sha256:")
        with pytest.raises(ConfigError, match="cannot prune globally"):
            criteria.check_global("mycrit:score")
    finally:
        criteria.unregister("mycrit:score")
    with pytest.raises(ConfigError, match="Cannot import module 'nomodule'"):
        LotteryConfig(criterion="nomodule:score")


def _tiny_dataset():
    from supermask.data import Dataset

    x, y = np.zeros((4, 6), "float32"), np.zeros(4, "int32")
    return Dataset("arrays:tiny", x, y, x, y, x, y)


@on_jax
def test_the_lottery_command_takes_a_criterion_by_module_path(tmp_path, mnist):
    (tmp_path / "mycrit.py").write_text(
        "import numpy as np\nfrom supermask import criteria\n\n"
        "@criteria.register('final_plus_movement', comparable_across_layers=True)\n"
        "def score(w_init, w_final, rng=None, mask=None):\n"
        "    return np.abs(w_final) + 0.5 * np.abs(w_final - w_init)\n")
    done = subprocess.run([sys.executable, "-m", "supermask.lottery", "--model", "fc", "--iterations", "20",
                           "--eval-every", "20", "--levels", "1", "--no-control", "--pruning", "global",
                           "--criterion", "mycrit:score", "--root", "runs"], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    hparams = next((tmp_path / "runs").glob("*/hparams.json")).read_text()
    assert '"criterion": "mycrit:score"' in hparams and '"criterion_fingerprint": "sha256:' in hparams


# --- the README -------------------------------------------------------------------------------
def readme_blocks(section="## Use it with your own training"):
    import re

    text = (REPO / "README.md").read_text().split(section, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_readme_one_shot_example_runs_as_written(tmp_path, mnist, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme_one_shot"}
    exec(compile(readme_blocks()[0], "README.md", "exec"), namespace)
    model, plain = namespace["model"], namespace["plain"]
    table = supermask.sparsity(model)
    assert table["logits"]["kept"] == table["logits"]["total"]
    assert table.kept == round(0.2 * 784 * 100) + 1000 and supermask.sparsity(plain).kept == table.kept
    assert "% kept" in capsys.readouterr().out
