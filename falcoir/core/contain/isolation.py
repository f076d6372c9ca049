"""Quarantine one pod with a verified deny-all NetworkPolicy, and release it.

Order matters: the policy (selecting only the quarantine label) is created first, then
the pod gets that label, then (optionally) the workload labels change so its controller
lets go of it. There is never a moment when the label points at nothing, and the
policy can never select another replica: no other pod carries the incident's label.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from falcoir.core.alert import Alert
from falcoir.core.contain import policy as pol
from falcoir.core.contain.common import (
    Step,
    StepCallback,
    actor,
    with_retries,
)
from falcoir.core.contain.probe import (
    Endpoint,
    ProbeOutcome,
    probe_endpoint,
    probe_trust,
    run_probe,
)
from falcoir.core.gateway import (
    JSON,
    NETWORK_POLICIES,
    PODS,
    ClusterGateway,
)
from falcoir.core.incident import ActionLog, Incident, IncidentStore, is_incident_id, iso, utc_now
from falcoir.core.owners import controller_ref, followable
from falcoir.core.rbac import check_permissions, quarantine_permissions, release_permissions
from falcoir.core.target import PodRef, Target
from falcoir.errors import (
    ApiConflict,
    ApiNotFound,
    ClusterError,
    FalcoirError,
    InputError,
    TargetNotFound,
)

T = TypeVar("T")


@dataclass(frozen=True)
class QuarantineOptions:
    ingress: bool = False
    """Deny ingress too."""
    allow_dns: bool = False
    """Allow DNS (UDP/TCP 53) to the cluster DNS pods only."""
    allow_cidrs: tuple[str, ...] = ()
    """Egress allowed to these networks (validated, canonical)."""
    detach_from_owner: bool = False
    """Change the workload labels so the controller releases the pod (and replaces it)."""
    probe: tuple[str, int] | None = None
    """Probe this HOST:PORT instead of the alert's endpoint."""
    dry_run: bool = False
    check_permissions: bool = True
    """SelfSubjectAccessReviews before any change (``respond`` may do its own)."""
    verify: bool = True
    """Probe from inside the pod (a baseline before, the proof after)."""
    probe_timeout: int = 3
    """Seconds each connection attempt may take."""
    verify_seconds: float = 10.0
    """How long to keep probing while the network plugin applies the policy."""
    detach_wait_seconds: float = 15.0
    """How long to wait for the controller to drop its ownerReference."""


@dataclass(frozen=True)
class QuarantineResult:
    incident: str
    namespace: str
    pod: str
    pod_uid: str | None
    policy_name: str
    policy_status: str
    """``created``, ``unchanged``, ``differs`` (an existing policy was left as it was),
    ``dry-run``."""
    policy_object: JSON
    """The policy as it is in the cluster (or, when created or dry-run, as sent)."""
    label_status: str
    """``applied``, ``unchanged``, ``dry-run``."""
    verified: dict[str, Any]
    dry_run: bool
    policy_differences: tuple[str, ...] = ()
    detach: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    wanted_object: JSON | None = None
    """What falcoir would have applied, when an existing policy differs from it."""

    @property
    def changed(self) -> bool:
        return not self.dry_run and (
            self.policy_status == "created"
            or self.label_status == "applied"
            or bool(self.detach and self.detach.get("status") == "applied")
        )

    @property
    def egress_blocked(self) -> bool | None:
        value = self.verified.get("egress_blocked")
        return value if isinstance(value, bool) else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "namespace": self.namespace,
            "pod": self.pod,
            "pod_uid": self.pod_uid,
            "policy": {
                "namespace": self.namespace,
                "name": self.policy_name,
                "status": self.policy_status,
                "differences": list(self.policy_differences),
                "object": self.policy_object,
                **({"wanted": self.wanted_object} if self.wanted_object is not None else {}),
            },
            "label": {"key": pol.LABEL_KEY, "value": self.incident, "status": self.label_status},
            "detach": self.detach,
            "verified": self.verified,
            "changed": self.changed,
            "dry_run": self.dry_run,
            "warnings": list(self.warnings),
            "steps": [s.to_dict() for s in self.steps],
        }


NOT_ENFORCED_WARNING = (
    "the quarantine policy is in place but the pod can still connect to {endpoint}: "
    "the network plugin does not enforce NetworkPolicies (flannel, for one, does not) or "
    "keeps established connections open (Calico does, through conntrack). The pod is "
    "NOT contained. Next: collect the evidence now (falcoir collect --pod {pod}), then "
    "stop it (falcoir delete --pod {pod} --scale-owner), or cordon and drain the node; "
    "check the CNI (kubectl -n kube-system get pods) before relying on NetworkPolicies."
)


