"""Output formats and the machine renderers."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from enum import Enum, StrEnum
from typing import Any, TextIO


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"
    YAML = "yaml"

    @property
    def is_machine(self) -> bool:
        return self is not OutputFormat.TABLE


def _default(obj: object) -> Any:
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="backslashreplace")
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


# Characters a terminal acts on that json.dumps(ensure_ascii=False) leaves raw: DEL and
# the C1 controls (U+009B is a CSI), bidi overrides and isolates, line/paragraph separators.
_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def to_json(doc: Any, *, indent: int | None = 2) -> str:
    """JSON text; control characters, C1 controls and bidi marks in strings are escaped
    (as ``\\uXXXX``); NaN and Infinity are refused (they are not JSON)."""
    text = json.dumps(doc, indent=indent, default=_default, ensure_ascii=False, allow_nan=False)
    return _UNSAFE.sub(_escape, text)


def to_yaml(doc: Any) -> str:
    import yaml  # lazy: not needed for JSON output

    plain = json.loads(json.dumps(doc, default=_default))
    return str(yaml.safe_dump(plain, sort_keys=False, allow_unicode=False, width=1 << 16))


def write_machine(
    docs: Iterable[Mapping[str, Any]] | Mapping[str, Any],
    fmt: OutputFormat,
    *,
    stream: TextIO | None = None,
    as_list: bool = False,
) -> None:
    """Write ``docs`` to stdout in a machine format.

    ``json``: one document (a single mapping, or a list when ``as_list``); ``jsonl``:
    one compact document per line; ``yaml``: one YAML document (or a list).
    """
    out = stream if stream is not None else sys.stdout
    items: list[Mapping[str, Any]] = [docs] if isinstance(docs, Mapping) else list(docs)
    if fmt is OutputFormat.JSONL:
        for item in items:
            out.write(to_json(item, indent=None) + "\n")
    elif fmt is OutputFormat.JSON:
        doc: Any = items if as_list or len(items) != 1 else items[0]
        out.write(to_json(doc) + "\n")
    elif fmt is OutputFormat.YAML:
        doc = items if as_list or len(items) != 1 else items[0]
        out.write(to_yaml(doc))
    else:
        raise ValueError(f"{fmt.value} is not a machine format")
    out.flush()
