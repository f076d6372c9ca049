"""``respond``: the whole runbook for one alert, as a graph of steps.

::

    locate ─▶ check ─▶ confirm ─────────────────┬─▶ quarantine (verified) ──┐
       └─▶ bundle ─▶ snapshot ─(commands run)───┘                          ├─▶ delete ─▶ report
                        └─(output in)─▶ collect ─▶ seal ───────────────────┘

The volatile snapshot (processes, connections) comes first: it is read-only, so it runs
while the operator reads the plan, and containment begins only once its commands are
running in the pod (it never waits for their output). Quarantine and the full
collection then run concurrently; the bundle is sealed as soon as the evidence is in.
Deletion comes last: after the bundle is sealed and containment verified, and never
when the evidence is incomplete. The report is added to the bundle at the end (the
bundle is reopened and sealed again), so it holds every action, deletion included. A
failed step stops only what needs it; the result names the first failed step, and its
exit code is the run's.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from falcoir.core.alert import Alert
from falcoir.core.clock import Clock
from falcoir.core.incident import (
    ActionLog,
    Incident,
    IncidentStore,
    iso,
    new_incident_id,
    read_actions,
    utc_now,
)
from falcoir.core.policy import ActionOptions
from falcoir.core.respond.backend import IN_FORCE_KEY, Backend, Bundle, JSONDict, Plan
from falcoir.core.respond.early import ahead_for
from falcoir.core.respond.graph import (
    GraphRun,
    Listener,
    Step,
    StepRecord,
    StepSkip,
    StepStatus,
    error_info,
    run_graph,
)
from falcoir.core.target import Target
from falcoir.errors import ConfirmationRefused, ExitCode

STEP_TITLES: Mapping[str, str] = {
    "locate": "Locate the pod",
    "owners": "Read its owners",
    "check": "Check permissions",
    "confirm": "Confirm the plan",
    "bundle": "Open the evidence bundle",
    "snapshot": "Volatile snapshot",
    "quarantine": "Quarantine (verified)",
    "collect": "Full collection",
    "seal": "Seal the bundle",
    "delete": "Delete the pod",
    "report": "Incident report",
}

INTERRUPTED_EXIT = 130
SNAPSHOT_WAIT_S = 10.0
"""The longest containment waits for the snapshot's commands to start."""


@dataclass(frozen=True)
class RespondRequest:
    alert: Alert
    out_dir: Path
    actions: frozenset[str] = frozenset({"quarantine", "collect", "delete"})
    options: ActionOptions = field(default_factory=ActionOptions)
    dry_run: bool = False
    policy_rule: str | None = None
    alert_read_s: float | None = None
    """When the alert was in hand, on the run's clock (``-f -`` waits for it)."""


Confirm = Callable[[Plan], bool]
Notes = Callable[[str, str], None]
"""(step name, note): progress inside a step, for the live view."""


