"""Security: the in-pod probe runs the suspect's own tools, so its answer is reported
as untrusted evidence (``verified.method``, ``verified.trusted: false``) and no human
output calls it plainly "verified"."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from falcoir.cli.app import app
from falcoir.core import report
from falcoir.core.contain import QuarantineOptions, quarantine
from falcoir.core.contain.common import Step
from falcoir.core.incident import IncidentStore
from falcoir.render.respond import print_summary
from tests.contain.cluster import NS, POD, POOL, ContainCluster, make_cluster, target
from tests.contain.test_quarantine import FAST, miner_alert


def lying_bash(cluster: ContainCluster) -> list[int]:
    """The image's bash is replaced: it connects the first time (the baseline), then
    claims every later attempt fails, while the network enforces nothing."""
    cluster.enforce = False
    calls: list[int] = []

    def handler(argv: Sequence[str], stdin: bytes | None) -> tuple[bytes, bytes, int | None]:
        calls.append(1)
        if len(calls) == 1:
            return b"", b"", 0
        return b"", b"bash: connect: Connection refused\n", 1

    cluster.on_exec(NS, POD, None, handler)
    return calls


def test_a_lying_tool_yields_an_untrusted_answer(tmp_path: Path) -> None:
    cluster = make_cluster()
    calls = lying_bash(cluster)
    store = IncidentStore(tmp_path / "home")
    t = target(cluster)
    inc = store.open(NS, POD, t.pod_uid)
    steps: list[Step] = []
    result = quarantine(
        cluster,
        t,
        alert=miner_alert(),
        options=QuarantineOptions(**FAST),  # type: ignore[arg-type]
        incident=inc,
        log=inc.action_log("tester"),
        on_step=steps.append,
        store=store,
    )
    assert len(calls) >= 2
    v = result.to_dict()["verified"]
    # the lie goes through (nothing in the pod can tell) but is labelled as such
    assert v["egress_blocked"] is True
    assert v["method"] == "pod-exec:bash"
    assert v["trusted"] is False
    assert "untrusted" in v["reason"]
    assert "own tools" in v["trust_note"]
    shown = " ".join(s.detail for s in steps if s.name == "verify")
    assert "untrusted" in shown and "verified" not in shown


def test_unprobed_results_say_no_method(tmp_path: Path) -> None:
    cluster = make_cluster()
    store = IncidentStore(tmp_path / "home")
    t = target(cluster)
    inc = store.open(NS, POD, t.pod_uid)
    for verify in (True, False):
        result = quarantine(
            cluster,
            t,
            alert=None,
            options=QuarantineOptions(**FAST, verify=verify, dry_run=not verify),  # type: ignore[arg-type]
            incident=inc,
            log=inc.action_log("tester"),
            store=store,
        )
        v = result.to_dict()["verified"]
        assert v["egress_blocked"] is None
        assert v["method"] is None and v["trusted"] is False


def test_cli_human_output_does_not_claim_verified(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cluster = make_cluster()
    monkeypatch.setenv("FALCOIR_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("falcoir.cli.common.connect", lambda kubeconfig, context: cluster)
    monkeypatch.setattr("falcoir.cli.contain.VERIFY_SECONDS", 0.2)
    monkeypatch.setenv("COLUMNS", "300")
    res = CliRunner().invoke(
        app, ["quarantine", "--pod", f"{NS}/{POD}", "--probe", f"{POOL[0]}:{POOL[1]}", "--yes"]
    )
    assert res.exit_code == 0, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert "egress blocked (in-pod probe, untrusted)" in last
    assert "verified" not in res.stderr.replace("not verified", "")

    res = CliRunner().invoke(
        app,
        [
            "quarantine",
            "--pod",
            f"{NS}/{POD}",
            "--probe",
            f"{POOL[0]}:{POOL[1]}",
            "--yes",
            "-o",
            "json",
        ],
    )
    doc = json.loads(res.stdout)
    assert doc["verified"]["method"] == "pod-exec:bash"
    assert doc["verified"]["trusted"] is False


def _summary(verified: dict[str, object], capsys: pytest.CaptureFixture[str]) -> str:
    doc = {
        "incident": "inc-20260101-000000-abcdef",
        "status": "ok",
        "quarantine": {"verified": verified, "policy": {"namespace": NS, "name": "p"}},
    }
    print_summary(doc)
    return capsys.readouterr().err


def test_respond_summary_and_report_badge_follow_trust(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    out = _summary({"egress_blocked": True, "trusted": False, "method": "pod-exec:bash"}, capsys)
    assert "egress blocked (in-pod probe, untrusted)" in out
    assert "verified blocked" not in out
    out = _summary({"egress_blocked": True, "trusted": True, "method": "x"}, capsys)
    assert "egress verified blocked" in out

    for trusted, badge in (
        (False, "egress blocked (in-pod probe, untrusted)"),
        (True, "egress verified blocked"),
    ):
        model = report.build(
            {"quarantine": {"verified": {"egress_blocked": True, "trusted": trusted}}}
        )
        assert badge in [b for b, _ in model.badges]
