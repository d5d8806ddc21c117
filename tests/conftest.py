"""Shared fixtures. Real data comes from $SUPERMASK_DATA (scripts/test.sh points it at ../shared/data)."""

import os
from pathlib import Path

import pytest

# Tests of backend-free code run once (scripts/test.sh sets KERAS_BACKEND for each pass): quick ones in the
# JAX pass; slow orchestration ones (processes, files, locks, reports, whose backend only trains the
# networks they need) in the PyTorch pass, the quickest to train on the CPU.
on_jax = pytest.mark.skipif(os.environ.get("KERAS_BACKEND") != "jax", reason="backend-free: run once, on JAX")
once = pytest.mark.skipif(os.environ.get("KERAS_BACKEND") != "torch",
                          reason="backend-free orchestration: run once, in the torch pass")


def shared_data_dir():
    """The folder of real datasets, or None."""
    value = os.environ.get("SUPERMASK_DATA")
    return Path(value) if value else None


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST (55 000 / 5 000 / 10 000), loaded once per test session."""
    root = shared_data_dir()
    if root is None or not (root / "mnist").is_dir():
        pytest.skip("set SUPERMASK_DATA to a folder holding mnist/ (scripts/test.sh does)")
    from supermask.data import load_dataset

    return load_dataset("mnist", data_dir=root, download=False)


@pytest.fixture(scope="session")
def small_mnist(mnist):
    """A 3 000 / 500 / 1 000 slice of real MNIST for fast training tests."""
    from supermask.data import Dataset

    return Dataset("mnist", mnist.x_train[:3000], mnist.y_train[:3000], mnist.x_val[:500],
                   mnist.y_val[:500], mnist.x_test[:1000], mnist.y_test[:1000])
