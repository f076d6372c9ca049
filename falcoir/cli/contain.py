"""``falcoir quarantine``, ``falcoir release`` and ``falcoir delete``.

Thin: parse and validate the flags, locate the target, show the plan and ask (unless
``--yes``), call :mod:`falcoir.core.contain`, render. Exit codes: 0 done (``quarantine``
also when the probe could not verify, with a warning); 1 when ``quarantine`` applied
the policy but the pod still connects (``verified.egress_blocked: false``: the network
plugin does not enforce it); 2 bad input, or a change that needs ``--yes`` with no
terminal to ask on; 3 cluster unreachable; 4 a permission is missing (each one named,
nothing changed); 5 pod not found; 6 ambiguous.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from falcoir.cli import common
from falcoir.cli.common import (
    AlertArg,
    AlertFileOpt,
    ContextOpt,
    DryRunOpt,
    KubeconfigOpt,
    OutputOpt,
    YesOpt,
    guarded,
)
from falcoir.render.output import OutputFormat

if TYPE_CHECKING:
    from falcoir.core.alert import Alert
    from falcoir.core.contain import Step
    from falcoir.core.gateway import ClusterGateway
    from falcoir.core.target import PodRef, Target

LATER_MODULES = ("falcoir.core.contain", "falcoir.core.contain.record")
"""What quarantine and delete use after locate: imported while it waits (core.prefetch)."""

VERIFY_SECONDS = 10.0
"""How long quarantine keeps probing while the network plugin applies the policy."""

PodOpt = Annotated[
    str | None,
    typer.Option(
        "--pod", help="Act on this pod (NAMESPACE/NAME) instead of an alert's.", show_default=False
    ),
]

_MARK = {
    "ok": "[green]✓[/]",
    "unchanged": "[dim]=[/]",
    "dry-run": "[cyan]~[/]",
    "differs": "[yellow]![/]",
    "warning": "[yellow]![/]",
    "failed": "[red]✗[/]",
    "skipped": "[dim]-[/]",
}


def _show_step(step: Step) -> None:
    from falcoir.render.console import info, safe, warn

    if step.status == "warning":
        warn(safe(step.detail))
        return
    info(f"{_MARK.get(step.status, '·')} {safe(step.name)}: {safe(step.detail)}")


def _target(gateway: ClusterGateway, alert: Alert | None, ref: PodRef | None) -> Target:
    from falcoir.core.locate import locate
    from falcoir.render.console import info, safe

    target = locate(gateway, alert=alert, pod=ref, on_step=lambda m: info(f"[dim]{safe(m)}[/]"))
    info(
        f"target: pod {safe(target.namespace)}/{safe(target.pod)}"
        + (f" container {safe(target.container)}" if target.container else "")
    )
    return target


def _incident_id(store: Any, target: Target) -> str:
    from falcoir.core.incident import new_incident_id

    existing = store.for_pod(target.namespace, target.pod, target.pod_uid)
    return str(existing.id) if existing else new_incident_id()


def _emit(doc: dict[str, Any], output: OutputFormat) -> None:
    from falcoir.render.output import write_machine

    if output.is_machine:
        write_machine(doc, output)


def quarantine_cmd(
    alert: AlertArg = None,
    file: AlertFileOpt = None,
    pod: PodOpt = None,
    ingress: Annotated[bool, typer.Option("--ingress", help="Deny ingress too.")] = False,
    allow_dns: Annotated[
        bool, typer.Option("--allow-dns", help="Allow DNS to the cluster DNS pods only.")
    ] = False,
    allow_cidr: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-cidr", help="Allow egress to this network (repeatable).", show_default=False
        ),
    ] = None,
    probe: Annotated[
        str | None,
        typer.Option(
            "--probe",
            help="Verify against HOST:PORT instead of the alert's remote endpoint.",
            show_default=False,
        ),
    ] = None,
    detach_from_owner: Annotated[
        bool,
        typer.Option(
            "--detach-from-owner",
            help="Change the workload labels so the "
            "controller releases the pod (kept running) and starts a replacement.",
        ),
    ] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = OutputFormat.TABLE,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Isolate one pod with a deny-all-egress NetworkPolicy on a quarantine label, and
    prove it from inside the pod. Exits 1 when the pod can still connect."""
    from falcoir.core.prefetch import Prefetch
    from falcoir.render.console import info, safe, warn

    # Containment is imported while locate waits for the API server (unless a flag
    # needs it first, to be checked).
    cidrs: tuple[str, ...] = ()
    if allow_cidr:
        from falcoir.core.contain.policy import validate_cidr

        cidrs = tuple(dict.fromkeys(validate_cidr(c) for c in allow_cidr))
    probe_at = None
    if probe is not None:
        from falcoir.core.contain import parse_host_port

        probe_at = parse_host_port(probe)
    parsed, ref = common.alert_or_pod(alert, file, pod)
    gateway = common.connect(kubeconfig, context)
    prefetch = Prefetch(LATER_MODULES, gateway).start()
    target = _target(gateway, parsed, ref)
    prefetch.wait()
    from falcoir.core.contain import QuarantineOptions, quarantine
    from falcoir.core.contain.policy import (
        PolicySpecOptions,
        describe_rules,
        policy_name,
        policy_spec,
    )
    from falcoir.core.contain.probe import probe_endpoint
    from falcoir.core.incident import IncidentStore
    from falcoir.core.rbac import check_permissions, quarantine_permissions
    from falcoir.errors import FalcoirError
    from falcoir.render.output import write_machine

    store = IncidentStore()
    inc_id = _incident_id(store, target)
    options = QuarantineOptions(
        ingress=ingress,
        allow_dns=allow_dns,
        allow_cidrs=cidrs,
        detach_from_owner=detach_from_owner,
        probe=probe_at,
        dry_run=dry_run,
        check_permissions=False,
        verify_seconds=VERIFY_SECONDS,
    )
    owner_kind = target.owner[0].kind if detach_from_owner and target.owner else None
    check_permissions(
        gateway,
        quarantine_permissions(probe=not dry_run, detach_owner_kind=owner_kind),
        target.namespace,
    )
    spec = policy_spec(inc_id, PolicySpecOptions(ingress, allow_dns, cidrs))
    endpoint = probe_endpoint(parsed, probe_at)
    info(f"plan for pod {safe(target.namespace)}/{safe(target.pod)} (incident {inc_id}):")
    info(f"  1. NetworkPolicy {policy_name(inc_id)}: " + safe("; ".join(describe_rules(spec))))
    info(f"  2. label the pod falcoir.io/quarantine={inc_id} (no other pod carries it)")
    if detach_from_owner:
        info("  3. remove its workload labels so its controller lets go and replaces it")
    if endpoint:
        info(f"  then probe {safe(endpoint.host)}:{endpoint.port} from inside the pod")
    else:
        warn(
            "no remote endpoint to probe in the alert: the cut will not be verified "
            "(give --probe HOST:PORT)"
        )
    if not dry_run:
        common.confirm(f"Quarantine pod {target.namespace}/{target.pod}?", yes=yes)
    incident = store.open(
        target.namespace,
        target.pod,
        target.pod_uid,
        alert_raw=parsed.raw if parsed else None,
        incident_id=inc_id,
    )
    result = quarantine(
        gateway,
        target,
        alert=parsed,
        options=options,
        incident=incident,
        log=incident.action_log(_actor(gateway)),
        on_step=_show_step,
        store=store,
    )
    _sync_bundles(store, incident.id, dry_run)
    doc = result.to_dict()
    if output.is_machine:
        write_machine(doc, output)
    elif dry_run:
        # The exact objects, as the server validated them (dryRun=All).
        patch = {"metadata": {"labels": {"falcoir.io/quarantine": inc_id}}}
        write_machine(
            [result.policy_object, {"kind": "Pod", "name": target.pod, "patch": patch}],
            OutputFormat.YAML,
            as_list=True,
        )
    blocked = result.egress_blocked
    if not output.is_machine:
        state = {
            True: "[green]egress blocked[/]"
            + (
                ""
                if result.verified.get("trusted") is True
                else " [yellow](in-pod probe, untrusted)[/]"
            ),
            False: "[red]NOT blocked[/]",
            None: "[yellow]not verified[/]",
        }[blocked]
        info(
            f"quarantine {result.policy_status}/{result.label_status}: {state}"
            + (" (nothing changed)" if not result.changed and not dry_run else "")
        )
    if blocked is False:
        raise FalcoirError(
            f"pod {target.namespace}/{target.pod} is labelled and the policy is in place, "
            "but the probe still connects: the network plugin does not enforce it",
            hint="collect evidence now, then falcoir delete --pod "
            f"{target.namespace}/{target.pod} --scale-owner",
        )


