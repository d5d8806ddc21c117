"""Keras callbacks at the engine's record points, and TensorBoard scalars written without TensorFlow.

``train_many(callbacks=...)`` calls, for each of its K models, that model's callbacks as
Keras's ``fit`` would, once per record point rather than once per epoch (``Hooks``):

* ``set_model(model)`` and ``on_train_begin(logs)`` before the first step (``logs``: the
  evaluation at the start iteration, ``val_*`` / ``test_*`` and ``iteration``);
* ``on_epoch_end(index, logs)`` at each record point after the start (``index`` 0, 1, ...;
  every ``eval_every`` iterations and at the end), ``logs`` named as Keras names them:
  ``loss``, ``accuracy`` (means over the steps since the previous record point),
  ``val_loss``, ``val_accuracy``, ``test_loss``, ``test_accuracy`` (a split left out when
  empty) and ``iteration`` -- the history row of that point (``TrainResult.history``);
* ``on_train_end(logs)`` after the last step (the last record point's logs).

No batch or ``on_epoch_begin`` hooks are called: the steps between two record points are one
compiled program. At each hook the model's Keras variables hold the network's current values
(weights, masks, optimiser state; the JAX engine, which keeps its state outside the model,
writes it back first), so a callback may read them (``get_weights``, ``ModelCheckpoint``,
``model.save``). Callbacks read; changing the variables while training is not supported (the
JAX engine would not see it). ``EarlyStopping(restore_best_weights=True)`` works: its
``on_train_end`` runs after training.

Stopping: a callback that sets ``model.stop_training = True`` (``EarlyStopping``) stops that
network alone: its history ends at that record point, its callbacks are not called again
(but for ``on_train_end``) and at the end its variables (and optimiser state) are put back to
their values of that point. The other networks of the call train on; when all have stopped,
training ends. (The K networks share one compiled program, which still computes the steps of a
stopped network until the end of the call; they are discarded.)

``TensorBoardScalars`` is a callback writing the logs as TensorBoard scalars (x axis: the
iteration) with ``EventWriter``: a TensorBoard event file (TFRecord framing, ``Event`` /
``Summary`` protocol buffers) written directly by this module. TensorFlow's ``tf.summary``
would import TensorFlow into JAX and PyTorch runs (and could claim a GPU there), and the
``tensorboard`` package is only an optional extra (``supermask[tensorboard]``, in the lock for
``keras.callbacks.TensorBoard``); the files read back in TensorBoard and in
``tf.compat.v1.train.summary_iterator``.
"""

import itertools
import os
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from supermask.errors import ConfigError

LOG_KEYS = {"train_loss": "loss", "train_accuracy": "accuracy", "val_loss": "val_loss",
            "val_accuracy": "val_accuracy", "test_loss": "test_loss", "test_accuracy": "test_accuracy"}


@dataclass(frozen=True)
class Network:
    """One network of a run, as a callback function (``callbacks=fn``) is called with it.

    label: how the progress lines name it ("trial 0 control", "seed 3"); name: a relative
    path unique in the run, fit for a file or folder name ("<hash>/trial_0/level_2/control");
    index: its place among the networks trained together; seed, level, role ("ticket",
    "control", "dense", "supermask") where they apply.
    """

    label: str
    name: str
    index: int = 0
    seed: int = None
    level: int = None
    role: str = None


def logs_of(row):
    """A history row as Keras logs: ``loss``, ``accuracy``, ``val_*``, ``test_*``, ``iteration``
    (the keys whose value is None left out)."""
    logs = {LOG_KEYS[k]: v for k, v in row.items() if k in LOG_KEYS and v is not None}
    logs["iteration"] = row["iteration"]
    return logs


def resolve(callbacks, networks):
    """One list of callbacks per network from what a caller passed: None; a list of
    ``keras.callbacks.Callback`` (one network only); a list of such lists, one per network; or a
    function ``network (a Network) -> list of callbacks``, called once per network."""
    count = len(networks)
    if callbacks is None:
        return [[] for _ in networks]
    if callable(callbacks) and not isinstance(callbacks, keras.callbacks.Callback):
        out = []
        for network in networks:
            made = callbacks(network)
            out.append(_checked(made if made is not None else [], f"callbacks({network.label!r})"))
        return out
    if isinstance(callbacks, keras.callbacks.Callback):
        callbacks = [callbacks]
    callbacks = list(callbacks)
    if callbacks and all(isinstance(c, (list, tuple)) for c in callbacks):
        if len(callbacks) != count:
            raise ConfigError(f"callbacks: one list per network, {count} in all. Received {len(callbacks)} lists.")
        return [_checked(c, f"callbacks[{k}]") for k, c in enumerate(callbacks)]
    if count > 1 and callbacks:
        raise ConfigError(f"{count} networks train together ({', '.join(n.label for n in networks)}), and a "
                          "callback serves one model: pass a function network -> list of callbacks, e.g. "
                          "callbacks=lambda net: [keras.callbacks.CSVLogger(f'{net.label}.csv')].")
    return [_checked(callbacks, "callbacks")]


def _checked(callbacks, where):
    callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
    for c in callbacks:
        if not isinstance(c, keras.callbacks.Callback):
            raise ConfigError(f"{where} must hold keras.callbacks.Callback instances. Received: {c!r}")
    return callbacks


