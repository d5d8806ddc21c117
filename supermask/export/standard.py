"""The standard route: a model the native builder does not cover, exported by a standard exporter.

``write`` folds the masks (``supermask.convert.strip``), exports the plain Keras model with the
first standard exporter of the active backend whose file onnxruntime runs and reproduces Keras
(the export's self-check), and rewrites that file's kernels into sparse / ternary storage
(``supermask.export.rewrite``). Routes, in the order tried (measured with Keras 3.15, tf2onnx 1.17,
jax2onnx 0.17, torch 2.13, onnxruntime 1.32):

* tensorflow: ``tf2onnx``, through Keras's ``model.export(format="onnx")``, in this process.
* torch: ``torch.onnx`` (dynamo, batch axis dynamic), in this process; Keras's own
  ``model.export`` uses TorchScript when the batch is dynamic, which fails on Keras's
  ops (``Failed to export a node ... onnx::Gather``); then ``tf2onnx`` in a TensorFlow process.
* jax: ``tf2onnx`` in a TensorFlow process (``supermask/export/tf_worker.py``: the
  stripped model saved as ``.keras`` and loaded there; its own classes are imported from
  their modules), then ``jax2onnx`` (Keras's route) in this process, whose pooling nodes
  onnxruntime refuses (``MaxPool ... Unsupported pooling size``: a 4-D window over a
  rank-6 tensor), so it serves models without pooling only.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import onnx

from supermask import __version__, convert
from supermask.export import rewrite, verify
from supermask.export.errors import ExportError
from supermask.export.onnx_graph import INPUT_LAYOUTS
from supermask.export.reader import check_finite, input_shape

OPSET = 17
KERNEL_LAYERS = {keras.layers.Dense: "dense", keras.layers.Conv1D: "conv1d", keras.layers.Conv2D: "conv2d"}
WORKER_TIMEOUT_S = 900


def write(model, path, *, storage="auto", ternary="auto", ternary_bits=8, ternary_op="dequantize",
          metadata=None, verify_model=None):
    """Write ``model`` to the ONNX file ``path`` by the standard route; return ``(layers, route, check)``.

    ``metadata``: ``metadata_props`` to add; ``verify_model``: the model to compare onnxruntime with
    (the self-check; None to skip it: the first route whose file onnxruntime loads is kept).
    """
    stripped = convert.strip(model)
    shape = model_input_shape(model)
    kernels, kinds = {}, {}
    for key, layer in convert.walk(stripped):
        if type(layer) in KERNEL_LAYERS:
            kernels[key] = np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float32)
            kinds[key] = KERNEL_LAYERS[type(layer)]
            check_finite(key, "kernel", kernels[key])
    failures = []
    for route in ROUTES[keras.backend.backend()]:
        with tempfile.TemporaryDirectory(prefix="supermask_export_") as work:
            try:
                proto = EXPORTERS[route](stripped, shape, Path(work))
            except Exception as exc:  # each exporter raises its own types
                failures.append(f"{route}: {_first_line(exc)}")
                continue
        layers = rewrite.rewrite(proto, kernels, kinds, storage, ternary, ternary_bits, ternary_op)
        props = {p.key: p.value for p in proto.metadata_props}
        props.update({**_props(layers, shape), "standard_route": route,
                      **{k: str(v) for k, v in (metadata or {}).items()}})
        onnx.helper.set_model_props(proto, props)
        try:
            onnx.checker.check_model(proto)
            onnx.save(proto, str(path))
            verify.session(path)  # onnxruntime loads it
            check = None if verify_model is None else verify.self_check(verify_model, path, shape)
        except (ExportError, onnx.checker.ValidationError) as exc:
            failures.append(f"{route}: {_first_line(exc)}")
            continue
        return layers, route, check
    other = "torch (torch.onnx)" if keras.backend.backend() == "tensorflow" else "tensorflow (tf2onnx)"
    raise ExportError(
        f"No standard ONNX exporter gave a file that onnxruntime runs for model '{model.name}' on "
        f"KERAS_BACKEND={keras.backend.backend()} ({'; '.join(failures)}). Export under KERAS_BACKEND={other}, "
        "or replace the layers the native builder refused by ones it covers.")


def model_input_shape(model):
    """The input shape (no batch axis) of a Functional / Sequential or a built subclassed model."""
    if getattr(model, "inputs", None):
        return input_shape(model)
    shape = (model.get_build_config() or {}).get("input_shape") if model.built else None
    if not shape or not isinstance(shape, (list, tuple)) or any(
            d is None or not isinstance(d, int) for d in list(shape)[1:]):
        raise ExportError(f"Model '{model.name}' has no single known input shape ({shape}); call it once on a "
                          "batch of the input size (or give it a keras.Input) before exporting.")
    return tuple(int(d) for d in shape[1:])


def _props(layers, shape):
    sizes = {r["layer"]: r["density"] * float(np.prod(r["shape"])) for r in layers}
    total = sum(float(np.prod(r["shape"])) for r in layers)
    return {"supermask_version": __version__, "input_layout": INPUT_LAYOUTS.get(len(shape), "channels_last"),
            "density": json.dumps({r["layer"]: r["density"] for r in layers}),
            "overall_density": json.dumps(sum(sizes.values()) / total if total else 1.0),
            "storage": json.dumps({r["layer"]: f"{r['storage']} {r['dtype']}" for r in layers})}


def _keras_export(stripped, shape, work):
    """Keras's own ``model.export(format="onnx")``: tf2onnx on TensorFlow (opset 17), jax2onnx on JAX (its
    default opset: it writes opset-18 ``Reduce*`` nodes whatever opset it is given)."""
    out = work / "model.onnx"
    opset = {"opset_version": OPSET} if keras.backend.backend() == "tensorflow" else {}
    with contextlib.redirect_stdout(io.StringIO()):
        stripped.export(str(out), format="onnx", verbose=False, **opset,
                        input_signature=[keras.InputSpec(shape=(None, *shape), dtype="float32")])
    return onnx.load(str(out))


def _torch_export(stripped, shape, work):
    """torch.onnx's dynamo exporter with a dynamic batch axis."""
    import torch  # the torch backend is an optional install

    class Forward(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x, training=False)

    out = work / "model.onnx"
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(Forward(stripped).eval(), (keras.ops.zeros((2, *shape)),), dynamo=True,
                                    dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                                    input_names=["input"], output_names=["logits"], verbose=False)
        program.optimize()
        program.save(str(out))
    return onnx.load(str(out))


