"""Where a sweep's tasks run: ``local`` processes or ``ray`` tasks.

An executor is ``run(task, jobs, on_done, **options)``: ``task`` is a module-level function
that runs one task from its JSON ``payload`` (the sweep passes ``supermask.sweep.run_task``),
named in a task file for a local worker (``write_task``; ``python -m supermask.worker``) and
pickled by reference for Ray;
``jobs`` a list of ``(payload, log path)``. It calls ``task(payload)`` for each job, in another
process, with that process's output in the log file, and ``on_done(index, error)`` as each
finishes: ``error`` is None on success, else one line (the task's own ``error: ...`` message or
its exception), its full output being in the log. A failed task never stops the others.
Options: ``workers`` (local: processes at once); ``ray_address``, ``cpus_per_task``,
``gpus_per_task`` (ray). Each executor ignores the other's options.
"""

import contextlib
import importlib
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

from supermask.errors import ConfigError, SupermaskError

# Passed on to every task's process (Ray workers do not inherit the driver's environment).
ENV_VARS = ("KERAS_BACKEND", "SUPERMASK_DATA", "SUPERMASK_CACHE", "SUPERMASK_CUDA_GRAPHS", "SUPERMASK_ENGINE_FORM")


def get(name):
    """The executor called ``name``: ``run_local`` or ``run_ray``."""
    if name == "local":
        return run_local
    if name == "ray":
        return run_ray
    raise ConfigError(f"executor must be one of local, ray. Received: executor={name!r}")


def task_name(function):
    """``"module:qualname"`` of a module-level ``function``; ConfigError unless a fresh process finds
    this very function under that name (a lambda or a nested function cannot be named)."""
    name = f"{getattr(function, '__module__', None)}:{getattr(function, '__qualname__', None)}"
    try:
        found = find_task(name)
    except ConfigError:
        found = None
    if found is not function:
        raise ConfigError(f"A task must be a module-level function that a worker process can import. Received: "
                          f"{function!r}")
    return name


def find_task(name):
    """The function named ``"module:qualname"`` (``task_name``), importing its module."""
    module, _, qualname = str(name).partition(":")
    try:
        found = importlib.import_module(module)  # the task's own module, named by the task file
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError):
        found = None
    if not callable(found):
        raise ConfigError(f"A task is named module:function, an importable function. Received: {name!r}")
    return found


def write_task(path, function, payload):
    """Write the task file that makes ``python -m supermask.worker PATH`` call ``function(payload)``:
    JSON, ``{"task": "module:qualname", "payload": payload}``."""
    Path(path).write_text(json.dumps({"task": task_name(function), "payload": payload}))


def read_task(path):
    """``(function, payload)`` of a task file (``write_task``); ConfigError if it is not one."""
    try:
        task = json.loads(Path(path).read_text())
        name, payload = task["task"], task["payload"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"A task file holds {{\"task\": ..., \"payload\": ...}} as JSON. Received: {path} "
                          f"({type(exc).__name__}: {exc})") from None
    return find_task(name), payload


def error_line(log, returncode=None):
    """The last meaningful line of a failed task's log (its error), else its exit status."""
    try:
        lines = [line.strip() for line in Path(log).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    errors = [line for line in lines if line.startswith("error: ") or "Error" in line.split(":")[0]]
    if errors:
        return errors[-1].removeprefix("error: ")
    return lines[-1] if lines else f"exit status {returncode}"


# --- local: one process per task, at most `workers` at once -----------------------------------------


def run_local(task, jobs, on_done, workers=1, **_):
    """Each job in a fresh ``python -m supermask.worker TASK_FILE`` process (the task file, written
    beside the log as ``<log stem>.task.json``, names ``task`` and holds the payload), at most
    ``workers`` at once; the process's stdout and stderr go to the log. Interrupted, it stops the
    processes still running (their points resume on the next sweep)."""
    task_name(task)  # a task a fresh process cannot import fails here, before any starts
    queue = list(enumerate(jobs))
    running = {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                index, (payload, log) = queue.pop(0)
                task_file = Path(log).with_suffix(".task.json")
                write_task(task_file, task, payload)
                out = open(log, "w")
                proc = subprocess.Popen([sys.executable, "-m", "supermask.worker", str(task_file)],
                                        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                running[proc] = (index, out, log)
            time.sleep(0.2)
            for proc in [p for p in running if p.poll() is not None]:
                index, out, log = running.pop(proc)
                out.close()
                on_done(index, None if proc.returncode == 0 else error_line(log, proc.returncode))
    finally:
        for proc in running:  # interrupted: stop the tasks still running (they resume next time)
            proc.terminate()


# --- ray: one Ray task per sweep task ------------------------------------------------------------------


def ray_task(task, payload, log):
    """Run ``task(payload)`` inside a Ray worker, its output into ``log``; returns None or the error line."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            task(payload)
            return None
        except SupermaskError as exc:
            print(f"error: {exc}")
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - reported as the task's failure, the sweep goes on
            traceback.print_exc()
            return f"{type(exc).__name__}: {exc}"


def run_ray(task, jobs, on_done, ray_address=None, cpus_per_task=1, gpus_per_task=0, **_):
    """Each job as one Ray task (``ray_task``) reserving ``cpus_per_task`` / ``gpus_per_task``, on the
    cluster at ``ray_address`` (else ``$RAY_ADDRESS``, else a local Ray started and stopped here);
    ``ENV_VARS`` are passed on to the workers. ``task`` travels by reference (its module is imported
    in the worker)."""
    try:
        import ray  # optional extra (supermask[ray]): imported only when this executor is chosen
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'supermask[ray]' (requirements.lock has it).") \
            from None
    started_here = not ray.is_initialized()
    if started_here:
        address = ray_address or os.environ.get("RAY_ADDRESS")
        env = {k: os.environ[k] for k in ENV_VARS if k in os.environ}
        try:
            ray.init(address=address, runtime_env={"env_vars": env}, include_dashboard=False, log_to_driver=False)
        except ConnectionError as exc:
            raise ConfigError(f"Cannot reach the Ray cluster at {address}: {exc}. Check --ray-address / "
                              "RAY_ADDRESS, or leave both unset to start a local Ray.") from None
    try:
        remote = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0)(ray_task)
        pending = {remote.remote(task, payload, str(log)): index for index, (payload, log) in enumerate(jobs)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index = pending.pop(ref)
                try:
                    error = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the worker died: report it, go on
                    error = f"Ray task failed: {str(exc).strip().splitlines()[0]}"
                on_done(index, error)
    finally:
        if started_here:
            ray.shutdown()
