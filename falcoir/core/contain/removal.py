"""Owner-aware deletion: say what the controller will do, keep evidence safe."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from falcoir.core.contain.common import (
    Step,
    StepCallback,
    owner_chain,
    with_retries,
)
from falcoir.core.gateway import JSON, PODS, ClusterGateway
from falcoir.core.incident import ActionLog, Incident, IncidentStore
from falcoir.core.owners import followable
from falcoir.core.rbac import (
    SCALABLE_KINDS,
    SUSPENDABLE_KINDS,
    Permission,
    check_permissions,
    delete_permissions,
)
from falcoir.core.target import OwnerRef, Target
from falcoir.errors import (
    ApiNotFound,
    FalcoirError,
    InputError,
    PreconditionFailed,
    TargetNotFound,
)


@dataclass(frozen=True)
class DeleteOptions:
    grace_period: int | None = None
    force: bool = False
    """Delete even though falcoir holds no evidence bundle for the pod."""
    scale_owner: bool = False
    """Stop the top controller (scale to zero, or suspend a Job/CronJob) first."""
    dry_run: bool = False
    check_permissions: bool = True


@dataclass(frozen=True)
class EvidenceCheck:
    """Whether one recorded bundle counts as evidence held: it verifies (every hash)
    and its ``bag-info.txt`` says ``Falcoir-Complete: true``."""

    path: str
    verified: bool
    complete: bool | None
    """``Falcoir-Complete`` (``None`` when absent or unreadable)."""
    problem: str | None = None
    """Why it is not evidence held (``None`` when it is)."""

    @property
    def held(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "verified": self.verified,
            "complete": self.complete,
            "held": self.held,
            "problem": self.problem,
        }


def check_evidence(path: str | Path) -> EvidenceCheck:
    """Verify a bundle (directory or archive) and read ``Falcoir-Complete``."""
    from falcoir.core.bundle import verify

    shown = str(path)
    try:
        report = verify(Path(path))
    except FalcoirError as exc:
        return EvidenceCheck(shown, False, None, f"cannot be read: {exc.message}")
    except OSError as exc:
        return EvidenceCheck(shown, False, None, f"cannot be read: {exc}")
    complete = report.complete
    if not report.ok:
        first = report.problems[0] if report.problems else None
        example = f"; first: {first.kind} {first.path}: {first.message}" if first else ""
        return EvidenceCheck(
            shown,
            False,
            complete,
            f"fails verification ({len(report.problems)} problem(s){example})",
        )
    if complete is not True:
        why = (
            "is marked incomplete (Falcoir-Complete: false in bag-info.txt)"
            if complete is False
            else "has no Falcoir-Complete in bag-info.txt"
        )
        return EvidenceCheck(shown, True, complete, why)
    return EvidenceCheck(shown, True, True)


def _check_bundles(bundles: tuple[str, ...]) -> tuple[EvidenceCheck, ...]:
    """Newest first, up to the first bundle that is evidence held (one is enough)."""
    out: list[EvidenceCheck] = []
    for path in reversed(bundles):
        check = check_evidence(path)
        out.append(check)
        if check.held:
            break
    return tuple(out)


@dataclass(frozen=True)
class DeletePlan:
    namespace: str
    pod: str
    pod_uid: str | None
    owners: tuple[OwnerRef, ...]
    consequence: str
    """What the owner will do once the pod is gone, in plain words."""
    recreates: bool
    """A controller will start a replacement."""
    top_replicas: int | None = None
    incident: str | None = None
    bundles: tuple[str, ...] = ()
    """Evidence bundles on disk for this pod."""
    evidence: tuple[EvidenceCheck, ...] = ()
    """What was found checking ``bundles`` (newest first, up to one that is held)."""
    quarantined: bool = False
    terminating: bool = False
    """The pod is already being deleted (``deletionTimestamp`` set)."""

    @property
    def top(self) -> OwnerRef | None:
        return self.owners[-1] if self.owners else None

    @property
    def has_evidence(self) -> bool:
        """A bundle that verifies and is marked complete: an incomplete or damaged
        bundle is not evidence held."""
        return any(e.held for e in self.evidence)

    @property
    def evidence_problems(self) -> tuple[str, ...]:
        """Why each recorded bundle checked does not count (empty when one does)."""
        if self.has_evidence:
            return ()
        return tuple(f"{e.path} {e.problem}" for e in self.evidence)

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "pod": self.pod,
            "pod_uid": self.pod_uid,
            "owner": [{"kind": o.kind, "name": o.name, "uid": o.uid} for o in self.owners],
            "consequence": self.consequence,
            "recreates": self.recreates,
            "top_replicas": self.top_replicas,
            "incident": self.incident,
            "bundles": list(self.bundles),
            "has_evidence": self.has_evidence,
            "evidence": [e.to_dict() for e in self.evidence],
            "quarantined": self.quarantined,
            "terminating": self.terminating,
        }


@dataclass(frozen=True)
class DeleteResult:
    plan: DeletePlan
    deleted: bool
    status: str
    """``deleted``, ``gone`` (it was already gone), ``dry-run``."""
    scaled: dict[str, Any] | None = None
    dry_run: bool = False
    steps: tuple[Step, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident": self.plan.incident,
            "namespace": self.plan.namespace,
            "pod": self.plan.pod,
            "status": self.status,
            "deleted": self.deleted,
            "scaled": self.scaled,
            "dry_run": self.dry_run,
            "plan": self.plan.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
        }


def _consequence(owners: tuple[OwnerRef, ...], pod: str) -> tuple[str, bool]:
    if not owners:
        return (
            "a bare pod with no controller: once deleted it is gone for good, with "
            "everything in it that was not collected",
            False,
        )
    direct, top = owners[0], owners[-1]
    via = f" (managed by {top.kind} {top.name})" if top is not direct else ""
    stop = f"; --scale-owner scales {top.kind} {top.name} to zero instead"
    if direct.kind in ("ReplicaSet", "ReplicationController"):
        return (
            f"{direct.kind} {direct.name}{via} will recreate it at once under a new name, "
            "from the same (possibly backdoored) template" + stop,
            True,
        )
    if direct.kind == "DaemonSet":
        return (
            f"DaemonSet {direct.name} runs this pod on every node and will recreate it on "
            "this node at once, from the same template; stopping it means deleting the "
            "DaemonSet or changing its node selector (falcoir will not)",
            True,
        )
    if direct.kind == "StatefulSet":
        return (
            f"StatefulSet {direct.name} will recreate it with the same name ({pod}) and "
            "the same volumes" + stop,
            True,
        )
    if direct.kind == "Job":
        return (
            f"Job {direct.name}{via} may start a new pod (until its backoffLimit or "
            "completions are reached)"
            + (
                f"; --scale-owner suspends {top.kind} {top.name}"
                if top.kind in SUSPENDABLE_KINDS
                else ""
            ),
            True,
        )
    return (f"{direct.kind} {direct.name} may recreate it", True)


def plan_delete(
    gateway: ClusterGateway, target: Target, *, store: IncidentStore | None = None
) -> DeletePlan:
    """What deleting ``target``'s pod entails (reads only)."""
    ns, name = target.namespace, target.pod
    try:
        pod = with_retries(lambda: gateway.get(PODS, name, ns))
    except ApiNotFound:
        raise TargetNotFound(f"pod {ns}/{name} not found") from None
    meta = pod.get("metadata") or {}
    uid = meta.get("uid")
    if target.pod_uid and uid and uid != target.pod_uid:
        raise TargetNotFound(
            f"pod {ns}/{name} was replaced (uid {uid}, expected {target.pod_uid})",
            hint="pass --pod NS/NAME to act on the new pod deliberately",
        )
    owners = with_retries(lambda: owner_chain(gateway, pod))
    consequence, recreates = _consequence(owners, name)
    replicas: int | None = None
    res = followable(owners[-1]) if owners else None
    if res is not None and owners[-1].kind in SCALABLE_KINDS:
        try:
            top = with_retries(lambda: gateway.get(res, owners[-1].name, ns))
            value = (top.get("spec") or {}).get("replicas")
            replicas = int(value) if isinstance(value, int) else 1
        except ApiNotFound:
            pass
    from falcoir.core.contain.policy import LABEL_KEY

    plan = DeletePlan(
        namespace=ns,
        pod=name,
        pod_uid=uid,
        owners=owners,
        consequence=consequence,
        recreates=recreates,
        top_replicas=replicas,
        quarantined=LABEL_KEY in (meta.get("labels") or {}),
        terminating=bool(meta.get("deletionTimestamp")),
    )
    return with_current_evidence(plan, store)