@dataclass
class RespondResult:
    request: RespondRequest
    records: dict[str, StepRecord]
    interrupted: bool
    incident: Incident | None
    target: Target | None
    plan: Plan | None
    bundle: JSONDict | None
    artifacts: list[JSONDict]
    report: JSONDict | None
    containment_s: float | None
    egress_verified_s: float | None
    total_s: float
    clock_source: str
    warnings: list[str] = field(default_factory=list)

    def result(self, name: str) -> Any:
        rec = self.records.get(name)
        return rec.result if rec is not None and rec.status is StepStatus.OK else None

    @property
    def failed(self) -> StepRecord | None:
        for rec in self.records.values():
            if rec.status is StepStatus.FAILED:
                return rec
        return None

    @property
    def complete(self) -> bool:
        return bool(self.bundle and self.bundle.get("complete"))

    @property
    def exit_code(self) -> int:
        failed = self.failed
        if failed is not None and failed.error is not None:
            return int(failed.error["exit_code"])
        if self.interrupted:
            return INTERRUPTED_EXIT
        if self.bundle is not None and not self.complete:
            return int(ExitCode.INCOMPLETE)
        return int(ExitCode.OK)

    @property
    def status(self) -> str:
        failed = self.failed
        if failed is not None:
            return "cancelled" if isinstance(failed.exception, ConfirmationRefused) else "failed"
        if self.interrupted:
            return "interrupted"
        if self.bundle is not None and not self.complete:
            return "incomplete"
        return "dry-run" if self.request.dry_run else "ok"

    def to_dict(self) -> JSONDict:
        failed = self.failed
        collect: JSONDict | None = None
        if self.bundle is not None:
            collect = {
                "incident": self.incident.id if self.incident else None,
                "bundle": self.bundle.get("dir"),
                "archive": self.bundle.get("archive"),
                "archive_sha256": self.bundle.get("archive_sha256"),
                "complete": self.complete,
                "artifacts": self.artifacts,
            }
        return {
            "incident": self.incident.id if self.incident else None,
            "status": self.status,
            "exit_code": self.exit_code,
            "dry_run": self.request.dry_run,
            "policy_rule": self.request.policy_rule,
            "actions": sorted(self.request.actions),
            "alert": {
                "rule": self.request.alert.rule,
                "priority": self.request.alert.priority,
                "time": self.request.alert.time,
                "line": self.request.alert.line,
            },
            "locate": self.target.to_dict() if self.target else None,
            "plan": self.plan.to_dict() if self.plan else None,
            "snapshot": self.result("snapshot"),
            "quarantine": self.result("quarantine"),
            "collect": collect,
            "delete": self.result("delete"),
            "report": self.report,
            "failed_step": failed.name if failed else None,
            "error": None if failed is None else {"step": failed.name, **(failed.error or {})},
            "interrupted": self.interrupted,
            "warnings": self.warnings,
            "steps": [r.to_dict() for r in self.records.values()],
            "timings": {
                "containment_s": None
                if self.containment_s is None
                else round(self.containment_s, 3),
                "egress_verified_s": None
                if self.egress_verified_s is None
                else round(self.egress_verified_s, 3),
                "total_s": round(self.total_s, 3),
                "alert_read_s": None
                if self.request.alert_read_s is None
                else round(self.request.alert_read_s, 3),
                "clock": self.clock_source,
                "steps": {
                    r.name: round(r.duration_s, 4)
                    for r in self.records.values()
                    if r.duration_s is not None
                },
            },
        }


class _State:
    """What the steps share; each field is written by one step only."""

    def __init__(self) -> None:
        self.found: Target | None = None
        """The pod, as soon as locate knows it (its owner chain may be on its way)."""
        self.target: Target | None = None
        """The same with its owner chain: what check, quarantine and delete act on."""
        self.incident: Incident | None = None
        self.log: ActionLog | None = None
        self.plan: Plan | None = None
        self.bundle: Bundle | None = None
        self.bundle_dir: Path | None = None
        self.seal: JSONDict | None = None
        self.containment_mono: float | None = None
        self.egress_verified_mono: float | None = None
        self.snapshot_started = threading.Event()
        self.lock = threading.Lock()


def _seal_target(st: _State) -> tuple[Target | None, str | None]:
    """What ``target.json`` records when sealing, and why it is partial (``None``: it is
    the located target, owner chain included)."""
    if st.target is not None:
        return st.target, None
    if st.found is not None:
        return st.found, "locate found the pod, but its owner chain was not read"
    return None, None


