"""Falco rules files: loading, and matching text alerts against output templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from falcoir.core.parse import Rule, RuleSet, load_rules, parse_text
from falcoir.errors import InputError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_RULES = REPO / "examples" / "alerts" / "rules-cryptominer.yaml"


def test_load_rules_ignores_lists_and_macros() -> None:
    rs = load_rules(EXAMPLE_RULES)
    assert [r.name for r in rs.rules] == [
        "Suspicious crypto miner process",
        "Miner pool connection",
    ]
    assert rs.rules[0].priority == "CRITICAL"
    assert rs.rules[0].source == "syscall"
    assert len(rs) == 2


def test_folded_output_is_one_line() -> None:
    rs = load_rules(EXAMPLE_RULES)
    assert "\n" not in rs.rules[1].output.strip()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("- rule: x\n  output: [unclosed\n", "not valid YAML"),
        ("rule: x\noutput: y\n", "YAML list"),
        ("- rule: 3\n  output: y\n", "rule name"),
        ("- rule: x\n  output: [1, 2]\n", "output is not a string"),
    ],
)
def test_bad_rules_files_name_the_file_and_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "my_rules.yaml"
    path.write_text(content)
    with pytest.raises(InputError) as exc:
        load_rules(path)
    assert str(path) in exc.value.message
    assert problem in exc.value.message


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read rules file"):
        load_rules(tmp_path / "none.yaml")


def test_empty_file_and_append_rules_without_output(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("")
    assert len(load_rules(path)) == 0
    path.write_text(
        "- rule: X\n  append: true\n  condition: and 1=1\n- required_engine_version: 9\n"
    )
    assert len(load_rules(path)) == 0


RULES = RuleSet(
    [
        Rule(
            name="Terminal shell in container",
            output="A shell was spawned in a container with an attached terminal | "
            "evt_type=%evt.type user=%user.name process=%proc.name command=%proc.cmdline "
            "terminal=%proc.tty",
        ),
        Rule(
            name="Write below etc",
            output="File below /etc opened for writing (user=%user.name command=%proc.cmdline "
            "pid=%proc.pid file=%fd.name)",
        ),
        Rule(
            name="Old container info",
            output="Shell (user=%user.name %container.info shell=%proc.name)",
        ),
    ]
)


def test_rule_named_and_fields_split_exactly() -> None:
    line = (
        "15:31:19.049935845: Error File below /etc opened for writing (user=root command=sh -c "
        "echo a=b, c > /etc/x user=fake (k=v) pid=1 file=/etc/passwd)"
    )
    (a,) = parse_text(line, rules=RULES).alerts
    assert a.rule == "Write below etc"
    assert a.source == "syscall"
    assert a.fields == (
        ("user", "root"),
        ("command", "sh -c echo a=b, c > /etc/x user=fake (k=v)"),
        ("pid", "1"),
        ("file", "/etc/passwd"),
    )
    assert a.process.pid == 1
    assert a.file == "/etc/passwd"
    # without the rules the same line is split by heuristics: different, rule unknown
    (b,) = parse_text(line).alerts
    assert b.rule is None
    assert b.fields != a.fields


def test_template_ending_with_a_field_keeps_appended_fields_apart() -> None:
    line = (
        "13:55:07.476277048: Notice A shell was spawned in a container with an attached "
        "terminal | evt_type=execve user=root process=sh command=sh -c x=1 terminal=34816 "
        "container_id=e953069bb09e container_name=web k8s_pod_name=web-1 k8s_ns_name=shop"
    )
    (a,) = parse_text(line, rules=RULES).alerts
    assert a.rule == "Terminal shell in container"
    assert ("terminal", "34816") in a.fields
    assert a.process.cmdline == "sh -c x=1"
    assert a.container.id == "e953069bb09e"
    assert (a.k8s.namespace, a.k8s.pod) == ("shop", "web-1")


def test_labels_map_through_the_real_field_names() -> None:
    # "shell" is %proc.name here; "%container.info" has no label.
    (a,) = parse_text(
        "16:05:24.687415867: Notice Shell (user=root web (id=b7a1d8d4cb6c) shell=bash)",
        rules=RULES,
    ).alerts
    assert a.rule == "Old container info"
    assert a.process.name == "bash"
    assert a.container.id == "b7a1d8d4cb6c"
    assert a.container.name == "web"


def test_no_matching_rule_falls_back_to_heuristics() -> None:
    (a,) = parse_text("10:00:00.000000001: Warning Something else (user=root)", rules=RULES).alerts
    assert a.rule is None
    assert a.process.user == "root"


def test_json_alerts_keep_their_own_rule() -> None:
    doc = (
        '{"output":"15:31:19.049935845: Error File below /etc opened for writing (user=root '
        'command=x pid=1 file=/etc/x)","priority":"Error","rule":"Custom","time":"t"}'
    )
    (a,) = parse_text(doc, rules=RULES).alerts
    assert a.rule == "Custom"


def test_json_without_a_rule_is_named_by_template() -> None:
    doc = (
        '{"output":"15:31:19.049935845: Error File below /etc opened for writing (user=root '
        'command=x pid=1 file=/etc/x)","priority":"Error","time":"t"}'
    )
    (a,) = parse_text(doc, rules=RULES).alerts
    assert a.rule == "Write below etc"
    (b,) = parse_text(doc).alerts
    assert b.rule is None
