"""The response policy: matching and strict validation with line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from falcoir.core.alert import Alert, Container, K8s, Process
from falcoir.core.policy import ActionOptions, flag_policy, load_policy, parse_policy
from falcoir.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "response-policy.yaml"


def alert(
    rule: str = "Suspicious crypto miner process",
    priority: str = "Critical",
    tags: tuple[str, ...] = ("container", "crypto-mining"),
    ns: str | None = "default",
    name: str | None = "xmrig",
) -> Alert:
    return Alert(
        raw="x",
        source_format="json",
        rule=rule,
        priority=priority,
        tags=tags,
        process=Process(name=name, pid=12345, cmdline="/tmp/xmrig -o pool:3333"),
        container=Container(id="0123456789ab"),
        k8s=K8s(namespace=ns, pod="cryptominer-demo-abc"),
        fields=(("evt.type", "execve"),),
    )


POLICY = """\
version: 1
defaults:
  allow_dns: true
rules:
  - name: miners
    match:
      rule: ["*miner*"]
      priority: ">= Critical"
      tags: {any: [crypto-mining, cryptojacking]}
      fields:
        k8s.ns.name: [default, "prod-*"]
        proc.name: {regex: "^(xmrig|cpuminer)$"}
    actions: [quarantine, collect, delete]
    with: {ingress: true, allow_cidrs: [10.0.0.0/8]}
  - name: warnings get evidence only
    match:
      priority: [">= Warning", "!= Error"]
      tags: {none: [noisy]}
    actions: [collect]
  - name: rest
    match: {}
    actions: []
"""


def test_first_matching_rule_decides_with_options() -> None:
    policy = parse_policy(POLICY, "p.yaml")
    d = policy.decide(alert())
    assert d.rule == "miners"
    assert d.actions == {"quarantine", "collect", "delete"}
    assert d.options.ingress is True
    assert d.options.allow_dns is True  # from defaults
    assert d.options.allow_cidrs == ("10.0.0.0/8",)


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"priority": "Alert"}, "miners"),
        ({"priority": "Error"}, "rest"),  # Error fails both ">= Critical" and "!= Error"
        ({"priority": "Warning"}, "warnings get evidence only"),
        ({"priority": "Notice"}, "rest"),
        ({"priority": "Warning", "tags": ("noisy",)}, "rest"),
        ({"ns": "prod-eu"}, "miners"),
        ({"ns": "kube-system"}, "warnings get evidence only"),
        ({"name": "xmrig2"}, "warnings get evidence only"),
        ({"name": None}, "warnings get evidence only"),
        ({"tags": ("cryptojacking",)}, "miners"),
        ({"rule": "Terminal shell in container"}, "warnings get evidence only"),
    ],
)
def test_matching(kwargs: dict[str, object], rule: str) -> None:
    d = parse_policy(POLICY).decide(alert(**kwargs))  # type: ignore[arg-type]
    assert d.rule == rule
    assert d.ignored == (rule == "rest")


def test_unmatched_alert_is_ignored() -> None:
    policy = parse_policy(
        "version: 1\nrules:\n  - match: {priority: Emergency}\n    actions: [collect]\n"
    )
    d = policy.decide(alert())
    assert d.rule is None and d.ignored


def test_raw_fields_and_exists_and_not() -> None:
    text = (
        "version: 1\nrules:\n  - match:\n      fields:\n"
        "        evt.type: {not: open}\n        k8s.pod.uid: {exists: false}\n"
        "    actions: [quarantine]\n"
    )
    assert parse_policy(text).decide(alert()).actions == {"quarantine"}
    text2 = text.replace("{not: open}", "{not: execve}")
    assert parse_policy(text2).decide(alert()).ignored


def problems_of(text: str) -> str:
    with pytest.raises(InputError) as info:
        parse_policy(text, "pol.yaml")
    return info.value.message


def test_unknown_keys_are_errors_with_line_numbers() -> None:
    msg = problems_of(
        "version: 1\n"
        "rules:\n"
        "  - name: a\n"
        "    match:\n"
        "      prority: Critical\n"  # line 5
        "    actions: [collect]\n"
        "    with: {ingres: true}\n"  # line 7
        "  - name: b\n"
        "    match: {}\n"
        "    actoins: [delete]\n"  # line 10
    )
    assert "pol.yaml:5: match: unknown key 'prority' (did you mean 'priority'?)" in msg
    assert "pol.yaml:7: rules[1].with: unknown key 'ingres' (did you mean 'ingress'?)" in msg
    assert "pol.yaml:10: rules[2]: unknown key 'actoins'" in msg
    assert "'actions' is required" in msg
    assert "4 problems" in msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 2\nrules: []\n", "pol.yaml:1: policy.version must be 1"),
        ("rules: []\n", "'version: 1' is required"),
        ("version: 1\nrules: {}\n", "pol.yaml:2: policy.rules must be a list"),
        (
            "version: 1\nrules:\n  - match: {priority: '>= Urgent'}\n    actions: []\n",
            "pol.yaml:3: match.priority: '>= Urgent' is not a priority test",
        ),
        (
            "version: 1\nrules:\n  - match: {}\n    actions: [quarantine, nuke]\n",
            "pol.yaml:4: rules[1].actions: unknown action 'nuke'",
        ),
        (
            "version: 1\nrules:\n  - match: {}\n    actions: [delete]\n",
            "delete needs collect",
        ),
        (
            "version: 1\nrules:\n  - match: {fields: {proc.name: {regex: '('}}}\n    actions: []\n",
            "pol.yaml:3: match.fields.proc.name.regex: invalid regular expression",
        ),
        (
            "version: 1\nrules:\n  - match: {fields: {porc.name: x}}\n    actions: []\n",
            "'porc.name' is not a Falco field name",
        ),
        (
            "version: 1\ndefaults: {allow_cidrs: [10.0.0.1/8]}\nrules: []\n",
            "pol.yaml:2: defaults.allow_cidrs: 10.0.0.1/8 has host bits set",
        ),
        (
            "version: 1\ndefaults: {ingress: 'yes please'}\nrules: []\n",
            "defaults.ingress must be true or false",
        ),
        (
            "version: 1\ndefaults: {grace_period: -1}\nrules: []\n",
            "grace_period must be a whole number",
        ),
        ("version: 1\nversion: 1\nrules: []\n", "pol.yaml:2: policy: duplicate key 'version'"),
        ("version: 1\nrules: [\n", "not valid YAML"),
        ("", "is empty"),
    ],
)
def test_validation(text: str, expected: str) -> None:
    assert expected in problems_of(text)


def test_flag_policy_respects_no_delete() -> None:
    opts = ActionOptions(ingress=True)
    assert flag_policy(delete=False, options=opts).decide(alert()).actions == {
        "quarantine",
        "collect",
    }
    d = flag_policy(options=opts).decide(alert(priority="Debug"))
    assert d.actions == {"quarantine", "collect", "delete"} and d.options.ingress


def test_shipped_example_policy_is_valid() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.decide(alert()).actions >= {"quarantine", "collect"}
    assert policy.decide(alert(priority="Notice", tags=(), rule="Something else")).ignored