def respond(
    backend: Backend,
    request: RespondRequest,
    *,
    store: IncidentStore,
    clock: Clock,
    confirm: Confirm | None = None,
    on_change: Listener | None = None,
    notes: Notes | None = None,
    report_writer: Callable[[Mapping[str, Any]], Mapping[str, bytes]] | None = None,
    grace_s: float = 10.0,
    locate_started: float | None = None,
) -> RespondResult:
    """Run the response for one alert. Never raises for a step's failure: the result
    says which step failed and why. ``confirm`` is asked before the first change
    (``None``: already confirmed, as with ``--yes``). ``locate_started``: when the
    backend's locate began, if before this call (``falcoir.core.respond.early``)."""
    import time

    st = _State()
    alert, opts = request.alert, request.options
    # What can be asked before the pod is known, alongside locate; and, when the quarantine
    # will go ahead without a question, its reads as soon as locate knows the pod.
    acts = request.actions
    backend.warm()
    ahead = ahead_for(acts, opts, dry_run=request.dry_run, asks=confirm is not None)
    # Who we are (one API call) is asked alongside locate, not before it.
    operator_box: list[str] = []
    asker = threading.Thread(
        target=lambda: operator_box.append(_safe_call(backend.operator, "unknown")),
        name="falcoir-whoami",
        daemon=True,
    )
    asker.start()

    def operator() -> str:
        asker.join(30.0)
        return operator_box[0] if operator_box else "unknown"

    warnings: list[str] = []

    def note(step: str) -> Callable[[str], None]:
        def emit(text: str) -> None:
            if notes is not None:
                notes(step, text)

        return emit

    located: dict[str, Any] = {}
    pod_known = threading.Event()
    locate_done = threading.Event()

    def call_locate() -> None:
        def on_found(where: Target) -> None:
            located.setdefault("found", where)
            pod_known.set()

        try:
            located["target"] = backend.locate(alert, note("locate"), ahead, on_found)
        except BaseException as exc:  # raised again by the step that waits for it
            located["error"] = exc
        finally:
            locate_done.set()
            pod_known.set()

    def do_locate() -> JSONDict:
        """Done as soon as the pod is known (the owner chain may still be on its way:
        the ``owners`` step waits for it), so the bundle and the snapshot start then."""
        threading.Thread(target=call_locate, name="falcoir-locate-call", daemon=True).start()
        pod_known.wait()
        target: Target | None = located.get("found")
        if target is None:
            locate_done.wait()
            if "error" in located:
                raise located["error"]
            target = located["target"]
        assert target is not None
        st.found = target
        if request.dry_run:
            inc_id = new_incident_id()
            st.incident = Incident(
                inc_id,
                iso(utc_now()),
                target.namespace,
                target.pod,
                target.pod_uid,
                Path(tempfile.mkdtemp(prefix="falcoir-dry-run-")) / inc_id,
                alert_raw=alert.raw,
            )
        else:
            st.incident = store.open(
                target.namespace, target.pod, target.pod_uid, alert_raw=alert.raw
            )
        st.log = st.incident.action_log(operator())
        return target.to_dict()

    def do_owners() -> JSONDict:
        locate_done.wait()
        if "error" in located:
            raise located["error"]
        target: Target = located["target"]
        st.target = target
        return {"owner": [o.kind + "/" + o.name for o in target.owner]}

    def do_check() -> JSONDict:
        assert st.target is not None and st.incident is not None
        plan = Plan(
            target=st.target,
            incident=st.incident.id,
            quarantine="quarantine" in acts,
            collect="collect" in acts,
            delete="delete" in acts,
            options=opts,
            dry_run=request.dry_run,
            ask=confirm is not None and not request.dry_run,
        )
        info = backend.check(st.target, plan)
        st.plan = replace(
            plan,
            owner_effect=str(info.get("owner_effect") or ""),
            delete_plan=info.get("delete_plan"),
        )
        return info

    def do_confirm() -> JSONDict:
        assert st.plan is not None
        if request.dry_run:
            raise StepSkip("dry run: nothing will change")
        if confirm is None:
            return {"confirmed": True, "by": "--yes"}
        if not confirm(st.plan):
            raise ConfirmationRefused("cancelled at the plan: nothing was changed")
        return {"confirmed": True, "by": "operator"}

    def do_bundle() -> JSONDict:
        assert st.found is not None and st.incident is not None
        if request.dry_run:
            raise StepSkip("dry run: no evidence is collected")
        try:
            st.bundle = backend.open_bundle(request.out_dir, st.incident, alert, st.found)
        except BaseException:
            st.snapshot_started.set()  # no snapshot will come: containment must not wait
            raise
        st.bundle_dir = Path(st.bundle.dir)
        store.add_bundle(st.incident, st.bundle_dir)
        return {"dir": str(st.bundle_dir)}

    def do_snapshot() -> JSONDict:
        assert st.found is not None and st.bundle is not None
        try:
            return backend.snapshot(st.found, st.bundle, note("snapshot"), st.snapshot_started.set)
        finally:
            st.snapshot_started.set()

    def do_quarantine() -> JSONDict:
        assert st.target is not None and st.incident is not None and st.log is not None
        if "quarantine" not in acts:
            raise StepSkip("not asked for")
        if opts.snapshot_first and not request.dry_run:
            # The volatile state is read before the network changes: wait until the
            # snapshot's commands are running in the pod (not for their output).
            st.snapshot_started.wait(SNAPSHOT_WAIT_S)
        result = backend.quarantine(
            st.target, alert, st.incident, st.log, opts, request.dry_run, note("quarantine")
        )
        in_force = result.pop(IN_FORCE_KEY, None)
        verified = (result.get("verified") or {}).get("egress_blocked")
        if verified and not request.dry_run:
            # Contained when the policy the probe proved effective came into force (the
            # probe itself must wait out a dropped connection); verified: now.
            st.egress_verified_mono = time.monotonic()
            st.containment_mono = in_force if isinstance(in_force, float) else time.monotonic()
        elif not request.dry_run:
            warnings.append(
                "egress is not verified blocked: the network plugin may not enforce "
                "NetworkPolicies, or established connections survive"
            )
        return result

    def do_collect() -> JSONDict:
        assert st.target is not None and st.bundle is not None
        if "collect" not in acts:
            raise StepSkip("not asked for")
        return backend.collect(st.target, st.bundle, opts, note("collect"))

    def evidence_complete() -> bool:
        recs = run_records()
        snap = recs["snapshot"]
        if snap.status is not StepStatus.OK or not (snap.result or {}).get("complete", True):
            return False
        if "collect" in acts:
            col = recs["collect"]
            return col.status is StepStatus.OK and bool((col.result or {}).get("complete", True))
        return True

    def do_seal() -> JSONDict:
        assert st.bundle is not None
        complete = evidence_complete()
        st.seal = backend.seal(
            st.bundle,
            complete,
            None if complete else "evidence incomplete",
            *_seal_target(st),
        )
        return st.seal

    def do_delete() -> JSONDict:
        assert st.target is not None and st.incident is not None and st.log is not None
        if "delete" not in acts:
            raise StepSkip(
                "--no-delete: the pod is kept" + (" (quarantined)" if "quarantine" in acts else "")
            )
        if not request.dry_run:
            if "collect" not in acts:
                raise StepSkip("no full collection was asked for: the pod is kept")
            if not (st.seal and st.seal.get("complete")):
                raise StepSkip(
                    "evidence incomplete: the pod is kept"
                    + (" quarantined" if "quarantine" in acts else "")
                    + " so it can be collected again"
                )
        return backend.delete(st.target, st.incident, st.log, opts, request.dry_run, note("delete"))

    def do_report() -> JSONDict:
        return write_report(final=False)

    steps: list[Step] = [
        Step("locate", do_locate, began=locate_started),
        Step("owners", do_owners, needs=("locate",)),
        Step("check", do_check, needs=("owners",)),
        Step("confirm", do_confirm, needs=("check",)),
    ]
    if request.dry_run:
        steps += [
            Step("quarantine", do_quarantine, needs=("check",)),
            Step("delete", do_delete, needs=("check",), after=("quarantine",)),
        ]
    else:
        steps += [
            Step("bundle", do_bundle, needs=("locate",)),
            Step("snapshot", do_snapshot, needs=("bundle",)),
            Step("quarantine", do_quarantine, needs=("confirm",)),
            Step("collect", do_collect, needs=("bundle", "confirm"), after=("snapshot",)),
            # Sealed as soon as the evidence is in, while containment is still being
            # verified; the report step seals it again with every action.
            Step("seal", do_seal, needs=("bundle",), after=("owners", "snapshot", "collect")),
            Step("delete", do_delete, needs=("seal", "confirm"), after=("quarantine",)),
            Step("report", do_report, needs=("bundle",), after=("delete", "seal")),
        ]
    for s in steps:
        object.__setattr__(s, "title", STEP_TITLES.get(s.name, s.name))

    run_holder: dict[str, GraphRun] = {}
    live_records: dict[str, StepRecord] = {}

    def run_records() -> dict[str, StepRecord]:
        return run_holder["run"].records if "run" in run_holder else live_records

    def track(rec: StepRecord) -> None:
        live_records[rec.name] = rec
        if on_change is not None:
            on_change(rec)

    def artifacts() -> list[JSONDict]:
        out: list[JSONDict] = []
        for name in ("snapshot", "collect"):
            rec = run_records().get(name)
            if rec is not None and rec.status is StepStatus.OK and rec.result:
                out.extend(rec.result.get("artifacts") or [])
        return out

    def write_report(*, final: bool, interrupted: bool = False) -> JSONDict:
        if st.bundle_dir is None:
            raise StepSkip("no bundle")
        complete = bool(st.seal and st.seal.get("complete")) and not interrupted
        data = report_data(interrupted=interrupted)
        files: dict[str, bytes] = {
            "respond.json": json.dumps(data["respond"], indent=2, default=str).encode(),
        }
        if report_writer is not None:
            files.update(report_writer(data))
        sealed = backend.add_to_bundle(st.bundle_dir, files, complete, st.incident)
        st.seal = sealed
        names = sorted(files)
        return {
            **sealed,
            "files": names,
            "markdown": str(st.bundle_dir / "data" / "report.md") if "report.md" in files else None,
            "html": str(st.bundle_dir / "data" / "report.html") if "report.html" in files else None,
        }

    def report_data(*, interrupted: bool) -> dict[str, Any]:
        recs = run_records()
        actions = list(read_actions(st.incident.actions_path)) if st.incident else []
        return {
            "alert": alert,
            "target": st.target or st.found,
            "incident": st.incident.id if st.incident else None,
            "operator": operator(),
            "context": _safe_call(backend.context, ""),
            "bundle_dir": st.bundle_dir,
            "artifacts": artifacts(),
            "steps": [r.to_dict() for r in recs.values()],
            "actions": actions,
            "quarantine": recs["quarantine"].result if "quarantine" in recs else None,
            "delete": recs["delete"].result if "delete" in recs else None,
            "plan": st.plan,
            "interrupted": interrupted,
            "options": opts,
            "respond": {
                "incident": st.incident.id if st.incident else None,
                "interrupted": interrupted,
                "steps": [r.to_dict() for r in recs.values()],
                # What each collector did (a timed-out one may have left no artifact).
                **{
                    name: _collection_outcome(recs[name])
                    for name in ("snapshot", "collect")
                    if name in recs
                },
                "quarantine": recs["quarantine"].result if "quarantine" in recs else None,
                "delete": recs["delete"].result if "delete" in recs else None,
            },
        }

    run = run_graph(steps, clock=clock, on_change=track, grace_s=grace_s)
    run_holder["run"] = run
    recs = run.records

    if run.interrupted:
        _mark_interrupted(st, backend, recs, write_report, warnings)

    if request.dry_run and st.incident is not None:
        # A dry run leaves nothing behind, not even a local incident record.
        shutil.rmtree(st.incident.dir.parent, ignore_errors=True)

    total = clock.elapsed()
    containment = None if st.containment_mono is None else clock.elapsed(st.containment_mono)
    verified_at = (
        None if st.egress_verified_mono is None else clock.elapsed(st.egress_verified_mono)
    )
    report = recs["report"].result if "report" in recs else None
    if report is None and run.interrupted and isinstance(st.seal, dict) and "files" in st.seal:
        report = st.seal
    return RespondResult(
        request=request,
        records=recs,
        interrupted=run.interrupted,
        incident=st.incident,
        target=st.target or st.found,
        plan=st.plan,
        bundle=st.seal,
        artifacts=artifacts(),
        report=report,
        containment_s=containment,
        egress_verified_s=verified_at,
        total_s=total,
        clock_source=clock.source,
        warnings=warnings,
    )


