"""How the init sweep measures a masked network: one compiled model, forward passes, numpy sums.

The engine's programs (``supermask.engine``) evaluate the val and test splits of models they
train; the sweep instead assigns new kernels and masks to one model hundreds of times and
evaluates any split (or its first N examples), so it keeps this small forward-only path, in
batches of the engine's ``EVAL_BATCH_SIZE``.
"""

import numpy as np

from supermask.convert import layer_kind, prunable_layers
from supermask.engine import EVAL_BATCH_SIZE
from supermask.errors import ConfigError
from supermask.masks import get_weights, set_weights
from supermask.models import build
from supermask.optimizers import compile_model, make_optimizer
from supermask.settings.init_sweep import SPLITS


def split_arrays(data, split: str, max_examples=None):
    """``(x, y)`` of ``split`` (one of SPLITS) of ``data`` (a ``Dataset``), the first ``max_examples``
    if given; ConfigError if that leaves nothing to evaluate."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}. Received: split={split!r}")
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    if max_examples is not None:
        x, y = x[:max_examples], y[:max_examples]
    if len(x) == 0:
        raise ConfigError(f"The split to evaluate must hold examples; choose another --split. Received: the empty "
                          f"{split} split of {data.name}")
    return x, y


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities of ``(batch, classes)`` logits, computed stably."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def evaluate(model, x, y, batch_size=EVAL_BATCH_SIZE):
    """``(loss, accuracy)`` of ``model`` on images ``x`` and int labels ``y``.

    loss: mean softmax cross-entropy of the logits (nats), no layer losses; accuracy: fraction
    of argmax predictions equal to ``y``. Runs ``predict_on_batch`` on chunks of ``batch_size``
    (every chunk but maybe the last has the same shape, so nothing is retraced) and reduces in
    float64 numpy, the per-example losses summed once, so that ``batch_size`` changes neither
    number (where the backend's logits of an example do not depend on its batch): no per-call
    dataset or metric set-up, which costs ``model.evaluate`` ~0.1 s a call on TensorFlow and PyTorch.
    """
    correct, nll = 0, np.empty(len(x), np.float64)
    for start in range(0, len(x), batch_size):
        logits = np.asarray(model.predict_on_batch(x[start:start + batch_size]), dtype=np.float64)
        labels = np.asarray(y[start:start + batch_size])
        correct += int(np.count_nonzero(logits.argmax(axis=1) == labels))
        nll[start:start + len(labels)] = -log_softmax(logits)[np.arange(len(labels)), labels]
    return float(nll.sum()) / len(x), correct / len(x)


def build_eval_model(model_name, input_shape, num_classes, init):
    """One compiled model holding ``init`` (``{"layer/var": array}``; its keys must match the
    model's exactly)."""
    model = build(model_name, input_shape, num_classes, seed=0)
    expected, got = set(get_weights(model)), set(init)
    if expected != got:
        raise ConfigError(
            f"weights_init.h5 must fit model {model_name!r} on {input_shape}. Received: missing "
            f"{sorted(expected - got)}, unexpected {sorted(got - expected)}"
        )
    set_weights(model, init)
    # Compiled like a training model (same jit setting, loss and metric) so that callers
    # can also use ``model.evaluate``; the optimiser is never used.
    compile_model(model, make_optimizer(1e-3))
    return model


def layer_kinds(model) -> dict[str, str]:
    """``{layer key: "conv" | "dense"}`` of the model's prunable layers, in model order."""
    return {key: layer_kind(layer) for key, layer in prunable_layers(model).items()}