class _Recorder:
    """Steps for progress, warnings, and the action log, in one place."""

    def __init__(self, log: ActionLog, on_step: StepCallback | None, dry_run: bool) -> None:
        self.log = log
        self.on_step = on_step
        self.dry_run = dry_run
        self.steps: list[Step] = []
        self.warnings: list[str] = []
        self._held: list[Step] | None = None

    def step(self, name: str, status: str, detail: str = "") -> None:
        s = Step(name, status, detail)
        if self._held is not None:
            self._held.append(s)
            return
        self.steps.append(s)
        if self.on_step is not None:
            self.on_step(s)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Steps told inside are told when it ends, after any told by ``release``."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            for s in held:
                self.step(s.name, s.status, s.detail)

    def release(self, name: str, status: str, detail: str = "") -> None:
        """Tell a step now, even while others are held."""
        held, self._held = self._held, None
        try:
            self.step(name, status, detail)
        finally:
            self._held = held

    def warn(self, name: str, message: str) -> None:
        self.warnings.append(message)
        self.step(name, "warning", message)

    def action(
        self,
        action: str,
        kind: str,
        namespace: str | None,
        name: str,
        outcome: str,
        detail: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        self.log.append(
            action,
            kind,
            namespace,
            name,
            "dry-run" if self.dry_run and outcome == "ok" else outcome,
            detail,
            dry_run=self.dry_run,
            data=data,
        )


def _validated(options: QuarantineOptions) -> QuarantineOptions:
    from dataclasses import replace

    from falcoir.core.contain.probe import valid_host

    cidrs = tuple(dict.fromkeys(pol.validate_cidr(c) for c in options.allow_cidrs))
    if options.probe is not None:
        host, port = options.probe
        if not valid_host(host):
            raise InputError(f"--probe: not a host name or IP address: {host!r}")
        pol.validate_port(port)
    if not 1 <= options.probe_timeout <= 60:
        raise InputError("probe timeout must be 1-60 seconds")
    return replace(options, allow_cidrs=cidrs)


def _get_optional(gateway: ClusterGateway, fn: Callable[[], JSON]) -> JSON | None:
    try:
        return with_retries(fn)
    except ApiNotFound:
        return None


def _check_pod(target: Target, pod: JSON) -> None:
    uid = (pod.get("metadata") or {}).get("uid")
    if target.pod_uid and uid and uid != target.pod_uid:
        raise TargetNotFound(
            f"pod {target.namespace}/{target.pod} was replaced (uid {uid}, "
            f"expected {target.pod_uid}); the alert's pod is gone",
            hint="locate the alert again, or pass --pod NS/NAME for the new pod",
        )
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        raise TargetNotFound(f"pod {target.namespace}/{target.pod} is being deleted")


def _backed_quarantine(
    gateway: ClusterGateway, store: IncidentStore | None, pod: JSON, value: str
) -> bool:
    """Whether the pod's quarantine label ``value`` is a real quarantine: a falcoir
    NetworkPolicy of that incident selects the pod, or the incident store records the
    incident with a policy. The label alone proves nothing: the pod's template can
    carry it."""
    if not is_incident_id(value):
        return False
    meta = pod.get("metadata") or {}
    ns = str(meta.get("namespace") or "")
    if store is not None:
        inc = store.get(value)
        if inc is not None and inc.policy and inc.namespace == ns:
            return True
    found = _get_optional(
        gateway, lambda: gateway.get(NETWORK_POLICIES, pol.policy_name(value), ns)
    )
    if found is None or not pol.is_falcoir_policy(found):
        return False
    annotations = (found.get("metadata") or {}).get("annotations") or {}
    selector = (found.get("spec") or {}).get("podSelector")
    return annotations.get(pol.ANN_INCIDENT) == value and pol.selector_matches(
        selector, pol.pod_labels(pod)
    )


def quarantine(
    gateway: ClusterGateway,
    target: Target,
    *,
    alert: Alert | None,
    options: QuarantineOptions,
    incident: Incident,
    log: ActionLog,
    on_step: StepCallback | None = None,
    store: IncidentStore | None = None,
    prepared: Prepared | None = None,
) -> QuarantineResult:
    """Isolate ``target``'s pod: policy first, then label, then (optionally) detach;
    then verify from inside the pod. Idempotent. Raises ``Forbidden`` before any
    change when a permission is missing. ``prepared``: the reads and the baseline
    probe done ahead by :func:`prepare` (used when they are for this very pod and
    incident, and fresh)."""
    options = _validated(options)
    ns, name = target.namespace, target.pod
    inc_id = pol.validate_label_value(incident.id)
    rec = _Recorder(log, on_step, options.dry_run)
    pname = pol.policy_name(inc_id)

    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="falcoir-quarantine") as pool:
        # The pod and any policy already in place are read in one round trip.
        ready = prepared if prepared is not None and prepared.usable(target, inc_id) else None
        existing_f: Future[JSON | None] = (
            _done(ready.existing)
            if ready is not None
            else pool.submit(
                _get_optional, gateway, lambda: gateway.get(NETWORK_POLICIES, pname, ns)
            )
        )
        pod = ready.pod if ready is not None else with_retries(lambda: gateway.get(PODS, name, ns))
        _check_pod(target, pod)
        pod_uid = (pod.get("metadata") or {}).get("uid")
        labels = pol.pod_labels(pod)
        current = labels.get(pol.LABEL_KEY)
        if (
            current is not None
            and current != inc_id
            and _backed_quarantine(gateway, store, pod, current)
        ):
            raise InputError(
                f"pod {ns}/{name} is already quarantined under incident {current}",
                hint=f"use that incident, or release it first: falcoir release --incident "
                f"{current}",
            )
        if current is not None and current != inc_id:
            # The workload can set this label itself (in its template): without a falcoir
            # policy behind it, it proves nothing and must not stop the quarantine.
            rec.warn(
                "label",
                f"pod {ns}/{name} carries {pol.LABEL_KEY}={current!r} but no falcoir "
                f"NetworkPolicy backs it (set by the workload itself?); replacing it with "
                f"{inc_id}",
            )

        owner = controller_ref(pod, strict=True) if options.detach_from_owner else None
        owner_obj: JSON | None = None
        if options.check_permissions:
            perms = quarantine_permissions(
                probe=options.verify and not options.dry_run,
                detach_owner_kind=owner.kind if owner else None,
            )
            check_permissions(gateway, perms, ns)
        if owner is not None:
            resource = followable(owner)
            if resource is None:
                raise InputError(
                    f"cannot detach from an owner {owner.kind} {owner.name} "
                    f"({owner.api_version or 'no apiVersion'}): not one falcoir reads"
                )
            owner_obj = _get_optional(gateway, lambda: gateway.get(resource, owner.name, ns))

        who = actor(gateway)
        body = pol.build_policy(
            incident_id=inc_id,
            namespace=ns,
            pod=name,
            pod_uid=pod_uid,
            opts=pol.PolicySpecOptions(options.ingress, options.allow_dns, options.allow_cidrs),
            rule=alert.rule if alert else None,
            alert_time=alert.time if alert else None,
            applied_by=who,
            applied_at=iso(utc_now()),
        )
        existing = existing_f.result()
        endpoint = probe_endpoint(alert, options.probe) if options.verify else None

        # A baseline probe, only when nothing is in place yet: it shows the endpoint was
        # reachable (so a failure afterwards means something) and which tool answers. It
        # runs while the policy is created: the policy selects only the quarantine label,
        # which the pod gets after both are done, so the probe still sees the way out.
        baseline_f: Future[ProbeOutcome] | None = None
        ahead = False  # the baseline probe was started ahead (by prepare), well before
        if ready is not None and ready.baseline is not None and endpoint == ready.endpoint:
            baseline_f = ready.baseline
            ahead = True
        elif endpoint and not options.dry_run and existing is None and current != inc_id:
            baseline_f = pool.submit(
                run_probe,
                gateway,
                ns,
                name,
                target.container,
                endpoint,
                timeout=options.probe_timeout,
            )

        # 1. the policy and 2. the label, sent together: containment is one round trip.
        # Either alone isolates nothing: a failed create takes the label back, a failed
        # label is reported as a half-applied quarantine, and a re-run (the whole is
        # idempotent) completes it. Progress is told in the order they mean.
        # A baseline probe started ahead (respond starts it when locate finds the pod,
        # a round trip or more earlier) is not waited for: its connection is made while
        # the requests are on the wire, and no network plugin enforces a policy before
        # the API server has stored it. A probe that connected shows the way out was
        # open; one that failed and answered after the label was sent proves nothing
        # (the policy may have been in force by then) and is not used as a baseline.
        differences: tuple[str, ...] = ()
        policy_status = "unchanged"
        created: Future[str] | None = None
        labelled: Future[None] | None = None
        with rec.held():
            if existing is None:
                created = pool.submit(_send_policy, gateway, body, options.dry_run)
            if not ahead:
                # Started just now: its exec could make its connection only after the
                # new policy is enforced (the lab's takes ~20 ms, a probe's exec more),
                # so the label waits for its answer, while the policy is created.
                baseline = _baseline(baseline_f, endpoint, rec)
            answered_before = baseline_f is None or baseline_f.done()
            if current != inc_id and created is not None:
                labelled = pool.submit(_send_label, gateway, ns, name, inc_id, options.dry_run)
            if ahead and answered_before:
                baseline = _baseline(baseline_f, endpoint, rec)  # in already: no wait
                ahead = False
            if created is not None:
                try:
                    policy_status = _record_policy(rec, body, created, options.dry_run)
                except FalcoirError as exc:
                    raise _undo_early_label(
                        gateway,
                        rec,
                        exc,
                        ns=ns,
                        pname=pname,
                        pod=name,
                        inc_id=inc_id,
                        current=current,
                        labelled=labelled,
                        dry_run=options.dry_run,
                    ) from exc
                if policy_status == "exists":
                    try:
                        existing = with_retries(lambda: gateway.get(NETWORK_POLICIES, pname, ns))
                    except FalcoirError:
                        if labelled is not None:  # it went on: the log must say so
                            with contextlib.suppress(FalcoirError):
                                _record_label(
                                    rec, ns, name, inc_id, current, labelled, options.dry_run
                                )
                        raise
        if existing is not None:
            differences = tuple(pol.spec_differences(existing.get("spec") or {}, body["spec"]))
            if not pol.is_falcoir_policy(existing):
                differences = (*differences, "metadata.labels (not created by falcoir)")
            if differences:
                policy_status = "differs"
                rec.warn(
                    "policy",
                    f"NetworkPolicy {ns}/{pname} exists and differs from this plan in "
                    f"{', '.join(differences)}; left as it is (release it first to re-apply)",
                )
                rec.action("create", "NetworkPolicy", ns, pname, "unchanged", "exists and differs")
            else:
                policy_status = "unchanged"
                rec.step("policy", "unchanged", f"NetworkPolicy {ns}/{pname} already in place")
        if store is not None and not options.dry_run:
            store.set_policy(incident, pname)

        # 2. the label (sent above, or now when the policy was already in place)
        if labelled is None and current != inc_id:
            labelled = _done_or_raised(
                partial(_send_label, gateway, ns, name, inc_id, options.dry_run)
            )
        try:
            label_status = _record_label(rec, ns, name, inc_id, current, labelled, options.dry_run)
        except FalcoirError as exc:
            if not options.dry_run:
                raise ClusterError(
                    f"quarantine half-applied: NetworkPolicy {ns}/{pname} is in place but "
                    f"labelling pod {ns}/{name} failed ({exc}); the pod is NOT isolated yet",
                    hint="re-run the same command (it is idempotent), or undo with "
                    f"falcoir release --incident {inc_id}",
                ) from exc
            raise
        late: Future[ProbeOutcome] | None = None
        if ahead:
            in_time = answered_before or labelled is None
            if in_time or baseline_f is None or baseline_f.done():
                baseline = _baseline(baseline_f, endpoint, rec, in_time=in_time)
            else:
                # Still running after the pod was labelled: it connected in time and
                # its answer is on the way (the usual case), or it lost the race with
                # the policy (the lab enforces within milliseconds) and hangs on a
                # dropped connection until its own timeout. The proof gives it a short
                # grace, then starts without it (see _verify).
                late, baseline = baseline_f, None

    # 3. detaching from the owner
    detach: dict[str, Any] | None = None
    if options.detach_from_owner:
        detach = _detach(gateway, pod, owner, owner_obj, inc_id, rec, options)

    # 4. verification
    if options.dry_run:
        verified: dict[str, Any] = {
            "egress_blocked": None,
            "reason": "dry run: nothing was applied, nothing to verify",
        }
    else:
        try:
            verified = _verify(
                gateway, target, inc_id, pname, endpoint, baseline, rec, options, late=late
            )
        except FalcoirError as exc:
            # The quarantine is in place; only the proof failed. Say so, do not lose it.
            verified = {"egress_blocked": None, "reason": f"verification failed: {exc}"}
            rec.warn("verify", verified["reason"])
    for key, value in probe_trust(None).items():
        verified.setdefault(key, value)
    return QuarantineResult(
        incident=inc_id,
        namespace=ns,
        pod=name,
        pod_uid=pod_uid,
        policy_name=pname,
        policy_status="dry-run"
        if options.dry_run and policy_status == "created"
        else policy_status,
        policy_object=body if existing is None else existing,
        wanted_object=body if differences else None,
        label_status=label_status,
        verified=verified,
        dry_run=options.dry_run,
        policy_differences=differences,
        detach=detach,
        warnings=tuple(rec.warnings),
        steps=tuple(rec.steps),
    )


