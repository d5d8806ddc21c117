"""Settings of iterative magnitude pruning: what to prune and how (one section per strategy).

``PruningSettings``: the levels, the mask criterion, the Mask-1 / Mask-0 actions, rewinding,
the control, the strategy and the layers never pruned. ``LayerwisePruning`` (each layer its
own rate per round, Frankle & Carbin) and ``GlobalPruning`` (one rate over all pruned layers,
open_lth's ``sparse_global``) hold each strategy's rates. ``LotteryConfig`` combines them with
``TrainConfig`` for the ``lottery`` command; the resolved per-layer rates come from
``supermask.recipes.layer_rates``.
"""

import dataclasses
from dataclasses import dataclass, field

from supermask import actions, criteria
from supermask.errors import ConfigError
from supermask.settings.fields import config_hash, fraction, is_int, is_real, one_of, option, set_ints, unset
from supermask.settings.training import TrainConfig

PRUNING_STRATEGIES = ("layerwise", "global")


def names_list(value):
    """Layer names from "a,b", a list or a tuple, as a sorted tuple without duplicates."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in items):
        raise ConfigError(f"prune_ignore must be layer names. Received: {value!r}")
    return tuple(sorted({v.strip() for v in items if v.strip()}))


def rates_list(value):
    """Per-layer rates from "a=0.3,b=0.1", a dict or (name, rate) pairs, as a sorted tuple of pairs."""
    if value is None:
        return ()
    if isinstance(value, str):
        pairs = []
        for item in (v.strip() for v in value.split(",") if v.strip()):
            name, sep, rate = item.rpartition("=")
            try:
                pairs.append((name.strip(), float(rate)))
            except ValueError:
                sep = ""
            if not sep or not name.strip():
                raise ConfigError(f"layer_rates are written NAME=RATE,NAME=RATE. Received: {value!r}")
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        try:
            pairs = [tuple(pair) for pair in value]
        except TypeError:
            pairs = [()]
        if not all(len(pair) == 2 for pair in pairs):
            raise ConfigError(f"layer_rates must map layer names to rates. Received: {value!r}")
    out = {}
    for name, rate in pairs:
        if not isinstance(name, str) or not is_real(rate) or not 0 <= rate < 1:
            raise ConfigError(f"Each layer rate must be a layer name and a number in [0, 1). Received: {name!r}={rate!r}")
        out[name] = float(rate)
    return tuple(sorted(out.items()))


@dataclass(frozen=True)
class PruningSettings:
    """What iterative magnitude pruning does each round (Frankle & Carbin 2019; Zhou et al. 2019)."""

    levels: int = option(10, "pruning rounds after the dense level 0 (fc: 10 rounds leave 10.7% of hidden weights)")
    criterion: str = option("large_final", "mask criterion: which weights to keep, scored over (init, final); "
                                           "one of: " + ", ".join(criteria.BUILTIN) + ", or your own as "
                                           "package.module:function (supermask.criteria.register)",
                            normalize=criteria.checked)
    mask1: str = option("none", "Mask-1 action on kept weights (none: reset to init)",
                        choices=lambda: tuple(actions.MASK1_ACTIONS))
    mask0: str = option("mask", "Mask-0 action on pruned weights (mask: zero)",
                        choices=lambda: tuple(actions.MASK0_ACTIONS))
    rewind_iteration: int = option(0, "late rewinding: reset kept weights to their values at this iteration of "
                                      "level 0 (0: to init)")
    control: bool = option(True, "also train the random-reinit control of every level")
    # Your own criterion's SHA-256 (``criteria.fingerprint``; None for a built-in): part of the hash.
    criterion_fingerprint: str = field(default=None, metadata={"cli": False})
    pruning: str = unset("layerwise: each layer loses its own rate of its weights per round (Frankle & Carbin); "
                         "global: one ranking over all pruned layers, --global-rate of their weights per round "
                         "(open_lth's sparse_global) (default: the model's: layerwise; resnet20 / vgg16 global)",
                         choices=lambda: PRUNING_STRATEGIES)
    prune_ignore: tuple = unset("comma-separated layer names that are never pruned, e.g. output (default: the "
                                "model's: none; vgg16 output, as open_lth)", normalize=names_list)

    def __post_init__(self):
        self._check_pruning()

    def _check_pruning(self):
        criteria.get_criterion(self.criterion)
        actions.get_mask1(self.mask1)
        actions.get_mask0(self.mask0)
        for name in ("levels", "rewind_iteration"):
            value = getattr(self, name)
            if not is_int(value) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0. Received: {name}={value!r}")
        set_ints(self, "levels", "rewind_iteration")
        one_of(self, "pruning", PRUNING_STRATEGIES)
        if self.prune_ignore is not None:
            object.__setattr__(self, "prune_ignore", names_list(self.prune_ignore))


@dataclass(frozen=True)
class LayerwisePruning:
    """``--pruning layerwise``: each layer loses its own fraction of its remaining weights per round."""

    rate_conv: float = unset("per-round pruning fraction of conv layers (default: conv2/conv4 0.1, conv6 0.15; "
                             "your own model 0.1)")
    rate_fc: float = unset("per-round pruning fraction of hidden dense layers (default 0.2)")
    rate_output: float = unset("per-round pruning fraction of the output layer, the last prunable one (default 0.1)")
    layer_rates: tuple = option((), "per-layer pruning fractions overriding the kind's, as NAME=RATE,NAME=RATE "
                                    "(layer names as in masks.h5, nested ones as block/dense)", normalize=rates_list)

    def __post_init__(self):
        self._check_layerwise()

    def _check_layerwise(self):
        fraction(self, "rate_conv", "rate_fc", "rate_output")
        object.__setattr__(self, "layer_rates", rates_list(self.layer_rates))

    def per_layer(self):
        """The names of the per-layer rate fields that are set."""
        return [name for name in ("rate_conv", "rate_fc", "rate_output", "layer_rates")
                if getattr(self, name) not in (None, ())]


@dataclass(frozen=True)
class GlobalPruning:
    """``--pruning global``: one ranking over all pruned layers, one fraction of their weights per round."""

    global_rate: float = unset("--pruning global: per-round pruning fraction of all pruned weights together "
                               "(default 0.2, open_lth's)")

    def __post_init__(self):
        self._check_global()

    def _check_global(self):
        fraction(self, "global_rate")


@dataclass(frozen=True)
class LotteryConfig(GlobalPruning, LayerwisePruning, PruningSettings, TrainConfig):
    """Iterative magnitude pruning: train, prune, reset, retrain, for ``levels`` rounds.

    ``seed`` names the trial: an experiment's folder is the hash of every other field but
    ``levels`` (``experiment_hash``), and each seed is a ``trial_<seed>`` folder inside it.
    ``levels`` only says how far to go, so ``--resume`` with more levels extends an experiment.
    """

    def __post_init__(self):
        TrainConfig.__post_init__(self)
        self._check_pruning()
        self._check_layerwise()
        self._check_global()
        # One strategy's rates at a time: the other strategy's would be silently ignored.
        if self.pruning == "global" and self.per_layer():
            raise ConfigError(f"{', '.join(self.per_layer())} set per-layer rates, which --pruning global does not "
                              "use (it has one --global-rate); drop them, or use --pruning layerwise.")
        if self.pruning == "layerwise" and self.global_rate is not None:
            raise ConfigError(f"global_rate applies to --pruning global. Received: global_rate={self.global_rate}, "
                              "pruning='layerwise'")

    def experiment_hash(self):
        """The experiment folder's name: the hash of everything but the seed and the levels.

        Call it on resolved settings (``supermask.recipes.resolve``), so that spellings of one run agree.
        """
        return config_hash(dataclasses.replace(self, seed=TrainConfig.seed, levels=LotteryConfig.levels))
