"""Settings (``supermask.settings``): types and ranges, canonical fields, hashes, generated flags.

Backend-free: run once, in the JAX pass.
"""

import dataclasses

import pytest

from supermask import recipes
from supermask.errors import ConfigError
from supermask.settings import (DatasetSettings, GlobalPruning, LayerwisePruning, LotteryConfig, ModelSettings,
                                PruningSettings, SupermaskConfig, SupermaskSettings, SupermaskTraining, TrainConfig,
                                TrainingSettings, config_hash, non_default_dict, to_dict)
from tests.conftest import on_jax


@on_jax
def test_config_hash_ignores_defaults_and_validates():
    assert config_hash(TrainConfig()) == config_hash(TrainConfig(model="fc", seed=0))
    assert config_hash(TrainConfig(seed=1)) != config_hash(TrainConfig())
    assert non_default_dict(TrainConfig(epochs=2, dataset="fashion-mnist")) == {
        "epochs": 2, "dataset": "fashion_mnist"}
    assert recipes.iterations(TrainConfig(epochs=2), 55000) == 1833
    assert recipes.iterations(TrainConfig(epochs=2, iterations=7), 55000) == 7
    assert recipes.iterations(TrainConfig(model="conv4"), 55000) == 25000
    for bad, message in [({"model": "vgg"}, "Valid models"), ({"dataset": "svhn"}, "Valid datasets"),
                         ({"epochs": 0}, "epochs must be a finite number > 0"), ({"validation_size": -1}, ">= 0")]:
        with pytest.raises(ConfigError, match=message):
            TrainConfig(**bad)


# Every hparams.json key (and so every flag) the combined settings had before they were split into
# sections: the split must keep each command's settings flat and whole.
LOTTERY_FIELDS = {
    "model", "dataset", "epochs", "iterations", "batch_size", "learning_rate", "seed", "eval_every", "validation_size",
    "optimizer", "momentum", "weight_decay", "lr_schedule", "milestones", "gamma", "warmup", "augment", "early_stop",
    "model_fingerprint", "data_fingerprint", "levels", "criterion", "mask1", "mask0", "rewind_iteration", "rate_conv",
    "rate_fc", "rate_output", "control", "pruning", "global_rate", "prune_ignore", "layer_rates",
    "criterion_fingerprint"}
SUPERMASK_FIELDS = {
    "model", "dataset", "epochs", "iterations", "batch_size", "learning_rate", "seed", "eval_every", "validation_size",
    "optimizer", "momentum", "weight_decay", "lr_schedule", "early_stop", "model_fingerprint", "data_fingerprint",
    "learner", "k", "weights", "dwr", "inference", "score_init", "eval_samples"}


@on_jax
def test_commands_combine_sections_into_flat_settings():
    assert set(to_dict(LotteryConfig())) == LOTTERY_FIELDS
    assert set(to_dict(TrainConfig())) == LOTTERY_FIELDS - {f.name for cls in (PruningSettings, LayerwisePruning,
                                                                               GlobalPruning)
                                                            for f in dataclasses.fields(cls)}
    assert set(to_dict(SupermaskConfig())) == SUPERMASK_FIELDS
    sections = (ModelSettings, DatasetSettings, TrainingSettings, PruningSettings, LayerwisePruning, GlobalPruning)
    assert {f.name for cls in sections for f in dataclasses.fields(cls)} == LOTTERY_FIELDS
    sections = (ModelSettings, DatasetSettings, SupermaskTraining, SupermaskSettings)
    assert {f.name for cls in sections for f in dataclasses.fields(cls)} == SUPERMASK_FIELDS


@on_jax
@pytest.mark.parametrize("section, good, bad, message", [
    (DatasetSettings, {"dataset": "Fashion-MNIST"}, {"validation_size": -1}, "validation_size must be an integer >= 0"),
    (ModelSettings, {"model": "pkg.mod:fn"}, {"model": "lenet"}, "Valid models"),
    (TrainingSettings, {"milestones": "100,200"}, {"batch_size": 0}, "batch_size must be an integer > 0"),
    (TrainingSettings, {"optimizer": "sgd"}, {"milestones": "200,100"}, "milestones must be increasing"),
    (PruningSettings, {"prune_ignore": "output, fc1"}, {"criterion": "largest"}, "Valid criteria"),
    (LayerwisePruning, {"layer_rates": "fc1=0.3"}, {"rate_fc": 1.0}, r"rate_fc must be in \[0, 1\)"),
    (GlobalPruning, {"global_rate": 0.5}, {"global_rate": -0.1}, r"global_rate must be in \[0, 1\)"),
    (SupermaskTraining, {"lr_schedule": "cosine"}, {"lr_schedule": "step"}, "lr_schedule must be one of"),
    (SupermaskSettings, {"learner": "edge_popup", "k": 0.3}, {"k": 0.3}, "k applies to learner 'edge-popup'"),
])
def test_each_section_stands_alone_and_checks_only_its_own_fields(section, good, bad, message):
    settings = section(**good)
    assert all(getattr(settings, name) is not None for name in good)
    with pytest.raises(ConfigError, match=message):
        section(**bad)


@on_jax
def test_sections_normalise_their_spellings():
    assert DatasetSettings(dataset="Fashion-MNIST").dataset == "fashion_mnist"
    assert TrainingSettings(milestones="100, 200").milestones == (100, 200)
    assert PruningSettings(prune_ignore="output, fc1,output").prune_ignore == ("fc1", "output")
    assert LayerwisePruning(layer_rates={"fc2": 0.5, "fc1": 0.25}).layer_rates == (("fc1", 0.25), ("fc2", 0.5))
    assert SupermaskSettings(learner="EDGE_POPUP", weights="signed-constant").learner == "edge-popup"


@on_jax
def test_what_needs_the_model_is_checked_when_resolving():
    # One strategy's rates at a time: given explicitly, at once; the model's strategy, when resolving.
    with pytest.raises(ConfigError, match="per-layer rates, which --pruning global does not use"):
        LotteryConfig(pruning="global", rate_fc=0.3)
    LotteryConfig(model="resnet20", dataset="cifar10", rate_fc=0.3)  # resnet20 prunes globally by default
    with pytest.raises(ConfigError, match="per-layer rates, which --pruning global does not use"):
        recipes.resolve(LotteryConfig(model="resnet20", dataset="cifar10", rate_fc=0.3), 45_000)
    with pytest.raises(ConfigError, match="rate_conv applies to models with convolutions"):
        recipes.resolve(LotteryConfig(model="fc", rate_conv=0.2), 55_000)
    with pytest.raises(ConfigError, match="large_init_large_final"):
        recipes.resolve(LotteryConfig(pruning="global", criterion="large_init_large_final"), 55_000)
    with pytest.raises(ConfigError, match="resolve needs a Dataset or the number of training examples"):
        recipes.resolve(TrainConfig(), "mnist")
