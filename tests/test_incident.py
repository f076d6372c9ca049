from __future__ import annotations

import json
from pathlib import Path

from falcoir.core.incident import IncidentStore, is_incident_id, new_incident_id


def test_incident_ids_are_label_values() -> None:
    inc = new_incident_id()
    assert is_incident_id(inc)
    assert len(inc) <= 63
    assert not is_incident_id("../etc")


def test_store_reuses_incident_per_pod_and_logs_actions(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path)
    a = store.open("default", "web-1", "uid-1", alert_raw="x")
    b = store.open("default", "web-1", "uid-1")
    assert a.id == b.id
    other = store.open("default", "web-1", "uid-2")
    assert other.id != a.id
    log = a.action_log(actor="alice")
    log.append("create", "NetworkPolicy", "default", "q", "ok", "applied")
    log.append("patch", "Pod", "default", "web-1", "ok")
    lines = a.actions_path.read_text().splitlines()
    assert [json.loads(x)["action"] for x in lines] == ["create", "patch"]
    assert all(json.loads(x)["actor"] == "alice" for x in lines)
    store.add_bundle(a, tmp_path / "bundle")
    store.add_bundle(a, tmp_path / "bundle")
    got = store.get(a.id)
    assert got is not None and got.bundles == (str((tmp_path / "bundle").resolve()),)


def test_a_torn_or_foreign_action_line_does_not_stop_readers(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path)
    inc = store.open("default", "web-1", "uid-1")
    log = inc.action_log(actor="alice")
    log.append("create", "NetworkPolicy", "default", "q", "ok")
    with inc.actions_path.open("a", encoding="utf-8") as fh:
        fh.write(
            '[1, 2]\n{"time": "t", "incident": "x", "action": "a", "kind": "k",'
            ' "namespace": null, "name": "n", "outcome": "ok", "new_key": 1}\n'
        )
        fh.write('{"time": "2026-')  # torn by a crash
    actions = [r.action for r in log.records()]
    assert actions == ["create", "a"]
