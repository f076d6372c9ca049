"""Human output on stderr with rich, with hostile text neutralised."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from falcoir.core.text import neutralize

if TYPE_CHECKING:
    from rich.console import Console


@lru_cache(maxsize=1)
def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def safe(value: object, *, keep_newlines: bool = False) -> str:
    """A value from an alert or a pod, made safe for rich markup on a terminal:
    control characters made visible, markup brackets escaped."""
    from rich.markup import escape

    text = "" if value is None else str(value)
    return escape(neutralize(text, keep_newlines=keep_newlines))


def info(message: str) -> None:
    """A progress line on stderr. ``message`` is rich markup: wrap data in ``safe()``."""
    stderr_console().print(message)


def warn(message: str) -> None:
    stderr_console().print(f"[yellow]warning:[/] {message}")


def error(message: str, hint: str | None = None) -> None:
    console = stderr_console()
    console.print(f"[bold red]error:[/] {message}")
    if hint:
        console.print(f"[dim]hint:[/] {hint}")
