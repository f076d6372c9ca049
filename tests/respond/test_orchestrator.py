"""The respond step graph against a fake backend: order, failures, Ctrl-C, dry run."""

from __future__ import annotations

import _thread
import json
import threading
from pathlib import Path

import pytest

from falcoir.core.clock import Clock
from falcoir.core.incident import IncidentStore, read_actions
from falcoir.core.policy import ActionOptions
from falcoir.core.respond import RespondRequest, respond
from falcoir.core.respond.graph import Step, StepStatus, run_graph
from falcoir.errors import ApiError, ClusterUnreachable, Forbidden, TargetNotFound

from .fake_backend import FakeBackend, make_alert


def run(
    tmp_path: Path,
    backend: FakeBackend,
    *,
    actions: tuple[str, ...] = ("quarantine", "collect", "delete"),
    dry_run: bool = False,
    confirm: object = None,
    options: ActionOptions | None = None,
):  # type: ignore[no-untyped-def]
    req = RespondRequest(
        alert=make_alert(),
        out_dir=tmp_path / "out",
        actions=frozenset(actions),
        options=options or ActionOptions(),
        dry_run=dry_run,
    )
    return respond(
        backend,
        req,
        store=IncidentStore(tmp_path / "home"),
        clock=Clock.now(),
        confirm=confirm,  # type: ignore[arg-type]
        grace_s=2.0,
    )


