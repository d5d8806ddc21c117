"""ONNX export (run once per KERAS_BACKEND): storage maths; masked fc, conv and supermask models
vs Keras on real MNIST test images; ternary storage; errors; run folders and the two CLIs.
"""

import json
import shutil

import keras
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the ONNX export needs onnx (see requirements.lock)")
pytest.importorskip("onnxruntime", reason="the ONNX export needs onnxruntime (see requirements.lock)")

from supermask import check, convert, paths, store
from supermask import masks as M
from supermask.train import __main__ as train_cli
from supermask.cli import run_main
from supermask.errors import ConfigError
from supermask.export import (ExportError, NonFiniteWeightsError, UnsupportedLayerError, densify,
                              export_model, export_run, sparsify, verify)
from supermask.export import __main__ as export_cli
from supermask.export import ops
from supermask.export.emit import same_pads
from supermask.export.runs import load_model, resolve
from supermask.export.sparse import choose_storage, ternary_scale
from supermask.layers import MaskedConv1D, MaskedConv2D, MaskedDense
from supermask.models import build as build_model

ATOL = 1e-4


def assert_matches_keras(model, path, x):
    """onnxruntime logits == Keras logits (max abs diff <= 1e-4), argmax agreement 100 %."""
    result = verify.compare(model, path, x)
    assert result.count >= 1000
    assert result.max_abs_diff <= ATOL, result
    assert result.argmax_agreement == 1.0, result
    return result


def only_files(folder):
    return sorted(p.name for p in folder.iterdir())


def random_masks(model, densities, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.random(k.shape) < densities[name] for name, k in M.kernels(M.get_weights(model)).items()}


def with_random_biases(model, seed):
    rng = np.random.default_rng(seed)
    return {k: (0.05 * rng.normal(size=v.shape)).astype(np.float32)
            for k, v in M.get_weights(model).items() if k.endswith("/bias")}


# --- storage maths ----------------------------------------------------------------------
def test_sparsify_densify_roundtrip_is_exact():
    # Hand example: linear indices into the row-major flattening, values in that order.
    proto = sparsify(np.array([[0, 1.5], [0, -2]], np.float32), "w")
    assert list(proto.dims) == [2, 2] and proto.values.name == "w"
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(proto.indices), [1, 3])
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(proto.values), [1.5, -2])
    assert onnx.numpy_helper.to_array(proto.indices).dtype == np.int64
    rng = np.random.default_rng(0)
    for shape, density, dtype in [((784, 300), 0.05, np.float32), ((3, 3, 64, 64), 0.3, np.float32),
                                  ((7,), 1.0, np.float32), ((4, 5), 0.0, np.float32), ((300, 100), 0.1, np.int8)]:
        array = (rng.normal(size=shape) * (rng.random(shape) < density)).astype(dtype)
        if dtype == np.int8:
            array = np.sign(rng.normal(size=shape)).astype(np.int8) * (rng.random(shape) < density)
        back = densify(sparsify(array, "t"))
        assert back.dtype == array.dtype and back.shape == array.shape
        np.testing.assert_array_equal(back, array)
        assert back.tobytes() == (array + array.dtype.type(0)).tobytes()  # bit for bit, -0.0 read as 0.0


def test_storage_is_chosen_by_size_and_can_be_forced():
    rng = np.random.default_rng(0)

    def tensor(density, dtype=np.float32):
        return (rng.permutation(3000) < density * 3000).astype(dtype).reshape(30, 100)

    assert choose_storage(tensor(0.30)) == "sparse" and choose_storage(tensor(0.35)) == "dense"
    assert choose_storage(tensor(0.10, np.int8)) == "sparse" and choose_storage(tensor(0.12, np.int8)) == "dense"
    assert choose_storage(tensor(0.9), "sparse") == "sparse" and choose_storage(tensor(0.01), "dense") == "dense"
    with pytest.raises(ConfigError, match="storage must be one of auto, dense, sparse"):
        choose_storage(tensor(0.5), "csr")


def test_ternary_scale_and_same_padding():
    signs = np.array([[1, 0, -1], [-1, 1, 0]], np.float32)
    assert ternary_scale(signs * np.float32(0.07)) == np.float32(0.07)
    assert ternary_scale(np.zeros((2, 2), np.float32)) == 1.0
    assert ternary_scale(np.array([0.1, -0.2], np.float32)) is None
    assert same_pads(28, 3, 1) == (1, 1, 28) and same_pads(28, 3, 2) == (0, 1, 14)  # TF puts the odd pad last
    assert same_pads(7, 2, 2) == (0, 1, 4) and same_pads(5, 1, 1) == (0, 0, 5)


