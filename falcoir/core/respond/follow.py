"""``respond --follow``: a stream of alerts in, one incident per pod out.

Alerts are parsed as they arrive (``iter_parse``), the response policy decides what
each one gets (ignored alerts cost nothing), and alerts are deduplicated twice: first
on what the alert itself says (k8s fields, container id, node + host pid), so a pod
that raises a thousand alerts is located once; then on the located pod (uid, else
namespace/name), so alerts that name the same pod differently still make one incident.
Responses run with bounded concurrency. Without ``--yes`` every response is a dry run:
the plan is computed and validated by the server, nothing changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from falcoir.core.alert import Alert
from falcoir.core.clock import Clock
from falcoir.core.incident import IncidentStore
from falcoir.core.policy import ActionOptions, Decision, Policy
from falcoir.core.respond.backend import Backend, Progress
from falcoir.core.respond.early import with_actions
from falcoir.core.respond.graph import error_info
from falcoir.core.respond.orchestrator import RespondRequest, respond
from falcoir.core.target import Target


@dataclass(frozen=True)
class FollowOptions:
    out_dir: Path
    concurrency: int = 4
    apply: bool = False
    delete: bool = True
    """``--no-delete`` wins over the policy."""
    """``--yes``: act. Without it every response is a dry run (plans only)."""
    grace_s: float = 10.0


def alert_key(alert: Alert) -> tuple[str, ...]:
    """What the alert itself says about where it came from (before locating)."""
    if alert.k8s.namespace and alert.k8s.pod:
        return ("k8s", alert.k8s.namespace, alert.k8s.pod)
    cid = alert.container.full_id or alert.container.id
    if cid and cid != "host":
        return ("container", cid[:12])
    if alert.process.pid is not None:
        return ("pid", alert.node or "", str(alert.process.pid), alert.process.name or "")
    return ("alert", alert.rule or "", alert.output or alert.raw)


def pod_key(target: Target) -> tuple[str, ...]:
    return ("uid", target.pod_uid) if target.pod_uid else ("pod", target.namespace, target.pod)


@dataclass
class Slot:
    """One distinct alert source; becomes an incident, or joins another one."""

    key: tuple[str, ...]
    first: Alert
    decision: Decision
    received_mono: float
    alerts: int = 1
    target: Target | None = None
    joined: tuple[str, ...] | None = None
    """The pod key of the incident this source turned out to belong to."""
    status: str | None = None
    """How its response ended (``ok``, ``failed``...); the full result is not kept: a
    stream may run for weeks."""
    error: dict[str, Any] | None = None
    locate_s: float | None = None


@dataclass
class FollowSummary:
    lines: int = 0
    alerts: int = 0
    problems: int = 0
    skipped: int = 0
    ignored: int = 0
    duplicates: int = 0
    interrupted: bool = False
    incidents: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    ignored_by_rule: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alerts": self.alerts,
            "parse_problems": self.problems,
            "skipped_lines": self.skipped,
            "ignored": self.ignored,
            "duplicates": self.duplicates,
            "incidents": len(self.incidents),
            "failures": len(self.failures),
            "interrupted": self.interrupted,
            "by_incident": self.incidents,
            "failed": self.failures,
        }


class _Prelocated:
    """The backend, with ``locate`` answered from what follow mode already found: the
    pod at once, the whole target (with its owner chain) when ``whole`` has it."""

    def __init__(self, backend: Backend, found: Target, whole: Future[Target]) -> None:
        self._backend = backend
        self._found = found
        self._whole = whole

    def locate(
        self,
        alert: Alert,
        progress: Progress,
        ahead: ActionOptions | None = None,
        on_found: Callable[[Target], None] | None = None,
    ) -> Target:
        progress("located when the alert arrived")
        if on_found is not None:
            on_found(self._found)
        return self._whole.result()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def _locate_early(
    backend: Backend, alert: Alert, ahead: ActionOptions | None
) -> tuple[Target, Future[Target]]:
    """Locate ``alert``'s pod; return as soon as the pod is known (the incident is told
    apart from the others by its uid, and its response starts then), with the whole
    target (its owner chain) to come. Raises what locate raises before the pod is
    known; a failure after it is raised by the future."""
    whole: Future[Target] = Future()
    found: list[Target] = []
    known = threading.Event()

    def on_found(where: Target) -> None:
        if not found:
            found.append(where)
        known.set()

    def run() -> None:
        try:
            whole.set_result(backend.locate(alert, lambda _t: None, ahead, on_found))
        except BaseException as exc:
            whole.set_exception(exc)
        finally:
            known.set()

    threading.Thread(target=run, name="falcoir-follow-locate", daemon=True).start()
    known.wait()
    if found:
        return found[0], whole
    return whole.result(), whole


IncidentCallback = Callable[[dict[str, Any]], None]


def follow(
    lines: Iterable[str],
    *,
    backend: Backend,
    policy: Policy,
    store: IncidentStore,
    options: FollowOptions,
    on_incident: IncidentCallback | None = None,
    on_note: Callable[[str], None] | None = None,
    report_writer: Callable[[Any], Any] | None = None,
) -> FollowSummary:
    """Respond to every alert in ``lines`` (a file or a never-ending stream)."""
    from falcoir.core.parse import ParseProblem, Skipped, iter_parse

    summary = FollowSummary()
    backend.warm(stream=True)  # before the first alert: the answers are ready when it comes
    slots: dict[tuple[str, ...], Slot] = {}
    pods: dict[tuple[str, ...], Slot] = {}
    lock = threading.Lock()
    futures: list[Future[None]] = []
    pool = ThreadPoolExecutor(
        max_workers=max(1, options.concurrency), thread_name_prefix="falcoir-follow"
    )

    def note(text: str) -> None:
        if on_note is not None:
            on_note(text)

    def handle(slot: Slot) -> None:
        # Timings of a followed alert count from the moment it was read.
        wall = time.time() - (time.monotonic() - slot.received_mono)
        clock = Clock(slot.received_mono, wall, "alert")
        acting = options.apply and "quarantine" in slot.decision.actions
        try:
            target, whole = _locate_early(
                backend, slot.first, slot.decision.options if acting else None
            )
        except Exception as exc:
            slot.error = {"step": "locate", **error_info(exc)}
            with lock:
                summary.failures.append(
                    {"key": list(slot.key), "alerts": slot.alerts, "error": slot.error}
                )
            note(f"cannot locate {slot.first.rule or 'alert'}: {slot.error['message']}")
            return
        slot.locate_s = clock.elapsed()
        slot.target = target
        pkey = pod_key(target)
        with lock:
            owner = pods.get(pkey)
            if owner is not None:
                slot.joined = pkey
                owner.alerts += slot.alerts
                # Its later alerts were counted as duplicates as they came; now its
                # first one is a duplicate too.
                summary.duplicates += 1
                return
            pods[pkey] = slot
        request = RespondRequest(
            alert=slot.first,
            out_dir=options.out_dir,
            actions=slot.decision.actions,
            options=slot.decision.options,
            dry_run=not options.apply,
            policy_rule=slot.decision.rule,
        )
        result = respond(
            _Prelocated(backend, target, whole),
            request,
            store=store,
            clock=clock,
            confirm=None,
            report_writer=report_writer,
            grace_s=options.grace_s,
        )
        slot.status = result.status
        doc = result.to_dict()
        doc["follow"] = {
            "alerts": slot.alerts,
            "first_alert_line": slot.first.line,
            "key": list(slot.key),
            "locate_s": round(slot.locate_s, 4),
        }
        with lock:
            summary.incidents.append(_incident_summary(slot, doc))
            if result.failed is not None:
                summary.failures.append(
                    {"key": list(slot.key), "alerts": slot.alerts, "error": doc["error"]}
                )
        if on_incident is not None:
            on_incident(doc)

    try:
        for item in iter_parse(lines):
            if isinstance(item, ParseProblem):
                summary.problems += 1
                continue
            if isinstance(item, Skipped):
                summary.skipped += 1
                continue
            alert = item
            summary.alerts += 1
            decision = with_actions(policy.decide(alert), delete=options.delete)
            if decision.ignored:
                summary.ignored += 1
                name = decision.rule or "(no rule matched)"
                summary.ignored_by_rule[name] = summary.ignored_by_rule.get(name, 0) + 1
                continue
            key = alert_key(alert)
            with lock:
                slot = slots.get(key)
                if slot is not None:
                    summary.duplicates += 1
                    if slot.joined is not None:
                        pods[slot.joined].alerts += 1
                    else:
                        slot.alerts += 1
                    continue
                slot = Slot(key, alert, decision, time.monotonic())
                slots[key] = slot
            # Finished responses are let go of: a stream may run for weeks.
            futures[:] = [f for f in futures if not f.done()]
            futures.append(pool.submit(handle, slot))
    except KeyboardInterrupt:
        summary.interrupted = True
        pool.shutdown(wait=False, cancel_futures=True)
        wait_futures(futures, timeout=options.grace_s)
    else:
        wait_futures(futures)
        pool.shutdown(wait=True)
    # Alert counts may have grown after an incident was reported: refresh them.
    with lock:
        by_key = {tuple(i["key"]): i for i in summary.incidents}
        for slot in slots.values():
            entry = by_key.get(slot.key)
            if entry is not None:
                entry["alerts"] = slot.alerts
    return summary


def _incident_summary(slot: Slot, doc: dict[str, Any]) -> dict[str, Any]:
    target = slot.target
    return {
        "key": list(slot.key),
        "incident": doc.get("incident"),
        "pod": f"{target.namespace}/{target.pod}" if target else None,
        "alerts": slot.alerts,
        "policy_rule": slot.decision.rule,
        "actions": doc.get("actions"),
        "status": doc.get("status"),
        "exit_code": doc.get("exit_code"),
        "failed_step": doc.get("failed_step"),
        "containment_s": (doc.get("timings") or {}).get("containment_s"),
        "total_s": (doc.get("timings") or {}).get("total_s"),
    }