def with_current_evidence(plan: DeletePlan, store: IncidentStore | None) -> DeletePlan:
    """``plan`` with its evidence read from the incident store now.

    The cluster half of a plan (owners, what they will do) may be read ahead; the
    evidence half is local state that changes when a bundle is sealed, so whoever
    deletes on a plan read earlier refreshes it first."""
    inc = store.for_pod(plan.namespace, plan.pod, plan.pod_uid) if store else None
    bundles = tuple(b for b in (inc.bundles if inc else ()) if Path(b).exists())
    return replace(
        plan,
        incident=inc.id if inc else None,
        bundles=bundles,
        evidence=_check_bundles(bundles),
    )


def validate_delete(plan: DeletePlan, options: DeleteOptions) -> str | None:
    """Refuse what ``delete`` would refuse, before asking anyone anything. Returns the
    kind of controller ``--scale-owner`` will stop (``None`` without it)."""
    if options.grace_period is not None and not 0 <= options.grace_period <= 86400:
        raise InputError("--grace-period must be 0-86400 seconds")
    if not plan.has_evidence and not options.force:
        ref = f"{plan.namespace}/{plan.pod}"
        if not plan.bundles:
            raise InputError(
                f"falcoir holds no evidence bundle for pod {ref}; "
                "deleting it destroys the evidence",
                hint=f"collect first (falcoir collect --pod {ref}), "
                "or pass --force to delete anyway",
            )
        raise InputError(
            f"falcoir holds no complete, verified evidence bundle for pod {ref}; "
            "deleting it destroys the evidence:\n"
            + "\n".join(f"  - {p}" for p in plan.evidence_problems),
            hint=f"collect again (falcoir collect --pod {ref}), or pass --force to delete anyway",
        )
    top = plan.top
    stop_kind: str | None = None
    if options.scale_owner:
        if top is None:
            raise InputError("--scale-owner: the pod has no controller to scale")
        if followable(top) is None:
            # The pod's author writes its ownerReferences: one naming another API group
            # (a custom resource called "Deployment") must not scale a real Deployment.
            raise InputError(
                f"--scale-owner: the pod's controller {top.kind} {top.name} "
                f"({top.api_version or 'no apiVersion'}) is not one falcoir reads or scales",
                hint="delete the pod without --scale-owner, and stop that controller yourself",
            )
        if top.kind not in SCALABLE_KINDS | SUSPENDABLE_KINDS:
            raise InputError(
                f"--scale-owner: a {top.kind} cannot be scaled to zero",
                hint="delete the pod without --scale-owner (it will be recreated), or "
                f"handle {top.kind} {top.name} yourself",
            )
        stop_kind = top.kind
    return stop_kind