# --- masked fc ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fc_run(tmp_path_factory, mnist):
    """A run folder from ``python -m supermask.train`` (fc, 30 iterations on real MNIST)."""
    out = tmp_path_factory.mktemp("runs") / "fc"
    train_cli.main(["--model", "fc", "--iterations", "30", "--eval-every", "30", "--out", str(out), "--quiet"])
    return out


@pytest.fixture(scope="module")
def trained_fc(fc_run):
    """The trained fc with masks of 10 % / 50 % / 90 % (masked after training, not retrained)."""
    model = load_model(resolve(fc_run))
    masks = random_masks(model, {"fc1": 0.1, "fc2": 0.5, "output": 0.9})
    M.set_masks(model, masks)
    return model, masks


@pytest.mark.slow
def test_masked_fc_matches_keras_on_real_mnist_with_metadata(trained_fc, mnist, tmp_path):
    model, masks = trained_fc
    report = export_model(model, tmp_path / "fc.onnx", metadata={"level": 3, "backend": keras.backend.backend()})
    assert only_files(tmp_path) == ["fc.onnx"]
    onnx.checker.check_model(onnx.load(str(tmp_path / "fc.onnx")))
    assert_matches_keras(model, report.path, mnist.x_test[:1000])
    storage = {r["layer"]: r["storage"] for r in report.layers}
    assert storage == {"fc1": "sparse", "fc2": "dense", "output": "dense"}  # by density, per tensor
    assert all(r["dtype"] == "float32" for r in report.layers)  # trained weights are not ternary
    meta = verify.metadata(report.path)
    for name, mask in masks.items():
        assert meta["density"][name] == pytest.approx(mask.mean(), abs=1e-9)
    assert meta["level"] == 3 and meta["backend"] == keras.backend.backend()
    assert meta["supermask_version"] and meta["input_layout"] == "NHWC"
    assert meta["storage"]["fc1"] == "sparse float32"
    assert report.check.max_abs_diff <= ATOL and report.bytes == report.path.stat().st_size


def test_forced_storage_gives_the_same_logits(trained_fc, mnist, tmp_path):
    model, _ = trained_fc
    x = mnist.x_test[:1000]
    outputs, sizes = {}, {}
    for storage in ("dense", "sparse"):
        report = export_model(model, tmp_path / f"{storage}.onnx", storage=storage, verify=False)
        assert {r["storage"] for r in report.layers} == {storage}
        proto = onnx.load(str(report.path))
        kinds = {t.values.name for t in proto.graph.sparse_initializer}
        assert ("fc1.kernel" in kinds) == (storage == "sparse")
        outputs[storage] = verify.run(verify.session(report.path), x)
        sizes[storage] = report.bytes
    np.testing.assert_allclose(outputs["sparse"], outputs["dense"], rtol=0, atol=1e-6)
    auto = export_model(model, tmp_path / "auto.onnx", verify=False).bytes
    assert auto < min(sizes.values())  # fc1 sparse (10 %), fc2/output dense (50 %, 90 %)


# --- conv -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_conv2_matches_keras_on_real_mnist(mnist, tmp_path):
    keras.utils.set_random_seed(1)
    model = build_model("conv2", mnist.input_shape, seed=1)
    M.set_weights(model, with_random_biases(model, 1))  # nonzero biases exercise the bias path
    M.set_masks(model, random_masks(model, {"conv1": 0.6, "conv2": 0.5, "fc1": 0.05, "fc2": 0.3, "output": 0.8}, 1))
    report = export_model(model, tmp_path / "conv2.onnx", verify=False)
    assert_matches_keras(model, report.path, mnist.x_test[:1000])
    storage = {r["layer"]: r["storage"] for r in report.layers}
    assert storage == {"conv1": "dense", "conv2": "dense", "fc1": "sparse", "fc2": "sparse", "output": "dense"}
    ops = [n.op_type for n in onnx.load(str(report.path)).graph.node]
    assert ops.count("Transpose") == 2 and ops.count("Conv") == 2 and "MaxPool" in ops


