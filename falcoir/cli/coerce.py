"""Typer's per-parameter coercion without pydantic, for the plain annotations we use.

Why: typer 0.29 coerces every non-boolean parameter value (given on the command line,
from an environment variable, or the default) through a pydantic ``TypeAdapter``
(``typer.core._TyperParameter.get_runtime_param`` -> ``typer._coercion.
build_runtime_param`` -> ``typer._adapters``). Importing pydantic and building the
adapters costs 40-90 ms, paid by every command before it does anything: a third of the
time ``falcoir respond`` took to send its first request.

What :func:`install` does: it replaces ``typer.core.build_runtime_param`` (the one
function typer calls to get a parameter's coercion) with one that returns a
:class:`FastRuntimeParam` for the plain annotations (``str``, ``int`` and ``float``
with optional ``min``/``max``, an ``Enum`` or ``Literal`` of choices, ``Path``,
``bool``, and ``list[...]`` of those, with no custom ``parser``), and typer's own
coercion for anything else. The command signatures stay the single source of truth:
click still parses argv, reads environment variables, applies defaults, runs callbacks
and writes help and errors; only the conversion of one value changes hands.

The fast conversion accepts only what it can convert exactly as typer would: a string
of plain digits, a decimal number, one of the choices (through typer's own
``coerce_cli_choice``), a path string (then typer's own ``coerce_cli_path`` checks it),
or a value already of the declared type (a default). Anything else -- a bad value, an
unusual spelling (``1_000``, ``5.0`` for an int, ``inf``), a value out of its range --
goes to typer's original coercion, built on first use, so errors and edge cases are
typer's, word for word. ``tests/cli/test_coerce_equivalence.py`` runs both on many
values and on sample command lines of every command and compares the results.

Guarded: installed only for the typer versions it was checked against
(:data:`SUPPORTED_TYPER`) and only when typer's internals have the expected shape;
otherwise nothing changes (slower, same behaviour). ``FALCOIR_TYPER_COERCION=typer``
turns it off.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

if TYPE_CHECKING:
    from typer._click import Context
    from typer._coercion import RuntimeParam, TypeDescriptor
    from typer.core import _TyperParameter

ENV_SWITCH = "FALCOIR_TYPER_COERCION"
"""Set to ``typer`` to keep typer's own (pydantic) coercion for every parameter."""

SUPPORTED_TYPER: tuple[tuple[int, int], ...] = ((0, 29),)
"""typer minor versions whose coercion internals this module was checked against."""

Kind = Literal["str", "int", "float", "bool", "choice", "path"]

_INT = re.compile(r"[+-]?[0-9]{1,18}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})")
_EXACT_INT_FLOAT = 2**53


class _Slow(Exception):
    """The fast conversion is not sure: let typer's own coercion decide."""


@dataclass(frozen=True)
class Leaf:
    """How to convert one (non-list) value."""

    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()
    case_sensitive: bool = True


def _leaf(annotation: Any, info: Any) -> Leaf | None:
    """The fast conversion for ``annotation``, or None to keep typer's.

    Follows the order of ``typer._adapters.build_leaf_adapter``: parser, Enum, Literal,
    datetime, numbers, bool, str, path."""
    from typer._param_types import choice_coercion_annotation, routes_to_path

    if info.parser is not None:
        return None
    choice = choice_coercion_annotation(annotation, info)
    if choice is not None:
        return Leaf("choice", choices=tuple(choice[0]), case_sensitive=bool(choice[1]))
    if annotation is int or annotation is float:
        if info.clamp:
            return None
        kind: Kind = "int" if annotation is int else "float"
        return Leaf(kind, minimum=info.min, maximum=info.max)
    if annotation is bool:
        return Leaf("bool")
    if annotation is str:
        return Leaf("str")
    if annotation is Path and routes_to_path(annotation, info):
        if info.path_type not in (None, Path):
            return None
        return Leaf("path")
    return None


def _in_range(value: float, leaf: Leaf) -> bool:
    if leaf.minimum is not None and value < leaf.minimum:
        return False
    return leaf.maximum is None or value <= leaf.maximum


def convert(leaf: Leaf, value: Any, info: Any, param: _TyperParameter, ctx: Context | None) -> Any:
    """``value`` converted as typer would; raises :class:`_Slow` when not sure."""
    kind = leaf.kind
    if kind == "str":
        if type(value) is str:
            return value
    elif kind == "bool":
        if type(value) is bool:
            return value
    elif kind == "int":
        number: int | None = None
        if type(value) is int:
            number = value
        elif type(value) is str and _INT.fullmatch(value):
            number = int(value)
        if number is not None and _in_range(number, leaf):
            return number
    elif kind == "float":
        real: float | None = None
        exact_int = type(value) is int and abs(value) <= _EXACT_INT_FLOAT
        if type(value) is float or exact_int or (type(value) is str and _FLOAT.fullmatch(value)):
            real = float(value)
        if real is not None and math.isfinite(real) and _in_range(real, leaf):
            return real
    elif kind == "choice":
        from typer._param_types import coerce_cli_choice

        try:
            return coerce_cli_choice(
                value, choices=leaf.choices, case_sensitive=leaf.case_sensitive, ctx=ctx
            )
        except ValueError:
            raise _Slow from None
    elif kind == "path":
        from typer._click.exceptions import ClickException
        from typer._param_types import coerce_cli_path

        if type(value) is str:
            value = Path(value)
        if isinstance(value, Path):
            try:
                return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)
            except (ValueError, OSError, ClickException):
                raise _Slow from None
    raise _Slow


