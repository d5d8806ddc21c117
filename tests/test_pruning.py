"""Pruning schedule, prune(), and mask arithmetic."""

import numpy as np
import pytest

from supermask.errors import ConfigError
from supermask.pruning import (
    KIND_RATES,
    PRUNE_RATES,
    default_rates,
    density,
    density_at_level,
    intersection,
    keep_count,
    ones_like,
    overall_density,
    layer_roles,
    prune,
    prune_global,
    prune_global_level,
    prune_level,
    union,
)



FC_SIZES = {"fc1": 784 * 300, "fc2": 300 * 100, "output": 100 * 10}


def test_rates_table():
    assert default_rates("fc", ["fc1", "fc2", "output"]) == {
        "fc1": 0.2,
        "fc2": 0.2,
        "output": 0.1,
    }
    assert default_rates("conv2", ["conv1", "conv2", "fc1", "fc2", "output"]) == {
        "conv1": 0.1,
        "conv2": 0.1,
        "fc1": 0.2,
        "fc2": 0.2,
        "output": 0.1,
    }
    conv4 = default_rates("conv4", [f"conv{i}" for i in range(1, 5)] + ["fc1", "output"])
    assert conv4 == {"conv1": 0.1, "conv2": 0.1, "conv3": 0.1, "conv4": 0.1,
                     "fc1": 0.2, "output": 0.1}
    conv6 = default_rates("conv6", [f"conv{i}" for i in range(1, 7)] + ["fc2", "output"])
    assert [conv6[f"conv{i}"] for i in range(1, 7)] == [0.15] * 6
    assert conv6["fc2"] == 0.2 and conv6["output"] == 0.1
    assert set(PRUNE_RATES) == {"fc", "conv2", "conv4", "conv6"}


def test_rates_errors():
    with pytest.raises(ConfigError, match="Unknown model 'vgg'.*fc, conv2, conv4, conv6"):
        default_rates("vgg", ["fc1"])
    with pytest.raises(ConfigError, match="conv1"):
        default_rates("fc", ["conv1", "fc1"])
    with pytest.raises(ConfigError, match="conv5"):
        default_rates("conv4", ["conv5"])


def test_density_at_level():
    assert density_at_level(0.2, 0) == 1.0
    assert density_at_level(0.2, 2) == pytest.approx(0.64)
    assert density_at_level(0.1, 3) == pytest.approx(0.729)
    for bad_rate in (-0.1, 1.0, 1.5):
        with pytest.raises(ConfigError):
            density_at_level(bad_rate, 1)
    with pytest.raises(ConfigError):
        density_at_level(0.2, -1)


def test_keep_count_fc_layers_by_hand():
    assert [keep_count(FC_SIZES["fc1"], 0.2, lv) for lv in range(4)] == [
        235200, 188160, 150528, 120422  # 120422.4 rounds down
    ]
    assert [keep_count(FC_SIZES["fc2"], 0.2, lv) for lv in range(5)] == [
        30000, 24000, 19200, 15360, 12288
    ]
    assert [keep_count(FC_SIZES["output"], 0.1, lv) for lv in range(5)] == [
        1000, 900, 810, 729, 656  # 656.1
    ]
    # Level 20: 235200 * 0.8**20 = 2711.67, 30000 * 0.8**20 = 345.88, 1000 * 0.9**20 = 121.58
    assert keep_count(FC_SIZES["fc1"], 0.2, 20) == 2712
    assert keep_count(FC_SIZES["fc2"], 0.2, 20) == 346
    assert keep_count(FC_SIZES["output"], 0.1, 20) == 122


def test_keep_count_rounds_half_up():
    assert keep_count(5, 0.5, 1) == 3  # 2.5 (Python's round() would give 2)
    assert keep_count(1, 0.5, 1) == 1  # 0.5 (round() would give 0)
    assert keep_count(7, 0.5, 1) == 4  # 3.5
    assert keep_count(0, 0.2, 3) == 0
    with pytest.raises(ConfigError):
        keep_count(-1, 0.2, 1)


def test_twenty_rounds_follow_closed_form_without_drift():
    rng = np.random.default_rng(0)
    rates = default_rates("fc", list(FC_SIZES))
    masks = {name: np.ones(size, bool) for name, size in FC_SIZES.items()}
    naive = dict(FC_SIZES)  # per-round rounding as in the reference code
    for level in range(1, 21):
        scores = {name: rng.random(size) for name, size in FC_SIZES.items()}
        new = prune_level(scores, masks, rates, level)
        for name, size in FC_SIZES.items():
            closed = round(size * (1 - rates[name]) ** level)
            assert int(new[name].sum()) == closed
            assert not np.any(new[name] & ~masks[name])  # nested: nothing revived
            naive[name] -= int(naive[name] * rates[name])
        masks = new
    # Compounding per-round truncation would have drifted away from the closed form.
    assert naive == {"fc1": 2714, "fc2": 348, "output": 126}
    assert {n: int(m.sum()) for n, m in masks.items()} == {
        "fc1": 2712, "fc2": 346, "output": 122
    }