def test_conv_geometry_strides_valid_and_odd_same_padding(mnist, tmp_path):
    """Stride-2 "same" (asymmetric pads), "valid", pools with "same" on odd sizes, Flatten order."""
    z = "zeros"  # weights come from numpy below (and JAX compiles no initializer per shape)
    model = keras.Sequential([
        keras.Input((28, 28, 1), name="image"),
        MaskedConv2D(8, 3, strides=2, padding="same", activation="relu", kernel_initializer=z, name="conv1"),
        keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1"),            # 7x7
        MaskedConv2D(12, (3, 2), padding="valid", kernel_initializer=z, name="conv2"),    # 5x6
        keras.layers.Activation("relu", name="relu"),
        keras.layers.MaxPooling2D(2, padding="same", name="pool2"),                       # 3x3
        keras.layers.Flatten(name="flatten"),
        MaskedDense(10, kernel_initializer=z, name="output"),
    ])
    rng = np.random.default_rng(2)
    kernels = {f"{k}/kernel": (rng.normal(size=v.shape) / np.sqrt(v[..., 0].size)).astype(np.float32)
               for k, v in M.kernels(M.get_weights(model)).items()}
    M.set_weights(model, {**with_random_biases(model, 2), **kernels})
    M.set_masks(model, random_masks(model, {"conv1": 0.7, "conv2": 0.25, "output": 0.6}, 2))
    report = export_model(model, tmp_path / "geometry.onnx", verify=False)
    assert_matches_keras(model, report.path, mnist.x_test[:1000])
    # Ternary convolutions (DequantizeLinear -> Conv) too: signed-constant kernels.
    M.set_weights(model, {k: (np.sign(v) * np.float32(0.3)).astype(np.float32) for k, v in kernels.items()})
    ternary = export_model(model, tmp_path / "geometry_ternary.onnx", ternary="on", verify=False)
    assert {r["dtype"] for r in ternary.layers} == {"ternary int8"}
    assert_matches_keras(model, ternary.path, mnist.x_test[:1000])


# --- ternary ---------------------------------------------------------------------------------
def test_ternary_export_equals_float_export_and_is_much_smaller(mnist, tmp_path):
    model = build_model("fc", mnist.input_shape, seed=3)
    weights = M.get_weights(model)
    for name, kernel in M.kernels(weights).items():  # signed constant: sign(w) * sigma
        weights[f"{name}/kernel"] = (np.sign(kernel) * np.float32(kernel.std())).astype(np.float32)
    M.set_weights(model, weights)
    M.set_masks(model, random_masks(model, {"fc1": 0.5, "fc2": 0.05, "output": 0.5}, 3))
    x = mnist.x_test[:1000]
    ternary = export_model(model, tmp_path / "ternary.onnx")  # auto detects signed constants
    plain = export_model(model, tmp_path / "float.onnx", ternary="off")
    assert {r["dtype"] for r in ternary.layers} == {"ternary int8"}
    assert {r["layer"]: r["storage"] for r in ternary.layers} == {"fc1": "dense", "fc2": "sparse", "output": "dense"}
    proto = onnx.load(str(ternary.path))
    assert [n.op_type for n in proto.graph.node].count("DequantizeLinear") == 3
    q = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}["fc1.kernel_q"]
    assert q.dtype == np.int8 and set(np.unique(q)) <= {-1, 0, 1}
    diff = np.abs(verify.run(verify.session(ternary.path), x) - verify.run(verify.session(plain.path), x)).max()
    assert diff <= ATOL
    assert_matches_keras(model, ternary.path, x)
    assert ternary.bytes < 0.3 * plain.bytes, (ternary.bytes, plain.bytes)
    # Packed 2-bit ternary (opset 25): 1/16 of float32 for the kernels, same logits.
    packed = export_model(model, tmp_path / "int2.onnx", ternary_bits=2, verify=False)
    assert {r["dtype"] for r in packed.layers} == {"ternary int2"}
    assert onnx.load(str(packed.path)).opset_import[0].version == 25
    np.testing.assert_allclose(verify.run(verify.session(packed.path), x),
                               verify.run(verify.session(ternary.path), x), rtol=0, atol=1e-6)
    assert packed.bytes < 0.08 * plain.bytes, (packed.bytes, plain.bytes)
    cast = export_model(model, tmp_path / "cast.onnx", ternary_bits=4, ternary_op="cast", verify=False)
    ops = [n.op_type for n in onnx.load(str(cast.path)).graph.node]
    assert ops.count("Cast") == 3 and "DequantizeLinear" not in ops
    np.testing.assert_allclose(verify.run(verify.session(cast.path), x),
                               verify.run(verify.session(ternary.path), x), rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="cannot hold 2-bit ternary kernels"):
        export_model(model, tmp_path / "bad.onnx", storage="sparse", ternary_bits=2)