def statuses(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {n: r.status.value for n, r in result.records.items()}


def test_happy_path_order_and_json(tmp_path: Path) -> None:
    backend = FakeBackend(delay={"snapshot": 0.3, "quarantine": 0.6, "collect": 0.2})
    result = run(tmp_path, backend)
    assert result.exit_code == 0, result.to_dict()
    assert set(statuses(result).values()) == {"ok"}
    # the snapshot's commands start before quarantine, which does not wait for their
    # output; quarantine and collect overlap; delete after seal.
    snap, quar, coll = backend.span("snapshot"), backend.span("quarantine"), backend.span("collect")
    seal, dele, rep = backend.span("seal"), backend.span("delete"), backend.span("report")
    assert backend.snapshot_started_at <= quar[0] < snap[1] <= coll[0]
    assert quar[0] < coll[1] and coll[0] < quar[1], "quarantine and collection run concurrently"
    assert coll[1] <= seal[0] <= seal[1] <= dele[0] <= dele[1] <= rep[0]
    assert quar[1] <= dele[0], "never delete while containment is being verified"
    doc = result.to_dict()
    for key in ("incident", "locate", "collect", "quarantine", "delete", "timings"):
        assert key in doc
    assert doc["locate"]["pod"] == "cryptominer-demo-7d9c-abcde"
    assert doc["quarantine"]["verified"]["egress_blocked"] is True
    assert doc["collect"]["complete"] is True
    assert {a["name"] for a in doc["collect"]["artifacts"]} >= {
        "snapshot/processes.txt",
        "exec/ls-tmp.txt",
    }
    t = doc["timings"]
    assert 0 < t["containment_s"] < t["total_s"]
    assert set(t["steps"]) >= {"locate", "snapshot", "quarantine", "collect", "delete"}
    assert doc["failed_step"] is None and doc["error"] is None
    # The bundle holds the action log and the step record, sealed complete twice.
    bundle = backend.bundles[0]
    assert bundle.sealed == [True, True]
    actions = [json.loads(x) for x in bundle.files["data/actions.jsonl"].splitlines()]
    assert [a["action"] for a in actions] == ["create", "delete"]
    assert json.loads(bundle.files["data/respond.json"])["incident"] == result.incident.id  # type: ignore[union-attr]
    json.dumps(doc)  # all JSON-able


@pytest.mark.parametrize(
    ("step", "exc", "code", "ran", "not_ran"),
    [
        ("locate", TargetNotFound("no pod"), 5, [], ["bundle", "quarantine", "collect", "delete"]),
        ("locate", ClusterUnreachable("down"), 3, [], ["bundle", "quarantine"]),
        (
            "check",
            Forbidden("nope", missing=["create networkpolicies -n default"]),
            4,
            ["snapshot"],
            ["quarantine", "collect", "delete"],
        ),
        (
            "quarantine",
            ApiError("lab 500", status=500),
            1,
            ["collect", "seal", "delete", "report"],
            [],
        ),
        (
            "snapshot",
            ApiError("pod gone", status=404),
            1,
            ["quarantine", "seal", "report"],
            ["delete"],
        ),
        (
            "collect",
            ApiError("lab 500", status=500),
            1,
            ["quarantine", "seal", "report"],
            ["delete"],
        ),
        ("seal", OSError("disk full"), 1, ["quarantine", "collect"], ["delete"]),
        ("delete", Forbidden("cannot delete pods"), 4, ["seal", "report"], []),
    ],
)
def test_failed_step_stops_its_dependants(
    tmp_path: Path,
    step: str,
    exc: BaseException,
    code: int,
    ran: list[str],
    not_ran: list[str],
) -> None:
    backend = FakeBackend(fail={step: exc})
    result = run(tmp_path, backend)
    doc = result.to_dict()
    assert result.exit_code == code
    assert doc["failed_step"] == step
    assert doc["error"]["step"] == step
    assert doc["error"]["message"] == str(exc) or type(exc).__name__ in doc["error"]["message"]
    if isinstance(exc, Forbidden) and exc.missing:
        assert doc["error"]["missing"] == list(exc.missing)
    called = backend.order()
    for name in ran:
        assert name in called, (name, called)
    for name in not_ran:
        assert name not in called or name == step, (name, called)
    for name in not_ran:
        if name != step and name in result.records:
            assert result.records[name].status is StepStatus.SKIPPED
            assert "not run" in result.records[name].detail or result.records[name].detail


def test_incomplete_collection_keeps_the_pod_and_exits_7(tmp_path: Path) -> None:
    backend = FakeBackend(incomplete={"collect"})
    result = run(tmp_path, backend)
    assert result.exit_code == 7
    assert "delete" not in backend.order()
    assert result.records["delete"].status is StepStatus.SKIPPED
    assert "evidence incomplete" in result.records["delete"].detail
    assert result.to_dict()["status"] == "incomplete"
    assert backend.bundles[0].sealed == [False, False]


def test_no_delete_leaves_the_pod_quarantined(tmp_path: Path) -> None:
    backend = FakeBackend()
    result = run(tmp_path, backend, actions=("quarantine", "collect"))
    assert result.exit_code == 0
    assert "delete" not in backend.order() and "quarantine" in backend.order()
    assert "--no-delete" in result.records["delete"].detail


def test_dry_run_changes_nothing_and_writes_no_bundle(tmp_path: Path) -> None:
    backend = FakeBackend()
    result = run(tmp_path, backend, dry_run=True)
    assert result.exit_code == 0
    assert backend.dry_runs == {"quarantine": True, "delete": True}
    assert "bundle" not in backend.order() and "snapshot" not in backend.order()
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "home").exists(), "a dry run stores no incident"
    doc = result.to_dict()
    assert doc["dry_run"] is True and doc["status"] == "dry-run"
    assert doc["timings"]["containment_s"] is None


def test_refused_confirmation_changes_nothing(tmp_path: Path) -> None:
    seen = []

    def no(plan):  # type: ignore[no-untyped-def]
        seen.append(plan.lines())
        return False

    backend = FakeBackend()
    result = run(tmp_path, backend, confirm=no)
    assert result.exit_code == 2
    assert result.to_dict()["failed_step"] == "confirm"
    assert result.to_dict()["status"] == "cancelled"
    assert not {"quarantine", "collect", "delete"} & set(backend.order())
    assert any("quarantine" in line for line in seen[0])
    assert any("ReplicaSet cryptominer-demo-7d9c will recreate it" in line for line in seen[0])
    # The read-only snapshot taken while the plan was read is kept, sealed as incomplete.
    assert backend.bundles[0].sealed[0] is False


