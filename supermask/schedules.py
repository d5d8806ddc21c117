"""Learning-rate schedules: constant, step decay at milestones, cosine, each with optional linear warm-up.

``Schedule(base, kind, milestones, gamma, warmup, total, offset)`` gives the learning rate at
optimiser step ``s`` (0 for the first update) of iteration ``t = s + offset``:

* ``constant``: ``base``;
* ``step``: ``base * gamma ** (number of milestones m with m <= t)`` (open_lth
  ``training/optimizers.py``: ``gamma ** bisect.bisect(milestones, it)``, so the drop
  applies from the milestone iteration itself);
* ``cosine``: ``base * (1 + cos(pi * min(t, total) / total)) / 2``, down to 0 at ``total``;

times ``min(1, t / warmup)`` when ``warmup`` > 0 (open_lth's linear warm-up from 0: the
first update has rate 0). ``offset``: the iteration the optimiser's step 0 stands for, so a
level that starts at a late-rewinding point ``k`` continues the schedule from ``k``.

A ``keras.optimizers.schedules.LearningRateSchedule`` written with ``keras.ops``: it runs
inside every backend's compiled step and saves with ``.keras`` files.
"""

import math

import keras
from keras import ops

from supermask.errors import ConfigError

KINDS = ("constant", "step", "cosine")


@keras.saving.register_keras_serializable(package="supermask")
class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """See the module docstring. ``milestones``: increasing iterations; ``total``: cosine length."""

    def __init__(self, base, kind="constant", milestones=(), gamma=0.1, warmup=0, total=None, offset=0):
        if kind not in KINDS:
            raise ConfigError(f"lr_schedule must be one of {', '.join(KINDS)}. Received: lr_schedule={kind!r}")
        milestones = tuple(int(m) for m in milestones)
        if any(b <= a for a, b in zip(milestones, milestones[1:])) or any(m <= 0 for m in milestones):
            raise ConfigError(f"milestones must be increasing iterations > 0. Received: {milestones}")
        if kind == "cosine" and not (total and total > 0):
            raise ConfigError("A cosine schedule needs its length in iterations (total > 0).")
        self.base, self.kind, self.milestones = float(base), kind, milestones
        self.gamma, self.warmup, self.total, self.offset = float(gamma), int(warmup), total, int(offset)

    def __call__(self, step):
        t = ops.cast(step, "float32") + float(self.offset)
        factor = ops.ones_like(t)
        if self.kind == "step" and self.milestones:
            passed = sum(ops.cast(ops.greater_equal(t, float(m)), "float32") for m in self.milestones)
            factor = ops.power(ops.full_like(t, self.gamma), passed)
        elif self.kind == "cosine":
            progress = ops.minimum(t, float(self.total)) / float(self.total)
            factor = 0.5 * (1.0 + ops.cos(math.pi * progress))
        if self.warmup:
            factor = factor * ops.minimum(ops.ones_like(t), t / float(self.warmup))
        return self.base * factor

    def value_at(self, iteration):
        """The learning rate at ``iteration`` (of the whole schedule, offset included) as a float."""
        return float(ops.convert_to_numpy(self(iteration - self.offset)))

    def get_config(self):
        return {"base": self.base, "kind": self.kind, "milestones": list(self.milestones), "gamma": self.gamma,
                "warmup": self.warmup, "total": self.total, "offset": self.offset}
