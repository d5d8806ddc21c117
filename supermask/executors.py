"""Where a sweep's tasks run: ``local`` processes or ``ray`` tasks.

Both take ``jobs``, a list of ``(payload, log path)`` (``sweep.task_payload``), run each task
with ``sweep.run_task`` and call ``on_done(index, error)`` as each finishes: ``error`` is None
on success, else one line (the task's own ``error: ...`` message or its exception), its full
output being in the log file. A failed task never stops the others.
"""

import contextlib
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

from supermask.errors import ConfigError, SupermaskError

# Passed on to every task's process (Ray workers do not inherit the driver's environment).
ENV_VARS = ("KERAS_BACKEND", "SUPERMASK_DATA", "SUPERMASK_CACHE", "SUPERMASK_CUDA_GRAPHS")


def get(name):
    if name == "local":
        return run_local
    if name == "ray":
        return run_ray
    raise ConfigError(f"Unknown executor {name!r}. Valid executors: local, ray.")


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


def run_local(jobs, on_done, workers=1, **_):
    queue = list(enumerate(jobs))
    running = {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                index, (payload, log) = queue.pop(0)
                task_file = Path(log).with_suffix(".task.json")
                task_file.write_text(json.dumps(payload))
                out = open(log, "w")
                proc = subprocess.Popen([sys.executable, "-m", "supermask.sweep", "--task", str(task_file)],
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


def task_main(task_file):
    """Entry point of a local worker process: run the task in ``task_file``."""
    from supermask.cli import run_main
    from supermask.sweep import run_task

    payload = json.loads(Path(task_file).read_text())
    run_main(lambda _argv: run_task(payload))


# --- ray: one Ray task per sweep task ------------------------------------------------------------------


def ray_task(payload, log):
    """Run a task inside a Ray worker, its output into ``log``; returns None or the error line."""
    from supermask.sweep import run_task

    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            run_task(payload)
            return None
        except SupermaskError as exc:
            print(f"error: {exc}")
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - reported as the task's failure, the sweep goes on
            traceback.print_exc()
            return f"{type(exc).__name__}: {exc}"


def run_ray(jobs, on_done, ray_address=None, cpus_per_task=1, gpus_per_task=0, **_):
    try:
        import ray
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
        pending = {remote.remote(payload, str(log)): index for index, (payload, log) in enumerate(jobs)}
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
