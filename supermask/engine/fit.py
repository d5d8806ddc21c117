"""The reference engine: Keras ``fit`` per chunk between record points, ``evaluate`` at each.

This is how every run trained before the compiled engine (``engine="fit"``): simple and
obviously Keras, but each chunk pays ``fit``'s and ``evaluate``'s set-up, and the two
evaluations run outside the training program. It is a ``Program`` like the compiled
ones, so the driver's schedule, history and checks are the same for both; kept to check
the compiled engine against and for models it cannot compile.
"""

import numpy as np

from supermask.engine.driver import EVAL_BATCH_SIZE


class Program:
    """Train and evaluate ``models`` with Keras ``fit`` / ``evaluate``, one model at a time."""

    def __init__(self, models, data, batch_size):
        self.models, self.data, self.batch_size = models, data, batch_size

    def train_chunk(self, indices):
        """Fit each model on its batches ((K, steps, batch) indices); (K, 2) loss/accuracy sums."""
        sums = []
        for model, idx in zip(self.models, indices):
            idx = np.asarray(idx).reshape(-1)
            logs = model.fit(self.data.x_train[idx], self.data.y_train[idx], batch_size=self.batch_size,
                             epochs=1, shuffle=False, verbose=0).history
            steps = len(indices[0])  # fit reports the means over the chunk's steps
            sums.append([logs["loss"][-1] * steps, logs["accuracy"][-1] * steps])
        return np.asarray(sums, dtype=np.float64)

    def evaluate(self):
        """``{split: (K, 2) array of mean loss and accuracy}`` for the non-empty splits."""
        out = {}
        for split in ("val", "test"):
            x, y = getattr(self.data, f"x_{split}"), getattr(self.data, f"y_{split}")
            if len(x):
                logs = [m.evaluate(x, y, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True)
                        for m in self.models]
                out[split] = np.asarray([[r["loss"], r["accuracy"]] for r in logs], dtype=np.float64)
        return out

    def sync(self):
        """Nothing to do: the models' variables are the state."""
