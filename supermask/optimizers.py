"""The optimiser and compilation of a training run: the lottery papers' Adam, SGD with momentum,
on a constant rate or a ``supermask.schedules.Schedule``; the loss every run trains with."""

import keras

from supermask import backend
from supermask.errors import ConfigError
from supermask.schedules import Schedule
from supermask.settings import OPTIMIZERS


def make_optimizer(learning_rate, name="adam", momentum=0.0, cosine_steps=None):
    """An optimiser; by default the lottery papers' Adam with Keras's defaults otherwise.

    Args:
        learning_rate: the (initial) learning rate.
        name: ``"adam"`` or ``"sgd"`` (SGD with ``momentum``; Keras's momentum update
            equals TF1 ``MomentumOptimizer`` and PyTorch ``SGD`` for a constant rate).
        momentum: SGD momentum (Zhou et al.'s supermasks and Ramanujan et al.: 0.9).
        cosine_steps: if set, the rate follows a cosine decay to 0 over this many
            iterations (Ramanujan et al.'s ``cosine_lr``, per step instead of per epoch).
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}. Received: optimizer={name!r}")
    if cosine_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=int(cosine_steps))
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    return keras.optimizers.Adam(learning_rate=learning_rate)


def recipe_optimizer(config, iterations, start_iteration=0):
    """The optimiser of resolved ``TrainConfig`` / ``LotteryConfig`` settings (``recipes.resolve``):
    Adam or SGD with momentum, at a constant rate or on a ``Schedule`` (step / cosine, warm-up)
    whose iteration 0 is the first update; ``start_iteration``: a level starting at a
    late-rewinding point continues the schedule from there."""
    rate = config.learning_rate
    kind, warmup = config.lr_schedule or "constant", config.warmup or 0
    if kind != "constant" or warmup:
        rate = Schedule(rate, kind, milestones=config.milestones or (), gamma=config.gamma or 0.1, warmup=warmup,
                        total=iterations, offset=start_iteration)
    return make_optimizer(rate, name=config.optimizer or "adam", momentum=config.momentum or 0.0)


def compile_model(model, optimizer):
    """Compile for training with a cross-entropy loss on logits and accuracy (the loss the
    engine's programs are given, ``supermask.engine``)."""
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=backend.jit_compile(),
        steps_per_execution=backend.steps_per_execution(),
    )
