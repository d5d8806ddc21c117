"""Mask-1 / Mask-0 actions and the Glorot helpers."""

import math

import numpy as np
import pytest

from supermask.actions import (
    MASK0_ACTIONS,
    MASK1_ACTIONS,
    StartState,
    apply_actions,
    get_mask0,
    get_mask1,
    glorot_normal,
    glorot_std,
    layer_std,
)
from supermask.errors import ConfigError



W_INIT = np.array([0.5, -0.2, 0.1, -0.4, 0.3, -0.6]).reshape(2, 3)
W_FINAL = np.array([0.3, 0.6, -0.05, -0.9, 0.35, 0.2]).reshape(2, 3)
MASK = np.array([True, False, False, True, False, True]).reshape(2, 3)
# |wf| < |wi| (shrank):  T F T F F T
SIGMA = math.sqrt(2 / (2 + 3))


def start(mask1, mask0, seed=0, init=W_INIT, final=W_FINAL, mask=MASK):
    return apply_actions(
        mask1, mask0, {"l": init}, {"l": final}, {"l": mask}, np.random.default_rng(seed)
    )


def big_layer(seed=1, shape=(400, 300), density=0.5):
    rng = np.random.default_rng(seed)
    return glorot_normal(shape, rng), glorot_normal(shape, rng), rng.random(shape) < density


def test_glorot_std_dense_and_conv():
    assert glorot_std((784, 300)) == pytest.approx(math.sqrt(2 / 1084))
    assert glorot_std((3, 3, 64, 128)) == pytest.approx(math.sqrt(2 / (576 + 1152)))
    assert glorot_std((2, 3)) == pytest.approx(SIGMA)