def required_permissions(plan: DeletePlan, options: DeleteOptions) -> tuple[Permission, ...]:
    return delete_permissions(
        owner_kinds=[o.kind for o in plan.owners],
        scale_owner_kind=validate_delete(plan, options),
    )


def delete(
    gateway: ClusterGateway,
    target: Target,
    *,
    plan: DeletePlan,
    options: DeleteOptions,
    incident: Incident,
    log: ActionLog,
    on_step: StepCallback | None = None,
) -> DeleteResult:
    """Delete the pod (stopping its top controller first with ``scale_owner``).
    Refuses when falcoir holds no evidence bundle for it, unless ``force``."""
    stop_kind = validate_delete(plan, options)
    top = plan.top
    if options.check_permissions:
        perms = delete_permissions(
            owner_kinds=[o.kind for o in plan.owners], scale_owner_kind=stop_kind
        )
        check_permissions(gateway, perms, plan.namespace)

    steps: list[Step] = []
    outcome = "dry-run" if options.dry_run else "ok"

    def emit(name: str, status: str, detail: str) -> None:
        s = Step(name, status, detail)
        steps.append(s)
        if on_step is not None:
            on_step(s)

    if plan.bundles and not plan.has_evidence:
        # Only reached with --force: say why the bundles on record do not count.
        emit(
            "evidence",
            "warning",
            "--force: no complete, verified bundle: " + "; ".join(plan.evidence_problems),
        )
    ns = plan.namespace
    scaled: dict[str, Any] | None = None
    if stop_kind is not None and top is not None:
        scaled = _stop_owner(gateway, plan, top, options.dry_run, log)
        emit("scale", outcome, f"{top.kind} {top.name}: {scaled['change']}")
    data: dict[str, Any] = {
        "grace_period": options.grace_period,
        "uid": plan.pod_uid,
        "owner": [o.kind + "/" + o.name for o in plan.owners],
        "forced_without_evidence": not plan.has_evidence,
        "evidence_problems": list(plan.evidence_problems),
    }
    try:
        with_retries(
            lambda: gateway.delete(
                PODS,
                plan.pod,
                ns,
                grace_period_seconds=options.grace_period,
                propagation_policy="Background",
                dry_run=options.dry_run,
                # Only the pod the plan (and the evidence) is about: a pod that took its
                # name since (a StatefulSet's replacement) is refused by the server.
                uid=plan.pod_uid,
            )
        )
    except ApiNotFound:
        log.append("delete", "Pod", ns, plan.pod, "unchanged", "already gone", data=data)
        emit("delete", "unchanged", f"pod {ns}/{plan.pod} is already gone")
        return DeleteResult(plan, False, "gone", scaled, options.dry_run, tuple(steps))
    except PreconditionFailed:
        why = "already gone: its name now belongs to another pod, which was left alone"
        log.append("delete", "Pod", ns, plan.pod, "unchanged", why, data=data)
        emit("delete", "unchanged", f"pod {ns}/{plan.pod} (uid {plan.pod_uid}) is {why}")
        return DeleteResult(plan, False, "gone", scaled, options.dry_run, tuple(steps))
    except FalcoirError as exc:
        log.append("delete", "Pod", ns, plan.pod, "failed", str(exc), data=data)
        raise
    log.append(
        "delete",
        "Pod",
        ns,
        plan.pod,
        outcome,
        plan.consequence,
        dry_run=options.dry_run,
        data=data,
    )
    emit("delete", outcome, f"pod {ns}/{plan.pod} deleted")
    return DeleteResult(
        plan,
        not options.dry_run,
        "dry-run" if options.dry_run else "deleted",
        scaled,
        options.dry_run,
        tuple(steps),
    )


