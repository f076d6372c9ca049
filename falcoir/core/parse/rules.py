"""Falco rules files: naming the rule of a text alert and splitting its fields exactly.

A text alert does not carry its rule name. Given the rules, the message is matched
against each rule's ``output`` template (``Shell in container (user=%user.name
cmdline=%proc.cmdline)``): literal text must match exactly, each ``%field`` captures a
value, so the split is exact even when values hold spaces, ``=`` or commas, and each
label's real Falco field name is known (``cmdline`` -> ``proc.cmdline``).
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
    pattern: re.Pattern[str]
    labels: tuple[str, ...]
    field_names: tuple[str, ...]
    ends_with_field: bool
    message: str | None


def _compile(rule: Rule) -> _Compiled:
    template = " ".join(rule.output.split())
    parts: list[str] = []
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
        parts.append(re.escape(literal))
        parts.append(f"(?P<f{len(names)}>.*?)")
        label_m = _LABEL.search(literal)
        labels.append(label_m.group(1) if label_m else f"%{name}")
        names.append(name)
        pos = end
    tail_literal = template[pos:]
    parts.append(re.escape(tail_literal))
    ends_with_field = bool(names) and tail_literal == ""
    if ends_with_field:
        # The last value runs to the end; appended fields are split off afterwards.
        parts[-2] = f"(?P<f{len(names) - 1}>.*)"
        pattern = re.compile("".join(parts) + r"$", re.S)
    else:
        # Exact first (a value may itself end in ")"); appended text only if needed.
        pattern = re.compile(
            "(?:"
            + "".join(parts)
            + "$)|(?:"
            + "".join(parts).replace("(?P<f", "(?P<t")
            + r"(?P<tail>\s.*)$)",
            re.S,
        )
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
        pattern=pattern,
        labels=tuple(labels),
        field_names=tuple(names),
        ends_with_field=ends_with_field,
        message=msg,
    )


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
            mm = c.pattern.match(body)
            if mm is None:
                continue
            tail = mm.groupdict().get("tail")
            group = "f" if tail is None else "t"  # which alternative matched
            values = [mm.group(f"{group}{i}") or "" for i in range(len(c.field_names))]
            tail = tail or ""
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
