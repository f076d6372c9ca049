"""Plain-text alert lines: every time format, output style and wrapper of
``docs/falco-formats.md``, and the normalisation of what they carry."""

from __future__ import annotations

import pytest

from falcoir.core.alert import Alert
from falcoir.core.parse import parse_text

MINER = (
    "10:14:03.412758113: Critical Possible miner running (command=/tmp/xmrig -o "
    "stratum+tcp://pool.example.com:3333 pid=48213 container_id=3c1f0d9be2a4 "
    "image=docker.io/library/ubuntu)"
)


def one(text: str) -> Alert:
    report = parse_text(text)
    assert report.problems == (), report.problems
    assert len(report.alerts) == 1
    return report.alerts[0]


def test_paren_style_hms_time() -> None:
    a = one(MINER)
    assert a.time == "10:14:03.412758113"
    assert a.priority == "Critical"
    assert a.message == "Possible miner running"
    assert a.output_style == "paren"
    assert a.rule is None  # a text line does not carry its rule
    assert a.process.cmdline == "/tmp/xmrig -o stratum+tcp://pool.example.com:3333"
    assert a.process.pid == 48213
    assert isinstance(a.process.pid, int)
    assert a.container.id == "3c1f0d9be2a4"
    assert a.container.image == "docker.io/library/ubuntu"
    assert a.source_format == "text"
    assert a.line == 1


def test_iso8601_time_and_pipe_style() -> None:
    a = one(
        "2026-03-02T10:14:03.412758113+0000: Warning Sensitive file opened for reading "
        "by non-trusted program | file=/etc/shadow evt_type=openat user=root process=cat "
        "proc_exepath=/usr/bin/cat parent=sh command=cat /etc/shadow terminal=0 "
        "container_id=0ef32e6a26c7 container_name=backend "
        "container_image_repository=docker.io/library/nginx container_image_tag=latest "
        "k8s_pod_name=backend-5f7d k8s_ns_name=shop"
    )
    assert a.time == "2026-03-02T10:14:03.412758113+0000"
    assert a.output_style == "pipe"
    assert a.message == "Sensitive file opened for reading by non-trusted program"
    assert a.process.name == "cat"
    assert a.process.exepath == "/usr/bin/cat"
    assert a.process.parent == "sh"
    assert a.process.cmdline == "cat /etc/shadow"
    assert a.file == "/etc/shadow"
    assert (a.container.name, a.container.image, a.container.image_tag) == (
        "backend",
        "docker.io/library/nginx",
        "latest",
    )
    assert (a.k8s.namespace, a.k8s.pod) == ("shop", "backend-5f7d")


def test_walkthrough_dash_form_with_comma_pairs() -> None:
    a = one(
        "08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, "
        "cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x, pid=12345)"
    )
    assert a.time == "08:30:00.123"
    assert a.priority == "Critical"
    assert a.message == "Suspicious crypto miner process"
    assert a.fields == (
        ("name", "xmrig"),
        ("cmdline", "/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x"),
        ("pid", "12345"),
    )
    assert a.process.name == "xmrig"
    assert a.process.pid == 12345


def test_bare_style_message_then_pairs() -> None:
    a = one("16:05:24.687705210: Warning shell in a container container_name=web")
    assert a.output_style == "bare"
    assert a.message == "shell in a container"
    assert a.container.name == "web"


def test_message_only() -> None:
    a = one("16:05:24.687705210: Debug Something happened")
    assert a.message == "Something happened"
    assert a.fields == ()


def test_na_and_empty_become_absent_never_the_string() -> None:
    a = one(
        "10:00:00.000000001: Notice Shell (user=<NA> k8s.ns=<NA> k8s.pod=<NA> "
        "container=4f63870599d0 shell=sh parent=<NA> cmdline=sh proc_cwd= image=<NA>)"
    )
    d = a.to_dict()
    assert "<NA>" not in str({k: v for k, v in d.items() if k not in ("fields", "raw", "output")})
    assert a.process.user is None
    assert a.process.parent is None
    assert a.process.cwd is None
    assert a.k8s.namespace is None and a.k8s.pod is None
    assert a.container.image is None
    assert a.container.id == "4f63870599d0"
    # fields keep exactly what the alert printed
    assert ("user", "<NA>") in a.fields
    assert ("proc_cwd", "") in a.fields