def test_glorot_normal_std_truncation_and_reproducibility():
    shape = (500, 400)
    a = glorot_normal(shape, np.random.default_rng(3))
    b = glorot_normal(shape, np.random.default_rng(3))
    c = glorot_normal(shape, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == shape and a.dtype == np.float64
    assert a.std() == pytest.approx(glorot_std(shape), rel=0.01)
    assert abs(a.mean()) < 0.01 * glorot_std(shape)
    limit = 2 * glorot_std(shape) / 0.87962566103423978
    assert np.abs(a).max() <= limit
    assert np.abs(a).max() > 0.98 * limit  # truncated at 2 stddev, not narrower


def test_none_with_mask_resets_to_init_and_zeros_pruned():
    state = start("none", "mask")
    assert isinstance(state, StartState) and state.freeze_pruned is False
    np.testing.assert_array_equal(
        state.weights["l"].ravel(), [0.5, 0.0, 0.0, -0.4, 0.0, -0.6]
    )
    np.testing.assert_array_equal(state.masks["l"], MASK)


def test_random_reinit_draws_glorot_at_kept_positions():
    init, final, mask = big_layer()
    a = start("random_reinit", "mask", 5, init, final, mask).weights["l"]
    b = start("random_reinit", "mask", 5, init, final, mask).weights["l"]
    np.testing.assert_array_equal(a, b)
    assert np.all(a[~mask] == 0)
    assert a[mask].std() == pytest.approx(glorot_std(init.shape), rel=0.02)
    assert np.corrcoef(a[mask], init[mask])[0, 1] < 0.02  # not the init values


def test_random_reshuffle_permutes_kept_init_values_only():
    init, final, mask = big_layer()
    w = start("random_reshuffle", "freeze_init", 5, init, final, mask).weights["l"]
    np.testing.assert_array_equal(np.sort(w[mask]), np.sort(init[mask]))
    assert not np.array_equal(w[mask], init[mask])
    np.testing.assert_array_equal(w[~mask], init[~mask])  # pruned positions untouched


# Population std of W_INIT's six values (what np.std and tf.nn.moments give): the
# reference's signed constant, not the Glorot formula's SIGMA.
LAYER_STD = math.sqrt(sum((w - (-0.05)) ** 2 for w in (0.5, -0.2, 0.1, -0.4, 0.3, -0.6)) / 6)


def test_signed_constant_is_the_layer_std_with_init_signs():
    w = start("signed_constant", "mask").weights["l"]
    np.testing.assert_allclose(w.ravel(), [LAYER_STD, 0.0, 0.0, -LAYER_STD, 0.0, -LAYER_STD], rtol=1e-12)
    assert layer_std(W_INIT) == pytest.approx(LAYER_STD, rel=1e-12) and abs(LAYER_STD - SIGMA) > 0.1


def test_signed_constant_uses_the_drawn_layer_not_the_formula():
    init, final, mask = big_layer(shape=(784, 300))
    w = start("signed_constant", "mask", 0, init, final, mask).weights["l"]
    np.testing.assert_array_equal(np.abs(w[mask]), np.float64(np.std(init)))
    assert np.std(init) != glorot_std(init.shape)  # a drawn layer is 0.1-2 % off the formula


def rand_signed_constant(init, mask, seed):
    """The Mask-1 result over the whole layer (apply_actions would zero the pruned part)."""
    return get_mask1("rand_signed_constant")(init, mask, np.random.default_rng(seed))


def test_rand_signed_constant_permutes_the_layers_init_signs_by_hand():
    # W_INIT: 3 positive, 3 negative; the constant is signed_constant's LAYER_STD.
    for seed in range(5):
        w = rand_signed_constant(W_INIT, MASK, seed)
        assert w.shape == W_INIT.shape
        np.testing.assert_allclose(np.sort(w.ravel()), [-LAYER_STD] * 3 + [LAYER_STD] * 3, rtol=1e-12)
    # Magnitudes are signed_constant's exactly, at the kept positions of the start weights.
    kept = start("rand_signed_constant", "mask").weights["l"][MASK]
    np.testing.assert_array_equal(np.abs(kept), np.abs(start("signed_constant", "mask").weights["l"][MASK]))


def test_rand_signed_constant_keeps_zero_signs_as_zeros():
    init = np.array([[0.0, 0.3, -0.1], [0.0, 0.2, 0.4]])
    w = rand_signed_constant(init, np.ones_like(init, bool), 3)
    std = np.std(init)
    assert sorted(w.ravel()) == [-std, 0.0, 0.0, std, std, std]


def test_rand_signed_constant_is_seeded():
    init, final, mask = big_layer()
    a = start("rand_signed_constant", "mask", 2, init, final, mask).weights["l"]
    b = start("rand_signed_constant", "mask", 2, init, final, mask).weights["l"]
    c = start("rand_signed_constant", "mask", 3, init, final, mask).weights["l"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(np.abs(a[mask]), np.std(init))
    assert np.all(a[~mask] == 0)
    agree = np.mean(np.sign(a[mask]) == np.sign(init[mask]))
    assert 0.47 < agree < 0.53  # positions are random: a balanced layer's signs are not kept in place


def test_rand_signed_constant_keeps_a_skewed_layers_positive_count():
    # 90 % positive init: a permutation keeps exactly 108000 of 120000 positive; i.i.d. fair
    # signs would give about 60000.
    init, _, mask = big_layer()
    init = np.abs(init)
    init.ravel()[np.random.default_rng(7).permutation(init.size)[: init.size // 10]] *= -1
    assert np.sum(init > 0) == 108000
    for seed in (0, 1):
        w = rand_signed_constant(init, mask, seed)
        assert np.sum(w > 0) == 108000 and np.sum(w < 0) == 12000
        np.testing.assert_array_equal(np.abs(w), np.std(init))
        # Only the whole layer's count is fixed; the kept half draws from it (hypergeometric:
        # 90 %, standard deviation 0.09 % here).
        assert 0.89 < np.mean(w[mask] > 0) < 0.91
        assert not np.array_equal(np.sign(w), np.sign(init))


def test_signed_reinit_keeps_signs_new_magnitudes():
    init, final, mask = big_layer()
    a = start("signed_reinit", "mask", 9, init, final, mask).weights["l"]
    again = start("signed_reinit", "mask", 9, init, final, mask).weights["l"]
    np.testing.assert_array_equal(a, again)
    np.testing.assert_array_equal(np.sign(a[mask]), np.sign(init[mask]))
    assert a[mask].std() == pytest.approx(glorot_std(init.shape), rel=0.02)
    assert np.corrcoef(np.abs(a[mask]), np.abs(init[mask]))[0, 1] < 0.02


def test_signed_reshuffle_keeps_signs_permutes_magnitudes():
    init, final, mask = big_layer()
    w = start("signed_reshuffle", "freeze_init", 4, init, final, mask).weights["l"]
    np.testing.assert_array_equal(np.sign(w[mask]), np.sign(init[mask]))
    np.testing.assert_array_equal(np.sort(np.abs(w[mask])), np.sort(np.abs(init[mask])))
    assert not np.array_equal(np.abs(w[mask]), np.abs(init[mask]))
    np.testing.assert_array_equal(w[~mask], init[~mask])


def test_freeze_init_keeps_pruned_at_init():
    state = start("none", "freeze_init")
    assert state.freeze_pruned is True
    np.testing.assert_array_equal(state.weights["l"], W_INIT)


def test_freeze_reinit_freezes_pruned_at_fresh_draw():
    init, final, mask = big_layer()
    state = start("none", "freeze_reinit", 6, init, final, mask)
    w = state.weights["l"]
    assert state.freeze_pruned is True
    np.testing.assert_array_equal(w[mask], init[mask])
    assert w[~mask].std() == pytest.approx(glorot_std(init.shape), rel=0.02)
    assert np.corrcoef(w[~mask], init[~mask])[0, 1] < 0.02
    again = start("none", "freeze_reinit", 6, init, final, mask).weights["l"]
    np.testing.assert_array_equal(w, again)


def test_freeze_init_zero_mask_by_hand():
    # Pruned: 1 grew (-> init -0.2), 2 shrank (-> 0), 4 grew (-> init 0.3).
    state = start("none", "freeze_init_zero_mask")
    np.testing.assert_array_equal(
        state.weights["l"].ravel(), [0.5, -0.2, 0.0, -0.4, 0.3, -0.6]
    )
    assert state.freeze_pruned is True
    np.testing.assert_array_equal(state.masks["l"], MASK)


def test_freeze_init_zero_all_also_zeroes_kept_weights_that_shrank():
    # As above, plus kept weights 0 and 5 shrank: they start at 0 (still trainable).
    state = start("none", "freeze_init_zero_all")
    np.testing.assert_array_equal(
        state.weights["l"].ravel(), [0.0, -0.2, 0.0, -0.4, 0.3, 0.0]
    )
    assert state.freeze_pruned is True
    np.testing.assert_array_equal(state.masks["l"], MASK)


def test_every_action_pair_runs_and_keeps_shape_and_dtype():
    init = {"a": W_INIT.astype(np.float32), "b": np.ones((3, 3, 2, 4), np.float32)}
    final = {"a": W_FINAL.astype(np.float32), "b": np.full((3, 3, 2, 4), 0.5, np.float32)}
    masks = {"a": MASK.copy(), "b": np.ones((3, 3, 2, 4), bool)}
    copies = [init["a"].copy(), final["a"].copy(), masks["a"].copy()]
    for m1 in MASK1_ACTIONS:
        for m0 in MASK0_ACTIONS:
            state = apply_actions(m1, m0, init, final, masks, np.random.default_rng(0))
            assert {k: v.shape for k, v in state.weights.items()} == {
                "a": (2, 3), "b": (3, 3, 2, 4)
            }
            assert all(v.dtype == np.float32 for v in state.weights.values())
            assert state.freeze_pruned == (m0 != "mask")
    np.testing.assert_array_equal(init["a"], copies[0])
    np.testing.assert_array_equal(final["a"], copies[1])
    np.testing.assert_array_equal(masks["a"], copies[2])


def test_unknown_action_names_list_valid_names():
    with pytest.raises(ConfigError) as err:
        get_mask1("bogus")
    assert "Unknown Mask-1 action 'bogus'" in str(err.value)
    assert all(name in str(err.value) for name in MASK1_ACTIONS)
    with pytest.raises(ConfigError) as err:
        get_mask0("bogus")
    assert "Unknown Mask-0 action 'bogus'" in str(err.value)
    assert all(name in str(err.value) for name in MASK0_ACTIONS)
    with pytest.raises(ConfigError, match="Valid Mask-0 actions: mask, freeze_init"):
        start("none", "zero")


def test_shape_mismatch_and_missing_rng():
    with pytest.raises(ConfigError, match=r"'l'.*\(2, 3\).*\(3, 2\)"):
        start("none", "mask", final=W_FINAL.T)
    with pytest.raises(ConfigError, match=r"'l'.*\(2, 3\).*\(6,\)"):
        start("none", "mask", mask=MASK.ravel())
    with pytest.raises(ConfigError, match="Generator"):
        apply_actions("random_reshuffle", "mask", {"l": W_INIT}, {"l": W_FINAL}, {"l": MASK})
    # Deterministic actions need no rng.
    state = apply_actions(
        "signed_constant", "freeze_init", {"l": W_INIT}, {"l": W_FINAL}, {"l": MASK}
    )
    assert state.weights["l"][0, 1] == -0.2
