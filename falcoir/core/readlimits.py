"""Bounded reads of alert input (files, stdin): nothing a hostile or endless input
(``/dev/zero``, a multi-gigabyte line) sends is held in memory beyond a fixed limit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from falcoir.errors import InputError

MAX_LINE_CHARS = 1024 * 1024
"""The longest input line read (the parser's own limit: longer is no Falco alert)."""
MAX_INPUT_CHARS = 16 * 1024 * 1024
"""The most read for one alert (``ALERT``/``-f FILE`` of collect, locate, ...)."""


def read_bounded(fh: TextIO, what: str, limit: int = MAX_INPUT_CHARS) -> str:
    """All of ``fh``, or :class:`InputError` when it holds more than ``limit``
    characters (never reads more than ``limit + 1``)."""
    text = fh.read(limit + 1)
    if len(text) > limit:
        raise InputError(
            f"{what}: more than {limit // (1024 * 1024)} MiB of input",
            hint="pass only the alert (or a file of alert lines)",
        )
    return text


def bounded_lines(
    fh: TextIO, what: str, *, limit: int = MAX_LINE_CHARS, skip_long: bool = False
) -> Iterator[str]:
    """The lines of ``fh``, each read with a bounded ``readline``. A line longer than
    ``limit`` characters raises :class:`InputError`; with ``skip_long`` (a stream that
    must go on) its first ``limit + 1`` characters are yielded instead, so the parser
    reports it, and the rest of it is read and dropped in bounded pieces."""
    number = 0
    while True:
        line = fh.readline(limit + 2)
        if not line:
            return
        number += 1
        if len(line.removesuffix("\n")) <= limit:
            yield line
            continue
        if not skip_long:
            raise InputError(
                f"{what}: line {number} is longer than {limit} characters",
                hint="that is no Falco alert; pass the alert lines only",
            )
        yield line[: limit + 1]
        while not line.endswith("\n"):
            line = fh.readline(limit + 2)
            if not line:
                return