def test_appended_k8s_fields_after_parenthesis() -> None:
    a = one(
        "18:08:40.584075795: Notice A shell was spawned (user=root shell=bash "
        "cmdline=bash -il container_id=3fc8155f9d1a image=mysql) k8s.ns=default "
        "k8s.pod=mysql-db-d5dc6b85d-77hrm container=3fc8155f9d1a"
    )
    assert a.k8s.namespace == "default"
    assert a.k8s.pod == "mysql-db-d5dc6b85d-77hrm"
    assert a.fields[-3:] == (
        ("k8s.ns", "default"),
        ("k8s.pod", "mysql-db-d5dc6b85d-77hrm"),
        ("container", "3fc8155f9d1a"),
    )


def test_comma_separated_append_output() -> None:
    a = one(
        "03:05:34.475000383: Critical Executing binary (process=sleep command=sleep 1 "
        "container_id=0fdb3cd5b5fc) pod_uid=2f20370c-6e0b-44b8-8ea1-2aa786d80f13, "
        "pod_name=nginx, namespace_name=falco, proc_pid=4242, proc_vpid=12"
    )
    assert a.k8s.pod_uid == "2f20370c-6e0b-44b8-8ea1-2aa786d80f13"
    assert a.k8s.pod == "nginx"
    assert a.k8s.namespace == "falco"
    assert a.process.pid == 4242
    assert a.process.vpid == 12


def test_host_pid_and_container_pid_kept_apart() -> None:
    a = one("10:00:00.000000001: Critical X (proc_pid=9001 proc_vpid=1 container_id=host)")
    assert (a.process.pid, a.process.vpid) == (9001, 1)
    assert a.container.id == "host"


def test_64_hex_container_id_gives_full_and_short() -> None:
    full = "3c1f0d9be2a4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e"
    a = one(f"10:00:00.000000001: Critical X (container_id={full})")
    assert a.container.id == full[:12]
    assert a.container.full_id == full


@pytest.mark.parametrize(
    ("line", "name", "cid"),
    [
        (
            "16:05:24.687415867: Notice Shell (user=root web (id=b7a1d8d4cb6c) shell=bash)",
            "web",
            "b7a1d8d4cb6c",
        ),
        (
            "20:33:20.106511423: Warning History deleted (command=zsh path=/x host (id=host))",
            "host",
            "host",
        ),
    ],
)
def test_container_info_keyless_form(line: str, name: str, cid: str) -> None:
    a = one(line)
    assert a.container.name == name
    assert a.container.id == cid
    assert ("%container.info", f"{name} (id={cid})") in a.fields


def test_container_info_under_pk_label() -> None:
    a = one(
        "19:46:37.779784798: Critical Possible miner running (command=minerd -o "
        "stratum+tcp://pool:3333 container=k8s.ns=insecure k8s.pod=web-1 "
        "container=07dce07d5100 image=victim)"
    )
    assert a.k8s.namespace == "insecure"
    assert a.k8s.pod == "web-1"
    assert a.container.id == "07dce07d5100"
    assert a.process.cmdline == "minerd -o stratum+tcp://pool:3333"


def test_values_with_spaces_equals_quotes_and_parens() -> None:
    a = one(
        "13:44:05.478445995: Critical Terminal shell (user=root cmdline=sh -c clear; "
        "(bash || ash || sh) terminal=34816 container_id=ee97d9c4186f)"
    )
    assert a.process.cmdline == "sh -c clear; (bash || ash || sh)"
    b = one(
        '04:54:40.373142233: Notice Shell (cmdline=sh -c TERM="xterm-256color" /bin/sh '
        "terminal=34817 container_id=d165df35e317)"
    )
    assert b.process.cmdline == 'sh -c TERM="xterm-256color" /bin/sh'
    c = one(
        "11:41:28.678808064: Critical Exec (command=mount -t tmpfs -o size=3900100608 tmpfs "
        "/var/lib/x terminal=0 container_id=1375806db04c)"
    )
    assert c.process.cmdline == "mount -t tmpfs -o size=3900100608 tmpfs /var/lib/x"


WRAPPED = [
    ("falco_1            | ", "docker-compose"),
    ("Jan  3 15:31:19 node-1 falco[24944]: ", "syslog"),
    ("2025-11-18T13:18:47.759877+00:00 node-1 falco: ", "syslog"),
    ("2026-01-02T03:04:05.123456789Z ", "kubectl-timestamps"),
    ("[pod/falco-abcde/falco] ", "kubectl-prefix"),
    (
        "[pod/falco-abcde/falco] 2026-01-02T03:04:05.123456789Z ",
        "kubectl-prefix+kubectl-timestamps",
    ),
    ("falco-abcde falco ", "stern"),
    ("<5>2024-08-07T13:49:16Z a72f9a747cf8 Falco[1]: ", "syslog"),
    ("nc", None),  # typed text glued to the line
    ("^C", None),
]


