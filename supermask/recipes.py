"""``resolve``: settings with every unset value filled in from the model's recipe and the data.

Settings (``supermask.settings``) leave a value unset (None) to mean "the recipe's": the paper's
for a built-in model (``supermask.specs``), the learner's for a supermask (``LEARNER_DEFAULTS``),
Keras's defaults for your own model. Before a run names its folder or writes ``hparams.json`` it
calls ``resolve(settings, data)``, once, at the edge: identical runs spelled differently
(``--epochs 1`` or ``--iterations 917``; ``--batch-size 60`` or nothing) resolve to one value, one
hash, one folder; resolving again changes nothing. Checks that need the model's recipe (a conv
rate for a network without convolutions, milestones beyond the budget, a criterion that cannot
rank globally) live here too.
"""

import dataclasses
import numbers

from supermask import criteria, specs
from supermask.errors import ConfigError
from supermask.pruning import GLOBAL_RATE, KIND_RATES, PRUNE_RATES, default_rates, layer_roles
from supermask.settings import LotteryConfig, SupermaskConfig, TrainConfig
from supermask.settings.supermask import SUPERMASK_EPOCHS

# Defaults of the supermask learners, where a SupermaskConfig field is left unset.
# bernoulli: Zhou et al.'s train_supermask.py run for fc (README of
#   uber-research/deconstructing-lottery-tickets: --opt sgd --lr 100 --num_epochs 2000;
#   parser defaults --mom 0.9 --train_batch_size 250 --sigmoid_bias 0, no L2, no decay).
# edge-popup: Ramanujan et al.'s fc config (configs/smallscale/fc/fc_*_unsigned.yml of
#   allenai/hidden-networks: sgd, lr 0.1, cosine_lr, momentum 0.9, weight_decay 1e-4,
#   batch_size 128); their 100 epochs are replaced by the same 2000 as bernoulli, so
#   that a comparison at equal epochs is the default.
LEARNER_DEFAULTS = {
    "bernoulli": {"batch_size": 250, "learning_rate": 100.0, "optimizer": "sgd", "momentum": 0.9,
                  "weight_decay": 0.0, "lr_schedule": "constant", "score_init": 0.0},
    "edge-popup": {"batch_size": 128, "learning_rate": 0.1, "optimizer": "sgd", "momentum": 0.9,
                   "weight_decay": 1e-4, "lr_schedule": "cosine", "k": 0.5},
}
_RECIPE_FIELDS = ("optimizer", "momentum", "weight_decay", "lr_schedule", "gamma", "warmup", "augment")


def num_train_examples(data):
    """The training split's size: ``data`` is a ``supermask.data.Dataset`` or that size as an int."""
    if isinstance(data, numbers.Integral) and not isinstance(data, bool):
        return int(data)
    try:
        return len(data.x_train)
    except AttributeError:
        raise ConfigError(f"resolve needs a Dataset or the number of training examples. Received: "
                          f"{type(data).__name__}") from None


def resolve(settings, data):
    """``settings`` with every unset value filled in as a run of it uses them.

    ``data``: the ``Dataset`` (or the size of its training split, after the validation
    hold-out), which turns ``epochs`` into ``iterations``. The result has ``epochs=None`` and
    explicit ``iterations``, ``batch_size``, ``learning_rate`` and recipe values.
    """
    n = num_train_examples(data)
    if isinstance(settings, SupermaskConfig):
        return _resolve_supermask(settings, n)
    if isinstance(settings, LotteryConfig):
        return _resolve_pruning(_resolve_training(settings, n))
    if isinstance(settings, TrainConfig):
        return _resolve_training(settings, n)
    raise ConfigError(f"resolve takes TrainConfig, LotteryConfig or SupermaskConfig settings. Received: "
                      f"{type(settings).__name__}")


