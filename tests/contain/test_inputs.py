from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from falcoir.core.alert import Alert, Connection, Process
from falcoir.core.contain.policy import (
    selector_matches,
    validate_cidr,
    validate_label_value,
    validate_port,
)
from falcoir.core.contain.probe import (
    endpoint_from_cmdline,
    parse_host_port,
    probe_commands,
    probe_endpoint,
    valid_host,
)
from falcoir.errors import InputError


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        ("/tmp/xmrig -o pool.example.com:3333 -u wallet -p x", ("pool.example.com", 3333)),
        ("xmrig --url=stratum+tcp://10.0.0.9:4444 --user w", ("10.0.0.9", 4444)),
        ("xmrig -o stratum+ssl://w.x@pool.example.net:443", ("pool.example.net", 443)),
        ("minerd --url [2001:db8::1]:3333", ("2001:db8::1", 3333)),
        ("/tmp/x connect 192.0.2.1:8080", ("192.0.2.1", 8080)),
        ("/tmp/x -o $(reboot):3333", None),
        ("/tmp/x -o -oProxyCommand=x:22", None),
        ("/tmp/x -o pool:99999", None),
        ("sleep 1000", None),
    ],
)
def test_endpoint_from_cmdline(cmdline: str, expected: tuple[str, int] | None) -> None:
    assert endpoint_from_cmdline(cmdline) == expected


def test_probe_endpoint_prefers_override_then_connection_then_cmdline() -> None:
    alert = Alert(
        raw="x",
        source_format="text",
        process=Process(cmdline="/tmp/xmrig -o pool.example.com:3333"),
        connection=Connection(remote_ip="198.51.100.7", remote_port=3333),
    )
    assert probe_endpoint(alert, ("10.0.0.1", 80)).source == "--probe"  # type: ignore[union-attr]
    ep = probe_endpoint(alert, None)
    assert ep is not None and (ep.host, ep.port, ep.source) == (
        "198.51.100.7",
        3333,
        "alert.connection",
    )
    no_conn = Alert(raw="x", source_format="text", process=alert.process)
    ep = probe_endpoint(no_conn, None)
    assert ep is not None and (ep.host, ep.port, ep.source) == (
        "pool.example.com",
        3333,
        "alert.cmdline",
    )
    assert probe_endpoint(Alert(raw="x", source_format="text"), None) is None


@pytest.mark.parametrize(
    "text", ["pool:0", "pool", ":80", "-x:80", "a b:80", "a;b:80", "h:8o", "[::1:80"]
)
def test_parse_host_port_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_host_port(text)


def test_parse_host_port_accepts() -> None:
    assert parse_host_port("pool.example.com:3333") == ("pool.example.com", 3333)
    assert parse_host_port("[2001:db8::1]:443") == ("2001:db8::1", 443)


@given(st.text(max_size=40), st.integers(min_value=1, max_value=65535))
def test_probe_argv_never_embeds_data_in_code(host: str, port: int) -> None:
    """Host and port are whole argv elements at fixed positions; every other element is
    a constant, whatever the host is."""
    if not valid_host(host):
        return
    template = probe_commands("HOST", 1, 3)
    got = probe_commands(host, port, 3)
    for (tool_a, argv_a), (tool_b, argv_b) in zip(template, got, strict=True):
        assert tool_a == tool_b and len(argv_a) == len(argv_b)
        for a, b in zip(argv_a, argv_b, strict=True):
            if a == "HOST":
                assert b == host
            elif a == "1":
                assert b == str(port)
            else:
                assert a == b


def test_hostile_hosts_are_not_hosts() -> None:
    for bad in ["-e", "$(id)", "a;b", "a b", "`x`", "a\nb", "", "../x", "a/b"]:
        assert not valid_host(bad), bad


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("192.0.2.7", "192.0.2.7/32"),
        ("2001:db8::/32", "2001:db8::/32"),
    ],
)
def test_cidr_ok(text: str, expected: str) -> None:
    assert validate_cidr(text) == expected


@pytest.mark.parametrize("text", ["10.0.0.1/8", "0.0.0.0/0", "::/0", "10.0.0.0/33", "pool", ""])
def test_cidr_rejected(text: str) -> None:
    with pytest.raises(InputError):
        validate_cidr(text)


def test_label_value_and_port() -> None:
    assert validate_label_value("inc-20261128-143102-abcdef")
    for bad in ["-x", "x-", "a" * 64, "a/b", "a b"]:
        with pytest.raises(InputError):
            validate_label_value(bad)
    assert validate_port("3333") == 3333
    for bad_port in ["0", "65536", "x", "-1"]:
        with pytest.raises(InputError):
            validate_port(bad_port)


def test_selector_matches() -> None:
    labels = {"app": "a", "tier": "web"}
    assert selector_matches({}, labels)
    assert not selector_matches(None, labels)
    assert selector_matches({"matchLabels": {"app": "a"}}, labels)
    assert not selector_matches({"matchLabels": {"app": "b"}}, labels)
    expr = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}
    assert selector_matches(expr, labels)
    expr = {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}
    assert not selector_matches(expr, labels)


class _NotRunning:
    """A gateway whose every exec fails because the container is not running."""

    def __init__(self) -> None:
        self.argvs: list[list[str]] = []

    def exec(self, namespace, pod, container, argv, **kw):  # type: ignore[no-untyped-def]
        from datetime import UTC, datetime

        from falcoir.core.gateway import ExecResult

        self.argvs.append(list(argv))
        now = datetime.now(UTC)
        return ExecResult(
            argv=tuple(argv), container=container, stdout=b"", stderr=b"", exit_code=None,
            started=now, ended=now, error="container miner is not running",
            error_reason="InternalError",
        )  # fmt: skip


def test_probe_says_why_it_could_not_run() -> None:
    from falcoir.core.contain.probe import Endpoint, run_probe

    gw = _NotRunning()
    out = run_probe(gw, "ns", "pod", "miner", Endpoint("10.0.0.1", 3333, "--probe"))  # type: ignore[arg-type]
    assert out.connected is None
    assert out.detail == "could not run a probe in the container: container miner is not running"
    assert len(gw.argvs) == len(probe_commands("10.0.0.1", 3333, 3))


@pytest.mark.parametrize("value", ["prod\n", "prod\n\n", "\nprod"])
def test_names_with_a_newline_are_refused_everywhere(value: str) -> None:
    # `$` in a pattern used with re.match also matches before a final newline.
    from falcoir.cli import common
    from falcoir.core.contain import policy
    from falcoir.errors import InputError as Bad

    for check in (
        policy.validate_namespace,
        policy.validate_pod_name,
        policy.validate_label_value,
        common.validate_namespace,
        common.validate_pod_name,
    ):
        with pytest.raises(Bad):
            check(value)


def test_forged_names_with_a_newline_are_not_followed() -> None:
    # ownerReferences are the pod author's words; incident ids come from labels.
    from falcoir.core.incident import is_incident_id
    from falcoir.core.owners import followable
    from falcoir.core.target import OwnerRef

    assert followable(OwnerRef("ReplicaSet", "web-7d9f", api_version="apps/v1")) is not None
    assert followable(OwnerRef("ReplicaSet", "web-7d9f\n", api_version="apps/v1")) is None
    assert is_incident_id("inc-20261128-143102-ab12cd")
    assert not is_incident_id("inc-20261128-143102-ab12cd\n")