PREPARED_MAX_AGE_S = 5.0
"""Reads done ahead of the quarantine older than this are done again."""


@dataclass(frozen=True)
class Prepared:
    """What :func:`quarantine` reads before it changes anything, read ahead (while the
    permissions are checked): the pod, any policy already in place, and the baseline
    probe, started when nothing is in place yet."""

    namespace: str
    pod_name: str
    incident: str
    pod: JSON
    existing: JSON | None
    endpoint: Endpoint | None
    baseline: Future[ProbeOutcome] | None
    at: float

    def fresh(self) -> bool:
        """Read recently enough to be used."""
        return time.monotonic() - self.at <= PREPARED_MAX_AGE_S

    def usable(self, target: Target, incident: str) -> bool:
        return (self.namespace, self.pod_name, self.incident) == (
            target.namespace,
            target.pod,
            incident,
        ) and self.fresh()


def _done(value: JSON | None) -> Future[JSON | None]:
    future: Future[JSON | None] = Future()
    future.set_result(value)
    return future


def prepare(
    gateway: ClusterGateway,
    target: Target,
    *,
    alert: Alert | None,
    incident_id: str,
    options: QuarantineOptions,
    probe_after: threading.Event | None = None,
) -> Prepared:
    """Read ahead what :func:`quarantine` needs before its first change (reads and a
    probe from inside the pod only; nothing changes). Raises what the reads raise.
    ``probe_after``: the probe waits for it (at most :data:`PROBE_AFTER_WAIT_S`): respond
    sets it once the volatile snapshot's commands run, so the snapshot does not record
    the probe's own connection.

    The baseline probe starts with the reads, not after them: it is read-only, and its
    exec is the longest of the three. When the reads show a quarantine already in place
    its answer is not used (it runs to its own timeout and is dropped)."""
    options = _validated(options)
    ns, name = target.namespace, target.pod
    inc_id = pol.validate_label_value(incident_id)
    pname = pol.policy_name(inc_id)
    endpoint = probe_endpoint(alert, options.probe) if options.verify else None
    speculative: Future[ProbeOutcome] | None = None
    workers = 2 if endpoint and not options.dry_run else 1
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="falcoir-prepare")
    try:
        if endpoint and not options.dry_run:
            speculative = pool.submit(
                _probe_once,
                probe_after,
                gateway,
                ns,
                name,
                target.container,
                endpoint,
                options.probe_timeout,
            )
        existing_f = pool.submit(
            _get_optional, gateway, lambda: gateway.get(NETWORK_POLICIES, pname, ns)
        )
        pod = with_retries(lambda: gateway.get(PODS, name, ns))
        existing = existing_f.result()
    finally:
        pool.shutdown(wait=False)  # the probe runs to its end; the thread then exits
    at = time.monotonic()
    current = pol.pod_labels(pod).get(pol.LABEL_KEY)
    baseline = speculative if existing is None and current != inc_id else None
    return Prepared(ns, name, inc_id, pod, existing, endpoint, baseline, at)


