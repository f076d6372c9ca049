"""The alert model: fast construction equals the constructor; stable JSON keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from falcoir.core.alert import Alert, Connection, Container, K8s, Process, fast_new
from falcoir.core.parse import parse_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "alerts"


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (Process, {"name": "sh", "pid": 3}),
        (Container, {"id": "3c1f0d9be2a4", "image_tag": "1"}),
        (K8s, {}),
        (Connection, {"raw": "a:1->b:2", "server_port": 2}),
        (Alert, {"raw": "x", "source_format": "text", "fields": (("a", "b"),), "line": 4}),
    ],
)
def test_fast_new_equals_constructor(cls: type, kwargs: dict[str, object]) -> None:
    assert fast_new(cls, **kwargs) == cls(**kwargs)


def test_parsed_alerts_equal_their_constructor_rebuild() -> None:
    import dataclasses

    for a in parse_text((EXAMPLES / "falco-log-mixed.txt").read_text()).alerts:
        rebuilt = Alert(**{f.name: getattr(a, f.name) for f in dataclasses.fields(Alert)})
        assert rebuilt == a
        with pytest.raises(dataclasses.FrozenInstanceError):
            a.rule = "x"  # type: ignore[misc]


def test_to_dict_keys_are_the_contract() -> None:
    (a,) = parse_text((EXAMPLES / "walkthrough.txt").read_text()).alerts
    d = a.to_dict()
    json.dumps(d)
    assert list(d)[:9] == [
        "time",
        "priority",
        "rule",
        "message",
        "source_format",
        "output_style",
        "fields",
        "process",
        "container",
    ]
    assert {"k8s", "node", "connection", "tags", "source", "uuid", "line", "raw"} <= set(d)
    assert set(d["process"]) >= {
        "name",
        "cmdline",
        "pid",
        "vpid",
        "exepath",
        "cwd",
        "user",
        "parent",
    }
    assert set(d["container"]) >= {"id", "full_id", "name", "image"}
    assert set(d["k8s"]) == {"namespace", "pod", "pod_uid"}


EXPECTED_COUNTS = {
    "falco-json-pretty.json": 1,
    "falco-json.jsonl": 2,
    "falco-log-mixed.txt": 2,
    "sidekick-syslog.txt": 1,
    "sidekick.json": 1,
    "text-append-output.txt": 1,
    "text-container-info.txt": 2,
    "text-paren.txt": 2,
    "text-pipe-iso8601.txt": 2,
    "text-rules-template.txt": 1,
    "walkthrough.txt": 1,
    "wrapped-docker-compose.txt": 1,
    "wrapped-journald.txt": 2,
    "wrapped-kubectl-logs.txt": 2,
    "wrapped-rsyslog.txt": 1,
    "wrapped-stern.txt": 2,
}


def test_every_example_file_is_covered() -> None:
    files = {p.name for p in EXAMPLES.iterdir() if p.suffix != ".yaml"}
    assert files == set(EXPECTED_COUNTS)


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_examples_parse_cleanly(name: str) -> None:
    report = parse_text((EXAMPLES / name).read_text())
    assert report.problems == ()
    assert len(report.alerts) == EXPECTED_COUNTS[name]
    for a in report.alerts:
        assert a.priority is not None
        assert a.message
        # every example is about the same miner: it can be located
        assert a.container.id == "3c1f0d9be2a4" or a.process.pid == 12345 or a.k8s.pod


def test_mixed_log_counts_falco_lines_as_skipped() -> None:
    report = parse_text((EXAMPLES / "falco-log-mixed.txt").read_text())
    assert report.skipped == 14
