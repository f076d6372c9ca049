"""Falco rules files: naming the rule of a text alert and splitting its fields exactly.

A text alert does not carry its rule name. Given the rules, the message is matched
against each rule's ``output`` template (``Shell in container (user=%user.name
cmdline=%proc.cmdline)``): literal text must match exactly, each ``%field`` captures a
value, so the split is exact even when values hold spaces, ``=`` or commas, and each
label's real Falco field name is known (``cmdline`` -> ``proc.cmdline``).

The match is what a regular expression of the template would give (literal text joined
by lazy ``(.*?)`` fields, anchored at both ends), found with ``str.find`` in linear
time: that regular expression backtracked in polynomial time (one alert line of 18 KB
took 54 s) when a hostile value repeated the template's literal text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falcoir.core.parse.pairs import Pair, key_positions, split_comma, split_pairs
from falcoir.errors import InputError

if TYPE_CHECKING:
    from falcoir.core.parse.textline import TextParts

_FIELD = re.compile(r"%(?:\((?P<paren>[^)]+)\)|(?P<name>[A-Za-z_][\w.]*(?:\[[^\]]*\])?))")
_LABEL = re.compile(r"([^\s(,|=]+)=$")
MAX_RULES_FILE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Rule:
    name: str
    output: str
    priority: str | None = None
    source: str | None = "syscall"
    """Falco's default event source when a rule names none."""


@dataclass(frozen=True)
class RuleMatch:
    rule: str
    source: str | None
    message: str
    fields: tuple[Pair, ...]
    appended: tuple[Pair, ...]
    field_names: dict[str, str]
    """Label as printed -> Falco field name (``cmdline`` -> ``proc.cmdline``)."""


@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    prefix: str
    literals: tuple[str, ...]
    """The template's literal text before each field, and after the last one."""
    labels: tuple[str, ...]
    field_names: tuple[str, ...]
    ends_with_field: bool
    message: str | None


def _compile(rule: Rule) -> _Compiled:
    template = " ".join(rule.output.split())
    labels: list[str] = []
    names: list[str] = []
    pos = 0
    literal_before: list[str] = []
    for m in _FIELD.finditer(template):
        name = m.group("paren") or m.group("name") or ""
        end = m.end()
        if m.group("name") and name.endswith("."):
            stripped = name.rstrip(".")
            end -= len(name) - len(stripped)
            name = stripped
        literal = template[pos : m.start()]
        literal_before.append(literal)
        label_m = _LABEL.search(literal)
        labels.append(label_m.group(1) if label_m else f"%{name}")
        names.append(name)
        pos = end
    tail_literal = template[pos:]
    ends_with_field = bool(names) and tail_literal == ""
    prefix = literal_before[0] if literal_before else template
    # The message: the literal text before the field list, when it has no field.
    msg: str | None = None
    first = prefix
    for opener in (" (", " | ", "("):
        idx = first.find(opener)
        if idx >= 0:
            msg = first[:idx].rstrip()
            break
    else:
        if not names:
            msg = template
    return _Compiled(
        rule=rule,
        prefix=prefix,
        literals=(*literal_before, tail_literal),
        labels=tuple(labels),
        field_names=tuple(names),
        ends_with_field=ends_with_field,
        message=msg,
    )


def _split_template(
    body: str, literals: tuple[str, ...], ends_with_field: bool
) -> tuple[list[str], str | None] | None:
    """``(values, tail)`` of ``body`` against a template, or ``None`` when it does not fit.

    Exactly what ``re.fullmatch`` of the template's regular expression captures
    (``re.S``; each field a lazy ``(.*?)``, the last one greedy when the template ends
    with it; when not, a second alternative lets the last literal be followed by
    ``(?P<tail>\\s.*)``, appended fields). Lazy fields take the earliest place of the
    next literal where the rest can still match, and an earlier place never leaves less
    room for the rest: so each literal's first occurrence is the one, and one pass of
    ``str.find`` gives the match. ``body`` must not end with a line break (the regular
    expression's ``$`` would also match before one).
    """
    last = len(literals) - 1
    final = literals[last]
    if last == 0:  # no field: the literal text alone, or followed by appended fields
        if body == final:
            return [], None
        n = len(final)
        if body.startswith(final) and body[n : n + 1].isspace():
            return [], body[n:]
        return None
    if not body.startswith(literals[0]):
        return None
    pos = len(literals[0])
    values: list[str] = []
    for i in range(1, last):
        literal = literals[i]
        at = body.find(literal, pos)
        if at < 0:
            return None
        values.append(body[pos:at])
        pos = at + len(literal)
    if ends_with_field:
        values.append(body[pos:])
        return values, None
    end = len(body) - len(final)
    if end >= pos and body.endswith(final):
        values.append(body[pos:end])
        return values, None
    at = body.find(final, pos)
    while at >= 0:
        after = at + len(final)
        if body[after : after + 1].isspace():
            values.append(body[pos:at])
            return values, body[after:]
        at = body.find(final, at + 1)
    return None


