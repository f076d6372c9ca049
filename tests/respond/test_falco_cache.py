"""``respond --follow`` remembers the Falco pods between alerts, and nothing else."""

from __future__ import annotations

from pathlib import Path

from falcoir.core.gateway import PODS
from falcoir.core.incident import IncidentStore
from falcoir.core.respond.cache import FalcoPodsCache
from falcoir.core.respond.real import RealBackend
from tests.locate.world import scenario, text_alert


def _falco_lists(w: object) -> int:
    return sum(
        1
        for c in w.calls  # type: ignore[attr-defined]
        if c[0] == "list" and "app.kubernetes.io/name=falco" in str(c)
    )


def test_only_the_falco_pod_lists_are_remembered_and_only_for_a_while() -> None:
    w, _ = scenario()
    cache = FalcoPodsCache(w, ttl=60.0)  # type: ignore[arg-type]
    gw = cache.gateway
    sel = "app.kubernetes.io/name=falco"
    first = gw.list(PODS, None, label_selector=sel)
    again = gw.list(PODS, None, label_selector=sel)
    assert again == first and cache.hits == 1 and _falco_lists(w) == 1
    # Any other list is read fresh every time.
    n = len(w.calls)
    gw.list(PODS, "default")
    gw.list(PODS, "default")
    gw.list(PODS, None, label_selector="app=cryptominer")
    assert len(w.calls) == n + 3
    # Forgotten on demand, and stale after the ttl.
    cache.forget()
    gw.list(PODS, None, label_selector=sel)
    assert _falco_lists(w) == 2
    short = FalcoPodsCache(w, ttl=0.0)  # type: ignore[arg-type]
    short.gateway.list(PODS, None, label_selector=sel)
    short.gateway.list(PODS, None, label_selector=sel)
    assert short.hits == 0
    # What is not a list goes straight through.
    assert gw.context == w.context


def test_followed_alerts_list_the_falco_pods_once(tmp_path: Path) -> None:
    w, pod = scenario()
    backend = RealBackend(w, IncidentStore(tmp_path))  # type: ignore[arg-type]
    backend.warm(stream=True)
    t1 = backend.locate(text_alert(), lambda _t: None)
    lists = _falco_lists(w)
    t2 = backend.locate(text_alert(), lambda _t: None)
    assert (t1.pod, t2.pod) == (pod["metadata"]["name"],) * 2
    assert _falco_lists(w) == lists  # the second alert went straight to the exec


def test_a_falco_pod_that_moved_on_is_listed_afresh(tmp_path: Path) -> None:
    w, pod = scenario(nodes=1)
    backend = RealBackend(w, IncidentStore(tmp_path))  # type: ignore[arg-type]
    backend.warm(stream=True)
    backend.locate(text_alert(), lambda _t: None)
    # The DaemonSet replaced its pod: the remembered one is gone.
    w.delete(PODS, "falco-lab-node", "falco")
    w.falco("lab-node", "falco-lab-node-2")
    lists = _falco_lists(w)
    target = backend.locate(text_alert(), lambda _t: None)
    assert target.pod == pod["metadata"]["name"]
    assert _falco_lists(w) == lists + 1  # tried with the old list, then listed again
    # One-shot respond (no stream) never remembers anything.
    plain = RealBackend(w, IncidentStore(tmp_path / "plain"))  # type: ignore[arg-type]
    plain.warm()
    before = _falco_lists(w)
    plain.locate(text_alert(), lambda _t: None)
    plain.locate(text_alert(), lambda _t: None)
    assert _falco_lists(w) >= before + 2


def test_a_stream_lists_the_falco_pods_before_the_first_alert(tmp_path: Path) -> None:
    import time

    w, _ = scenario()
    backend = RealBackend(w, IncidentStore(tmp_path))  # type: ignore[arg-type]
    backend.warm(stream=True)
    deadline = time.monotonic() + 10
    while _falco_lists(w) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _falco_lists(w) == 1
    time.sleep(0.05)
    backend.locate(text_alert(), lambda _t: None)
    assert _falco_lists(w) == 1  # the first alert found them listed already