def test_ternary_on_refuses_non_constant_kernels(trained_fc, tmp_path):
    model, _ = trained_fc
    with pytest.raises(ConfigError, match="--ternary on needs signed-constant kernels, but layer 'fc1'"):
        export_model(model, tmp_path / "t.onnx", ternary="on")
    assert only_files(tmp_path) == []


# --- errors: a clear message and no file, not even a temporary one ---------------------------
def test_nan_weights_are_refused(tmp_path):
    model = build_model("fc", (28, 28, 1))
    kernel = np.array(keras.ops.convert_to_numpy(model.get_layer("fc2").kernel))
    kernel[3, 4] = np.nan
    model.get_layer("fc2").kernel.assign(kernel)
    with pytest.raises(NonFiniteWeightsError, match="Layer 'fc2' has 1 non-finite .* kernel"):
        export_model(model, tmp_path / "nan.onnx")
    assert only_files(tmp_path) == []


@pytest.mark.parametrize("make", [lambda: keras.layers.LayerNormalization(name="ln"),
                                  lambda: keras.layers.UnitNormalization(name="unit")], ids=["layernorm", "unitnorm"])
def test_native_exporter_refuses_layers_it_does_not_cover(make, tmp_path):
    extra = make()
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              MaskedDense(20, kernel_initializer="zeros", name="fc1"),
                              extra, MaskedDense(10, kernel_initializer="zeros", name="output")])
    cls = type(extra).__name__
    with pytest.raises(UnsupportedLayerError, match=rf"Unsupported layer '{extra.name}' \({cls}\)"):
        export_model(model, tmp_path / "bad.onnx", exporter="native")
    assert only_files(tmp_path) == []


def test_unsupported_activation_and_unbuilt_model_are_refused(tmp_path):
    sparsemax = keras.Sequential([keras.Input((4,)), MaskedDense(3, activation="sparsemax", name="out")])
    with pytest.raises(UnsupportedLayerError, match="'out' .*activation 'sparsemax'"):
        export_model(sparsemax, tmp_path / "a.onnx", exporter="native")
    with pytest.raises(ExportError, match="has not been built"):
        export_model(keras.Sequential([MaskedDense(3)]), tmp_path / "b.onnx")
    assert only_files(tmp_path) == []


def test_metadata_values_are_json_where_possible(trained_fc, tmp_path):
    model, _ = trained_fc
    hparams = {"model": "fc", "seed": 0}
    export_model(model, tmp_path / "m.onnx", metadata={"hparams": json.dumps(hparams)}, verify=False)
    meta = verify.metadata(tmp_path / "m.onnx")
    assert meta["hparams"] == hparams and 0 < meta["overall_density"] < 1


# --- supermask layers (Bernoulli and edge-popup) ----------------------------------------------
def supermask_model(name, options, scores_seed, scores_shift=0.0):
    """A supermask model (``build_model(kind="supermask")``) with random scores; skips without one."""
    layers = pytest.importorskip("supermask.layers", reason="supermask layers not available")
    if not hasattr(layers, "SupermaskDense"):
        pytest.skip("supermask.layers.SupermaskDense does not exist yet")
    model = build_model(name, (28, 28, 1), seed=scores_seed, kind="supermask", supermask=options)
    rng = np.random.default_rng(scores_seed)
    M.set_weights(model, {k: (rng.normal(size=v.shape) + scores_shift).astype(np.float32)
                          for k, v in M.get_weights(model).items() if k.endswith("/scores")})
    return model


