"""``supermask.recipes.resolve``: every unset value filled in from the model's recipe and the data,
identical runs named once, and every experiment folder named before this module existed still named
the same (pinned hashes).

Backend-free: run once, in the JAX pass.
"""

import keras
import pytest

from supermask import recipes, runs
from supermask.errors import ConfigError
from supermask.settings import LotteryConfig, SupermaskConfig, TrainConfig, config_hash
from supermask.train_supermask import layer_options
from tests.conftest import on_jax


@on_jax
def test_resolved_configs_name_identical_runs_once():
    a = recipes.resolve(TrainConfig(epochs=1), 55_000)
    b = recipes.resolve(TrainConfig(iterations=917, batch_size=60, learning_rate=1.2e-3), 55_000)
    assert a == b and config_hash(a) == config_hash(b)
    assert (a.iterations, a.batch_size, a.learning_rate, a.epochs) == (917, 60, 1.2e-3, None)
    assert recipes.resolve(a, 55_000) == a  # resolving is idempotent
    assert config_hash(recipes.resolve(TrainConfig(epochs=2), 55_000)) != config_hash(a)
    lot = recipes.resolve(LotteryConfig(model="conv6", rate_fc=0.2), 45_000)
    assert (lot.rate_conv, lot.rate_fc, lot.rate_output) == (0.15, 0.2, 0.1)
    assert lot.experiment_hash() == recipes.resolve(LotteryConfig(model="conv6", iterations=30_000), 45_000).experiment_hash()
    sm = recipes.resolve(SupermaskConfig(learner="edge_popup", epochs=1), 55_000)
    assert (sm.batch_size, sm.learning_rate, sm.optimizer, sm.momentum, sm.weight_decay, sm.lr_schedule,
            sm.k, sm.score_init, sm.eval_every, sm.iterations) == (128, 0.1, "sgd", 0.9, 1e-4, "cosine",
                                                                   0.5, None, 430, 430)
    assert sm == recipes.resolve(SupermaskConfig(learner="edge-popup", k=0.5, batch_size=128, iterations=430,
                                 momentum=0.9, lr_schedule="cosine"), 55_000)
    bern = recipes.resolve(SupermaskConfig(iterations=5), 55_000)
    assert (bern.score_init, bern.k, bern.learning_rate, bern.weight_decay) == (0.0, None, 100.0, 0.0)


@on_jax
def test_recipes_resolve_to_open_lths_defaults_and_old_hashes_hold():
    r = recipes.resolve(LotteryConfig(model="resnet20", dataset="cifar10"), 50_000)
    per_epoch = 50_000 / 128
    assert (r.batch_size, r.learning_rate, r.optimizer, r.momentum, r.weight_decay) == (128, 0.1, "sgd", 0.9, 1e-4)
    assert r.iterations == round(160 * per_epoch) and r.milestones == (round(80 * per_epoch), round(120 * per_epoch))
    assert (r.lr_schedule, r.gamma, r.augment, r.pruning, r.global_rate, r.prune_ignore) == \
        ("step", 0.1, True, "global", 0.2, ())
    v = recipes.resolve(LotteryConfig(model="vgg16", dataset="cifar10"), 50_000)
    assert v.prune_ignore == ("output",) and v.pruning == "global"
    assert recipes.resolve(LotteryConfig(model="vgg16", dataset="cifar10", prune_ignore=""), 50_000).prune_ignore == ()
    # Overrides, and one clear error for what does not fit.
    o = recipes.resolve(LotteryConfig(model="resnet20", dataset="cifar10", optimizer="adam", momentum=0.0, lr_schedule="constant",
                      augment=False, pruning="layerwise"), 50_000)
    assert (o.optimizer, o.lr_schedule, o.milestones, o.augment, o.pruning, o.rate_conv) == \
        ("adam", "constant", (), False, "layerwise", 0.1)
    with pytest.raises(ConfigError, match="momentum applies to optimizer sgd"):
        recipes.resolve(LotteryConfig(optimizer="adam", momentum=0.9), 55_000)
    with pytest.raises(ConfigError, match="needs --milestones"):
        recipes.resolve(LotteryConfig(lr_schedule="step"), 55_000)
    with pytest.raises(ConfigError, match="below the 100 training iterations"):
        recipes.resolve(LotteryConfig(lr_schedule="step", milestones="50,150", iterations=100), 55_000)
    with pytest.raises(ConfigError, match="increasing iterations"):
        LotteryConfig(milestones="20,10")
    with pytest.raises(ConfigError, match="weight-decay would shrink"):
        recipes.resolve(LotteryConfig(model="resnet20", dataset="cifar10", mask0="freeze_init"), 50_000)
    # The supermask trainer has no augmentation or step schedule: not a field of its settings.
    with pytest.raises(ConfigError, match="Unknown hyperparameter.*augment for SupermaskConfig"):
        runs.settings_for(SupermaskConfig, augment=True)
    # The lottery papers' models spell the plain recipe out (hparams.json), but their experiment
    # folders (hashes) are the ones from before these options existed (computed at commit 474b551).
    plain = recipes.resolve(LotteryConfig(iterations=2500), 55_000)
    assert (plain.optimizer, plain.momentum, plain.weight_decay, plain.lr_schedule, plain.milestones, plain.warmup,
            plain.augment, plain.pruning, plain.prune_ignore) == ("adam", 0.0, 0.0, "constant", (), 0, False,
                                                                  "layerwise", ())
    assert plain.experiment_hash() == "bb9af0338be8"
    assert recipes.resolve(LotteryConfig(model="conv6", dataset="cifar10"), 45_000).experiment_hash() == "ffa29d588985"
    assert config_hash(recipes.resolve(TrainConfig(epochs=2), 55_000)) == "35bf25b711a4"
    assert config_hash(recipes.resolve(SupermaskConfig(epochs=1), 55_000)) == "13a6fd252d10"
    # Spelling the plain recipe out is the same run.
    spelled = recipes.resolve(LotteryConfig(iterations=2500, optimizer="adam", lr_schedule="constant", augment=False,
                            weight_decay=0.0, pruning="layerwise"), 55_000)
    assert spelled == plain


