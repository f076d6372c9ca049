"""Collection starts from the target locate hands over (``on_found``) while locate
still reads the owner chain: one round trip less, the same bundle, and nothing lost
when locate fails after the collection began."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bagit
import pytest
from typer.testing import CliRunner

import falcoir.core.locate as locate_pkg
from falcoir.cli import common
from falcoir.cli.app import app
from falcoir.core.bundle import verify
from falcoir.core.collect import CollectorStatus, Started, start_collect
from falcoir.core.incident import IncidentStore
from falcoir.core.locate import locate
from falcoir.core.target import PodRef, Target
from falcoir.errors import Forbidden
from tests.collect.support import NS, POD, ScriptedCluster, add_workload
from tests.collect.test_collect_scripted import miner_container, read
from tests.locate.slow import Slow


def _cluster() -> ScriptedCluster:
    cluster = ScriptedCluster()
    add_workload(cluster)
    cluster.containers["miner"] = miner_container()
    return cluster


def _locate_and_collect(tmp_path: Path, gw: Any) -> tuple[Target, Any, list[Target]]:
    early: list[Started] = []
    handed: list[Target] = []

    def found(where: Target) -> None:
        handed.append(where)
        early.append(
            start_collect(
                gw,
                where,
                alert=None,
                out_dir=tmp_path / "evidence",
                store=IncidentStore(tmp_path / "home"),
                located=False,
            )
        )

    target = locate(gw, pod=PodRef(NS, POD), on_found=found)
    (started,) = early
    return target, started.finish(target), handed


def test_collection_overlaps_the_owner_chain(tmp_path: Path) -> None:
    alone = Slow(_cluster())
    locate(alone, pod=PodRef(NS, POD))
    assert alone.round_trips >= 2  # the pod, then its owner chain
    cluster = _cluster()
    gw = Slow(cluster)
    target, res, handed = _locate_and_collect(tmp_path, gw)
    assert res.complete, res.collectors
    # every collector's call goes out beside the owner chain: no round trip added
    assert gw.round_trips == alone.round_trips, gw.verbs()
    # collection began before the owners were known ...
    assert handed[0].owner == () and target.owner
    # ... and the bundle has the final target and the owners locate read
    assert res.target == target
    saved = json.loads((res.bundle.dir / "data" / "target.json").read_text())
    assert [o["kind"] for o in saved["owner"]] == [o.kind for o in target.owner]
    owners = next(c for c in res.collectors if c.name == "owners")
    assert owners.status is CollectorStatus.OK
    assert "read while locating the pod" in (owners.note or "")
    assert "kind: Deployment" in read(res, "api/owners.yaml").decode()
    # the owners were read once, by locate
    gets = sorted(c[1] for c in cluster.calls if c[0] == "get")
    assert gets.count("replicasets") == 1 and gets.count("deployments") == 1
    assert read(res, "logs/miner.log") == b"starting web server\n"
    assert verify(res.bundle.archive).ok and bagit.Bag(str(res.bundle.dir)).is_valid()


def test_abandon_seals_what_was_captured_as_incomplete(tmp_path: Path) -> None:
    cluster = _cluster()
    store = IncidentStore(tmp_path / "home")
    where = locate(cluster, pod=PodRef(NS, POD))
    started = start_collect(
        cluster, where, alert=None, out_dir=tmp_path / "evidence", store=store, located=False
    )
    sealed = started.abandon()
    assert sealed is not None and sealed.complete is False
    assert started.abandon() is None  # once
    assert verify(sealed.dir).ok and verify(sealed.archive).ok
    assert bagit.Bag(str(sealed.dir)).info["Falcoir-Complete"] == "false"
    (inc,) = store.all()
    assert str(sealed.dir) in inc.bundles


def test_cli_locate_failing_after_collection_began_keeps_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FALCOIR_HOME", str(tmp_path / "home"))
    cluster = _cluster()
    monkeypatch.setattr(common, "connect", lambda kubeconfig, context: cluster)
    real = locate_pkg.locate

    def fails_late(gw: Any, **kw: Any) -> Target:
        real(gw, **kw)  # hands the target over: the collection starts
        raise Forbidden("cannot get replicasets in prod")

    monkeypatch.setattr(locate_pkg, "locate", fails_late)
    out = tmp_path / "ev"
    r = CliRunner().invoke(app, ["collect", "--pod", f"{NS}/{POD}", "--out", str(out)])
    assert r.exit_code == 4, r.stderr  # the locate error, as before
    assert "cannot get replicasets" in r.stderr
    (bundle,) = [p for p in out.iterdir() if p.is_dir()]
    report = verify(bundle)
    assert report.ok and report.sealed and report.complete is False
    assert verify(bundle.with_name(bundle.name + ".tar.gz")).ok
    (inc,) = IncidentStore(tmp_path / "home").all()
    assert str(bundle) in inc.bundles
    # and it names its pod: what was known, marked partial (no owner chain), and why
    doc = json.loads((bundle / "data" / "target.json").read_text())
    assert (doc["namespace"], doc["pod"], doc["partial"]) == (NS, POD, True)
    assert report.info["Falcoir-Target-Status"] == "partial"
    assert "cannot get replicasets" in report.info["Falcoir-Incomplete-Reason"]
