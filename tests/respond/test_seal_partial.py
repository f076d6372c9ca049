"""respond seals a bundle whose owner chain was never read with a target.json that says
so (Ctrl-C or a failed owners step after the pod was found)."""

from __future__ import annotations

import json
from pathlib import Path

from falcoir.core.bundle import BundleWriter, verify
from falcoir.core.incident import IncidentStore
from falcoir.core.respond.real import RealBackend
from falcoir.core.target import LocateMethod, Target
from tests.contain.cluster import NS, POD, make_cluster


def _writer(tmp_path: Path) -> tuple[BundleWriter, IncidentStore]:
    store = IncidentStore(tmp_path / "home")
    inc = store.open(NS, POD, "uid-1")
    writer = BundleWriter.create(
        tmp_path / "out", inc, alert_raw=None, target=None, context="fake", operator="t"
    )
    return writer, store


def test_a_partial_target_is_sealed_as_partial(tmp_path: Path) -> None:
    writer, store = _writer(tmp_path)
    backend = RealBackend(make_cluster(), store)  # type: ignore[arg-type]
    found = Target(NS, POD, "miner", LocateMethod.HOST_PID, pod_uid="uid-1")
    sealed = backend.seal(writer, False, "interrupted (Ctrl-C)", found, "owner chain not read")
    bundle = Path(sealed["dir"])
    doc = json.loads((bundle / "data" / "target.json").read_text())
    assert doc["pod"] == POD and doc["partial"] is True and doc["not_read"] == ["owner"]
    info = (bundle / "bag-info.txt").read_text()
    assert "Falcoir-Target-Status: partial" in info
    assert verify(bundle).ok


def test_a_located_target_is_not_marked_partial(tmp_path: Path) -> None:
    writer, store = _writer(tmp_path)
    backend = RealBackend(make_cluster(), store)  # type: ignore[arg-type]
    located = Target(NS, POD, "miner", LocateMethod.HOST_PID, pod_uid="uid-1")
    sealed = backend.seal(writer, True, None, located)
    bundle = Path(sealed["dir"])
    doc = json.loads((bundle / "data" / "target.json").read_text())
    assert "partial" not in doc
    assert "Falcoir-Target-Status" not in (bundle / "bag-info.txt").read_text()
