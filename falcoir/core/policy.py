"""The response policy: which alerts get which actions (``respond --policy FILE``).

A YAML file, validated strictly: every key is known, every value has the right type,
and each problem is reported with its line number. Unlike Falco Talon, which ignores
unknown rule parameters, a typo here is an error, never a silently weaker response.

.. code-block:: yaml

    version: 1
    defaults:                 # options every rule starts from
      ingress: false
    rules:                    # first match wins; an alert no rule matches is ignored
      - name: cryptominers
        match:
          rule: ["Suspicious crypto miner process", "*miner*"]   # globs, any of;
                                       # a text alert's message stands in for its rule
          priority: ">= Critical"      # severity comparison: == != >= > <= <
          tags: {any: [crypto-mining, cryptojacking]}            # or all:, none:
          fields:
            k8s.ns.name: [default, "prod-*"]                     # globs, any of
            proc.name: {regex: "^(xmrig|cpuminer)$"}
        actions: [quarantine, collect, delete]
        with: {ingress: true}
      - name: everything else is noise
        match: {}
        actions: []
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from falcoir.core.alert import PRIORITIES, Alert, priority_level
from falcoir.errors import InputError

ACTIONS: tuple[str, ...] = ("quarantine", "collect", "delete")
"""What a rule can ask for. The volatile snapshot comes with ``collect`` or
``quarantine``; ``delete`` needs ``collect`` (never destroy un-collected evidence)."""

_OPS: dict[str, Callable[[int, int], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}
_PRIORITY_RE = re.compile(r"^\s*(==|!=|>=|<=|>|<)?\s*([A-Za-z]+)\s*$")
_FIELD_CLASSES = (
    "proc",
    "evt",
    "fd",
    "container",
    "k8s",
    "user",
    "group",
    "thread",
    "fs",
    "ka",
    "jevt",
    "syscall",
    "span",
    "spawned_process",
    "k8smeta",
)
_FIELD_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[A-Za-z0-9_\-]+)*(\[[^\]\n]{1,200}\])?$")


def severity(priority: str | None) -> int | None:
    """Higher is more severe: Emergency 7 .. Debug 0 (``None`` if unknown)."""
    level = priority_level(priority)
    return None if level is None else len(PRIORITIES) - 1 - level


# -- the policy model ------------------------------------------------------------------


@dataclass(frozen=True)
class ActionOptions:
    """How the actions are carried out."""

    ingress: bool = False
    allow_dns: bool = False
    allow_cidrs: tuple[str, ...] = ()
    ephemeral_debug: bool = False
    grace_period: int | None = None
    scale_owner: bool = False
    """On delete, scale the top controller to zero first (else it recreates the pod)."""
    snapshot_first: bool = True
    """Containment waits until the volatile snapshot's commands run in the pod (never
    for their output); false: both start at once."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ingress": self.ingress,
            "allow_dns": self.allow_dns,
            "allow_cidrs": list(self.allow_cidrs),
            "ephemeral_debug": self.ephemeral_debug,
            "grace_period": self.grace_period,
            "scale_owner": self.scale_owner,
            "snapshot_first": self.snapshot_first,
        }


_OPTION_KEYS = tuple(ActionOptions.__dataclass_fields__)


@dataclass(frozen=True)
class PriorityTest:
    op: str
    word: str

    def matches(self, priority: str | None) -> bool:
        have, want = severity(priority), severity(self.word)
        if have is None or want is None:
            return False
        return _OPS[self.op](have, want)


@dataclass(frozen=True)
class ValueTest:
    """One field test: any of ``globs``, or ``regex``, or ``exists``; ``negate`` flips."""

    globs: tuple[str, ...] = ()
    regex: re.Pattern[str] | None = None
    exists: bool | None = None
    negate: bool = False

    def matches(self, value: str | None) -> bool:
        if self.exists is not None:
            result = (value is not None) == self.exists
        elif value is None:
            result = False
        elif self.regex is not None:
            result = self.regex.search(value) is not None
        else:
            result = any(fnmatchcase(value, g) for g in self.globs)
        return result != self.negate


