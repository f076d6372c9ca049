"""The ``falcoir`` application: wires the command modules together."""

from __future__ import annotations

import importlib

import typer

from falcoir import __version__

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

app = typer.Typer(
    name="falcoir",
    help="Incident response for Falco alerts on Kubernetes: parse, locate, collect, "
    "quarantine, delete.",
    pretty_exceptions_show_locals=False,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"falcoir {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """falcoir: from a Falco alert to a contained pod and a verifiable evidence bundle."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"falcoir.cli.{_name}").register(app)


def main() -> None:
    app()
