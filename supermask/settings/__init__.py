"""Settings: small frozen dataclasses, each checking only its own types and ranges.

=====================  ================================================================
``ModelSettings``      the architecture (and the fingerprints a run records)
``DatasetSettings``    the dataset and the validation hold-out
``TrainingSettings``   budget, batch, optimiser, schedule, augmentation, early stopping
``PruningSettings``    levels, criterion, Mask-1 / Mask-0 actions, rewinding, control
``LayerwisePruning``   per-layer rates (``--pruning layerwise``)
``GlobalPruning``      one rate over all pruned layers (``--pruning global``)
``SupermaskTraining``  how the scores train
``SupermaskSettings``  the supermask learner and its options
``InitSweepSettings``  the masked-but-untrained sweep over one trained run
``InstabilitySettings``  where two copies split off and how their linear path is measured
``PruneInitSettings``  pruning at initialisation: methods, sanity variants, densities
=====================  ================================================================

A command's settings combine sections: ``TrainConfig`` (train), ``LotteryConfig`` (lottery),
``SupermaskConfig`` (train_supermask), ``InitSweepConfig`` (init_sweep), ``InstabilityConfig``
(instability), ``PruneInitConfig`` (prune_init). Their fields generate
the command-line flags (``supermask.cli``), their hash names the run's folder
(``fields.config_hash``), and ``supermask.recipes.resolve`` fills in every unset value.
"""

from supermask.seeds import MAX_SEED, check_seed
from supermask.settings.fields import canonical_json, config_hash, non_default_dict, to_dict
from supermask.settings.init_sweep import InitSweepConfig, InitSweepSettings
from supermask.settings.instability import InstabilityConfig, InstabilitySettings
from supermask.settings.prune_init import PruneInitConfig, PruneInitSettings
from supermask.settings.pruning import (PRUNING_STRATEGIES, GlobalPruning, LayerwisePruning, LotteryConfig,
                                        PruningSettings)
from supermask.settings.supermask import SupermaskConfig, SupermaskSettings, SupermaskTraining
from supermask.settings.training import (EARLY_STOP_CRITERIA, OPTIMIZERS, TRAIN_SCHEDULES, DatasetSettings,
                                         ModelSettings, TrainConfig, TrainingSettings)

__all__ = ["MAX_SEED", "check_seed", "canonical_json", "config_hash", "non_default_dict", "to_dict",
           "InitSweepConfig", "InitSweepSettings", "InstabilityConfig", "InstabilitySettings",
           "PruneInitConfig", "PruneInitSettings",
           "PRUNING_STRATEGIES", "GlobalPruning", "LayerwisePruning", "LotteryConfig", "PruningSettings",
           "SupermaskConfig", "SupermaskSettings", "SupermaskTraining", "EARLY_STOP_CRITERIA", "OPTIMIZERS",
           "TRAIN_SCHEDULES", "DatasetSettings", "ModelSettings", "TrainConfig", "TrainingSettings"]