@on_jax
def test_config_defaults_per_learner_and_validation():
    bern = recipes.resolve(SupermaskConfig(), 55000)
    assert (bern.batch_size, bern.learning_rate) == (250, 100.0)
    assert (bern.optimizer, bern.momentum, bern.score_init, bern.k) == ("sgd", 0.9, 0.0, None)
    assert bern.iterations == 2000 * 220  # the paper's 2000 epochs
    assert bern.eval_every == 220  # once per epoch
    edge = recipes.resolve(SupermaskConfig(learner="edge_popup", epochs=2), 55000)
    assert edge.learner == "edge-popup" and edge.k == 0.5 and edge.score_init is None
    assert (edge.batch_size, edge.learning_rate, edge.lr_schedule) == (128, 0.1, "cosine")
    assert edge.iterations == 859
    assert config_hash(SupermaskConfig()) == config_hash(SupermaskConfig(learner="bernoulli", weights="init"))
    assert config_hash(SupermaskConfig(dwr=True)) != config_hash(SupermaskConfig())
    options = layer_options(recipes.resolve(SupermaskConfig(learner="edge-popup", k=0.3, weights="signed-constant", dwr=True), 55000))
    assert options["k"] == 0.3 and options["signed_constant"] and options["dynamic_scaling"]
    assert isinstance(options["score_regularizer"], keras.regularizers.L2)
    for bad, message in [
        ({"learner": "sgd"}, "learner must be one of 'bernoulli', 'edge-popup'. Received: learner='sgd'"),
        ({"learner": "edge-popup", "k": 1.5}, "k must be in (0, 1]. Received: k=1.5"),
        ({"k": 0.5}, "k applies to learner 'edge-popup' only"),
        ({"weights": "kaiming"}, "weights must be one of init, signed_constant. Received: weights='kaiming'"),
        ({"inference": "mean"}, "Received: inference='mean'"),
        ({"learner": "edge-popup", "score_init": 1.0}, "score_init applies to learner 'bernoulli' only"),
        ({"optimizer": "rmsprop"}, "optimizer must be sgd or adam"),
        ({"model": "vgg"}, "Valid models"),
    ]:
        with pytest.raises(ConfigError) as info:
            SupermaskConfig(**bad)
        assert message in str(info.value)


@on_jax
def test_the_criterion_is_part_of_the_config_and_the_default_keeps_old_hashes():
    plain = recipes.resolve(LotteryConfig(iterations=2500), 55_000)
    assert plain.early_stop == "val_loss" and plain.experiment_hash() == "bb9af0338be8"
    other = recipes.resolve(LotteryConfig(iterations=2500, early_stop="val_accuracy"), 55_000)
    assert other.experiment_hash() != plain.experiment_hash()
    assert config_hash(recipes.resolve(SupermaskConfig(epochs=1, early_stop="val_accuracy"), 55_000)) != \
        config_hash(recipes.resolve(SupermaskConfig(epochs=1), 55_000))