PROBE_AFTER_WAIT_S = 10.0
"""The longest a probe read ahead waits for the snapshot's commands to run."""


def _probe_once(
    after: threading.Event | None,
    gateway: ClusterGateway,
    ns: str,
    name: str,
    container: str | None,
    endpoint: Endpoint,
    timeout: int,
) -> ProbeOutcome:
    if after is not None:
        after.wait(PROBE_AFTER_WAIT_S)
    return run_probe(gateway, ns, name, container, endpoint, timeout=timeout)


def _baseline(
    future: Future[ProbeOutcome] | None,
    endpoint: Endpoint | None,
    rec: _Recorder,
    *,
    in_time: bool = True,
) -> ProbeOutcome | None:
    """The probe before the quarantine, if it says something. ``in_time``: it answered
    before the label was sent (else only a connection it made counts: a failure may be
    the new policy's doing)."""
    if future is None or endpoint is None:
        return None
    try:
        baseline = future.result()
    except FalcoirError as exc:
        # The policy is in place by now: containment goes on; only the proof is weaker.
        rec.release("probe", "warning", f"before: {endpoint.host}:{endpoint.port} {exc}")
        rec.warnings.append(f"the probe before the quarantine failed: {exc}")
        return None
    if not in_time and baseline.connected is not True:
        where = f"{endpoint.host}:{endpoint.port}"
        rec.release(
            "probe",
            "warning",
            f"before: {where} {baseline.detail} (answered after the pod was labelled: "
            "not used as a baseline)",
        )
        rec.warnings.append(
            f"the probe before the quarantine did not reach {where} before the pod was "
            "labelled: verification runs without a baseline"
        )
        return None
    rec.release("probe", "ok", f"before: {endpoint.host}:{endpoint.port} {baseline.detail}")
    return baseline


def _send_policy(gateway: ClusterGateway, body: JSON, dry_run: bool) -> str:
    """Create the policy: ``created``, or ``exists`` (created meanwhile, or by our own
    earlier attempt whose answer was lost; the caller compares it with the plan)."""
    try:
        with_retries(lambda: gateway.create(NETWORK_POLICIES, body, dry_run=dry_run))
    except ApiConflict:
        return "exists"
    return "created"


