"""Mask criteria: hand-checked scores and the masks they produce on tiny arrays."""

import numpy as np
import pytest

from supermask import criteria
from supermask.criteria import CRITERIA, compute_scores, get_criterion
from supermask.errors import ConfigError
from supermask.pruning import prune



# Six weights, laid out as a (2, 3) dense kernel; flat indices 0..5.
W_INIT = np.array([0.5, -0.2, 0.1, -0.4, 0.3, -0.6]).reshape(2, 3)
W_FINAL = np.array([0.3, 0.6, -0.05, -0.9, 0.35, 0.2]).reshape(2, 3)
# |wf|       = 0.3  0.6  0.05  0.9  0.35  0.2
# |wi|       = 0.5  0.2  0.1   0.4  0.3   0.6
# same sign  = T    F    F     T    T     F


def kept(name, k, mask=None, rng=None):
    """Flat indices kept when keeping the top-k weights by criterion ``name``."""
    masks = {"l": np.ones((2, 3), bool) if mask is None else mask}
    rng = np.random.default_rng(0) if rng is None else rng
    scores = compute_scores(name, {"l": W_INIT}, {"l": W_FINAL}, rng, masks)
    return sorted(np.flatnonzero(prune(scores, masks, {"l": k})["l"]).tolist())


@pytest.mark.parametrize(
    "name, k, expected",
    [
        ("large_final", 3, [1, 3, 4]),
        ("small_final", 2, [2, 5]),
        ("large_init", 2, [0, 5]),
        ("small_init", 2, [1, 2]),
        ("magnitude_increase", 2, [1, 3]),  # |wf|-|wi| = -.2 .4 -.05 .5 .05 -.4
        ("movement", 3, [1, 3, 5]),  # |wf-wi| = .2 .8 .15 .5 .05 .8
        # Top-3 of |wi| is {0,3,5}, of |wf| {1,3,4}: only 3 is large in both.
        ("large_init_large_final", 1, [3]),
        # Top-4 of both: {0,3,4,5} & {0,1,3,4} = {0,3,4}.
        ("large_init_large_final", 3, [0, 3, 4]),
        # Bottom-4 of both: {1,2,3,4} & {0,2,4,5} = {2,4}.
        ("small_init_small_final", 2, [2, 4]),
        ("small_init_small_final", 1, [2]),
        # Same-sign weights {0,3,4}, ranked by |wf|: 3 (.9), 4 (.35), 0 (.3).
        ("large_final_same_sign", 2, [3, 4]),
        ("large_final_same_sign", 3, [0, 3, 4]),
        ("large_final_diff_sign", 2, [1, 5]),
        ("large_final_diff_sign", 3, [1, 2, 5]),
        # |wf|-|wi| of same-sign {0,3,4} = -.2 .5 .05: the excluded weights (score 0)
        # rank between 4 (.05) and 0 (-.2), as in the reference: 0 is kept last of all.
        ("magnitude_increase_same_sign", 2, [3, 4]),
        ("magnitude_increase_same_sign", 6, [0, 1, 2, 3, 4, 5]),
        ("magnitude_increase_diff_sign", 1, [1]),
    ],
)
def test_criterion_keeps_expected_weights(name, k, expected):
    assert kept(name, k) == expected


def test_simple_scores_exact_values():
    wi, wf = W_INIT, W_FINAL
    np.testing.assert_allclose(CRITERIA["large_final"](wi, wf, None), np.abs(wf))
    np.testing.assert_allclose(CRITERIA["small_final"](wi, wf, None), -np.abs(wf))
    np.testing.assert_allclose(CRITERIA["large_init"](wi, wf, None), np.abs(wi))
    np.testing.assert_allclose(CRITERIA["small_init"](wi, wf, None), -np.abs(wi))
    np.testing.assert_allclose(
        CRITERIA["magnitude_increase"](wi, wf, None),
        np.array([-0.2, 0.4, -0.05, 0.5, 0.05, -0.4]).reshape(2, 3),
    )
    np.testing.assert_allclose(
        CRITERIA["movement"](wi, wf, None),
        np.array([0.2, 0.8, 0.15, 0.5, 0.05, 0.8]).reshape(2, 3),
    )


