"""A worker process of the local executor: ``python -m supermask.worker TASK_FILE``.

``TASK_FILE`` is JSON, ``{"task": "package.module:function", "payload": ...}``, written by
``supermask.executors.write_task``: the worker imports the function's module, calls
``function(payload)`` once and exits, 0 on success, 2 with one ``error: ...`` line
(``cli.run_main``) on a ``SupermaskError``, 1 with a traceback on anything else; the executor
reads the error from the process's log. The worker knows no kind of task: the sweep's is
``supermask.sweep.run_task``.
"""

from supermask.cli import ArgumentParser, run_main
from supermask.executors import read_task


def run(task_file):
    """Run the task in ``task_file`` in this process; returns what the task returns."""
    function, payload = read_task(task_file)
    return function(payload)


def build_parser(prog="python -m supermask.worker"):
    parser = ArgumentParser(prog=prog, description="Run one task of a sweep (the local executor starts it).")
    parser.add_argument("task_file", metavar="TASK_FILE", help="the task, as JSON (supermask.executors.write_task)")
    return parser


def main(argv=None):
    return run(build_parser().parse_args(argv).task_file)


if __name__ == "__main__":
    run_main(main)