def _record_policy(rec: _Recorder, body: JSON, outcome: Future[str], dry_run: bool) -> str:
    """Record what :func:`_send_policy` did (in the caller's thread, in order)."""
    ns, pname = body["metadata"]["namespace"], body["metadata"]["name"]
    try:
        status = outcome.result()
    except FalcoirError as exc:
        rec.action("create", "NetworkPolicy", ns, pname, "failed", str(exc), {"object": body})
        rec.step("policy", "failed", str(exc))
        raise
    if status == "exists":
        return status
    rec.action("create", "NetworkPolicy", ns, pname, "ok", "quarantine policy", {"object": body})
    rec.step(
        "policy",
        "dry-run" if dry_run else "ok",
        f"NetworkPolicy {ns}/{pname}: " + "; ".join(pol.describe_rules(body["spec"])),
    )
    return status


def _label_patch(inc_id: str) -> JSON:
    return {"metadata": {"labels": {pol.LABEL_KEY: inc_id}}}


def _send_label(gateway: ClusterGateway, ns: str, name: str, inc_id: str, dry_run: bool) -> None:
    patch = _label_patch(inc_id)
    with_retries(lambda: gateway.patch(PODS, name, patch, ns, dry_run=dry_run))


def _record_label(
    rec: _Recorder,
    ns: str,
    name: str,
    inc_id: str,
    current: str | None,
    outcome: Future[None] | None,
    dry_run: bool,
) -> str:
    """Record what :func:`_send_label` did (``outcome`` None: nothing was sent, the pod
    already carries the label)."""
    if outcome is None:
        rec.step("label", "unchanged", f"pod {ns}/{name} already labelled")
        return "unchanged"
    patch = _label_patch(inc_id)
    try:
        outcome.result()
    except FalcoirError as exc:
        rec.action("patch", "Pod", ns, name, "failed", f"label: {exc}", {"patch": patch})
        rec.step("label", "failed", str(exc))
        raise
    if current is None:
        rec.action("patch", "Pod", ns, name, "ok", "quarantine label", {"patch": patch})
    else:
        rec.action(
            "patch",
            "Pod",
            ns,
            name,
            "ok",
            f"quarantine label (replaced {pol.LABEL_KEY}={current!r}, backed by no policy)",
            {"patch": patch, "replaced_label": current},
        )
    rec.step("label", "dry-run" if dry_run else "ok", f"pod {ns}/{name}: {pol.LABEL_KEY}={inc_id}")
    return "dry-run" if dry_run else "applied"


def _undo_early_label(
    gateway: ClusterGateway,
    rec: _Recorder,
    exc: FalcoirError,
    *,
    ns: str,
    pname: str,
    pod: str,
    inc_id: str,
    current: str | None,
    labelled: Future[None] | None,
    dry_run: bool,
) -> FalcoirError:
    """Creating the policy failed after the label was sent alongside it: take the label
    back off (restoring any value it replaced), so a failed quarantine leaves nothing
    half-applied. Returns the error to raise: the policy's, or a half-applied one when
    the label cannot be taken back."""
    if labelled is None:
        return exc
    try:
        _record_label(rec, ns, pod, inc_id, current, labelled, dry_run)
    except FalcoirError:
        return exc  # the label did not go on either: nothing changed
    if dry_run:
        return exc
    undo = {"metadata": {"labels": {pol.LABEL_KEY: current}}}
    try:
        with_retries(lambda: gateway.patch(PODS, pod, undo, ns))
    except FalcoirError as undo_exc:
        rec.action("patch", "Pod", ns, pod, "failed", f"label removal: {undo_exc}", {"patch": undo})
        return ClusterError(
            f"quarantine half-applied: pod {ns}/{pod} is labelled {pol.LABEL_KEY}={inc_id} "
            f"but creating NetworkPolicy {ns}/{pname} failed ({exc}) and the label could "
            f"not be taken back ({undo_exc}); the pod is NOT isolated",
            hint="re-run the same command (it is idempotent), or undo with "
            f"falcoir release --incident {inc_id}",
        )
    rec.action(
        "patch",
        "Pod",
        ns,
        pod,
        "ok",
        "quarantine label taken back: the policy could not be created",
        {"patch": undo},
    )
    rec.step("label", "undone", f"pod {ns}/{pod}: the policy could not be created")
    return exc


def _done_or_raised(fn: Callable[[], T]) -> Future[T]:
    """``fn()`` called now, in this thread, as a finished future."""
    future: Future[T] = Future()
    try:
        future.set_result(fn())
    except BaseException as exc:
        future.set_exception(exc)
    return future