def _worker_export(stripped, shape, work):
    """tf2onnx in a TensorFlow process (``supermask.export.tf_worker``) on the stripped model's ``.keras``."""
    saved, out = work / "model.keras", work / "model.onnx"
    stripped.save(str(saved))
    classes = sorted({(type(layer).__module__, type(layer).__qualname__)
                      for layer in [stripped, *(layer for _, layer in convert.walk(stripped))]
                      if not type(layer).__module__.startswith("keras")})
    # On the CPU: converting needs no accelerator, and this process may hold it.
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))}
    worker = Path(__file__).with_name("tf_worker.py")  # run as a script: the child imports no supermask module
    proc = subprocess.run([sys.executable, str(worker), str(saved), str(out),
                           json.dumps(list(shape)), json.dumps(classes)],
                          env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise ExportError(lines[-1] if lines else f"the TensorFlow process exited with {proc.returncode}")
    return onnx.load(str(out))


ROUTES = {"tensorflow": ("tf2onnx",), "torch": ("torch.onnx", "tf2onnx (TensorFlow process)"),
          "jax": ("tf2onnx (TensorFlow process)", "jax2onnx")}
EXPORTERS = {"tf2onnx": _keras_export, "jax2onnx": _keras_export, "torch.onnx": _torch_export,
             "tf2onnx (TensorFlow process)": _worker_export}


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return (f"{type(exc).__name__}: {text[0] if text else ''}")[:300]
