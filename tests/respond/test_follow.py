"""--follow: a stream of alerts, one incident per pod, the policy honoured."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

from falcoir.core.alert import Alert
from falcoir.core.incident import IncidentStore
from falcoir.core.policy import flag_policy, parse_policy
from falcoir.core.respond.backend import Progress
from falcoir.core.respond.follow import FollowOptions, alert_key, follow
from falcoir.core.target import Target

from .fake_backend import FakeBackend, make_target

POLICY = """\
version: 1
rules:
  - name: prod gets evidence only
    match:
      rule: ["*miner*"]
      fields: {k8s.ns.name: prod}
    actions: [collect]
  - name: miners
    match:
      rule: ["*miner*"]
      priority: ">= Critical"
    actions: [quarantine, collect, delete]
  - name: noise
    match: {}
    actions: []
"""


class CountingBackend(FakeBackend):
    """Counts concurrent responses to check the bound."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.active = 0
        self.max_active = 0
        self.count_lock = threading.Lock()

    def check(self, target: Target, plan: Any) -> dict[str, Any]:
        with self.count_lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(0.02)
        with self.count_lock:
            self.active -= 1
        return super().check(target, plan)

    def locate(
        self, alert: Alert, progress: Progress, ahead: object = None, on_found: Any = None
    ) -> Target:
        return super().locate(alert, progress, ahead, on_found)


def json_alert(
    ns: str, pod: str, pid: int, priority: str = "Critical", rule: str | None = None
) -> str:
    return json.dumps(
        {
            "time": "2026-11-28T08:30:00.123456789Z",
            "priority": priority,
            "rule": rule or "Suspicious crypto miner process",
            "output": f"Suspicious crypto miner process (name=xmrig pid={pid})",
            "output_fields": {
                "k8s.ns.name": ns,
                "k8s.pod.name": pod,
                "proc.name": "xmrig",
                "proc.pid": pid,
            },
            "tags": ["crypto-mining"],
        }
    )


def text_alert(pid: int) -> str:
    return (
        f"08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, "
        f"cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x, pid={pid})"
    )


def make_stream(seed: int = 7) -> tuple[list[str], dict[str, Target]]:
    rnd = random.Random(seed)
    targets: dict[str, Target] = {}
    sources: list[str] = []
    for i in range(20):
        ns = "prod" if i < 4 else "default"
        pod = f"miner-{i:02d}"
        t = make_target(pod=pod, ns=ns)
        targets[pod] = t
        targets[f"pid:{10000 + i}"] = t  # the same pod, seen by host pid
        sources.append(json_alert(ns, pod, 10000 + i))
        if ns == "default":
            sources.append(text_alert(10000 + i))
    lines: list[str] = []
    # every pod raises alerts, in both shapes, repeated, interleaved with noise
    for n in range(1000):
        roll = rnd.random()
        if n < len(sources):
            lines.append(sources[n])
        elif roll < 0.7:
            lines.append(rnd.choice(sources))
        elif roll < 0.85:
            lines.append(
                json_alert(
                    "default", f"web-{rnd.randrange(50)}", 1, "Notice", "Read sensitive file"
                )
            )
        elif roll < 0.95:
            lines.append("Sat Nov 28 08:30:00 2026: Falco initialized with configuration file")
        else:
            lines.append("")
    return lines, targets


def test_1000_alerts_for_20_pods_make_exactly_20_incidents(tmp_path: Path) -> None:
    lines, targets = make_stream()
    backend = CountingBackend(targets=targets)
    seen: list[dict[str, Any]] = []
    summary = follow(
        lines,
        backend=backend,
        policy=parse_policy(POLICY),
        store=IncidentStore(tmp_path / "home"),
        options=FollowOptions(out_dir=tmp_path / "out", concurrency=3, apply=True),
        on_incident=seen.append,
    )
    doc = summary.to_dict()
    assert doc["incidents"] == 20 == len(seen)
    assert len({i["pod"] for i in doc["by_incident"]}) == 20
    assert doc["failures"] == 0
    miner_alerts = sum(1 for ln in lines if "xmrig" in ln and "Read sensitive" not in ln)
    assert sum(i["alerts"] for i in doc["by_incident"]) == miner_alerts
    assert doc["ignored"] == sum(1 for ln in lines if "Read sensitive file" in ln)
    assert doc["duplicates"] == miner_alerts - 20
    # located once per distinct source (36: 20 by k8s fields + 16 by host pid), never per alert
    assert backend.order().count("locate") == 36
    # bounded concurrency
    assert 1 <= backend.max_active <= 3
    # the policy: prod pods only get evidence, the others the full response
    by_pod = {i["pod"]: i for i in doc["by_incident"]}
    for name, t in targets.items():
        if name.startswith("pid:"):
            continue
        actions = set(by_pod[f"{t.namespace}/{t.pod}"]["actions"])
        if t.namespace == "prod":
            assert actions == {"collect"}
        else:
            assert actions == {"quarantine", "collect", "delete"}
    assert backend.order().count("quarantine") == 16
    assert backend.order().count("delete") == 16
    assert all(i["status"] == "ok" for i in doc["by_incident"])