def _detach(
    gateway: ClusterGateway,
    pod: JSON,
    owner: Any,
    owner_obj: JSON | None,
    inc_id: str,
    rec: _Recorder,
    options: QuarantineOptions,
) -> dict[str, Any]:
    meta = pod.get("metadata") or {}
    ns, name = meta.get("namespace"), meta.get("name")
    assert isinstance(ns, str) and isinstance(name, str)
    if owner is None:
        rec.step("detach", "skipped", "the pod has no controller to detach from")
        return {"status": "skipped", "owner": None, "reason": "no controller"}
    owner_d = {"kind": owner.kind, "name": owner.name}
    if owner_obj is None:
        rec.step("detach", "skipped", f"{owner.kind} {owner.name} is gone")
        return {"status": "skipped", "owner": owner_d, "reason": "owner not found"}
    selector = (owner_obj.get("spec") or {}).get("selector")
    if owner.kind == "Job" and selector is None:
        selector = {"matchLabels": {"controller-uid": owner.uid}} if owner.uid else None
    keys = [k for k in pol.selector_keys_to_drop(selector) if k != pol.LABEL_KEY]
    labels = pol.pod_labels(pod)
    present = {k: labels[k] for k in keys if k in labels}
    if not keys:
        raise InputError(
            f"cannot detach pod {ns}/{name}: {owner.kind} {owner.name}'s selector has no "
            "label the pod could drop"
        )
    if owner.kind == "StatefulSet":
        rec.warn(
            "detach",
            f"StatefulSet {owner.name} cannot start a replacement while this pod keeps "
            "its name; the service stays one replica short until the pod is deleted",
        )
    if not present:
        rec.step("detach", "unchanged", "workload labels already removed")
        return {"status": "unchanged", "owner": owner_d, "removed_labels": {}}
    previous = json.loads(meta.get("annotations", {}).get(pol.ANN_DETACHED, "{}") or "{}")
    patch: JSON = {
        "metadata": {
            "labels": dict.fromkeys(present),
            "annotations": {pol.ANN_DETACHED: json.dumps({**previous, **present}, sort_keys=True)},
        }
    }
    try:
        with_retries(lambda: gateway.patch(PODS, name, patch, ns, dry_run=options.dry_run))
    except FalcoirError as exc:
        rec.action("patch", "Pod", ns, name, "failed", f"detach: {exc}", {"patch": patch})
        raise ClusterError(
            f"the pod is quarantined (policy and label in place) but detaching it from "
            f"{owner.kind} {owner.name} failed: {exc}",
            hint="re-run with --detach-from-owner (idempotent)",
        ) from exc
    rec.action(
        "patch",
        "Pod",
        ns,
        name,
        "ok",
        f"detach from {owner.kind} {owner.name}: removed workload labels",
        {"patch": patch, "owner": owner_d},
    )
    result: dict[str, Any] = {
        "status": "dry-run" if options.dry_run else "applied",
        "owner": owner_d,
        "removed_labels": present,
        "released": None,
    }
    if options.dry_run:
        rec.step("detach", "dry-run", f"remove labels {', '.join(present)}")
        return result
    deadline = time.monotonic() + options.detach_wait_seconds
    released = False
    while True:
        try:
            now = with_retries(lambda: gateway.get(PODS, name, ns))
        except ApiNotFound:
            break
        refs = (now.get("metadata") or {}).get("ownerReferences") or []
        if not any(r.get("uid") == owner.uid and r.get("controller") for r in refs):
            released = True
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.3)
    result["released"] = released
    if released:
        rec.step(
            "detach", "ok", f"{owner.kind} {owner.name} released the pod (a replacement starts)"
        )
    else:
        rec.warn(
            "detach",
            f"labels removed, but {owner.kind} {owner.name} still lists itself as the "
            f"pod's owner after {options.detach_wait_seconds:.0f}s (is its controller running?)",
        )
    return result


def _verify(
    gateway: ClusterGateway,
    target: Target,
    inc_id: str,
    pname: str,
    endpoint: Endpoint | None,
    baseline: ProbeOutcome | None,
    rec: _Recorder,
    options: QuarantineOptions,
    *,
    late: Future[ProbeOutcome] | None = None,
) -> dict[str, Any]:
    """Read the objects back and probe from inside the pod. ``late``: a baseline probe
    still running when the pod was labelled. Waited for :data:`LATE_BASELINE_GRACE_S`
    at most: in by then, it is the baseline (a connection it made counts; a failure,
    answered after the label, proves nothing); else the proof runs with the full
    timeout, as without a baseline, and the late answer is judged once it is in."""
    ns, name = target.namespace, target.pod
    if late is not None:
        with contextlib.suppress(Exception):  # _baseline says what went wrong
            late.result(timeout=LATE_BASELINE_GRACE_S)
        if late.done():
            baseline, late = _baseline(late, endpoint, rec, in_time=False), None
    verified: dict[str, Any] = {}
    allowed_by = _allowed_network(endpoint, options.allow_cidrs) if endpoint else None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="falcoir-verify") as pool:
        # The probe (the slow part) starts at once; the objects are read meanwhile.
        probing = (
            pool.submit(_probe_until_blocked, gateway, target, endpoint, baseline, options)
            if endpoint is not None and allowed_by is None
            else None
        )
        policy = _get_optional(gateway, lambda: gateway.get(NETWORK_POLICIES, pname, ns))
        pod = with_retries(lambda: gateway.get(PODS, name, ns))
        labelled = with_retries(
            lambda: gateway.list(PODS, ns, label_selector=f"{pol.LABEL_KEY}={inc_id}")
        )
        labelled_names = sorted(str(p["metadata"]["name"]) for p in labelled)
        selector = (policy or {}).get("spec", {}).get("podSelector") if policy else None
        verified["policy_exists"] = policy is not None
        verified["selector_matches_pod"] = pol.selector_matches(selector, pol.pod_labels(pod))
        verified["labelled_pods"] = labelled_names
        verified["selects_only_target"] = labelled_names == [name]
        types = (policy or {}).get("spec", {}).get("policyTypes") or []
        verified["ingress_denied"] = "Ingress" in types
        if not verified["selector_matches_pod"]:
            rec.warn("verify", f"NetworkPolicy {ns}/{pname} does not select pod {ns}/{name}")
        if not verified["selects_only_target"]:
            rec.warn("verify", f"pods carrying the quarantine label: {', '.join(labelled_names)}")
        verified["probe"] = {
            "endpoint": endpoint.to_dict() if endpoint else None,
            "before": baseline.to_dict() if baseline else None,
            "after": None,
        }
        if endpoint is not None and allowed_by is not None:
            if late is not None:  # its answer belongs in the record all the same
                baseline = _baseline(late, endpoint, rec, in_time=False)
                verified["probe"]["before"] = baseline.to_dict() if baseline else None
            verified["egress_blocked"] = None
            verified["reason"] = (
                f"not verified: {endpoint.host} is inside --allow-cidr {allowed_by}, so the "
                "policy lets the pod reach it; pass --probe HOST:PORT with a blocked endpoint"
            )
            rec.warn("verify", verified["reason"])
            return verified
        if endpoint is None or probing is None:
            verified["egress_blocked"] = None
            verified["reason"] = (
                "not verified: no remote endpoint in the alert to probe (pass --probe HOST:PORT)"
                if options.verify
                else "not verified: verification was turned off"
            )
            rec.warn("verify", verified["reason"])
            return verified
        after = probing.result()
    if late is not None:
        baseline = _baseline(late, endpoint, rec, in_time=False)
        verified["probe"]["before"] = baseline.to_dict() if baseline else None
    verified["probe"]["after"] = after.to_dict()
    verified.update(probe_trust(after))
    where = f"{endpoint.host}:{endpoint.port}"
    if after.connected is None:
        verified["egress_blocked"] = None
        verified["reason"] = f"not verified: {after.detail}"
        rec.warn("verify", verified["reason"])
    elif after.connected:
        verified["egress_blocked"] = False
        verified["reason"] = f"the pod still connects to {where} ({after.tool})" + (
            " (is that host inside one of the --allow-cidr networks?)"
            if options.allow_cidrs
            else ""
        )
        rec.warn("verify", NOT_ENFORCED_WARNING.format(endpoint=where, pod=f"{ns}/{name}"))
    elif baseline is not None and baseline.connected is False:
        verified["egress_blocked"] = None
        verified["reason"] = (
            f"not verified: {where} could not be reached before the quarantine either "
            f"({baseline.detail}); pass --probe HOST:PORT with an endpoint the pod can reach"
        )
        rec.warn("verify", verified["reason"])
    else:
        verified["egress_blocked"] = True
        verified["reason"] = f"{where}: {after.detail} (the pod's own {after.tool}, untrusted)"
        rec.step("verify", "ok", f"egress blocked per an in-pod probe: {verified['reason']}")
    return verified