def _base() -> type[RuntimeParam]:
    from typer._coercion import RuntimeParam

    return RuntimeParam


def _make_fast_class() -> type[RuntimeParam]:
    base = _base()

    @dataclass(frozen=True)
    class FastRuntimeParam(base):  # type: ignore[valid-type,misc]
        """Converts plain values itself; everything else goes to typer's coercion."""

        descriptor: TypeDescriptor | None = None
        leaf: Leaf | None = None
        many: bool = False
        original: Callable[[TypeDescriptor], RuntimeParam] | None = None
        _slow: list[RuntimeParam] = field(default_factory=list, compare=False, repr=False)

        def slow(self) -> RuntimeParam:
            if not self._slow:
                assert self.original is not None and self.descriptor is not None
                self._slow.append(self.original(self.descriptor))
            return self._slow[0]

        def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
            assert self.leaf is not None
            try:
                if self.many:
                    if not isinstance(value, (list, tuple)):
                        raise _Slow
                    return [
                        convert(self.leaf, item, self.parameter_info, param, ctx) for item in value
                    ]
                return convert(self.leaf, value, self.parameter_info, param, ctx)
            except _Slow:
                return self.slow()._coerce_value(value, param=param, ctx=ctx)

    return FastRuntimeParam


_FAST_CLASS: list[type[RuntimeParam]] = []


def fast_class() -> type[RuntimeParam]:
    if not _FAST_CLASS:
        _FAST_CLASS.append(_make_fast_class())
    return _FAST_CLASS[0]


def fast_runtime_param(
    descriptor: TypeDescriptor, original: Callable[[TypeDescriptor], RuntimeParam]
) -> RuntimeParam | None:
    """A :class:`FastRuntimeParam` for ``descriptor``, or None when typer's own
    coercion must do it (files, tuples, datetimes, parsers, custom types...)."""
    if descriptor.file_annotation is not None:
        return None
    annotation: Any = descriptor.annotation
    info = descriptor.parameter_info
    many = False
    origin: Any = get_origin(annotation)
    if origin is list:
        args = get_args(annotation)
        if len(args) != 1:
            return None
        annotation, many = args[0], True
    elif origin is not None and origin is not Literal:
        return None
    leaf = _leaf(annotation, info)
    if leaf is None:
        return None
    cls: Any = fast_class()
    param: RuntimeParam = cls(
        parameter_info=info,
        annotation=descriptor.annotation,
        descriptor=descriptor,
        leaf=leaf,
        many=many,
        original=original,
    )
    return param


def typer_version() -> tuple[int, int] | None:
    import typer

    parts = str(getattr(typer, "__version__", "")).split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def _original_of(build: Any) -> Any:
    return getattr(build, "__falcoir_original__", None)


def installed() -> bool:
    """Whether typer's coercion is currently replaced."""
    from typer import core

    return _original_of(getattr(core, "build_runtime_param", None)) is not None


def install() -> bool:
    """Replace typer's coercion builder (see the module docstring). Idempotent;
    returns whether the fast coercion is in place."""
    if os.environ.get(ENV_SWITCH, "").strip().lower() == "typer":
        return False
    if typer_version() not in SUPPORTED_TYPER:
        return False
    try:
        from typer import _coercion, core
    except ImportError:
        return False
    current = getattr(core, "build_runtime_param", None)
    if _original_of(current) is not None:
        return True
    needed = (
        current is getattr(_coercion, "build_runtime_param", None)
        and hasattr(_coercion, "RuntimeParam")
        and hasattr(_coercion, "TypeDescriptor")
        and hasattr(getattr(core, "_TyperParameter", None), "get_runtime_param")
        and {"parameter_info", "annotation"} <= set(_coercion.RuntimeParam.__dataclass_fields__)
    )
    if not needed or current is None:
        return False
    original: Callable[[TypeDescriptor], RuntimeParam] = current

    def build_runtime_param(descriptor: TypeDescriptor) -> RuntimeParam:
        fast = fast_runtime_param(descriptor, original)
        return fast if fast is not None else original(descriptor)

    build_runtime_param.__falcoir_original__ = original  # type: ignore[attr-defined]
    setattr(core, "build_runtime_param", build_runtime_param)  # noqa: B010 (not re-exported)
    return True


def uninstall() -> None:
    """Put typer's own coercion back (for tests that compare both)."""
    from typer import core

    original = _original_of(getattr(core, "build_runtime_param", None))
    if original is not None:
        setattr(core, "build_runtime_param", original)  # noqa: B010


__all__ = ["ENV_SWITCH", "SUPPORTED_TYPER", "Leaf", "convert", "install", "uninstall"]