def test_bernoulli_signed_constant_supermask_exports_ternary(mnist, tmp_path):
    model = supermask_model("fc", {"learner": "bernoulli", "signed_constant": True, "dynamic_scaling": True}, 4)
    report = export_model(model, tmp_path / "bernoulli.onnx", verify=False)
    assert {r["dtype"] for r in report.layers} == {"ternary int8"}  # ±sigma x mask x (size / kept)
    assert_matches_keras(model, report.path, mnist.x_test[:1000])
    plain = export_model(model, tmp_path / "float.onnx", ternary="off", verify=False)
    assert report.bytes < 0.3 * plain.bytes
    densities = verify.metadata(report.path)["density"]
    for layer in model.layers:
        if hasattr(layer, "inference_mask"):
            assert densities[layer.name] == pytest.approx(layer.inference_mask().mean(), abs=1e-9)
    # A model evaluated with sampled masks exports (and self-checks) its deterministic mask.
    for layer in model.layers:
        if hasattr(layer, "inference_mode"):
            layer.inference_mode = "sampled"
    sampled = export_model(model, tmp_path / "sampled.onnx")
    assert sampled.check.max_abs_diff <= ATOL and verify.metadata(sampled.path)["inference_mask"] == "deterministic"
    assert all(layer.inference_mode == "sampled" for layer in model.layers if hasattr(layer, "inference_mode"))


def test_edge_popup_supermask_matches_keras(mnist, tmp_path):
    model = supermask_model("fc", {"learner": "edge-popup", "k": 0.3}, 5)
    report = export_model(model, tmp_path / "edge_popup.onnx", verify=False)
    assert {r["dtype"] for r in report.layers} == {"float32"}
    assert {r["storage"] for r in report.layers} == {"sparse"}  # 30 % < 1/3
    assert_matches_keras(model, report.path, mnist.x_test[:1000])