def test_without_yes_follow_only_plans(tmp_path: Path) -> None:
    lines, targets = make_stream(seed=3)
    backend = FakeBackend(targets=targets)
    summary = follow(
        lines[:200],
        backend=backend,
        policy=flag_policy(),
        store=IncidentStore(tmp_path / "home"),
        options=FollowOptions(out_dir=tmp_path / "out"),
    )
    assert summary.incidents
    assert "bundle" not in backend.order() and "snapshot" not in backend.order()
    assert backend.dry_runs == {"quarantine": True, "delete": True}
    assert all(i["status"] == "dry-run" for i in summary.incidents)
    assert not (tmp_path / "out").exists()


def test_no_delete_wins_over_the_policy(tmp_path: Path) -> None:
    lines, targets = make_stream(seed=5)
    backend = FakeBackend(targets=targets)
    follow(
        lines[:100],
        backend=backend,
        policy=parse_policy(POLICY),
        store=IncidentStore(tmp_path / "home"),
        options=FollowOptions(out_dir=tmp_path / "out", apply=True, delete=False),
    )
    assert "quarantine" in backend.order() and "delete" not in backend.order()


def test_locate_failure_is_reported_and_others_go_on(tmp_path: Path) -> None:
    from falcoir.errors import TargetNotFound

    class Flaky(FakeBackend):
        def locate(
            self, alert: Alert, progress: Progress, ahead: object = None, on_found: Any = None
        ) -> Target:
            if alert.k8s.pod == "miner-01":
                raise TargetNotFound("pod default/miner-01 not found")
            return super().locate(alert, progress, ahead, on_found)

    lines = [json_alert("default", f"miner-{i:02d}", 100 + i) for i in range(3)] * 3
    targets = {f"miner-{i:02d}": make_target(pod=f"miner-{i:02d}") for i in range(3)}
    summary = follow(
        lines,
        backend=Flaky(targets=targets),
        policy=flag_policy(),
        store=IncidentStore(tmp_path / "home"),
        options=FollowOptions(out_dir=tmp_path / "out", apply=True),
    )
    assert len(summary.incidents) == 2
    assert len(summary.failures) == 1
    assert summary.failures[0]["error"]["exit_code"] == 5


def test_alert_keys() -> None:
    from falcoir.core.parse import parse_text

    a, b = parse_text(json_alert("ns", "p", 5) + "\n" + text_alert(5) + "\n").alerts
    assert alert_key(a) == ("k8s", "ns", "p")
    assert alert_key(b) == ("pid", "", "5", "xmrig")


def test_a_followed_response_starts_when_the_pod_is_known(tmp_path: Path) -> None:
    # The incident's bundle and snapshot start as soon as locate knows the pod (its owner
    # chain is still being read); the change waits for the owners, and the incident
    # record carries them.
    lines, targets = make_stream()
    one = next(ln for ln in lines if "xmrig" in ln and '"k8s.pod.name"' in ln)
    backend = FakeBackend(targets=targets, owners_delay=0.4)
    seen: list[dict[str, Any]] = []
    follow(
        [one],
        backend=backend,
        policy=parse_policy(POLICY),
        store=IncidentStore(tmp_path / "home"),
        options=FollowOptions(out_dir=tmp_path / "out", apply=True),
        on_incident=seen.append,
    )
    assert len(seen) == 1 and seen[0]["status"] == "ok", seen
    loc, snap = backend.span("locate"), backend.span("snapshot")
    assert snap[0] < loc[1], "the snapshot waited for the owner chain"
    assert seen[0]["locate"]["owner"], "the incident lost its owner chain"