def test_prune_exact_selection_and_pruned_stay_pruned():
    scores = {"l": np.array([[0.9, 0.1, 0.5], [0.7, 0.3, 0.8]])}
    masks = {"l": np.array([[False, True, True], [True, True, True]])}
    out = prune(scores, masks, {"l": 2})
    # 0.9 is the best score but already pruned: it stays pruned.
    np.testing.assert_array_equal(out["l"], [[False, False, False], [True, False, True]])
    assert out["l"].dtype == bool and out["l"].sum() == 2


def test_prune_ties_are_deterministic_lowest_index_first():
    scores = {"l": np.array([1.0, 2.0, 2.0, 2.0, 2.0, 0.0])}
    masks = {"l": np.array([True, True, False, True, True, True])}
    out = prune(scores, masks, {"l": 2})
    np.testing.assert_array_equal(out["l"], [False, True, False, True, False, False])
    np.testing.assert_array_equal(prune(scores, masks, {"l": 2})["l"], out["l"])


def test_prune_handles_infinite_scores():
    scores = {"l": np.array([-np.inf, 1.0, np.inf, 0.0])}
    out = prune(scores, {"l": np.ones(4, bool)}, {"l": 3})
    np.testing.assert_array_equal(out["l"], [False, True, True, True])


def test_prune_leaves_other_layers_and_inputs_untouched():
    scores = {"a": np.array([3.0, 1.0, 2.0]), "b": np.array([1.0, 2.0])}
    masks = {"a": np.ones(3, bool), "b": np.array([True, False])}
    out = prune(scores, masks, {"a": 1})
    np.testing.assert_array_equal(out["a"], [True, False, False])
    np.testing.assert_array_equal(out["b"], [True, False])
    out["b"][1] = True
    np.testing.assert_array_equal(masks["a"], [True, True, True])
    np.testing.assert_array_equal(masks["b"], [True, False])


def test_prune_errors():
    scores = {"l": np.array([1.0, 2.0, 3.0])}
    masks = {"l": np.array([True, False, True])}
    with pytest.raises(ConfigError, match="cannot keep 3 weights, only 2"):
        prune(scores, masks, {"l": 3})
    with pytest.raises(ConfigError, match="'m'"):
        prune(scores, masks, {"m": 1})
    with pytest.raises(ConfigError, match=r"\(2,\).*\(3,\)"):
        prune({"l": np.ones(2)}, masks, {"l": 1})
    with pytest.raises(ConfigError, match="NaN"):
        prune({"l": np.array([np.nan, 0.0, 1.0])}, masks, {"l": 1})
    with pytest.raises(ConfigError):
        prune(scores, masks, {"l": -1})


def test_prune_level_computes_keep_from_total_size():
    scores = {"l": np.arange(10.0)}
    masks = {"l": np.ones(10, bool)}
    out = prune_level(scores, masks, {"l": 0.5}, 2)  # 10 * 0.25 = 2.5 -> 3
    np.testing.assert_array_equal(np.flatnonzero(out["l"]), [7, 8, 9])
    with pytest.raises(ConfigError, match="no mask"):
        prune_level(scores, masks, {"x": 0.5}, 1)


def test_union_and_intersection():
    a = {"l": np.array([True, True, False, False]), "m": np.array([[True]])}
    b = {"l": np.array([True, False, True, False]), "m": np.array([[False]])}
    np.testing.assert_array_equal(union(a, b)["l"], [True, True, True, False])
    np.testing.assert_array_equal(intersection(a, b)["l"], [True, False, False, False])
    np.testing.assert_array_equal(union(a, b)["m"], [[True]])
    np.testing.assert_array_equal(intersection(a, b)["m"], [[False]])
    with pytest.raises(ConfigError, match="'l'"):
        union(a, {"l": np.ones(3, bool), "m": b["m"]})
    with pytest.raises(ConfigError, match="m"):
        intersection(a, {"l": b["l"]})


