"""The reference engine: Keras ``fit`` per chunk between record points, ``evaluate`` at each.

This is how every run trained before the compiled engine (``engine="fit"``): simple and
obviously Keras, but each chunk pays ``fit``'s and ``evaluate``'s set-up, and the two
evaluations run outside the training program. It is a ``Program`` like the compiled
ones, so the driver's schedule, history and checks are the same for both; kept to check
the compiled engine against and for models it cannot compile.
"""

import keras
import numpy as np

from supermask.engine import program
from supermask.engine.augment import augment as augment_batch
from supermask.errors import ConfigError


class Program(program.Program):
    """Train and evaluate ``models`` with Keras ``fit`` / ``evaluate``, one model at a time.

    Keras trains with the loss each model was compiled with, so ``loss`` must be that loss;
    weight decay is the compiled engine's alone. With ``augment`` each batch is cropped and
    flipped (``supermask.engine.augment``, the compiled engines' function and choices) before
    ``fit`` sees it.
    """

    FORMS = ("keras-fit",)

    def __init__(self, models, data, batch_size, *, loss, weight_decay=0.0, augment=False, form=None):
        super().__init__(models, data, batch_size, loss=loss, weight_decay=weight_decay, augment=augment,
                         form=form)
        if self.weight_decay:
            raise ConfigError("engine 'fit' (the reference path) trains without --weight-decay; use the compiled "
                              "engine for it.")
        expected = program.loss_signature(loss)
        for k, model in enumerate(self.models):
            if model.loss is None or program.loss_signature(program.compiled_loss(model)) != expected:
                raise ConfigError(f"engine 'fit' trains model {k} with the loss it was compiled with, which is "
                                  f"not the loss {loss!r} asked for. Compile the model with that loss.")

    def train_chunk(self, indices):
        sums = []
        for model, idx in zip(self.models, indices):
            idx = np.asarray(idx)
            if self.augment:  # the same crops and flips as the compiled engines, made before fit sees them
                x = np.concatenate([keras.ops.convert_to_numpy(augment_batch(self.data.x_train[i[:, 0]], i[:, 1:]))
                                    for i in idx])
                idx = idx[..., 0]
            else:
                x = self.data.x_train[idx.reshape(-1)]
            idx = idx.reshape(-1)
            logs = model.fit(x, self.data.y_train[idx], batch_size=self.batch_size,
                             epochs=1, shuffle=False, verbose=0).history
            steps = len(indices[0])  # fit reports the means over the chunk's steps
            sums.append([logs["loss"][-1] * steps, logs["accuracy"][-1] * steps])
        return np.asarray(sums, dtype=np.float64)

    def evaluate(self):
        out = {}
        for split in ("val", "test"):
            x, y = getattr(self.data, f"x_{split}"), getattr(self.data, f"y_{split}")
            if len(x):
                logs = [m.evaluate(x, y, batch_size=program.EVAL_BATCH_SIZE, verbose=0, return_dict=True)
                        for m in self.models]
                out[split] = np.asarray([[r["loss"], r["accuracy"]] for r in logs], dtype=np.float64)
        return out