@pytest.mark.parametrize(("prefix", "kind"), WRAPPED)
def test_wrappers(prefix: str, kind: str | None) -> None:
    a = one(prefix + MINER)
    assert a.time == "10:14:03.412758113"
    assert a.priority == "Critical"
    assert a.process.pid == 48213
    assert a.output == MINER
    assert a.raw == prefix + MINER
    assert dict(a.wrapper).get("kind") == kind


def test_syslog_wrapper_host_is_not_taken_as_node() -> None:
    # The syslog host is where the logger ran, not necessarily the Kubernetes node name.
    a = one("Jan  3 15:31:19 node-1 falco[24944]: " + MINER)
    assert dict(a.wrapper)["host"] == "node-1"
    assert a.node is None


def test_pager_truncated_line_drops_the_cut_value() -> None:
    a = one(
        "Nov 18 15:08:16 k8s1 falco[699]: 15:08:16.895173674: Alert A shell | evt_type=execve "
        "user=root process=sh proc_exepath=/usr/bin/dash parent=containerd-shim command=sh "
        "terminal=34816 exe_flags=EXE_WR>"
    )
    assert a.truncated is True
    assert a.fields[-1] == ("terminal", "34816")
    assert a.process.name == "sh"


def test_value_ending_in_na_is_not_truncation() -> None:
    a = one("10:00:00.000000001: Notice X | user=root k8s_ns_name=<NA>")
    assert a.truncated is False
    assert a.fields[-1] == ("k8s_ns_name", "<NA>")


def test_connection_split_ipv4_and_ipv6() -> None:
    a = one(
        "10:00:00.000000001: Notice Conn (command=curl x connection=10.0.2.15:35873->"
        "192.30.255.113:80 user=me)"
    )
    assert a.connection is not None
    assert (a.connection.client_ip, a.connection.client_port) == ("10.0.2.15", 35873)
    assert (a.connection.server_ip, a.connection.server_port) == ("192.30.255.113", 80)
    b = one("10:00:00.000000001: Notice Conn (connection=fe80::1:4444->2001:db8::5:3333)")
    assert b.connection is not None
    assert (b.connection.client_ip, b.connection.client_port) == ("fe80::1", 4444)
    assert (b.connection.server_ip, b.connection.server_port) == ("2001:db8::5", 3333)


def test_k8s_audit_command_is_not_a_process() -> None:
    a = one(
        "14:09:24.046826000: Notice Attach/Exec to pod (user=kubernetes-admin pod=kubecon "
        "resource=pods ns=default action=exec command=sh)"
    )
    assert a.source == "k8s_audit"
    assert a.process.cmdline is None
    assert a.exec_command == "sh"
    assert (a.k8s.namespace, a.k8s.pod) == ("default", "kubecon")


def test_internal_alert_is_marked() -> None:
    a = one(
        "15:28:24.000207862: Critical Falco internal: syscall event drop. 1 system calls "
        "dropped in last second.(n_drops=1 n_evts=1181)"
    )
    assert a.source == "internal"
    assert a.message == "Falco internal: syscall event drop. 1 system calls dropped in last second."


@pytest.mark.parametrize(
    "line",
    [
        "Wed Mar 14 22:37:12 2018: Falco initialized with configuration file /etc/falco.yaml",
        "2025-10-06T14:35:02+0000: Loading rules from file /etc/falco/falco_rules.yaml",
        "Events detected: 3",
        "Rule counts by severity:",
        "   WARNING: 1",
        "   Terminal shell in container: 2",
        "Triggered rules by rule name:",
        'Defaulted container "falco" out of: falco, falcoctl-artifact-follow',
        "Syscall event drop monitoring:",
        "   - event drop detected: 0 occurrences",
        "",
        "   ",
    ],
)
def test_falco_own_log_lines_are_skipped(line: str) -> None:
    report = parse_text(line + "\n")
    assert report.alerts == ()
    assert report.problems == ()
    assert report.skipped == 1


def test_unreadable_line_is_reported_with_its_number_and_the_rest_parse() -> None:
    report = parse_text(f"{MINER}\nthis is not an alert\n{MINER}\n")
    assert [a.line for a in report.alerts] == [1, 3]
    assert len(report.problems) == 1
    assert report.problems[0].line == 2
    assert report.problems[0].text == "this is not an alert"


def test_crlf_and_trailing_spaces() -> None:
    a = one(MINER + "\r\n")
    assert a.raw == MINER
    b = one("10:00:00.000000001: Notice Shell (shell=bash parent=sh cmdline=bash )")
    assert b.process.cmdline == "bash"
