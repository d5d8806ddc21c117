"""Training engines behind ``supermask.train.train_model`` (and ``train_many``).

* ``program``: the ``Program`` interface a backend implements (models, data, loss,
  optimiser in; per-chunk sums and per-split evaluations out) and the helpers every
  backend shares; the backends import it, never the driver.
* ``driver``: the backend-free schedule (chunks between record points), history rows,
  progress output, snapshots and NaN checks, for one or K models at once.
* ``jax``, ``tensorflow``, ``torch``: one ``Program`` per backend, the compiled inside
  of a chunk (every step, for every model) and of an evaluation, like Keras's own
  ``keras/src/backend/<name>/trainer.py``.
* ``fit``: the reference path (Keras ``fit`` per chunk), ``engine="fit"``.
* ``callbacks``: Keras callbacks at the record points (``train_many(callbacks=...)``) and the
  TensorBoard scalars (``--tensorboard``), for either engine.
"""

from supermask.engine.driver import (DEFAULT_ENGINE, ENGINES, TrainResult, batch_order, check_engine,
                                     train_many)
from supermask.engine.program import EVAL_BATCH_SIZE

__all__ = ["DEFAULT_ENGINE", "ENGINES", "EVAL_BATCH_SIZE", "TrainResult", "batch_order", "check_engine",
           "train_many"]
