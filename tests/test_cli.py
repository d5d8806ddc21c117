"""The ``supermask`` command (``supermask/__main__.py``) and the flag plumbing (``supermask.cli``).

Backend-free: run once, in the JAX pass.
"""

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from supermask import __main__ as command
from supermask.cli import ArgumentParser, add_config_arguments, config_from_args
from supermask.settings import LotteryConfig, SupermaskConfig, TrainConfig
from tests.conftest import on_jax

REPO = Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run([sys.executable, "-m", "supermask", *args], capture_output=True, text=True, cwd=REPO)


@on_jax
def test_the_command_lists_its_commands_and_refuses_an_unknown_one_in_one_line(capsys):
    assert command.main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in command.COMMANDS)
    assert command.main(["prune"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown command 'prune'" in err[0] and "lottery" in err[0]
    assert command.main([]) == 2


@on_jax
def test_every_command_module_has_a_main():
    for name, (module, _) in command.COMMANDS.items():
        main = getattr(__import__(module, fromlist=["main"]), "main")
        assert callable(main), name


@on_jax
@pytest.mark.parametrize("name", ["lottery", "check"])
def test_a_command_runs_through_supermask_with_its_own_name(name):
    out = _run(name, "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(f"usage: supermask {name}")


@pytest.mark.slow
@on_jax
def test_the_console_script_is_installed_beside_the_interpreter():
    script = Path(sys.executable).parent / "supermask"
    if not script.exists():
        script = shutil.which("supermask")
    if script is None:
        pytest.skip("the package is not installed (pip install -e . puts the supermask script on PATH)")
    out = subprocess.run([str(script), "train_supermask", "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and "usage: supermask train_supermask" in out.stdout, out.stderr[-2000:]
    bad = subprocess.run([str(script), "lottery", "--levels", "-1"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: levels must be an integer >= 0. Received: levels=-1"


@on_jax
@pytest.mark.parametrize("settings", [TrainConfig, LotteryConfig, SupermaskConfig])
def test_flags_are_the_settings_fields_and_parse_back_into_equal_settings(settings):
    parser = ArgumentParser(prog="t")
    add_config_arguments(parser, settings)
    assert config_from_args(settings, parser.parse_args([])) == settings()
    flags = {s for a in parser._actions for s in a.option_strings}
    for f in dataclasses.fields(settings):
        if f.metadata.get("cli", True):
            assert "--" + f.name.replace("_", "-") in flags, f.name
        else:
            assert "--" + f.name.replace("_", "-") not in flags, f.name


@on_jax
@pytest.mark.parametrize("name", ["train", "lottery", "train_supermask"])
def test_tensorboard_flag_is_offered_and_a_file_is_refused_in_one_line(name, tmp_path, capsys):
    with pytest.raises(SystemExit):
        command.main([name, "--help"])
    assert "--tensorboard DIR" in capsys.readouterr().out
    taken = tmp_path / "a_file"
    taken.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        command.main([name, "--model", "fc", "--tensorboard", str(taken), "--data-dir", str(tmp_path)]
                     + (["--root", str(tmp_path / "root")] if name == "lottery" else ["--out", str(tmp_path / "o")]))
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and "--tensorboard must be a folder" in err[0], err


@on_jax
def test_help_prints_no_tensorflow_start_up_lines():
    out = subprocess.run([sys.executable, "-m", "supermask.train", "--help"], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 0 and "--tensorboard" in out.stdout
    assert out.stderr == "", out.stderr