def _mark_interrupted(
    st: _State,
    backend: Backend,
    recs: dict[str, StepRecord],
    write_report: Callable[..., JSONDict],
    warnings: list[str],
) -> None:
    """Leave a consistent, marked state after Ctrl-C: the action log says so, the
    bundle is sealed as incomplete, and the report explains what was and wasn't done."""
    if st.log is not None:
        done = [n for n, r in recs.items() if r.status is StepStatus.OK]
        not_done = [n for n, r in recs.items() if r.status is not StepStatus.OK]
        where = st.target or st.found
        try:
            st.log.append(
                "interrupt",
                "Respond",
                where.namespace if where else None,
                where.pod if where else "-",
                "interrupted",
                f"Ctrl-C: done {', '.join(done) or 'nothing'}; not done {', '.join(not_done)}",
            )
        except OSError as exc:
            warnings.append(f"could not record the interruption: {exc}")
    if st.bundle is None:
        return
    try:
        if recs.get("seal") is None or recs["seal"].status is not StepStatus.OK:
            st.seal = backend.seal(st.bundle, False, "interrupted (Ctrl-C)", *_seal_target(st))
        rep = recs.get("report")
        if rep is None or rep.status is not StepStatus.OK:
            st.seal = {**write_report(final=True, interrupted=True)}
    except KeyboardInterrupt:
        warnings.append("interrupted again while sealing: the bundle is left unsealed")
    except Exception as exc:
        warnings.append(f"could not seal the interrupted bundle: {error_info(exc)['message']}")


def _collection_outcome(rec: StepRecord) -> JSONDict | None:
    if not isinstance(rec.result, dict):
        return None
    keep = ("complete", "interrupted", "collectors", "notes", "binary", "debug_container")
    return {k: rec.result[k] for k in keep if k in rec.result}


def _safe_call(fn: Callable[[], str], default: str) -> str:
    try:
        return fn()
    except Exception:
        return default