@dataclass(frozen=True)
class Match:
    rules: tuple[str, ...] = ()
    priorities: tuple[PriorityTest, ...] = ()
    """All must hold (``[">= Warning", "!= Error"]``)."""
    tags_any: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    tags_none: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    fields: tuple[tuple[str, ValueTest], ...] = ()

    def matches(self, alert: Alert) -> bool:
        if self.rules:
            # A text alert names no rule (unless parsed with --rules): its message, the
            # start of the rule's output, stands in for it.
            name = alert.rule if alert.rule is not None else (alert.message or "")
            if not any(fnmatchcase(name, g) for g in self.rules):
                return False
        if not all(p.matches(alert.priority) for p in self.priorities):
            return False
        tags = set(alert.tags)
        if self.tags_any and not tags.intersection(self.tags_any):
            return False
        if self.tags_all and not tags.issuperset(self.tags_all):
            return False
        if tags.intersection(self.tags_none):
            return False
        if self.sources and (alert.source or "syscall") not in self.sources:
            return False
        return all(test.matches(alert_field(alert, name)) for name, test in self.fields)


@dataclass(frozen=True)
class PolicyRule:
    name: str
    line: int
    match: Match
    actions: frozenset[str]
    options: ActionOptions


@dataclass(frozen=True)
class Decision:
    """What the policy says to do with one alert."""

    rule: str | None
    """The policy rule that matched (``None``: nothing matched, the alert is ignored)."""
    actions: frozenset[str]
    options: ActionOptions

    @property
    def ignored(self) -> bool:
        return not self.actions

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy_rule": self.rule,
            "actions": [a for a in ACTIONS if a in self.actions],
            "options": self.options.to_dict(),
        }


@dataclass(frozen=True)
class Policy:
    rules: tuple[PolicyRule, ...]
    defaults: ActionOptions = field(default_factory=ActionOptions)
    source: str = "<policy>"

    def decide(self, alert: Alert) -> Decision:
        for rule in self.rules:
            if rule.match.matches(alert):
                return Decision(rule.name, rule.actions, rule.options)
        return Decision(None, frozenset(), self.defaults)


def flag_policy(
    *, delete: bool = True, options: ActionOptions | None = None, name: str = "command line"
) -> Policy:
    """The policy the command-line flags describe: every alert gets every action."""
    acts = frozenset(ACTIONS if delete else ("quarantine", "collect"))
    opts = options or ActionOptions()
    return Policy((PolicyRule(name, 0, Match(), acts, opts),), opts, "<flags>")


# -- the alert's fields, by Falco name ----------------------------------------------------

_CANONICAL: dict[str, Callable[[Alert], object]] = {
    "rule": lambda a: a.rule,
    "priority": lambda a: a.priority,
    "source": lambda a: a.source,
    "hostname": lambda a: a.node,
    "proc.name": lambda a: a.process.name,
    "proc.cmdline": lambda a: a.process.cmdline,
    "proc.pid": lambda a: a.process.pid,
    "proc.vpid": lambda a: a.process.vpid,
    "proc.exepath": lambda a: a.process.exepath,
    "proc.exe": lambda a: a.process.exepath,
    "proc.cwd": lambda a: a.process.cwd,
    "proc.pname": lambda a: a.process.parent,
    "proc.ppid": lambda a: a.process.ppid,
    "user.name": lambda a: a.process.user,
    "container.id": lambda a: a.container.id,
    "container.full_id": lambda a: a.container.full_id,
    "container.name": lambda a: a.container.name,
    "container.image": lambda a: a.container.image,
    "container.image.repository": lambda a: (a.container.image or "").split(":")[0] or None,
    "k8s.ns.name": lambda a: a.k8s.namespace,
    "k8s.pod.name": lambda a: a.k8s.pod,
    "k8s.pod.uid": lambda a: a.k8s.pod_uid,
}