def _stop_owner(
    gateway: ClusterGateway, plan: DeletePlan, top: OwnerRef, dry_run: bool, log: ActionLog
) -> dict[str, Any]:
    ns = plan.namespace
    res = followable(top)
    if res is None:  # validate_delete refuses these first
        raise InputError(f"--scale-owner: {top.kind} {top.name} is not one falcoir scales")
    outcome = "dry-run" if dry_run else "ok"
    if top.kind in SCALABLE_KINDS:
        patch: JSON = {"spec": {"replicas": 0}}
        try:
            with_retries(
                lambda: gateway.patch(
                    res, top.name, patch, ns, dry_run=dry_run, subresource="scale"
                )
            )
        except FalcoirError as exc:
            log.append("scale", top.kind, ns, top.name, "failed", str(exc), data={"patch": patch})
            raise
        log.append(
            "scale",
            top.kind,
            ns,
            top.name,
            outcome,
            f"replicas {plan.top_replicas} -> 0",
            dry_run=dry_run,
            data={"from": plan.top_replicas, "to": 0},
        )
        return {
            "kind": top.kind,
            "name": top.name,
            "from": plan.top_replicas,
            "to": 0,
            "change": f"replicas {plan.top_replicas} -> 0",
        }
    patch = {"spec": {"suspend": True}}
    try:
        with_retries(lambda: gateway.patch(res, top.name, patch, ns, dry_run=dry_run))
    except FalcoirError as exc:
        log.append("patch", top.kind, ns, top.name, "failed", str(exc), data={"patch": patch})
        raise
    log.append(
        "patch",
        top.kind,
        ns,
        top.name,
        outcome,
        "suspended",
        dry_run=dry_run,
        data={"patch": patch},
    )
    return {"kind": top.kind, "name": top.name, "suspend": True, "change": "suspended"}
