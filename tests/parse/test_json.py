"""Falco JSON (every key layout, one a line or pretty-printed) and Falcosidekick."""

from __future__ import annotations

import json

from falcoir.core.alert import Alert
from falcoir.core.parse import parse_text

OLD = {
    "output": "23:39:44.834631763: Notice A shell was spawned in a container (user=root "
    "k8s.ns=default k8s.pod=alpine container=5892b41bcf46 shell=sh parent=<NA> cmdline=sh "
    "container_id=5892b41bcf46 image=<NA>) k8s.ns=default k8s.pod=alpine container=5892b41bcf46",
    "priority": "Notice",
    "rule": "Terminal shell in container",
    "time": "2021-01-14T23:39:44.834631763Z",
    "output_fields": {
        "container.id": "5892b41bcf46",
        "container.image.repository": None,
        "evt.time": 1610667584834631763,
        "k8s.ns.name": "default",
        "k8s.pod.name": "alpine",
        "proc.cmdline": "sh",
        "proc.name": "sh",
        "proc.pid": 31337,
        "proc.vpid": 1,
        "proc.pname": None,
        "user.name": "root",
    },
}


def one(text: str) -> Alert:
    report = parse_text(text)
    assert report.problems == (), report.problems
    assert len(report.alerts) == 1
    return report.alerts[0]


def test_old_layout_output_fields_last() -> None:
    a = one(json.dumps(OLD))
    assert a.source_format == "json"
    assert a.rule == "Terminal shell in container"
    assert a.time == "2021-01-14T23:39:44.834631763Z"
    assert a.priority == "Notice"
    assert a.message == "A shell was spawned in a container"
    assert a.process.pid == 31337
    assert a.process.vpid == 1
    assert a.process.parent is None
    assert a.container.image is None
    assert (a.k8s.namespace, a.k8s.pod) == ("default", "alpine")
    assert a.event_time_ns == 1610667584834631763
    assert dict(a.output_fields)["proc.pid"] == 31337


def test_sorted_layout_with_hostname_source_tags() -> None:
    doc = dict(sorted({**OLD, "hostname": "node-7", "source": "syscall", "tags": ["a"]}.items()))
    a = one(json.dumps(doc))
    assert a.node == "node-7"
    assert a.source == "syscall"
    assert a.tags == ("a",)


def test_pretty_printed_multi_line_document() -> None:
    text = json.dumps({**OLD, "hostname": "node-7"}, indent=2)
    report = parse_text("noise line that is not an alert\n" + text + "\n" + OLD["output"])
    assert len(report.alerts) == 2
    a, b = report.alerts
    assert (a.line, a.end_line) == (2, 1 + text.count("\n") + 1)
    assert a.node == "node-7"
    assert b.source_format == "text"
    assert b.line == a.end_line + 1  # type: ignore[operator]
    assert [p.line for p in report.problems] == [1]


def test_sidekick_capitalised_keys_uuid_and_escaped_angles() -> None:
    raw = (
        '{"uuid":"6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","Output":"10:14:03.412758113: '
        "Critical Miner (command=sh -c /tmp/xmrig \\u003e /dev/null user=\\u003cNA\\u003e)"
        '","Priority":"Critical","Rule":"Miner","Time":"2026-03-02T10:14:03.4127581Z",'
        '"Output_fields":{"proc.cmdline":"sh -c /tmp/xmrig \\u003e /dev/null",'
        '"user.name":"\\u003cNA\\u003e","fd.rport":"8888","fd.rip":"8.8.8.8"},'
        '"Hostname":"node-1"}'
    )
    a = one(raw)
    assert a.source_format == "sidekick"
    assert a.uuid == "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
    assert a.rule == "Miner"
    assert a.node == "node-1"
    assert a.process.cmdline == "sh -c /tmp/xmrig > /dev/null"
    assert a.process.user is None
    assert a.connection is not None
    assert (a.connection.remote_ip, a.connection.remote_port) == ("8.8.8.8", 8888)


def test_output_without_time_prefix() -> None:
    a = one(
        '{"output":"Test","priority":"Critical","Rule":"Test Terminate",'
        '"time":"2019-05-17T15:31:56Z","output_fields":{"k8s.pod.name":"test",'
        '"k8s.ns.name":"default"}}'
    )
    assert a.message == "Test"
    assert a.rule == "Test Terminate"
    assert (a.k8s.namespace, a.k8s.pod) == ("default", "test")


def test_json_behind_wrappers() -> None:
    doc = json.dumps(OLD)
    for prefix in (
        "falco-969dv falco ",
        "Nov 26 06:06:30 node-1 falco[716]: ",
        "<5>2024-08-07T13:49:16Z h Falco[1]: ",
    ):
        a = one(prefix + doc)
        assert a.rule == "Terminal shell in container"
        assert a.wrapper != ()


def test_connection_from_fd_name() -> None:
    doc = {
        **OLD,
        "output_fields": {"fd.name": "172.17.0.4:33294->23.215.0.138:443", "fd.rport": 33294},
    }
    a = one(json.dumps(doc))
    assert a.connection is not None
    assert a.connection.raw == "172.17.0.4:33294->23.215.0.138:443"
    assert (a.connection.server_ip, a.connection.server_port) == ("23.215.0.138", 443)
    assert a.file is None


def test_k8s_audit_json() -> None:
    doc = {
        "output": "14:09:24.046826000: Notice Attach/Exec to pod (user=admin pod=kubecon "
        "resource=pods ns=default action=exec command=sh)",
        "priority": "Notice",
        "rule": "Attach/Exec Pod",
        "source": "k8s_audit",
        "time": "2023-05-10T14:09:24.046826000Z",
        "output_fields": {
            "ka.target.name": "kubecon",
            "ka.target.namespace": "default",
            "ka.target.resource": "pods",
            "ka.uri.param[command]": "sh",
            "ka.user.name": "admin",
        },
    }
    a = one(json.dumps(doc))
    assert (a.k8s.namespace, a.k8s.pod) == ("default", "kubecon")
    assert a.process.user == "admin"
    assert a.process.cmdline is None
    assert a.exec_command == "sh"


def test_invalid_and_non_alert_json_are_problems_not_crashes() -> None:
    report = parse_text('{"a": 1}\n[1, 2]\n{"b": [}\n{"output": "x", "priority": \n  "Notice"\n')
    assert report.alerts == ()
    got = [(p.line, p.end_line, p.reason) for p in report.problems]
    assert got[0][:2] == (1, 1) and "not a Falco alert" in got[0][2]
    assert got[1][:2] == (2, None) and got[1][2] == "not a Falco alert"
    assert got[2][:2] == (3, 3) and "invalid JSON" in got[2][2]
    # an open document that never closes: one problem for all its lines
    assert got[3][:2] == (4, 5) and "incomplete JSON" in got[3][2]


def test_open_document_interrupted_by_a_text_alert() -> None:
    line = OLD["output"]
    report = parse_text('{\n  "output": "x",\n' + str(line) + "\n")
    assert [(p.line, p.end_line) for p in report.problems] == [(1, 2)]
    assert [a.line for a in report.alerts] == [3]


def test_cut_json_line_keeps_partial_alert() -> None:
    cut = (
        '{"hostname":"h","output":"06:06:30.848867920: Warning Container spawned! '
        "container=x user=<>"
    )
    a = one("Nov 26 06:06:30 k falco[716]: " + cut)
    assert a.truncated is True
    assert (a.time, a.priority, a.message) == (
        "06:06:30.848867920",
        "Warning",
        "Container spawned!",
    )
