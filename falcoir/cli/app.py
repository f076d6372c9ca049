"""The ``falcoir`` application: wires the command modules together.

``app`` (the whole application, every command) is built on first use. :func:`main`
builds only what the command line asks for when its first word names a command whose
module registers nothing but its own commands (:data:`HOT_COMMANDS`): ``falcoir
respond ...`` then imports and builds ``respond`` alone instead of all seventeen
commands. The group around it is the same (name, help, ``--version``), so the command's
parsing, help, errors and exit codes are those of the whole application; anything else
(no command, an option first, an unknown or misspelt command, ``bundle``, ``lab``) gets
the whole application. ``tests/cli/test_app_narrow.py`` compares the two.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import typer

from falcoir import __version__
from falcoir.cli import coerce

coerce.install()  # typer's value coercion without pydantic (see falcoir.cli.coerce)

COMMAND_MODULES: tuple[str, ...] = (
    "parse",
    "locate",
    "collect",
    "contain",
    "respond",
    "bundle",
    "lab",
    "lab_scenario",
)

HOT_COMMANDS: dict[str, str] = {
    "parse": "parse",
    "locate": "locate",
    "collect": "collect",
    "quarantine": "contain",
    "release": "contain",
    "delete": "contain",
    "respond": "respond",
}
"""Command -> the module that registers it, for the commands :func:`main` may build
alone (their modules add commands to the app they are given and touch no shared group)."""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"falcoir {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """falcoir: from a Falco alert to a contained pod and a verifiable evidence bundle."""


def new_app(modules: Sequence[str] = COMMAND_MODULES) -> typer.Typer:
    """The application with the commands of ``modules`` (all of them by default)."""
    application = typer.Typer(
        name="falcoir",
        help="Incident response for Falco alerts on Kubernetes: parse, locate, collect, "
        "quarantine, delete.",
        pretty_exceptions_show_locals=False,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
    )
    application.callback()(_root)
    for name in modules:
        importlib.import_module(f"falcoir.cli.{name}").register(application)
    return application


_FULL: list[typer.Typer] = []


def full_app() -> typer.Typer:
    """The whole application, built once (``bundle`` and ``lab`` register into shared
    groups, so it must not be built twice)."""
    if not _FULL:
        _FULL.append(new_app())
    return _FULL[0]


def app_for(args: Sequence[str]) -> typer.Typer:
    """The application :func:`main` runs for the command line ``args``."""
    module = HOT_COMMANDS.get(args[0]) if args else None
    if module is None:
        return full_app()
    return new_app((module,))


def __getattr__(name: str) -> typer.Typer:
    # ``from falcoir.cli.app import app``: the whole application, built on first use.
    if name == "app":
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    app_for(sys.argv[1:])()