class Hooks:
    """Calls each model's callbacks at the driver's record points and keeps track of stopped models.

    ``sync``: the program's ``sync`` (writes its state into the models' variables); called before
    the callbacks, and only when there are callbacks.
    """

    def __init__(self, models, callbacks, sync):
        self.models, self.callbacks, self.sync = list(models), callbacks, sync
        self.active = any(callbacks)
        self.stopped = {}  # model index -> its variables' values when it asked to stop
        self.index = 0
        for model in self.models:
            model.stop_training = False

    def running(self):
        """The indices of the models still training."""
        return [k for k in range(len(self.models)) if k not in self.stopped]

    def begin(self, rows):
        if not self.active:
            return
        self.sync()
        for model, callbacks, row in zip(self.models, self.callbacks, rows):
            for callback in callbacks:
                callback.set_model(model)
                callback.on_train_begin(logs_of(row))

    def record(self, rows):
        """Call ``on_epoch_end`` of each running model (``rows``: {model index: its history row})."""
        if not self.active:
            return
        self.sync()
        for k, row in rows.items():
            for callback in self.callbacks[k]:
                callback.on_epoch_end(self.index, logs_of(row))
            if getattr(self.models[k], "stop_training", False):
                self.stopped[k] = [np.array(keras.ops.convert_to_numpy(v)) for v in _state(self.models[k])]
        self.index += 1

    def all_stopped(self):
        return len(self.stopped) == len(self.models)

    def end(self, rows):
        """After the final ``sync``: put stopped models back to their stopping point, then ``on_train_end``."""
        for k, values in self.stopped.items():
            for variable, value in zip(_state(self.models[k]), values):
                variable.assign(value)
        for callbacks, row in zip(self.callbacks, rows):
            for callback in callbacks:
                callback.on_train_end(logs_of(row))


def _state(model):
    optimizer = getattr(model, "optimizer", None)
    return list(model.variables) + (list(optimizer.variables) if optimizer is not None else [])


# --- TensorBoard ----------------------------------------------------------------------

TAGS = {"loss": "train/loss", "accuracy": "train/accuracy", "val_loss": "val/loss", "val_accuracy": "val/accuracy",
        "test_loss": "test/loss", "test_accuracy": "test/accuracy"}


class TensorBoardScalars(keras.callbacks.Callback):
    """Write the logs at each record point (and the start) to ``folder`` as TensorBoard scalars:
    ``train/loss``, ``train/accuracy``, ``val/loss``, ``val/accuracy``, ``test/loss``,
    ``test/accuracy`` at step = the iteration; and ``extra(model) -> {tag: value}`` (e.g. a
    supermask's mask density) at the same steps."""

    def __init__(self, folder, extra=None):
        super().__init__()
        self.folder, self.extra, self.writer = Path(folder), extra, None

    def _write(self, logs):
        values = {TAGS[k]: v for k, v in (logs or {}).items() if k in TAGS}
        if self.extra is not None:
            values.update(self.extra(self.model))
        self.writer.scalars(int(logs["iteration"]), values)

    def on_train_begin(self, logs=None):
        self.writer = EventWriter(self.folder)
        self._write(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._write(logs)

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def for_networks(callbacks, tensorboard, networks, extra=None):
    """``resolve(callbacks, networks)``, plus, with a ``tensorboard`` folder, a ``TensorBoardScalars``
    per network writing to ``tensorboard/<network.name>``."""
    lists = resolve(callbacks, networks)
    if tensorboard is not None:
        for network, callbacks in zip(networks, lists):
            callbacks.append(TensorBoardScalars(Path(tensorboard) / network.name, extra))
    return lists


def check_tensorboard(folder):
    """``folder`` as a Path (None stays None); ConfigError if it names an existing file."""
    if folder is None:
        return None
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--tensorboard must be a folder; {folder} is a file. Name a folder to write the "
                          "event files in.")
    return folder


def write_scalars(folder, step, values):
    """Write ``{tag: value}`` at ``step`` to a new event file in ``folder`` (one-off values, such as
    a lottery level's densities)."""
    writer = EventWriter(folder)
    writer.scalars(step, values)
    writer.close()


_FILE_NUMBER = itertools.count()


class EventWriter:
    """A TensorBoard event file ``events.out.tfevents.<time>.<host>.<pid>.<n>`` in ``folder``,
    written record by record (each flushed), readable while it grows."""

    def __init__(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.{next(_FILE_NUMBER)}"
        self.path = Path(folder) / name
        self.file = open(self.path, "wb")
        self._record(_event(time.time(), 0, file_version="brain.Event:2"))

    def scalars(self, step, values):
        values = {tag: float(v) for tag, v in values.items() if v is not None}
        if values:
            self._record(_event(time.time(), int(step), values=values))

    def _record(self, data):
        header = struct.pack("<Q", len(data))
        self.file.write(header + struct.pack("<I", _masked_crc(header)) + data + struct.pack("<I", _masked_crc(data)))
        self.file.flush()

    def close(self):
        self.file.close()


def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, wire, payload):
    key = _varint(number << 3 | wire)
    if wire == 2:  # length-delimited
        return key + _varint(len(payload)) + payload
    return key + payload


def _event(wall_time, step, file_version=None, values=None):
    """An ``tensorflow.Event`` (wall_time = 1, step = 2, file_version = 3, summary = 5) holding a
    ``Summary`` of ``Summary.Value``s (tag = 1, simple_value = 2)."""
    out = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
    if file_version is not None:
        out += _field(3, 2, file_version.encode())
    if values:
        summary = b"".join(_field(1, 2, _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", value)))
                           for tag, value in values.items())
        out += _field(5, 2, summary)
    return out


def _crc_table():
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def _masked_crc(data):
    """TFRecord's masked CRC-32C of ``data``."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
