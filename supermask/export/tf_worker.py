"""``python -m supermask.export.tf_worker MODEL.keras OUT.onnx SHAPE CLASSES``: tf2onnx in a TensorFlow process.

The standard route of ``supermask.export.standard`` on backends other than TensorFlow: the
parent saves the stripped model as ``.keras`` and runs this with ``KERAS_BACKEND=tensorflow``.
``SHAPE`` is the input shape without the batch axis and ``CLASSES`` the ``[module, qualname]``
of the model's own (non-Keras) classes, both JSON; the classes are imported so the file loads.
The last line on stderr says why, when it fails.
"""

import importlib
import json
import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]  # run as a script: this folder's modules (ops, sparse, ...) must not shadow others

OPSET = 17


def main(argv=None):
    model_path, out, shape, classes = (argv or sys.argv[1:])[:4]
    import keras

    if keras.backend.backend() != "tensorflow":
        raise SystemExit(f"supermask.export.tf_worker needs KERAS_BACKEND=tensorflow, not {keras.backend.backend()}.")
    custom = {}
    for module, qualname in json.loads(classes):
        try:
            obj = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError):
            continue  # load_model names the class it cannot find
        custom[qualname] = custom[keras.saving.get_registered_name(obj)] = obj
    # safe_mode=False: the file was written a moment ago by the parent process, from the user's model.
    model = keras.saving.load_model(model_path, custom_objects=custom, compile=False, safe_mode=False)
    spec = keras.InputSpec(shape=(None, *json.loads(shape)), dtype="float32")
    model.export(out, format="onnx", verbose=False, opset_version=OPSET, input_signature=[spec])


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # one line for the parent process
        text = str(exc).strip().splitlines()
        print(f"{type(exc).__name__}: {text[0] if text else ''}", file=sys.stderr)
        sys.exit(1)