def test_joint_rank_exact_scores():
    # Ranks of |wi|: 4 1 0 3 2 5; of |wf|: 2 4 0 5 3 1; score = min + max / 6.
    expected = np.array([2 + 4 / 6, 1 + 4 / 6, 0, 3 + 5 / 6, 2 + 3 / 6, 1 + 5 / 6])
    np.testing.assert_allclose(
        criteria.large_init_large_final(W_INIT, W_FINAL).ravel(), expected
    )


def test_joint_rank_uses_only_unpruned_weights():
    mask = np.array([True, False, True, True, False, True]).reshape(2, 3)
    score = criteria.large_init_large_final(W_INIT, W_FINAL, None, mask)
    alone = criteria.large_init_large_final(W_INIT[mask], W_FINAL[mask])
    np.testing.assert_allclose(score[mask], alone)
    assert np.all(score[~mask] < score[mask].min())


def test_joint_rank_with_tied_init_reduces_to_large_final():
    wi = np.full(5, 0.1)  # e.g. a signed-constant init: every |wi| is equal
    wf = np.array([0.4, -0.1, 0.3, 0.05, -0.2])
    score = criteria.large_init_large_final(wi, wf)
    assert np.argsort(-score).tolist() == np.argsort(-np.abs(wf)).tolist()


# When a layer keeps more weights than the sign condition includes, the rest come from
# the excluded weights (score 0) chosen at random, as in Zhou et al.'s code; the
# included ones are always kept first (by their base score where it is positive).
SIGN_FILL = [
    # (criterion, k, always kept, excluded pool the rest is drawn from)
    ("large_final_same_sign", 4, {0, 3, 4}, {1, 2, 5}),
    ("large_final_diff_sign", 4, {1, 2, 5}, {0, 3, 4}),
    ("magnitude_increase_same_sign", 3, {3, 4}, {1, 2, 5}),  # 0 shrank: below the zeros
    ("magnitude_increase_diff_sign", 3, {1}, {0, 3, 4}),  # 2 and 5 shrank
]


@pytest.mark.parametrize("name, k, always, pool", SIGN_FILL)
def test_sign_criteria_fill_with_random_excluded_weights(name, k, always, pool):
    seen = set()
    for seed in range(40):
        got = set(kept(name, k, rng=np.random.default_rng(seed)))
        assert len(got) == k and always <= got and got - always <= pool
        assert kept(name, k, rng=np.random.default_rng(seed)) == sorted(got)  # reproducible
        seen |= got - always
    assert seen == pool  # every excluded weight gets picked by some seed: a random fill


def test_sign_criteria_ignore_the_base_score_of_excluded_weights():
    # A sign-flipped weight that grew to 5 is no likelier to fill than one that ended
    # at 0.01: the reference scores every excluded weight 0.
    wi = np.array([1.0, 1.0] + [0.5] * 6)
    wf = np.array([-5.0, -0.01] + [0.9] * 6)
    picks = np.zeros(2)
    for seed in range(400):
        score = CRITERIA["large_final_same_sign"](wi, wf, np.random.default_rng(seed))
        keep = np.argsort(-score, kind="stable")[:7]
        assert set(range(2, 8)) <= set(keep.tolist())
        picks += [0 in keep, 1 in keep]
    assert picks.sum() == 400 and 150 < picks[0] < 250


@pytest.mark.parametrize("name", [n for n in CRITERIA if "_sign" in n])
def test_sign_criteria_need_rng(name):
    with pytest.raises(ConfigError, match="Generator"):
        compute_scores(name, {"l": W_INIT}, {"l": W_FINAL}, None)