def test_unverified_containment_is_a_warning(tmp_path: Path) -> None:
    backend = FakeBackend(egress_blocked=False)
    result = run(tmp_path, backend)
    doc = result.to_dict()
    assert doc["timings"]["containment_s"] is None
    assert any("not verified" in w for w in doc["warnings"])


def test_ctrl_c_leaves_a_consistent_marked_state(tmp_path: Path) -> None:
    backend = FakeBackend(delay={"collect": 1.5})

    def interrupt() -> None:
        # Ctrl-C arrives while the full collection is running.
        _thread.interrupt_main()

    timer = threading.Timer(0.5, interrupt)
    timer.start()
    result = run(tmp_path, backend)
    timer.join()
    doc = result.to_dict()
    assert result.interrupted and doc["status"] == "interrupted"
    assert result.exit_code == 130
    # collect was allowed to finish within the grace period; delete never started.
    assert "delete" not in backend.order()
    assert result.records["delete"].status is StepStatus.SKIPPED
    bundle = backend.bundles[0]
    assert bundle.sealed and bundle.sealed[-1] is False, "marked incomplete"
    marked = json.loads(bundle.files["data/respond.json"])
    assert marked["interrupted"] is True
    actions = list(read_actions(result.incident.actions_path))  # type: ignore[union-attr]
    assert actions[-1].action == "interrupt" and "not done" in actions[-1].detail


def test_graph_rejects_unknown_dependencies() -> None:
    with pytest.raises(ValueError, match="unknown step"):
        run_graph([Step("a", lambda: 1, needs=("b",))], clock=Clock.now())


def test_graph_runs_independent_steps_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=5)
    steps = [
        Step("a", barrier.wait),
        Step("b", barrier.wait),
        Step("c", lambda: 3, needs=("a", "b")),
    ]
    run = run_graph(steps, clock=Clock.now())
    assert {r.status for r in run.records.values()} == {StepStatus.OK}
    assert run.records["c"].result == 3


def test_the_snapshot_starts_while_the_owner_chain_is_read(tmp_path: Path) -> None:
    # Locate hands over the pod before its owner chain is read: the bundle and the
    # volatile snapshot start then; the permission check (and so every change) waits
    # for the owners. The result and report still carry the whole owner chain.
    backend = FakeBackend(owners_delay=0.4)
    result = run(tmp_path, backend)
    assert result.exit_code == 0, result.to_dict()
    loc = backend.span("locate")
    bundle, snap, quar = (
        backend.span("bundle"),
        backend.span("snapshot"),
        backend.span("quarantine"),
    )
    assert bundle[0] < loc[1] and snap[0] < loc[1], "bundle and snapshot waited for the owners"
    assert quar[0] >= loc[1], "nothing changes before the owners are known"
    assert [o["kind"] for o in result.to_dict()["locate"]["owner"]] == ["ReplicaSet", "Deployment"]
    steps = {s["name"]: s for s in result.to_dict()["steps"]}
    assert steps["owners"]["status"] == "ok"
    assert steps["locate"]["ended_s"] < steps["owners"]["ended_s"]


def test_an_owner_chain_that_fails_keeps_the_evidence_and_changes_nothing(
    tmp_path: Path,
) -> None:
    class OwnersFail(FakeBackend):
        def locate(self, alert, progress, ahead=None, on_found=None):  # type: ignore[no-untyped-def]
            target = super().locate(alert, progress, ahead, on_found)
            del target
            raise ClusterUnreachable("connection refused while reading the owners")

    backend = OwnersFail()
    result = run(tmp_path, backend)
    st = statuses(result)
    assert st["owners"] == "failed" and st["locate"] == "ok"
    assert st["snapshot"] == "ok" and st["bundle"] == "ok"
    assert "quarantine" not in backend.order() and "delete" not in backend.order()
    assert result.exit_code == 3
    assert result.to_dict()["failed_step"] == "owners"
    # the bundle says which pod it is about, and that its owner chain is missing
    (bundle,) = backend.bundles
    located = json.loads(bundle.files["target.json"])
    assert located["pod"] and located["partial"] is True
    assert "owner chain was not read" in located["partial_reason"]
