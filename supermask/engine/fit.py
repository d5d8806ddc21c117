"""The reference engine: Keras ``fit`` per chunk between record points, ``evaluate`` at each.

This is how every run trained before the compiled engine (``engine="fit"``): simple and
obviously Keras, but each chunk pays ``fit``'s and ``evaluate``'s set-up, and the two
evaluations run outside the training program. Kept to check the compiled engine
against (same batches, same history keys) and for models it cannot compile.
"""

import time

import keras
import numpy as np

from supermask.engine.driver import EVAL_BATCH_SIZE, BatchStream, Progress, TrainResult, chunk_ends
from supermask.errors import TrainingError


def _evaluate(model, x, y):
    if len(x) == 0:
        return None, None
    logs = model.evaluate(x, y, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True)
    return float(logs["loss"]), float(logs["accuracy"])


def train(model, data, *, iterations, batch_size, seed=0, eval_every=100, snapshot_iterations=(),
          start_iteration=0, verbose=1):
    """Train one compiled ``model`` with ``fit``; arguments as ``driver.train_many``."""
    from supermask.masks import get_weights

    stream = BatchStream(len(data.x_train), batch_size, seed)
    stream.take(start_iteration)
    history, snapshots = [], {}
    start = time.perf_counter()

    def record(iteration, train_loss=None, train_acc=None):
        val_loss, val_acc = _evaluate(model, data.x_val, data.y_val)
        test_loss, test_acc = _evaluate(model, data.x_test, data.y_test)
        history.append({
            "iteration": iteration,
            "epoch": iteration * batch_size / len(data.x_train),
            "train_loss": train_loss, "train_accuracy": train_acc,
            "val_loss": val_loss, "val_accuracy": val_acc,
            "test_loss": test_loss, "test_accuracy": test_acc,
            "seconds": time.perf_counter() - start,
        })
        return history[-1]

    done, pending = start_iteration, []  # pending: (steps, loss, accuracy) since the last record
    if done in snapshot_iterations:
        snapshots[done] = get_weights(model)
    record(done)
    progress = Progress(iterations, 1, verbose)
    for end in chunk_ends(done, iterations, eval_every, snapshot_iterations):
        idx = stream.take(end - done).reshape(-1)
        logs = model.fit(data.x_train[idx], data.y_train[idx], batch_size=batch_size,
                         epochs=1, shuffle=False, verbose=0).history
        loss, acc = logs["loss"][-1], logs["accuracy"][-1]
        if not np.isfinite(loss):
            raise TrainingError(
                f"The training loss became {loss} between iterations {done} and {end}. "
                "Lower the learning rate or check the data for NaNs."
            )
        pending.append((end - done, loss, acc))
        done = end
        if done in snapshot_iterations:
            snapshots[done] = get_weights(model)
        if done % eval_every == 0 or done == iterations:
            steps = sum(p[0] for p in pending)
            row = record(done, sum(p[0] * p[1] for p in pending) / steps,
                         sum(p[0] * p[2] for p in pending) / steps)
            pending = []
            progress.update(done, [row])
    return TrainResult(history, snapshots, time.perf_counter() - start)
