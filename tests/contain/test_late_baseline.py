"""A baseline probe read ahead that is still running when the pod is labelled (it lost
the race with the policy, or its answer is slow) does not hold the proof up: the proof
probe starts at once, and the baseline's answer is judged when the proof is in."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from falcoir.core.incident import IncidentStore
from tests.contain.cluster import NS, POD, make_cluster
from tests.contain.test_quarantine import SlowFirstProbe, _run_prepared


class Timed(SlowFirstProbe):
    """SlowFirstProbe that also records when each probe started."""

    def install_miner(self, namespace: str, pod: str) -> None:
        super().install_miner(namespace, pod)
        inner = self.exec_handlers[(namespace, pod, None)]
        self.starts: list[float] = []

        def handler(argv, stdin):  # type: ignore[no-untyped-def]
            self.starts.append(time.monotonic())
            return inner(argv, stdin)

        self.exec_handlers[(namespace, pod, None)] = handler


@pytest.fixture
def store(tmp_path: Path) -> IncidentStore:
    return IncidentStore(tmp_path / "home")


def _cluster(decide_first: bool, delay: float) -> Timed:
    cluster = Timed()
    cluster.decide_first = decide_first
    cluster.delay = delay
    cluster.objects = make_cluster().objects
    cluster.install_miner(NS, POD)
    return cluster


def test_a_baseline_that_lost_the_race_does_not_delay_the_proof(store: IncidentStore) -> None:
    # The baseline tries only once the policy is in force (it lost the race), and hangs.
    cluster = _cluster(decide_first=False, delay=1.0)
    result, _, steps = _run_prepared(cluster, store)
    assert len(cluster.starts) >= 2
    proof_started = cluster.starts[1]
    assert cluster.labelled_at <= proof_started < cluster.first_answer_at, (
        "the proof waited for the baseline's answer"
    )
    # Judged afterwards: a failure after the label proves nothing about before.
    assert result.verified["probe"]["before"] is None
    assert any("not used as a baseline" in s.detail for s in steps if s.name == "probe")
    assert result.verified["egress_blocked"] is True


def test_a_late_answer_of_a_baseline_that_connected_still_counts(store: IncidentStore) -> None:
    # It connected before the policy (its answer came back slowly): still a baseline.
    cluster = _cluster(decide_first=True, delay=1.0)
    result, _, _ = _run_prepared(cluster, store)
    proof_started = cluster.starts[1]
    assert cluster.labelled_at <= proof_started < cluster.first_answer_at
    before = result.verified["probe"]["before"]
    assert before is not None and before["connected"] is True
    assert result.verified["egress_blocked"] is True
    assert result.verified["probe"]["after"]["connected"] is False


def test_a_baseline_answering_just_after_the_label_gives_the_quick_proof(
    store: IncidentStore,
) -> None:
    # The usual case on a fast network plugin: connected in time, answered a moment after
    # the label. Waited for briefly, it is the baseline, and the proof need not wait out
    # the full probe timeout.
    from falcoir.core.contain.isolation import LATE_BASELINE_GRACE_S

    cluster = _cluster(decide_first=True, delay=LATE_BASELINE_GRACE_S / 5)
    result, _, _ = _run_prepared(cluster, store)
    assert cluster.labelled_at < cluster.first_answer_at, "not the case under test"
    before = result.verified["probe"]["before"]
    assert before is not None and before["connected"] is True
    after = result.verified["probe"]["after"]
    assert after["connected"] is False
    # the quick wait (about the baseline's own time), not the full --probe-timeout of 3 s
    assert float(after["argv"][1]) < 1.0


def test_a_late_baseline_is_recorded_when_the_endpoint_is_allowed(store: IncidentStore) -> None:
    # --allow-cidr covers the alert's endpoint: nothing to prove, but the baseline that
    # was running belongs in the record (and in the action log's steps).
    from falcoir.core.contain import QuarantineOptions
    from tests.contain.test_quarantine import FAST, POOL

    cluster = _cluster(decide_first=True, delay=1.0)
    opts = QuarantineOptions(**FAST, allow_cidrs=(f"{POOL[0]}/32",))  # type: ignore[arg-type]
    result, _, steps = _run_prepared(cluster, store, opts)
    assert result.verified["egress_blocked"] is None
    before = result.verified["probe"]["before"]
    assert before is not None and before["connected"] is True
    assert any(s.name == "probe" for s in steps)