def test_ones_like_density_and_overall_density():
    weights = {"a": np.zeros((2, 2)), "b": np.zeros((2, 3))}
    masks = ones_like(weights)
    assert all(m.dtype == bool and m.all() for m in masks.values())
    assert masks["b"].shape == (2, 3)
    masks = {"a": np.array([[True, False], [False, False]]),
             "b": np.array([[True, True, False], [True, False, False]])}
    assert density(masks) == {"a": 0.25, "b": 0.5}
    assert overall_density(masks) == pytest.approx(4 / 10)
    with pytest.raises(ConfigError):
        overall_density({})


# --- global pruning (open_lth's sparse_global, exact counts) ---------------------------------
def test_global_prune_hand_computed_example():
    # Two layers, 6 weights in all. Scores: a = [[0.9, 0.1], [0.5, 0.3]], b = [0.2, 0.8].
    # Keeping 3 overall keeps the three largest wherever they are: a[0,0]=0.9, b[1]=0.8, a[1,0]=0.5.
    scores = {"a": np.array([[0.9, 0.1], [0.5, 0.3]]), "b": np.array([0.2, 0.8])}
    masks = {"a": np.ones((2, 2), bool), "b": np.ones(2, bool)}
    out = prune_global(scores, masks, 3, ["a", "b"])
    np.testing.assert_array_equal(out["a"], [[True, False], [True, False]])
    np.testing.assert_array_equal(out["b"], [False, True])
    assert masks["a"].all() and masks["b"].all()  # inputs untouched


def test_global_prune_ties_already_pruned_and_ignored_layers():
    # Ties at 0.5 across both layers: layer order first ("a" before "b"), then flat index.
    scores = {"a": np.array([0.5, 0.5, 0.1]), "b": np.array([0.5, 0.9]), "c": np.array([0.0, 0.0])}
    masks = {"a": np.array([True, True, True]), "b": np.array([True, True]), "c": np.array([True, False])}
    out = prune_global(scores, masks, 3, ["a", "b"])  # keeps b[1]=0.9, then the first two 0.5 ties: a[0], a[1]
    np.testing.assert_array_equal(out["a"], [True, True, False])
    np.testing.assert_array_equal(out["b"], [False, True])
    np.testing.assert_array_equal(out["c"], masks["c"])  # not pruned: copied unchanged
    # Already-pruned weights stay pruned even with the largest score.
    masks = {"a": np.array([False, True, True]), "b": np.array([True, True])}
    scores = {"a": np.array([9.0, 0.2, 0.3]), "b": np.array([0.1, 0.4])}
    out = prune_global(scores, masks, 2, ["a", "b"])
    np.testing.assert_array_equal(out["a"], [False, False, True])
    np.testing.assert_array_equal(out["b"], [False, True])
    with pytest.raises(ConfigError, match="Cannot keep 5 weights: only 4"):
        prune_global(scores, masks, 5, ["a", "b"])
    with pytest.raises(ConfigError, match="NaN"):
        prune_global({"a": np.array([1.0, np.nan, 1.0]), "b": np.ones(2)}, masks, 1, ["a", "b"])
    # A NaN where the weight is already pruned does not matter.
    prune_global({"a": np.array([np.nan, 1.0, 1.0]), "b": np.ones(2)}, masks, 1, ["a", "b"])


def test_global_prune_level_follows_the_closed_form_over_the_pruned_layers():
    rng = np.random.default_rng(0)
    sizes = {"conv": (3, 3, 2, 4), "fc": (72, 10), "out": (10, 3)}
    masks = {k: np.ones(s, bool) for k, s in sizes.items()}
    total = sum(int(np.prod(s)) for k, s in sizes.items() if k != "out")
    for level in range(1, 6):
        scores = {k: rng.normal(size=s) for k, s in sizes.items()}
        new = prune_global_level(scores, masks, 0.3, level, ignore=["out"])
        assert sum(int(new[k].sum()) for k in ("conv", "fc")) == keep_count(total, 0.3, level)
        assert new["out"].all()
        assert all(not (new[k] & ~masks[k]).any() for k in sizes)
        masks = new
    with pytest.raises(ConfigError, match="not prunable layers"):
        prune_global_level(scores, masks, 0.2, 1, ignore=["nope"])
    with pytest.raises(ConfigError, match="every prunable layer is ignored"):
        prune_global_level(scores, masks, 0.2, 1, ignore=list(sizes))


def test_layer_roles_and_kind_rates():
    assert layer_roles({"c1": "conv", "d1": "dense", "d2": "dense"}) == {"c1": "conv", "d1": "dense", "d2": "output"}
    assert KIND_RATES == {"conv": 0.1, "dense": 0.2, "output": 0.1}
