"""supermask.worker and supermask.executors: a task function passed in, run in worker processes.

Backend-free orchestration (the tasks here train nothing), so it runs on JAX alone.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from supermask import executors, worker
from supermask.errors import ConfigError

on_jax = pytest.mark.skipif(keras.backend.backend() != "jax", reason="orchestration only: run once, on JAX")
ROOT = Path(__file__).resolve().parents[1]


def write_out(payload):
    """A task: write the payload's text to its file (a worker process imports this module by name)."""
    Path(payload["out"]).write_text(payload["text"])
    print("wrote", payload["out"])


def refuse(payload):
    """A task that fails as the library fails: a one-line ConfigError."""
    raise ConfigError(f"Nothing to do. Received: {payload['text']}")


def crash(payload):
    raise ZeroDivisionError("division by zero in the task")


def test_a_task_is_named_by_its_module_and_found_again():
    name = f"{__name__}:write_out"  # pytest imports this file as test_worker (or tests.test_worker)
    assert executors.task_name(write_out) == name and executors.find_task(name) is write_out
    def nested(payload):
        return payload

    for bad in (lambda payload: None, nested):
        with pytest.raises(ConfigError, match="A task must be a module-level function"):
            executors.task_name(bad)
    for name in (f"{__name__}:no_such", "no_such_module:f", __name__, ""):
        with pytest.raises(ConfigError, match="A task is named module:function"):
            executors.find_task(name)


def test_the_worker_runs_one_task_file_in_this_process(tmp_path):
    task_file = tmp_path / "t.task.json"
    executors.write_task(task_file, write_out, {"out": str(tmp_path / "o.txt"), "text": "hello"})
    assert json.loads(task_file.read_text())["task"] == f"{__name__}:write_out"
    worker.main([str(task_file)])
    assert (tmp_path / "o.txt").read_text() == "hello"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="A task file holds"):
        worker.main([str(tmp_path / "bad.json")])


def _env():
    """This environment, with the repository and tests/ on the path (where this module is found)."""
    path = (str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH"))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}


@pytest.mark.slow
@on_jax
def test_local_executor_runs_each_job_in_a_worker_and_reports_failures(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    jobs = [({"out": str(tmp_path / f"{i}.txt"), "text": f"job {i}"}, tmp_path / f"{i}.log") for i in range(3)]
    done = {}
    executors.run_local(write_out, jobs, lambda i, error: done.setdefault(i, error), workers=2)
    assert done == {0: None, 1: None, 2: None}
    assert [(tmp_path / f"{i}.txt").read_text() for i in range(3)] == ["job 0", "job 1", "job 2"]
    assert "wrote" in (tmp_path / "0.log").read_text() and (tmp_path / "0.task.json").is_file()
    failed = {}
    executors.run_local(refuse, jobs[:1], lambda i, error: failed.setdefault(i, error))
    executors.run_local(crash, jobs[1:2], lambda i, error: failed.setdefault(i + 1, error))
    assert failed == {0: "Nothing to do. Received: job 0",
                      1: "ZeroDivisionError: division by zero in the task"}
    with pytest.raises(ConfigError, match="A task must be a module-level function"):
        executors.run_local(lambda payload: None, jobs, lambda i, error: None)


def test_unknown_executor():
    with pytest.raises(ConfigError, match="executor must be one of local, ray. Received: executor='slurm'"):
        executors.get("slurm")


def test_executors_and_workers_know_nothing_of_the_sweep():
    """No import circle: the sweep imports the executors, never the other way round; the worker
    imports only the task's own module."""
    code = ("import sys; import supermask.executors, supermask.worker; "
            "print(sorted(m for m in sys.modules if m.startswith(('supermask.sweep', 'supermask.lottery', "
            "'supermask.init_sweep', 'keras'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