def batch_size(settings):
    """The batch size a run of ``settings`` uses."""
    if isinstance(settings, SupermaskConfig):
        return settings.batch_size or LEARNER_DEFAULTS[settings.learner]["batch_size"]
    return settings.batch_size or specs.get_spec(settings.model).batch_size


def iterations(settings, data):
    """Training length in iterations: ``iterations``, else ``epochs`` of the training split, else
    the recipe's (the paper's iterations; 160 epochs for resnet20 / vgg16; 10 epochs for your own
    model; 2000 epochs for a supermask)."""
    if settings.iterations is not None:
        return int(settings.iterations)
    n, epochs = num_train_examples(data), settings.epochs
    if isinstance(settings, SupermaskConfig):
        epochs = SUPERMASK_EPOCHS if epochs is None else epochs
    elif epochs is None and specs.get_spec(settings.model).iterations is None:
        epochs = specs.get_spec(settings.model).epochs
    if epochs is None:
        return specs.get_spec(settings.model).iterations
    return max(1, round(epochs * n / batch_size(settings)))


def _resolve_training(config, n):
    """The budget, batch, rate and the optimiser / schedule / augmentation from the model's spec,
    every value spelled out (``gamma`` stays None where no step schedule uses it)."""
    spec = specs.get_spec(config.model)
    budget = iterations(config, n)
    values = {name: getattr(config, name) if getattr(config, name) is not None else getattr(spec, name)
              for name in _RECIPE_FIELDS}
    per_epoch = n / batch_size(config)
    recipe_milestones = tuple(max(1, round(e * per_epoch)) for e in spec.milestones)
    values["milestones"] = config.milestones if config.milestones is not None else recipe_milestones
    if values["optimizer"] == "adam" and values["momentum"]:
        raise ConfigError(f"momentum applies to optimizer sgd. Received: momentum={values['momentum']}, "
                          "optimizer='adam'")
    if values["lr_schedule"] != "step":
        if config.milestones:
            raise ConfigError(f"milestones apply to lr_schedule 'step'. Received: milestones={config.milestones}, "
                              f"lr_schedule={values['lr_schedule']!r}")
        values["milestones"], values["gamma"] = (), None
    elif not values["milestones"]:
        raise ConfigError("lr_schedule 'step' needs --milestones (iterations, e.g. 30000,40000).")
    # Milestones you give must fall inside the budget; the model's may lie beyond (a short run of resnet20).
    if config.milestones and config.milestones != recipe_milestones and any(m >= budget for m in config.milestones):
        raise ConfigError(f"milestones must be below the {budget} training iterations. "
                          f"Received: {values['milestones']}")
    return dataclasses.replace(config, epochs=None, iterations=budget, batch_size=batch_size(config),
                               learning_rate=config.learning_rate or spec.learning_rate, **values)


def _rates_by_kind(config):
    """Whether layer-wise rates come from the layer kinds (not a paper's table by layer name)."""
    return not specs.get_spec(config.model).rates_by_name


def _resolve_pruning(config):
    """The strategy and ignored layers (the model's where unset), the per-kind rates for
    ``layerwise`` or the global rate for ``global``; checks that need the model."""
    spec = specs.get_spec(config.model)
    strategy = config.pruning or spec.pruning
    ignored = config.prune_ignore if config.prune_ignore is not None else tuple(spec.prune_ignore)
    if config.rate_conv is not None and not spec.conv_filters and not _rates_by_kind(config):
        raise ConfigError(f"rate_conv applies to models with convolutions (conv2, conv4, conv6); "
                          f"{config.model} has none. Received: rate_conv={config.rate_conv}")
    if config.weight_decay and config.mask0 != "mask":
        raise ConfigError(f"Mask-0 action {config.mask0!r} keeps pruned weights frozen, which --weight-decay would "
                          "shrink; set --weight-decay 0 or use --mask0 mask.")
    config = dataclasses.replace(config, pruning=strategy, prune_ignore=tuple(ignored))
    if strategy == "global":
        criteria.check_global(config.criterion)
        if config.per_layer():
            raise ConfigError(f"{', '.join(config.per_layer())} set per-layer rates, which --pruning global does "
                              "not use (it has one --global-rate); drop them, or use --pruning layerwise.")
        rate = config.global_rate if config.global_rate is not None else spec.global_rate or GLOBAL_RATE
        return dataclasses.replace(config, global_rate=rate)
    if _rates_by_kind(config):
        conv, fc, output = KIND_RATES["conv"], KIND_RATES["dense"], KIND_RATES["output"]
    else:
        table = PRUNE_RATES[config.model]
        conv = next((rate for layer, rate in table.items() if layer.startswith("conv")), None)
        fc, output = table["fc1"], table["output"]
    return dataclasses.replace(
        config,
        rate_conv=config.rate_conv if config.rate_conv is not None else conv,
        rate_fc=config.rate_fc if config.rate_fc is not None else fc,
        rate_output=config.rate_output if config.rate_output is not None else output)