def alert_field(alert: Alert, name: str) -> str | None:
    """The value of Falco field ``name`` in the alert (``None`` when absent)."""
    getter = _CANONICAL.get(name)
    if getter is not None:
        value = getter(alert)
        if value is not None:
            return str(value)
    for key, val in alert.fields:
        if key == name:
            return val
    return None


# -- loading and validation --------------------------------------------------------------


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[int, str]] = []

    def add(self, node: yaml.Node | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 0
        self.items.append((line, message))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        lines = [f"{self.source}:{line}: {msg}" for line, msg in sorted(self.items)]
        raise InputError(
            f"invalid response policy ({len(lines)} problem{'s' * (len(lines) > 1)}):\n"
            + "\n".join(lines),
            hint="see examples/response-policy.yaml for every key the policy accepts",
        )


_SCALAR_LOADER = yaml.SafeLoader("")


def _scalar(node: yaml.Node) -> Any:
    return _SCALAR_LOADER.construct_object(node, deep=True)


def _what(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    value = _scalar(node)
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"


def _mapping(
    node: yaml.Node, where: str, allowed: Sequence[str], problems: _Problems
) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """The keys of a mapping node, checked against ``allowed``."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, f"{where} must be a mapping, not {_what(node)}")
        return {}
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = _scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
        if not isinstance(key, str):
            problems.add(key_node, f"{where}: keys must be strings")
            continue
        if key in out:
            problems.add(key_node, f"{where}: duplicate key {key!r}")
            continue
        if allowed and key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            tip = f" (did you mean {close[0]!r}?)" if close else ""
            problems.add(
                key_node,
                f"{where}: unknown key {key!r}{tip}; known keys: {', '.join(allowed)}",
            )
            continue
        out[key] = (key_node, value_node)
    return out


def _str(node: yaml.Node, where: str, problems: _Problems) -> str | None:
    value = _scalar(node) if isinstance(node, yaml.ScalarNode) else None
    if not isinstance(value, str) or not value:
        problems.add(node, f"{where} must be a non-empty string, not {_what(node)}")
        return None
    return value


def _bool(node: yaml.Node, where: str, problems: _Problems) -> bool | None:
    value = _scalar(node) if isinstance(node, yaml.ScalarNode) else None
    if not isinstance(value, bool):
        problems.add(node, f"{where} must be true or false, not {_what(node)}")
        return None
    return value


def _strs(node: yaml.Node, where: str, problems: _Problems) -> tuple[str, ...]:
    """A string or a list of strings."""
    if isinstance(node, yaml.SequenceNode):
        out = []
        for item in node.value:
            s = _str(item, f"{where} item", problems)
            if s is not None:
                out.append(s)
        return tuple(out)
    s = _str(node, where, problems)
    return (s,) if s is not None else ()


def _priority_tests(node: yaml.Node, problems: _Problems) -> tuple[PriorityTest, ...]:
    out = []
    for node_i, text in _items_with_nodes(node, "match.priority", problems):
        m = _PRIORITY_RE.match(text)
        word = m.group(2) if m else ""
        if not m or severity(word) is None:
            problems.add(
                node_i,
                f"match.priority: {text!r} is not a priority test; write a priority "
                f"({', '.join(PRIORITIES)}), optionally after ==, !=, >=, >, <=, <",
            )
            continue
        out.append(PriorityTest(m.group(1) or "==", word))
    return tuple(out)


def _items_with_nodes(
    node: yaml.Node, where: str, problems: _Problems
) -> list[tuple[yaml.Node, str]]:
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out = []
    for item in items:
        s = _str(item, where, problems)
        if s is not None:
            out.append((item, s))
    return out


def _value_test(node: yaml.Node, where: str, problems: _Problems) -> ValueTest | None:
    if isinstance(node, yaml.MappingNode):
        keys = _mapping(node, where, ("regex", "exists", "not"), problems)
        if len(keys) != 1:
            if keys:
                problems.add(node, f"{where}: give exactly one of regex, exists, not")
            elif not node.value:
                problems.add(node, f"{where}: give one of regex, exists, not")
            return None
        key, (_, value_node) = next(iter(keys.items()))
        if key == "regex":
            pattern = _str(value_node, f"{where}.regex", problems)
            if pattern is None:
                return None
            try:
                return ValueTest(regex=re.compile(pattern))
            except re.error as exc:
                problems.add(value_node, f"{where}.regex: invalid regular expression: {exc}")
                return None
        if key == "exists":
            flag = _bool(value_node, f"{where}.exists", problems)
            return None if flag is None else ValueTest(exists=flag)
        inner = _value_test(value_node, f"{where}.not", problems)
        return None if inner is None else replace(inner, negate=not inner.negate)
    if isinstance(node, yaml.ScalarNode) and not isinstance(_scalar(node), str):
        value = _scalar(node)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return ValueTest(globs=(str(value),))
    globs = _strs(node, where, problems)
    return ValueTest(globs=globs) if globs else None


def _match(node: yaml.Node, problems: _Problems) -> Match:
    keys = _mapping(node, "match", ("rule", "priority", "tags", "source", "fields"), problems)
    kwargs: dict[str, Any] = {}
    if "rule" in keys:
        kwargs["rules"] = _strs(keys["rule"][1], "match.rule", problems)
    if "priority" in keys:
        kwargs["priorities"] = _priority_tests(keys["priority"][1], problems)
    if "source" in keys:
        kwargs["sources"] = _strs(keys["source"][1], "match.source", problems)
    if "tags" in keys:
        tnode = keys["tags"][1]
        if isinstance(tnode, yaml.MappingNode):
            tkeys = _mapping(tnode, "match.tags", ("any", "all", "none"), problems)
            for k in ("any", "all", "none"):
                if k in tkeys:
                    kwargs[f"tags_{k}"] = _strs(tkeys[k][1], f"match.tags.{k}", problems)
        else:
            kwargs["tags_any"] = _strs(tnode, "match.tags", problems)
    if "fields" in keys:
        tests = []
        fnode = keys["fields"][1]
        for name, (name_node, value_node) in _mapping(fnode, "match.fields", (), problems).items():
            if not _FIELD_RE.fullmatch(name) or (
                "." in name and name.split(".", 1)[0] not in _FIELD_CLASSES
            ):
                problems.add(
                    name_node,
                    f"match.fields: {name!r} is not a Falco field name "
                    f"(classes: {', '.join(_FIELD_CLASSES)}, or hostname/rule/priority)",
                )
                continue
            if "." not in name and name not in ("hostname", "rule", "priority", "source"):
                problems.add(name_node, f"match.fields: {name!r} is not a Falco field name")
                continue
            test = _value_test(value_node, f"match.fields.{name}", problems)
            if test is not None:
                tests.append((name, test))
        kwargs["fields"] = tuple(tests)
    return Match(**kwargs)


def _options(
    node: yaml.Node, where: str, base: ActionOptions, problems: _Problems
) -> ActionOptions:
    keys = _mapping(node, where, _OPTION_KEYS, problems)
    changes: dict[str, Any] = {}
    for key, (_, value_node) in keys.items():
        if key in ("ingress", "allow_dns", "ephemeral_debug", "scale_owner", "snapshot_first"):
            flag = _bool(value_node, f"{where}.{key}", problems)
            if flag is not None:
                changes[key] = flag
        elif key == "allow_cidrs":
            cidrs = []
            for item_node, text in _items_with_nodes(value_node, f"{where}.{key}", problems):
                try:
                    cidrs.append(str(ipaddress.ip_network(text, strict=True)))
                except ValueError as exc:
                    problems.add(item_node, f"{where}.allow_cidrs: {exc}")
            changes[key] = tuple(cidrs)
        elif key == "grace_period":
            value = _scalar(value_node) if isinstance(value_node, yaml.ScalarNode) else None
            if value is None and isinstance(value_node, yaml.ScalarNode):
                changes[key] = None
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.add(
                    value_node,
                    f"{where}.grace_period must be a whole number of seconds >= 0, "
                    f"not {_what(value_node)}",
                )
            else:
                changes[key] = value
    return replace(base, **changes)


def _actions(node: yaml.Node, where: str, problems: _Problems) -> frozenset[str] | None:
    if not isinstance(node, yaml.SequenceNode):
        problems.add(node, f"{where} must be a list of {', '.join(ACTIONS)} ([] ignores the alert)")
        return None
    acts: set[str] = set()
    for item_node, text in _items_with_nodes(node, where, problems):
        if text not in ACTIONS:
            close = difflib.get_close_matches(text, ACTIONS, n=1)
            tip = f" (did you mean {close[0]!r}?)" if close else ""
            problems.add(
                item_node, f"{where}: unknown action {text!r}{tip}; known: {', '.join(ACTIONS)}"
            )
            continue
        acts.add(text)
    if "delete" in acts and "collect" not in acts:
        problems.add(node, f"{where}: delete needs collect (evidence first, then delete)")
    return frozenset(acts)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate a policy; raises ``InputError`` listing every problem."""
    problems = _Problems(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise InputError(
            f"invalid response policy:\n{source}:{line}: not valid YAML: "
            f"{getattr(exc, 'problem', None) or exc}"
        ) from None
    if root is None:
        raise InputError(f"invalid response policy: {source} is empty")
    top = _mapping(root, "policy", ("version", "defaults", "rules"), problems)
    if "version" not in top:
        problems.add(root, "policy: 'version: 1' is required")
    else:
        vnode = top["version"][1]
        if not isinstance(vnode, yaml.ScalarNode) or _scalar(vnode) != 1:
            problems.add(vnode, f"policy.version must be 1, not {_what(vnode)}")
    defaults = ActionOptions()
    if "defaults" in top:
        defaults = _options(top["defaults"][1], "defaults", defaults, problems)
    rules: list[PolicyRule] = []
    if "rules" not in top:
        problems.add(root, "policy: 'rules' is required (a list)")
    else:
        rnode = top["rules"][1]
        if not isinstance(rnode, yaml.SequenceNode):
            problems.add(rnode, f"policy.rules must be a list, not {_what(rnode)}")
        else:
            names: set[str] = set()
            for i, item in enumerate(rnode.value, 1):
                where = f"rules[{i}]"
                keys = _mapping(item, where, ("name", "match", "actions", "with"), problems)
                if not isinstance(item, yaml.MappingNode):
                    continue
                name = f"rule {i}"
                if "name" in keys:
                    name = _str(keys["name"][1], f"{where}.name", problems) or name
                    if name in names:
                        problems.add(keys["name"][1], f"{where}.name: duplicate name {name!r}")
                    names.add(name)
                for required in ("match", "actions"):
                    if required not in keys:
                        problems.add(item, f"{where}: {required!r} is required")
                match = _match(keys["match"][1], problems) if "match" in keys else Match()
                acts = (
                    _actions(keys["actions"][1], f"{where}.actions", problems)
                    if "actions" in keys
                    else None
                )
                opts = (
                    _options(keys["with"][1], f"{where}.with", defaults, problems)
                    if "with" in keys
                    else defaults
                )
                rules.append(
                    PolicyRule(name, item.start_mark.line + 1, match, acts or frozenset(), opts)
                )
    problems.raise_if_any()
    return Policy(tuple(rules), defaults, source)


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the response policy {path}: {exc}") from exc
    return parse_policy(text, str(path))


def describe(policy: Policy) -> list[Mapping[str, Any]]:
    """A plain summary of the rules (for ``--dry-run`` and the plan)."""
    return [
        {
            "name": r.name,
            "line": r.line,
            "actions": [a for a in ACTIONS if a in r.actions],
            "options": r.options.to_dict(),
        }
        for r in policy.rules
    ]