class RuleSet:
    """The rules of one or more Falco rules files, ready to match text alerts."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        compiled = [_compile(r) for r in self.rules if r.output.strip()]
        # Longest literal prefix first: the most specific template wins.
        compiled.sort(key=lambda c: len(c.prefix), reverse=True)
        self._compiled = tuple(compiled)

    def __len__(self) -> int:
        return len(self.rules)

    def match(self, output: str, parts: TextParts) -> RuleMatch | None:
        """The rule whose template produced ``output`` (``time: Priority body``)."""
        body = output[len(output) - len(output.lstrip()) :]
        # Drop "time: Priority " (or the walkthrough's "time - Priority - ").
        from falcoir.core.parse.textline import ANCHOR

        m = ANCHOR.match(body)
        if m is None:
            return None
        body = body[m.end() :].rstrip("\r\n")
        if parts.truncated:
            return None
        for c in self._compiled:
            if not body.startswith(c.prefix):
                continue
            split = _split_template(body, c.literals, c.ends_with_field)
            if split is None:
                continue
            values, tail_or_none = split
            tail = tail_or_none or ""
            if c.ends_with_field and values:
                last = values[-1]
                cut = _appended_start(last)
                if cut >= 0:
                    values[-1], tail = last[:cut], last[cut:]
            fields = tuple((lbl, v.strip()) for lbl, v in zip(c.labels, values, strict=True))
            appended: list[Pair] = []
            tail_s = tail.strip().lstrip(",").strip()
            if tail_s:
                comma = split_comma(tail_s)
                appended = comma if comma is not None else split_pairs(tail_s)[1]
            names: dict[str, str] = {}
            for lbl, fname in zip(c.labels, c.field_names, strict=True):
                names.setdefault(lbl, fname)
            return RuleMatch(
                rule=c.rule.name,
                source=c.rule.source,
                message=c.message if c.message is not None else parts.message,
                fields=fields,
                appended=tuple(appended),
                field_names=names,
            )
        return None


def _appended_start(value: str) -> int:
    """Where appended ``key=value`` text starts inside the template's last value."""
    for start, _vstart, key in key_positions(value):
        if start > 0 and ("_" in key or "." in key):
            return start
    return -1


def rules_from_documents(docs: Any, origin: str) -> list[Rule]:
    if docs is None:
        return []
    if not isinstance(docs, list):
        raise InputError(f"{origin}: a Falco rules file is a YAML list of rules, macros and lists")
    out: list[Rule] = []
    for i, item in enumerate(docs):
        if not isinstance(item, dict) or "rule" not in item:
            continue  # lists, macros, required_engine_version, ...
        name = item.get("rule")
        output = item.get("output")
        if not isinstance(name, str):
            raise InputError(f"{origin}: item {i + 1}: rule name is not a string")
        if output is None:
            continue  # an append/override without output
        if not isinstance(output, str):
            raise InputError(f"{origin}: rule {name!r}: output is not a string")
        prio = item.get("priority")
        source = item.get("source", "syscall")
        out.append(
            Rule(
                name=name,
                output=output,
                priority=str(prio) if prio is not None else None,
                source=str(source) if source is not None else None,
            )
        )
    return out


def load_rules(path: Path) -> RuleSet:
    """Read a Falco rules YAML file (lists and macros are ignored).

    Raises :class:`~falcoir.errors.InputError` naming the file and the problem.
    """
    import yaml

    try:
        size = path.stat().st_size
        if size > MAX_RULES_FILE_BYTES:
            raise InputError(f"{path}: rules file too large ({size} bytes)")
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read rules file {path}: {exc.strerror or exc}") from exc
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = list(yaml.load_all(text, Loader=loader))
    except yaml.YAMLError as exc:
        detail = str(exc).replace("\n", " ")
        raise InputError(
            f"{path}: not valid YAML: {detail}", hint="check the rules file with a YAML linter"
        ) from exc
    rules: list[Rule] = []
    for doc in docs:
        rules.extend(rules_from_documents(doc, str(path)))
    return RuleSet(rules)