def _resolve_supermask(config, n):
    """Every learner default and the training length filled in. ``k`` is resolved for
    edge-popup and ``score_init`` for bernoulli only (each does not apply to the other)."""
    defaults = LEARNER_DEFAULTS[config.learner]
    names = ["optimizer", "momentum", "weight_decay", "lr_schedule", "k" if config.learner == "edge-popup"
             else "score_init"]
    eval_every = config.eval_every or max(1, round(n / batch_size(config)))  # once per epoch
    return dataclasses.replace(
        config, epochs=None, iterations=iterations(config, n), batch_size=batch_size(config),
        learning_rate=config.learning_rate or defaults["learning_rate"], eval_every=eval_every,
        **{name: getattr(config, name) if getattr(config, name) is not None else defaults[name] for name in names})


def ignored_layers(config):
    """The layers never pruned: ``prune_ignore``, else the model's (vgg16: output)."""
    if config.prune_ignore is not None:
        return tuple(config.prune_ignore)
    return tuple(specs.get_spec(config.model).prune_ignore)


def check_layers(config, layers):
    """ConfigError if --prune-ignore or --layer-rates name a layer not among ``layers``."""
    named = [*ignored_layers(config), *(name for name, _ in config.layer_rates)]
    unknown = [name for name in named if name not in layers]
    if unknown:
        raise ConfigError(f"No prunable layer {', '.join(map(repr, unknown))} in model {config.model}. Prunable "
                          f"layers: {', '.join(layers)}.")


def layer_rates(config, kinds):
    """Per-round pruning fraction of each layer for ``--pruning layerwise``.

    ``kinds``: ``{layer: "conv" | "dense"}`` in model order (the last is the output layer), or
    just the layer names of a built-in model (conv1.. are convolutions). The papers' models
    start from their table (``pruning.default_rates``), other models from ``pruning.KIND_RATES``;
    then --rate-conv / --rate-fc / --rate-output by kind, then --layer-rates by name;
    --prune-ignore layers get 0.
    """
    if not isinstance(kinds, dict):
        kinds = {name: "conv" if name.startswith("conv") else "dense" for name in kinds}
    check_layers(config, kinds)
    by_kind = _rates_by_kind(config)
    # The papers' models name their output layer "output"; for others it is the last one.
    roles = (layer_roles(kinds) if by_kind
             else {name: "output" if name == "output" else kind for name, kind in kinds.items()})
    rates = ({name: KIND_RATES[role] for name, role in roles.items()} if by_kind
             else default_rates(config.model, list(kinds)))
    for layer, role in roles.items():
        kind = {"output": "rate_output", "conv": "rate_conv", "dense": "rate_fc"}[role]
        if getattr(config, kind) is not None:
            rates[layer] = getattr(config, kind)
    rates.update(dict(config.layer_rates))
    rates.update({name: 0.0 for name in ignored_layers(config)})
    return rates