# --- run folders and the two command-line tools -------------------------------------------
def test_cli_export_and_check_end_to_end(fc_run, mnist, tmp_path, capsys):
    out = tmp_path / "ticket.onnx"
    export_cli.main([str(fc_run), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "fc1" in printed and "argmax agreement 100.0%" in printed
    meta = verify.metadata(out)
    assert meta["hparams"] == store.read_json(paths.hparams(fc_run))
    assert meta["backend"] == keras.backend.backend() and meta["level"] == "none"
    result = check.main([str(out), "--dataset", "mnist", "--repeats", "1"])
    printed = capsys.readouterr().out
    metrics = store.read_json(paths.metrics(fc_run))
    assert result["count"] == 10000 and result["bytes"] == out.stat().st_size
    assert result["accuracy"] == pytest.approx(metrics["summary"]["final_test_accuracy"], abs=1e-6)
    for text in ("accuracy", "images/s", "fc1", "100.00%", "bytes"):
        assert text in printed
    assert_matches_keras(load_model(resolve(fc_run)), out, mnist.x_test[:1000])


def test_lottery_folders_pick_trial_and_level(fc_run, tmp_path):
    experiment = tmp_path / "abc123"
    for trial, level in [(0, 0), (0, 2), (5, 0)]:
        shutil.copytree(fc_run, paths.level(paths.trial(experiment, trial), level))
        paths.hparams(paths.level(paths.trial(experiment, trial), level)).unlink()  # as in a lottery level
    (paths.trial(experiment, 0) / ".level_3.x1.tmp").mkdir()  # an unfinished level is never picked
    store.write_json(paths.hparams(experiment), {"model": "fc", "dataset": "mnist", "levels": 3})
    for args, (trial, level) in [((experiment,), (0, 2)), ((experiment, 0), (0, 0)),
                                 ((paths.trial(experiment, 0),), (0, 2)), ((paths.trial(experiment, 5),), (5, 0)),
                                 ((paths.level(paths.trial(experiment, 0), 0),), (0, 0))]:
        run = resolve(*args)
        assert (run.trial, run.level) == (trial, level)
        assert run.hparams == {"model": "fc", "dataset": "mnist", "levels": 3, "seed": trial}
    assert resolve(experiment, trial=5).folder == paths.level(paths.trial(experiment, 5), 0)
    report = export_run(experiment, tmp_path / "level.onnx", level=0, verify=False)
    meta = verify.metadata(report.path)
    assert (meta["level"], meta["trial"]) == (0, 0) and meta["hparams"]["seed"] == 0
    # A level saved before model.keras existed is rebuilt from hparams + weights_final.h5 + masks.h5.
    old_level = paths.level(paths.trial(experiment, 0), 2)
    paths.model(old_level).unlink()
    rebuilt = export_run(old_level, tmp_path / "rebuilt.onnx", verify=False)
    assert verify.metadata(rebuilt.path)["rebuilt_from"] == "weights_final.h5 + masks.h5"
    x = np.random.default_rng(0).random((50, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(verify.run(verify.session(rebuilt.path), x),
                               verify.run(verify.session(report.path), x), rtol=0, atol=1e-6)
    for kwargs, error, message in [
            ({"run_dir": experiment, "level": 7}, ConfigError, r"no finished level 7; finished levels: \[0, 2\]"),
            ({"run_dir": experiment, "trial": 9}, ConfigError, r"no trial 9; it has trials \[0, 5\]"),
            ({"run_dir": fc_run, "level": 1}, ConfigError, "is a single run"),
            ({"run_dir": experiment, "control": True}, ExportError, "no random-reinit control"),
            ({"run_dir": tmp_path / "nope"}, ExportError, "does not exist")]:
        with pytest.raises(error, match=message):
            resolve(**kwargs)


def test_cli_errors_are_one_line_and_leave_no_file(fc_run, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for argv, message in [([str(tmp_path / "missing"), "--out", str(out / "x.onnx")], "does not exist"),
                          ([str(fc_run), "--out", str(out / "x.onnx"), "--ternary", "on"], "--ternary on needs")]:
        with pytest.raises(SystemExit) as exit_info:
            run_main(export_cli.main, argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err
        assert only_files(out) == []
    with pytest.raises(SystemExit):
        run_main(check.main, [str(out / "x.onnx")])
    assert "Missing ONNX file" in capsys.readouterr().err


def test_help_documents_every_flag():
    text = export_cli.build_parser().format_help()
    for flag in ("--out", "--level", "--trial", "--control", "--storage", "--ternary", "--ternary-bits",
                 "--ternary-op", "--no-verify", "--quiet"):
        assert flag in text
    assert "auto,dense,sparse" in text and "auto,on,off" in text
    text = check.build_parser().format_help()
    for flag in ("--dataset", "--data-dir", "--split", "--batch-size", "--repeats", "--threads"):
        assert flag in text


# --- native coverage: activations, Conv1D, Concatenate, pooling variants, Reshape, merges ---------------
Z = {"kernel_initializer": "zeros"}  # weights come from numpy (and JAX compiles no initializer per shape)


def randomized(model, seed, density=0.4):
    """``model`` (masked layers) with random weights (scaled per layer) and random masks of ``density``."""
    rng = np.random.default_rng(seed)
    weights = {}
    for key, value in M.get_weights(model).items():
        scale = 1 / np.sqrt(np.prod(value.shape[:-1])) if value.ndim > 1 else 0.1
        weights[key] = (rng.normal(size=value.shape) * scale).astype("float32")
    M.set_weights(model, weights)
    M.set_masks(model, {name: rng.random(m.shape) < density for name, m in M.get_masks(model).items()})
    return model


def sequence_model():
    """1-D: masked Conv1D (same, strided + grouped, causal + dilated), tanh / gelu / swish, Concatenate on the
    channel and the time axis, max / average pools ("same" averages over valid steps), global pools
    with keepdims, Reshape, a Dense over the time steps, Multiply / Subtract / Average."""
    L = keras.layers
    inputs = keras.Input((24, 4), name="sequence")
    a = MaskedConv1D(6, 3, padding="same", activation="tanh", name="conv_a", **Z)(inputs)
    b = MaskedConv1D(6, 3, padding="causal", dilation_rate=2, activation="gelu", name="conv_b", **Z)(inputs)
    x = L.Concatenate(name="cat_channels")([a, b])                                  # (24, 12)
    x = L.MaxPooling1D(2, name="max1")(x)                                            # (12, 12)
    x = L.AveragePooling1D(3, strides=2, padding="same", name="avg1")(x)             # (6, 12)
    x = MaskedConv1D(8, 2, strides=2, groups=2, activation="swish", name="conv_c", **Z)(x)              # (3, 8)
    x = L.Concatenate(axis=1, name="cat_time")([x, L.Activation("sigmoid", name="sig")(x)])  # (6, 8)
    g_max = L.GlobalMaxPooling1D(name="gmax")(x)
    g_avg = L.Reshape((8,), name="squeeze")(L.GlobalAveragePooling1D(keepdims=True, name="gavg")(x))
    merged = L.Average(name="average")([L.Multiply(name="mul")([g_max, g_avg]), L.Subtract(name="sub")([g_max, g_avg])])
    seq = MaskedDense(5, activation="elu", name="per_step", **Z)(L.Reshape((4, 12), name="regroup")(x))  # per step
    x = L.Concatenate(name="cat_flat")([merged, L.Flatten(name="flat")(seq)])
    return keras.Model(inputs, MaskedDense(3, name="logits", **Z)(x), name="sequence_net")


def image_model():
    """2-D: ReLU(max_value, negative_slope, threshold), LeakyReLU, ELU, PReLU, ZeroPadding2D,
    "same" average pooling, Concatenate on a spatial axis, Maximum / Minimum, GlobalMaxPooling2D,
    a Dense on channels, Softmax over the channels, Dropout."""
    L = keras.layers
    inputs = keras.Input((10, 10, 2), name="image")
    x = MaskedConv2D(6, 3, padding="same", activation="selu", name="conv1", **Z)(inputs)
    x = L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2, name="relu_general")(x)
    y = L.ZeroPadding2D(((1, 0), (0, 0)), name="pad")(L.LeakyReLU(0.3, name="leaky")(x))  # (11, 10, 6)
    y = L.AveragePooling2D(2, padding="same", name="avg")(y)                            # (6, 5, 6)
    z = L.MaxPooling2D(2, strides=1, name="max")(L.ELU(0.5, name="elu")(x))             # (9, 9, 6)
    z = MaskedConv2D(6, 4, dilation_rate=(1, 2), padding="same", activation="softplus", name="conv2", **Z)(z)
    z = L.MaxPooling2D(3, strides=2, padding="same", name="max2")(z)                    # (5, 5, 6)
    y = L.Concatenate(axis=1, name="cat_rows")([y, z])                                 # (11, 5, 6)
    y = L.PReLU(name="prelu")(MaskedDense(4, activation="mish", name="mix", **Z)(y))
    y = L.Maximum(name="maximum")([y, L.Minimum(name="minimum")([y, L.Activation("hard_sigmoid", name="hs")(y)])])
    y = L.Dropout(0.3, name="drop")(L.Softmax(name="softmax")(y))
    x = L.Concatenate(name="cat")([L.GlobalMaxPooling2D(name="gmax")(y), L.Flatten(name="flat")(
        L.GlobalAveragePooling2D(keepdims=True, name="gavg")(x))])
    return keras.Model(inputs, MaskedDense(4, activation="log_softmax", name="logits", **Z)(x), name="image_net")


def assert_checked(report):
    """The export's own self-check (onnxruntime vs Keras on random inputs) passed tightly."""
    assert report.check.count == 64 and report.check.max_abs_diff <= ATOL and report.check.argmax_agreement == 1.0


@pytest.mark.parametrize("make", [sequence_model, image_model], ids=["sequence", "image"])
def test_common_layers_export_natively_and_match_keras(make, tmp_path):
    model = randomized(make(), seed=11)
    report = export_model(model, tmp_path / "m.onnx")  # self-checked against Keras in onnxruntime
    assert report.metadata["exporter"] == "native" and only_files(tmp_path) == ["m.onnx"]
    assert_checked(report)
    masks = M.get_masks(model)
    assert {r["layer"]: r["density"] for r in report.layers} == pytest.approx(
        {name: mask.mean() for name, mask in masks.items()}, abs=1e-9)
    assert {r["op"] for r in report.layers} == ({"conv1d", "dense"} if make is sequence_model else {"conv2d", "dense"})


def test_every_activation_exports_natively(tmp_path):
    names = [n for n in ops.ACTIVATIONS if n != "linear"]
    x = inputs = keras.Input((6,))
    for name in names:
        x = MaskedDense(6, activation=name, name=name, **Z)(x)
    model = randomized(keras.Model(inputs, MaskedDense(3, name="out", **Z)(x)), seed=12, density=0.8)
    report = export_model(model, tmp_path / "act.onnx")
    assert [r["layer"] for r in report.layers] == [*names, "out"]
    assert_checked(report)


# --- the standard route: a standard exporter, then the same sparse / ternary storage -------------------
@keras.saving.register_keras_serializable(package="supermask_tests")
class SubclassedNet(keras.Model):
    """A subclassed model of plain layers (masked by ``convert.masked``): Conv1D, ops in ``call``, Dense."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv1D(8, 3, activation="relu", name="conv", **Z)
        self.hidden = keras.layers.Dense(256, activation="relu", name="hidden", **Z)
        self.out = keras.layers.Dense(3, name="out", **Z)

    def call(self, x):
        x = self.conv(x)
        x = keras.ops.concatenate([keras.ops.max(x, axis=1), keras.ops.mean(x, axis=1)], axis=-1)
        return self.out(self.hidden(x))


def layernorm_model():
    L = keras.layers
    inputs = keras.Input((10, 10, 2))
    x = L.MaxPooling2D(2)(MaskedConv2D(8, 3, padding="same", activation="relu", name="conv", **Z)(inputs))
    x = L.Flatten()(L.LayerNormalization(name="ln")(x))  # LayerNormalization: not native
    x = MaskedDense(48, activation="relu", name="hidden", **Z)(x)
    return keras.Model(inputs, MaskedDense(3, name="out", **Z)(x), name="layernorm_net")


def subclassed_model():
    model = SubclassedNet(name="subclassed")
    model(np.zeros((2, 12, 4), "float32"))
    return convert.masked(model)


@pytest.mark.parametrize("make", [layernorm_model, subclassed_model], ids=["layernorm", "subclassed"])
def test_standard_route_keeps_sparse_and_ternary_storage(make, tmp_path):
    """A layer (or a model) the native builder refuses: a standard exporter, then the masked kernels
    stored sparse (float32; the subclassed model's signed-constant ones ternary int8) in whatever
    layout the exporter chose."""
    ternary = make is subclassed_model
    model = randomized(make(), seed=13, density=0.05 if ternary else 0.1)  # int8 is sparse below 1/9
    if ternary:
        M.set_weights(model, {k: (np.sign(v) * np.float32(0.05)).astype(np.float32)
                              for k, v in M.get_weights(model).items() if k.endswith("/kernel")})
    report = export_model(model, tmp_path / "m.onnx", ternary="on" if ternary else "auto")  # auto -> standard
    assert_checked(report)
    meta = verify.metadata(report.path)
    assert meta["exporter"] == "standard" and meta["standard_route"]
    assert meta["export_backend"] == keras.backend.backend()
    refused = "'ln' (LayerNormalization)" if make is layernorm_model else "is a subclassed model"
    assert refused in meta["native_refusal"]
    masks = M.get_masks(model)
    assert meta["density"] == pytest.approx({k: m.mean() for k, m in masks.items()}, abs=1e-9)
    dtype = "ternary int8" if ternary else "float32"
    assert {r["layer"]: (r["storage"], r["dtype"][:len(dtype)]) for r in report.layers} == {
        k: ("sparse", dtype) for k in masks}
    proto = onnx.load(str(report.path))
    stored = sorted((int(np.prod(t.dims)), t.values.data_type) for t in proto.graph.sparse_initializer)
    for kernel in M.kernels(M.get_weights(model)).values():  # each masked kernel, in whatever layout
        assert (kernel.size, onnx.TensorProto.INT8 if ternary else onnx.TensorProto.FLOAT) in stored
    int8_entries = 0
    for tensor in list(proto.graph.sparse_initializer):  # the same file with every tensor dense float32
        proto.graph.initializer.append(onnx.numpy_helper.from_array(densify(tensor), tensor.values.name))
        int8_entries += int(np.prod(tensor.dims)) if ternary else 0
    del proto.graph.sparse_initializer[:]
    assert report.bytes < 0.6 * (proto.ByteSize() + 3 * int8_entries)
    assert only_files(tmp_path) == ["m.onnx"]


def test_native_refusal_and_a_failed_standard_route_are_one_line_without_a_file(fc_run, tmp_path, capsys,
                                                                                monkeypatch):
    model = randomized(layernorm_model(), seed=14)
    with pytest.raises(UnsupportedLayerError, match=r"Unsupported layer 'ln' \(LayerNormalization\).*exporter='auto'"):
        export_model(model, tmp_path / "native.onnx", exporter="native")
    from supermask.export import standard

    def broken(*args):
        raise RuntimeError("no ONNX form for this op\nsecond line")

    monkeypatch.setattr(standard, "EXPORTERS", dict.fromkeys(standard.EXPORTERS, broken))
    message = r"No standard ONNX exporter .* RuntimeError: no ONNX form for this op[;)]"
    with pytest.raises(ExportError, match=message) as info:
        export_model(model, tmp_path / "standard.onnx")
    assert "\n" not in str(info.value) and "Export under KERAS_BACKEND=" in str(info.value)
    with pytest.raises(SystemExit):  # the CLI: one line, no file
        run_main(export_cli.main, [str(fc_run), "--out", str(tmp_path / "cli.onnx"), "--exporter", "standard"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: No standard ONNX exporter") and "\n" not in err
    assert only_files(tmp_path) == []