def test_random_is_reproducible_and_needs_rng():
    init, final = {"l": W_INIT}, {"l": W_FINAL}
    a = compute_scores("random", init, final, np.random.default_rng(7))["l"]
    b = compute_scores("random", init, final, np.random.default_rng(7))["l"]
    c = compute_scores("random", init, final, np.random.default_rng(8))["l"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (2, 3) and np.all((a >= 0) & (a < 1))
    with pytest.raises(ConfigError, match="Generator"):
        compute_scores("random", init, final, None)


def test_compute_scores_returns_float64_and_does_not_mutate():
    init = {"a": W_INIT.astype(np.float32), "b": np.arange(4.0).reshape(2, 2)}
    final = {"a": W_FINAL.astype(np.float32), "b": -np.arange(4.0).reshape(2, 2)}
    before = {k: v.copy() for k, v in {**init, **{"f" + k: v for k, v in final.items()}}.items()}
    for name in CRITERIA:
        scores = compute_scores(name, init, final, np.random.default_rng(0))
        assert set(scores) == {"a", "b"}
        assert all(s.dtype == np.float64 for s in scores.values())
        assert scores["a"].shape == (2, 3) and scores["b"].shape == (2, 2)
    np.testing.assert_array_equal(init["a"], before["a"])
    np.testing.assert_array_equal(final["b"], before["fb"])


def test_unknown_criterion_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        get_criterion("foo")
    message = str(err.value)
    assert "Unknown criterion 'foo'" in message
    assert "Valid criteria: large_final, small_final" in message
    assert all(name in message for name in CRITERIA)
    assert isinstance(err.value, ValueError)


def test_shape_mismatch_names_layer_and_shapes():
    with pytest.raises(ConfigError) as err:
        compute_scores("large_final", {"fc1": W_INIT}, {"fc1": W_INIT.T}, None)
    assert "'fc1'" in str(err.value)
    assert "(2, 3)" in str(err.value) and "(3, 2)" in str(err.value)


def test_layer_mismatch_is_config_error():
    with pytest.raises(ConfigError, match="fc2"):
        compute_scores("large_final", {"fc1": W_INIT}, {"fc1": W_INIT, "fc2": W_INIT}, None)
    with pytest.raises(ConfigError, match="masks"):
        compute_scores(
            "large_final", {"fc1": W_INIT}, {"fc1": W_FINAL}, None, {"fc1": np.ones(6, bool)}
        )


@pytest.mark.slow
def test_diff_sign_masks_at_init_are_far_below_same_sign_on_real_mnist(small_mnist):
    """Zhou et al.'s finding: at init, masks keeping sign-flipped weights are near chance while
    same-sign masks classify well. Weights from a briefly trained fc; each layer keeps half its
    weights; the masked, untrained network is evaluated on the 10 000 real test images."""
    import keras

    from supermask import masks as M
    from supermask.models import build as build_model
    from supermask.pruning import keep_count
    from supermask.train import compile_model, make_optimizer, train_model

    keras.backend.clear_session()
    model = build_model("fc", (28, 28, 1), seed=0)
    init = M.get_weights(model)
    compile_model(model, make_optimizer(1.2e-3))
    train_model(model, small_mnist, iterations=300, batch_size=60, eval_every=300, verbose=0)
    w0, wf = M.kernels(init), M.kernels(M.get_weights(model))
    x = small_mnist.x_test.reshape(len(small_mnist.x_test), -1).astype(np.float64)
    y = small_mnist.y_test

    def accuracy_at_init(masks):
        h = x
        for layer in ("fc1", "fc2", "output"):
            h = h @ (w0[layer] * masks[layer]) + init[f"{layer}/bias"]
            h = np.maximum(h, 0) if layer != "output" else h
        return float(np.mean(h.argmax(axis=1) == y))

    def half_density(name, seed):
        scores = compute_scores(name, w0, wf, np.random.default_rng(seed))
        ones = {k: np.ones(v.shape, bool) for k, v in w0.items()}
        return prune(scores, ones, {k: keep_count(v.size, 0.5, 1) for k, v in w0.items()})

    for seed in range(3):
        same, diff = (accuracy_at_init(half_density(n, seed)) for n in ("large_final_same_sign",
                                                                         "large_final_diff_sign"))
        assert diff < 0.10 < 0.6 < same, (seed, same, diff)
