"""``falcoir CMD ...`` builds CMD alone (falcoir.cli.app.app_for), and that changes
nothing the user can see: help, parameters, errors and exit codes are the whole
application's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from falcoir.cli import app as app_module
from falcoir.cli.app import HOT_COMMANDS, app_for, full_app, new_app

ROOT = Path(__file__).resolve().parents[2]


def _run(app: typer.Typer, argv: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, argv, prog_name="falcoir")
    return result.exit_code, result.stdout, result.stderr


def _describe(cmd: Any) -> list[tuple[Any, ...]]:
    return [
        (
            p.name,
            p.param_type_name,
            tuple(p.opts),
            tuple(p.secondary_opts),
            repr(p.default),
            p.envvar,
            p.required,
            p.multiple,
            p.nargs,
            getattr(p, "help", None),
            getattr(p, "is_flag", None),
            repr(p.type_descriptor.annotation) if hasattr(p, "type_descriptor") else None,
        )
        for p in cmd.params
    ]


FULL_COMMANDS = get_command(full_app()).commands  # type: ignore[attr-defined]


def test_hot_commands_exist_and_modules_register_exactly_them() -> None:
    by_module: dict[str, set[str]] = {}
    for command, module in HOT_COMMANDS.items():
        assert command in FULL_COMMANDS
        by_module.setdefault(module, set()).add(command)
    for module, commands in by_module.items():
        narrow = get_command(new_app((module,)))
        assert set(narrow.commands) == commands  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", sorted(HOT_COMMANDS))
def test_same_command_definition(command: str) -> None:
    narrow = get_command(app_for([command, "x"]))
    assert set(narrow.commands) <= set(HOT_COMMANDS)  # type: ignore[attr-defined]
    mine = narrow.commands[command]  # type: ignore[attr-defined]
    theirs = FULL_COMMANDS[command]
    assert _describe(mine) == _describe(theirs)
    assert (mine.help, mine.short_help, mine.options_metavar, mine.context_settings) == (
        theirs.help,
        theirs.short_help,
        theirs.options_metavar,
        theirs.context_settings,
    )
    assert _describe(narrow) == _describe(get_command(full_app()))  # --version


@pytest.mark.parametrize("command", sorted(HOT_COMMANDS))
@pytest.mark.parametrize(
    "tail",
    [["--help"], ["--no-such-option"], ["--output"], ["-o", "xml"], ["--version"], ["-h"]],
    ids=lambda t: " ".join(t),
)
def test_same_output_and_exit_code(command: str, tail: list[str]) -> None:
    argv = [command, *tail]
    assert _run(app_for(argv), argv) == _run(full_app(), argv)


@pytest.mark.parametrize(
    "argv",
    [[], ["--help"], ["--version"], ["respnd"], ["bundle", "verify"], ["lab"], ["-x", "respond"]],
)
def test_everything_else_gets_the_whole_application(argv: list[str]) -> None:
    assert app_for(argv) is full_app()


def test_app_attribute_is_the_whole_application() -> None:
    assert app_module.app is full_app()
    assert len(FULL_COMMANDS) >= 9
    with pytest.raises(AttributeError):
        _ = app_module.no_such_thing  # type: ignore[attr-defined]


def _modules_loaded(argv: list[str]) -> set[str]:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['falcoir', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('falcoir', run_name='__main__', alter_sys=True)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": "/nonexistent-home"}
    env.pop("KUBECONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=60
    )
    return set(proc.stdout.split())


def test_a_hot_command_imports_no_other_command_module() -> None:
    loaded = _modules_loaded(["locate", "x", "--kubeconfig", "/nonexistent"])
    cli = {m for m in loaded if m.startswith("falcoir.cli.")}
    assert "falcoir.cli.locate" in cli
    assert not cli & {f"falcoir.cli.{m}" for m in ("respond", "bundle", "lab", "contain")}


def test_help_lists_every_command() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "falcoir", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    ).stdout
    for name in FULL_COMMANDS:
        assert name in out
