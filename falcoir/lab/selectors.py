"""Label and field selectors as the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]


class SelectorError(ValueError):
    """A selector the API server would reject (400 BadRequest)."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        if self.op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        if self.op in ("!=", "notin"):
            return labels.get(self.key) not in self.values
        return False


_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_KEY_RE = re.compile(_KEY + r"$")
_VALUE_RE = re.compile(_VALUE + r"$")


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth, cur = 0, list[str]()
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _check_key(key: str, whole: str) -> str:
    if not _KEY_RE.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise SelectorError(f'unable to parse requirement: invalid label key "{key}"')
    return key


def _check_value(value: str) -> str:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise SelectorError(f'unable to parse requirement: invalid label value: "{value}"')
    return value


_SET_RE = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")


def parse_label_selector(text: str | None) -> list[Requirement]:
    """``a=b,c!=d,e in (x,y),f notin (z),g,!h``."""
    if not text or not text.strip():
        return []
    reqs: list[Requirement] = []
    for raw in _split_top(text):
        term = raw.strip()
        if not term:
            raise SelectorError(f"found '', expected: identifier in selector {text!r}")
        m = _SET_RE.match(term)
        if m:
            key = _check_key(m.group(1), text)
            vals = tuple(_check_value(v.strip()) for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(key, m.group(2), vals))
            continue
        if term.startswith("!"):
            reqs.append(Requirement(_check_key(term[1:].strip(), text), "!"))
            continue
        for op in ("!=", "==", "="):
            if op in term:
                key, value = term.split(op, 1)
                reqs.append(
                    Requirement(
                        _check_key(key.strip(), text),
                        "!=" if op == "!=" else "=",
                        (_check_value(value.strip()),),
                    )
                )
                break
        else:
            if " " in term:
                raise SelectorError(f"unable to parse requirement: {term!r}")
            reqs.append(Requirement(_check_key(term, text), "exists"))
    return reqs


def labels_match(reqs: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    lab = labels or {}
    return all(r.matches(lab) for r in reqs)


def selector_from_label_selector(sel: Mapping[str, Any] | None) -> list[Requirement] | None:
    """A ``LabelSelector`` object (matchLabels/matchExpressions) as requirements.

    ``None`` selects nothing; ``{}`` selects everything (as in the API)."""
    if sel is None:
        return None
    reqs: list[Requirement] = []
    for k, v in (sel.get("matchLabels") or {}).items():
        reqs.append(Requirement(str(k), "=", (str(v),)))
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in sel.get("matchExpressions") or []:
        reqs.append(
            Requirement(
                str(expr.get("key", "")),
                ops.get(str(expr.get("operator")), "?"),
                tuple(str(x) for x in expr.get("values") or ()),
            )
        )
    return reqs


def validate_label_selector(sel: Any, path: str) -> list[tuple[str, str, str]]:
    """Problems in a ``LabelSelector`` object as ``(field, reason, message)``."""
    errs: list[tuple[str, str, str]] = []
    if sel is None:
        return errs
    if not isinstance(sel, dict):
        return [(path, "FieldValueInvalid", "must be an object")]
    for k, v in (sel.get("matchLabels") or {}).items():
        if not _KEY_RE.match(str(k)):
            errs.append((f"{path}.matchLabels", "FieldValueInvalid", f"invalid label key {k!r}"))
        if not isinstance(v, str) or not _VALUE_RE.match(v) or len(v) > 63:
            errs.append((f"{path}.matchLabels", "FieldValueInvalid", f"invalid label value {v!r}"))
    for i, expr in enumerate(sel.get("matchExpressions") or []):
        p = f"{path}.matchExpressions[{i}]"
        op = expr.get("operator") if isinstance(expr, dict) else None
        if not isinstance(expr, dict) or not expr.get("key"):
            errs.append((f"{p}.key", "FieldValueRequired", "Required value"))
            continue
        vals = expr.get("values") or []
        if op in ("In", "NotIn"):
            if not vals:
                errs.append(
                    (
                        f"{p}.values",
                        "FieldValueRequired",
                        "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                    )
                )
        elif op in ("Exists", "DoesNotExist"):
            if vals:
                errs.append(
                    (
                        f"{p}.values",
                        "FieldValueForbidden",
                        "Forbidden: may not be specified when `operator` is 'Exists' or "
                        "'DoesNotExist'",
                    )
                )
        else:
            errs.append(
                (
                    f"{p}.operator",
                    "FieldValueNotSupported",
                    f'Invalid value: "{op}": not a valid selector operator',
                )
            )
    return errs


# Field selectors -----------------------------------------------------------------------


def _dig(obj: Any, path: str) -> Any:
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _as_field(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


POD_FIELDS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)
EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)
EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": POD_FIELDS,
    "events": EVENT_FIELDS,
    "namespaces": ("status.phase",),
    "nodes": ("spec.unschedulable",),
    "replicasets": ("status.replicas",),
    "secrets": ("type",),
}


def _field_value(obj: JSON, field: str) -> str:
    if field == "spec.hostNetwork":
        return _as_field(bool(_dig(obj, field)))
    if field == "source":
        return _as_field(_dig(obj, "source.component") or obj.get("reportingComponent"))
    return _as_field(_dig(obj, field))


FieldPredicate = Callable[[JSON], bool]


def parse_field_selector(text: str | None, plural: str) -> FieldPredicate | None:
    if not text or not text.strip():
        return None
    allowed = {"metadata.name", "metadata.namespace", *EXTRA_FIELDS.get(plural, ())}
    terms: list[tuple[str, bool, str]] = []
    for raw in text.split(","):
        term = raw.strip()
        if "!=" in term:
            key, value, eq = *term.split("!=", 1), False
        elif "==" in term:
            key, value, eq = *term.split("==", 1), True
        elif "=" in term:
            key, value, eq = *term.split("=", 1), True
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        key = key.strip()
        if key not in allowed:
            raise SelectorError(f"field label not supported: {key}")
        terms.append((key, eq, value.strip()))

    def pred(obj: JSON) -> bool:
        return all((_field_value(obj, k) == v) == eq for k, eq, v in terms)

    return pred