QUICK_PROBE_MIN_S = 0.25
"""The shortest wait for a connection after the quarantine."""

LATE_BASELINE_GRACE_S = 0.25
"""How long the proof waits for a baseline probe read ahead that had not answered when
the pod was labelled (its exec's answer is usually a few tens of ms behind its
connection) before it starts without it, with the full probe timeout."""


def _quick_timeout(baseline: ProbeOutcome | None, cap: float) -> float:
    """How long a probe after the quarantine waits for a connection.

    The baseline probe connected within ``baseline.seconds``, exec
    round trip included: an endpoint that answered that fast and now stays silent for
    as long is dropped, so there is no need to wait out the full ``cap``. Without a
    baseline that answered, the full ``cap``."""
    if baseline is None or baseline.connected is not True or baseline.seconds <= 0:
        return cap
    return min(cap, max(QUICK_PROBE_MIN_S, baseline.seconds))


def _probe_until_blocked(
    gateway: ClusterGateway,
    target: Target,
    endpoint: Endpoint,
    baseline: ProbeOutcome | None,
    options: QuarantineOptions,
) -> ProbeOutcome:
    """Probe at once, and again while the pod still connects (the network plugin may
    still be programming the rules), backing off up to a second, for at most
    ``verify_seconds``. Returns the last probe."""
    preferred = baseline.argv if baseline and baseline.connected is not None else None
    timeout = _quick_timeout(baseline, float(options.probe_timeout))
    deadline = time.monotonic() + options.verify_seconds
    pause = 0.05
    while True:
        after = run_probe(
            gateway,
            target.namespace,
            target.pod,
            target.container,
            endpoint,
            timeout=timeout,
            preferred=preferred,
        )
        if after.connected is not True or time.monotonic() >= deadline:
            return after
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
        pause = min(1.0, pause * 2)


def _allowed_network(endpoint: Endpoint, cidrs: tuple[str, ...]) -> str | None:
    """The allowed network an IP endpoint falls in (``None`` for host names)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(endpoint.host)
    except ValueError:
        return None
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr)
        if ip.version == net.version and ip in net:
            return cidr
    return None


# -- release -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseResult:
    incident: str | None
    namespace: str | None
    unlabelled: tuple[str, ...] = ()
    deleted_policies: tuple[str, ...] = ()
    dry_run: bool = False
    notes: tuple[str, ...] = ()
    steps: tuple[Step, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return not self.dry_run and bool(self.unlabelled or self.deleted_policies)

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "namespace": self.namespace,
            "unlabelled_pods": list(self.unlabelled),
            "deleted_policies": list(self.deleted_policies),
            "changed": self.changed,
            "dry_run": self.dry_run,
            "notes": list(self.notes),
            "steps": [s.to_dict() for s in self.steps],
        }


def find_release_scope(
    gateway: ClusterGateway,
    *,
    pod: PodRef | None,
    incident_id: str | None,
    store: IncidentStore | None,
) -> tuple[str | None, str | None, JSON | None]:
    """(incident id, namespace, pod JSON) a release is about; ``(None, ...)`` when the
    pod carries no quarantine and no incident is recorded for it."""
    if (pod is None) == (incident_id is None):
        raise InputError("give exactly one of --pod NS/NAME or --incident ID")
    if incident_id is not None:
        if not is_incident_id(incident_id):
            raise InputError(f"not an incident id: {incident_id!r} (inc-YYYYMMDD-HHMMSS-xxxxxx)")
        inc = store.get(incident_id) if store else None
        if inc is not None:
            return incident_id, inc.namespace, None
        found = with_retries(
            lambda: gateway.list(
                NETWORK_POLICIES, None, label_selector=f"{pol.LABEL_KEY}={incident_id}"
            )
        )
        if not found:
            raise TargetNotFound(f"no quarantine policy for incident {incident_id} was found")
        return incident_id, str(found[0]["metadata"]["namespace"]), None
    assert pod is not None
    pol.validate_namespace(pod.namespace)
    pol.validate_pod_name(pod.name)
    obj = _get_optional(gateway, lambda: gateway.get(PODS, pod.name, pod.namespace))
    if obj is not None:
        value = pol.pod_labels(obj).get(pol.LABEL_KEY)
        if value and is_incident_id(value):
            return value, pod.namespace, obj
    inc = store.for_pod(pod.namespace, pod.name, None) if store else None
    if inc is not None and inc.policy:
        return inc.id, pod.namespace, obj
    if obj is None:
        raise TargetNotFound(f"pod {pod} not found, and no incident is recorded for it")
    return None, pod.namespace, obj


@dataclass(frozen=True)
class ReleasePlan:
    """What a release would undo (found by reads only)."""

    incident: str | None
    namespace: str | None
    pods: tuple[JSON, ...] = ()
    """Pods carrying the incident's quarantine label."""
    policies: tuple[JSON, ...] = ()
    """NetworkPolicies falcoir created for the incident."""
    foreign: tuple[str, ...] = ()
    """Policies carrying the label that falcoir did not create (left alone)."""
    pod_name: str | None = None
    pod_uid: str | None = None

    def describe(self) -> list[str]:
        if self.incident is None:
            return ["nothing to release: the pod is not quarantined"]
        lines = [f"incident {self.incident} in namespace {self.namespace}:"]
        lines += [
            f"  remove label {pol.LABEL_KEY} from pod {p['metadata']['name']}" for p in self.pods
        ]
        lines += [f"  delete NetworkPolicy {p['metadata']['name']}" for p in self.policies]
        lines += [f"  leave alone NetworkPolicy {n} (not created by falcoir)" for n in self.foreign]
        if not self.pods and not self.policies:
            lines.append("  nothing left to release")
        return lines