def _sync_bundles(store: Any, incident_id: str | None, dry_run: bool) -> None:
    """Put the updated action log into the incident's evidence bundles (resealed)."""
    from falcoir.core.contain.record import sync_action_log
    from falcoir.render.console import info, safe, warn

    if dry_run or incident_id is None:
        return
    inc = store.get(incident_id)
    if inc is None:
        return
    done = sync_action_log(store, inc)
    for path in done.updated:
        info(f"action log updated in bundle {safe(path)}")
    for path, why in done.failed:
        warn(f"could not update the action log in bundle {safe(path)}: {safe(why)}")


def _actor(gateway: ClusterGateway) -> str:
    from falcoir.core.contain.common import actor

    return actor(gateway)


def release_cmd(
    pod: PodOpt = None,
    incident: Annotated[
        str | None,
        typer.Option(
            "--incident", help="Release everything of this incident (inc-...).", show_default=False
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = OutputFormat.TABLE,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Remove the quarantine label and the NetworkPolicy falcoir created; nothing else."""
    from falcoir.core.contain import plan_release, release
    from falcoir.core.incident import IncidentStore, is_incident_id
    from falcoir.core.rbac import check_permissions, release_permissions
    from falcoir.errors import InputError
    from falcoir.render.console import info, safe

    ref = common.parse_pod_ref(pod)
    if (ref is None) == (incident is None):
        raise InputError("give exactly one of --pod NAMESPACE/NAME or --incident ID")
    if incident is not None and not is_incident_id(incident):
        raise InputError(f"not an incident id: {incident!r} (inc-YYYYMMDD-HHMMSS-xxxxxx)")
    gateway = common.connect(kubeconfig, context)
    store = IncidentStore()
    plan = plan_release(gateway, pod=ref, incident_id=incident, store=store)
    for line in plan.describe():
        info(safe(line))
    if plan.incident is not None and plan.namespace is not None:
        check_permissions(gateway, release_permissions(), plan.namespace)
        if (plan.pods or plan.policies) and not dry_run:
            common.confirm(f"Release incident {plan.incident}?", yes=yes)
    result = release(
        gateway,
        pod=ref,
        incident_id=incident,
        store=store,
        dry_run=dry_run,
        check_access=False,
        on_step=_show_step,
        plan=plan,
    )
    if result.changed:
        _sync_bundles(store, result.incident, dry_run)
    for note in result.notes:
        info(f"note: {safe(note)}")
    _emit(result.to_dict(), output)


def delete_cmd(
    alert: AlertArg = None,
    file: AlertFileOpt = None,
    pod: PodOpt = None,
    grace_period: Annotated[
        int | None,
        typer.Option(
            "--grace-period", help="Seconds the pod gets to stop (0 = at once).", show_default=False
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Delete even though falcoir holds no evidence bundle for the pod."
        ),
    ] = False,
    scale_owner: Annotated[
        bool,
        typer.Option(
            "--scale-owner",
            help="Scale the top controller to zero (suspend a "
            "Job/CronJob) so nothing recreates the pod.",
        ),
    ] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = OutputFormat.TABLE,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Delete the pod, saying first what its owner will do about it."""
    from falcoir.core.prefetch import Prefetch
    from falcoir.errors import InputError
    from falcoir.render.console import info, safe, warn

    if grace_period is not None and not 0 <= grace_period <= 86400:
        raise InputError("--grace-period must be 0-86400 seconds")
    parsed, ref = common.alert_or_pod(alert, file, pod)
    gateway = common.connect(kubeconfig, context)
    # Containment is imported while locate waits for the API server.
    prefetch = Prefetch(LATER_MODULES, gateway).start()
    target = _target(gateway, parsed, ref)
    prefetch.wait()
    from falcoir.core.contain import DeleteOptions, delete, plan_delete
    from falcoir.core.contain.removal import required_permissions
    from falcoir.core.incident import IncidentStore
    from falcoir.core.rbac import check_permissions

    store = IncidentStore()
    plan = plan_delete(gateway, target, store=store)
    options = DeleteOptions(
        grace_period=grace_period,
        force=force,
        scale_owner=scale_owner,
        dry_run=dry_run,
        check_permissions=False,
    )
    check_permissions(gateway, required_permissions(plan, options), target.namespace)
    info(f"plan: delete pod {safe(plan.namespace)}/{safe(plan.pod)}")
    (warn if plan.recreates else info)(safe(plan.consequence))
    if plan.terminating:
        info("the pod is already being deleted; this asks again (with the grace period given)")
    if plan.has_evidence:
        info(f"evidence: {len(plan.bundles)} bundle(s) for incident {plan.incident}")
    else:
        warn(
            "falcoir holds no evidence bundle for this pod" + (" (--force given)" if force else "")
        )
    if scale_owner and plan.top is not None:
        info(
            f"first: stop {safe(plan.top.kind)} {safe(plan.top.name)} "
            f"(replicas {plan.top_replicas} -> 0)"
        )
    if not dry_run:
        common.confirm(f"Delete pod {plan.namespace}/{plan.pod}?", yes=yes)
    incident = store.open(
        plan.namespace,
        plan.pod,
        plan.pod_uid,
        alert_raw=parsed.raw if parsed else None,
        incident_id=plan.incident,
    )
    result = delete(
        gateway,
        target,
        plan=plan,
        options=options,
        incident=incident,
        log=incident.action_log(_actor(gateway)),
        on_step=_show_step,
    )
    _sync_bundles(store, incident.id, dry_run)
    doc = result.to_dict()
    doc["incident"] = incident.id
    _emit(doc, output)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("quarantine")(guarded(quarantine_cmd))
    app.command("release")(guarded(release_cmd))
    app.command("delete")(guarded(delete_cmd))
