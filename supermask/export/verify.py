"""Run exported models in onnxruntime: logits, comparison with Keras, accuracy, speed, metadata."""

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from supermask.export.errors import ExportError, VerificationError

BATCH_SIZE = 1000
# Self-check of every export: max |onnx - keras| <= TOLERANCE * max(1, max |keras logit|).
TOLERANCE = 1e-4


def session(path, threads=None):
    """An onnxruntime CPU ``InferenceSession`` for the ONNX file at ``path``."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"Missing ONNX file {path}; export one with python -m supermask.export.")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(f"onnxruntime cannot load {path}: {exc}") from None


def run(sess, x, batch_size=BATCH_SIZE):
    """The model's output on ``x`` (float32), in batches of ``batch_size``."""
    name = sess.get_inputs()[0].name
    x = np.asarray(x, dtype=np.float32)
    return np.concatenate([sess.run(None, {name: x[i:i + batch_size]})[0]
                           for i in range(0, len(x), batch_size)])


def keras_logits(model, x, batch_size=BATCH_SIZE, eager=False):
    """``model.predict`` on ``x``; ``eager=True`` calls the model directly (no compilation)."""
    import keras

    x = np.asarray(x, np.float32)
    if eager:
        return np.concatenate([np.asarray(keras.ops.convert_to_numpy(model(x[i:i + batch_size], training=False)))
                               for i in range(0, len(x), batch_size)])
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


@dataclass(frozen=True)
class Comparison:
    """onnxruntime vs Keras on the same inputs."""

    count: int
    max_abs_diff: float
    max_abs_logit: float
    argmax_agreement: float

    def within(self, tolerance=TOLERANCE):
        return self.max_abs_diff <= tolerance * max(1.0, self.max_abs_logit)


def compare(model, path_or_session, x, batch_size=BATCH_SIZE, eager=False):
    """Compare the ONNX model's logits with ``model.predict`` (or a direct call) on ``x``."""
    sess = path_or_session if hasattr(path_or_session, "run") else session(path_or_session)
    ours = run(sess, x, batch_size)
    ref = keras_logits(model, x, batch_size, eager)
    if ours.shape != ref.shape:
        raise VerificationError(f"onnxruntime returns shape {ours.shape}, Keras {ref.shape}.")
    return Comparison(len(x), float(np.max(np.abs(ours - ref))), float(np.max(np.abs(ref))),
                      float(np.mean(ours.argmax(-1) == ref.argmax(-1))))


def self_check(model, path, input_shape, count=64, seed=0):
    """Raise ``VerificationError`` unless onnxruntime reproduces Keras on random images."""
    x = np.random.default_rng(seed).random((count, *input_shape), dtype=np.float32)
    result = compare(model, path, x, eager=True)
    if not result.within():
        raise VerificationError(
            f"onnxruntime's logits differ from Keras's by up to {result.max_abs_diff:.3g} (logits up to "
            f"{result.max_abs_logit:.3g}; tolerance {TOLERANCE:g} x max(1, that)). This is an exporter bug "
            "or an onnxruntime rewrite: report it, or pass --no-verify to keep the file anyway.")
    return result


def accuracy(sess, x, y, batch_size=BATCH_SIZE):
    return float(np.mean(run(sess, x, batch_size).argmax(-1) == np.asarray(y)))


def throughput(sess, x, batch_size=BATCH_SIZE, repeats=5):
    """Images per second at ``batch_size``: the median of ``repeats`` timed passes (after a warm-up)."""
    name = sess.get_inputs()[0].name
    batch = np.ascontiguousarray(np.asarray(x, np.float32)[:batch_size])
    sess.run(None, {name: batch})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, {name: batch})
        times.append(time.perf_counter() - start)
    return len(batch) / statistics.median(times)


def metadata(path):
    """The ``metadata_props`` of an ONNX file as a dict, JSON values decoded."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    out = {}
    for prop in model.metadata_props:
        try:
            out[prop.key] = json.loads(prop.value)
        except ValueError:
            out[prop.key] = prop.value
    return out