def plan_release(
    gateway: ClusterGateway,
    *,
    pod: PodRef | None,
    incident_id: str | None,
    store: IncidentStore | None = None,
) -> ReleasePlan:
    inc_id, ns, pod_obj = find_release_scope(gateway, pod=pod, incident_id=incident_id, store=store)
    meta = (pod_obj or {}).get("metadata") or {}
    name = str(meta.get("name") or (pod.name if pod else "")) or None
    if inc_id is None or ns is None:
        return ReleasePlan(None, ns, pod_name=name)
    selector = f"{pol.LABEL_KEY}={inc_id}"
    pods = with_retries(lambda: gateway.list(PODS, ns, label_selector=selector))
    policies = with_retries(lambda: gateway.list(NETWORK_POLICIES, ns, label_selector=selector))
    ours = [
        p
        for p in policies
        if pol.is_falcoir_policy(p)
        and ((p["metadata"].get("annotations") or {}).get(pol.ANN_INCIDENT) == inc_id)
    ]
    foreign = tuple(str(p["metadata"]["name"]) for p in policies if p not in ours)
    return ReleasePlan(
        inc_id, ns, tuple(pods), tuple(ours), foreign, pod_name=name, pod_uid=meta.get("uid")
    )


def release(
    gateway: ClusterGateway,
    *,
    pod: PodRef | None,
    incident_id: str | None,
    store: IncidentStore | None = None,
    log: ActionLog | None = None,
    dry_run: bool = False,
    check_access: bool = True,
    on_step: StepCallback | None = None,
    plan: ReleasePlan | None = None,
) -> ReleaseResult:
    """Remove the quarantine label from the incident's pods and delete the policies
    falcoir created for it; nothing else (workload labels of a detached pod stay
    removed, or its controller would adopt it and scale one replica down)."""
    if plan is None:
        plan = plan_release(gateway, pod=pod, incident_id=incident_id, store=store)
    inc_id, ns = plan.incident, plan.namespace
    steps: list[Step] = []

    def emit(name: str, status: str, detail: str) -> None:
        s = Step(name, status, detail)
        steps.append(s)
        if on_step is not None:
            on_step(s)

    if inc_id is None or ns is None:
        emit("release", "unchanged", f"pod {pod} is not quarantined")
        return ReleaseResult(None, ns, dry_run=dry_run, steps=tuple(steps))
    if check_access:
        check_permissions(gateway, release_permissions(), ns)
    if log is None and store is not None:
        opened = store.get(inc_id) or store.open(
            ns, plan.pod_name or "", plan.pod_uid, incident_id=inc_id
        )
        log = opened.action_log(actor(gateway))
    pods, ours = plan.pods, plan.policies
    notes: list[str] = []
    unlabelled: list[str] = []
    outcome = "dry-run" if dry_run else "ok"
    # Label first: from then on the policy selects nothing, and deleting it is moot.
    for p in pods:
        pname = str(p["metadata"]["name"])
        patch = {"metadata": {"labels": {pol.LABEL_KEY: None}}}
        with_retries(partial(gateway.patch, PODS, pname, patch, ns, dry_run=dry_run))
        if log:
            log.append(
                "patch",
                "Pod",
                ns,
                pname,
                outcome,
                "removed the quarantine label",
                dry_run=dry_run,
                data={"patch": patch},
            )
        unlabelled.append(pname)
        emit("label", outcome, f"pod {ns}/{pname}: removed {pol.LABEL_KEY}")
        detached = (p["metadata"].get("annotations") or {}).get(pol.ANN_DETACHED)
        if detached:
            notes.append(
                f"pod {ns}/{pname} was detached from its owner and stays detached "
                f"(its workload labels were {detached}); delete it when done"
            )
    deleted: list[str] = []
    for p in ours:
        pname = str(p["metadata"]["name"])
        try:
            with_retries(partial(gateway.delete, NETWORK_POLICIES, pname, ns, dry_run=dry_run))
        except ApiNotFound:
            continue
        if log:
            log.append(
                "delete",
                "NetworkPolicy",
                ns,
                pname,
                outcome,
                "released",
                dry_run=dry_run,
                data={"object": p},
            )
        deleted.append(pname)
        emit("policy", outcome, f"deleted NetworkPolicy {ns}/{pname}")
    if plan.foreign:
        notes.append(f"left alone (not created by falcoir): {', '.join(plan.foreign)}")
    if not unlabelled and not deleted:
        emit("release", "unchanged", f"nothing of incident {inc_id} left to release")
    if store is not None and not dry_run:
        inc = store.get(inc_id)
        if inc is not None and inc.policy:
            store.set_policy(inc, None)
    return ReleaseResult(
        inc_id, ns, tuple(unlabelled), tuple(deleted), dry_run, tuple(notes), tuple(steps)
    )
