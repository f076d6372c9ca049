"""``falcoir respond``: the whole runbook for one alert, or for a stream of them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from falcoir.cli.common import (
    AlertArg,
    AlertFileOpt,
    ContextOpt,
    DryRunOpt,
    KubeconfigOpt,
    OutputOpt,
    YesOpt,
    exit_now,
    guarded,
)
from falcoir.render.output import OutputFormat

if TYPE_CHECKING:
    from falcoir.core.respond.orchestrator import RespondResult

OutOpt = Annotated[
    Path,
    typer.Option("--out", help="Directory for the evidence bundles.", show_default=True),
]
NoDeleteOpt = Annotated[
    bool, typer.Option("--no-delete", help="Keep the pod (quarantined) instead of deleting it.")
]
IngressOpt = Annotated[bool, typer.Option("--ingress", help="Deny ingress to the pod too.")]
AllowDnsOpt = Annotated[
    bool, typer.Option("--allow-dns", help="Let the quarantined pod reach the cluster DNS.")
]
AllowCidrOpt = Annotated[
    list[str] | None,
    typer.Option("--allow-cidr", help="Egress still allowed to this network (repeatable)."),
]
ScaleOwnerOpt = Annotated[
    bool,
    typer.Option(
        "--scale-owner",
        help="Before deleting, scale the pod's top controller to zero so it is not "
        "recreated from the same (possibly backdoored) template.",
    ),
]
EphemeralOpt = Annotated[
    bool,
    typer.Option(
        "--ephemeral-debug",
        help="For images without tools: collect through an ephemeral debug container "
        "(changes the pod spec; recorded).",
    ),
]
FollowOpt = Annotated[
    bool,
    typer.Option(
        "--follow",
        help="Read alerts as a stream (-f - for stdin): one incident per pod, the policy "
        "decides the actions; without --yes, only plans.",
    ),
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option("--policy", help="Response policy file: which alerts get which actions."),
]
ConcurrencyOpt = Annotated[
    int,
    typer.Option("--concurrency", min=1, max=64, help="--follow: incidents handled at once."),
]
NodeOpt = Annotated[
    str | None, typer.Option("--node", help="The node that raised the alert (helps locate).")
]
NamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Limit the last-resort scan to NS.")
]
SelectorOpt = Annotated[
    str | None, typer.Option("--selector", "-l", help="Limit the last-resort scan to a selector.")
]
TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", min=1, max=600, help="Seconds each evidence command may take."),
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("respond")(guarded(respond_command))


def respond_command(
    alert: AlertArg = None,
    file: AlertFileOpt = None,
    out: OutOpt = Path("falcoir-evidence"),
    no_delete: NoDeleteOpt = False,
    ingress: IngressOpt = False,
    allow_dns: AllowDnsOpt = False,
    allow_cidr: AllowCidrOpt = None,
    scale_owner: ScaleOwnerOpt = False,
    ephemeral_debug: EphemeralOpt = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    follow: FollowOpt = False,
    policy: PolicyOpt = None,
    concurrency: ConcurrencyOpt = 4,
    node: NodeOpt = None,
    namespace: NamespaceOpt = None,
    selector: SelectorOpt = None,
    timeout: TimeoutOpt = 30.0,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Respond to a Falco alert: locate the pod, snapshot its processes and connections,
    quarantine it behind a verified deny-all NetworkPolicy, collect the evidence into a
    bundle, delete it (unless --no-delete), and write an incident report.

    The plan is shown and confirmed before the first change unless --yes. Exit codes:
    0 done, 1 a step failed, 2 bad input or not confirmed, 3 cluster unreachable,
    4 forbidden, 5 not found, 6 ambiguous, 7 done but evidence incomplete, 130
    interrupted. The JSON (-o json) names the step that failed.
    """
    from falcoir.core.clock import process_clock

    clock = process_clock()  # first: timings count from the process start
    from falcoir.core.policy import ActionOptions, flag_policy, load_policy
    from falcoir.errors import InputError

    cidrs: list[str] = []
    for text in allow_cidr or []:
        import ipaddress

        try:
            cidrs.append(str(ipaddress.ip_network(text, strict=True)))
        except ValueError as exc:
            raise InputError(f"--allow-cidr {text!r}: {exc}") from None
    options = ActionOptions(
        ingress=ingress,
        allow_dns=allow_dns,
        allow_cidrs=tuple(cidrs),
        ephemeral_debug=ephemeral_debug,
        scale_owner=scale_owner,
    )
    pol = (
        load_policy(policy)
        if policy is not None
        else flag_policy(delete=not no_delete, options=options)
    )
    if follow:
        _follow(
            alert, file, pol, out=out, no_delete=no_delete, dry_run=dry_run, yes=yes,
            concurrency=concurrency, timeout=timeout, node=node, namespace=namespace,
            selector=selector, kubeconfig=kubeconfig, context=context, output=output,
        )  # fmt: skip
        return
    _single(
        alert, file, pol, out=out, no_delete=no_delete, dry_run=dry_run, yes=yes,
        timeout=timeout, node=node, namespace=namespace, selector=selector,
        kubeconfig=kubeconfig, context=context, output=output, clock=clock,
    )  # fmt: skip


def _backend(
    kubeconfig: str | None,
    context: str | None,
    *,
    yes: bool,
    timeout: float,
    node: str | None,
    namespace: str | None,
    selector: str | None,
) -> Any:
    from falcoir.cli import common
    from falcoir.core.incident import IncidentStore
    from falcoir.core.locate import LocateOptions
    from falcoir.core.respond.real import RealBackend

    gateway = common.connect(kubeconfig, context)
    store = IncidentStore()
    return RealBackend(
        gateway,
        store,
        LocateOptions(node=node, namespace=namespace, selector=selector, yes=yes),
        collect_timeout=timeout,
    ), store


LATER_MODULES = (
    "falcoir.core.respond.orchestrator",
    "falcoir.render.respond",
)
"""What ``respond ALERT`` imports once locate's first request is out (its backend's
own later modules come after these: :meth:`RealBackend.warm`)."""


def _single(
    alert_text: str | None,
    file: Path | None,
    pol: Any,
    *,
    out: Path,
    no_delete: bool,
    dry_run: bool,
    yes: bool,
    timeout: float,
    node: str | None,
    namespace: str | None,
    selector: str | None,
    kubeconfig: str | None,
    context: str | None,
    output: OutputFormat,
    clock: Any,
) -> None:
    import sys

    from falcoir.cli import common

    alert = common.read_one_alert(alert_text, file)
    alert_read_s = clock.elapsed()  # -f - may wait for the alert: scripts can subtract it
    from falcoir.core.respond.early import EarlyLocate, ahead_for, with_actions

    decision = with_actions(pol.decide(alert), delete=not no_delete)
    if decision.ignored:
        from falcoir.render.console import info, safe

        doc = {
            "incident": None,
            "status": "ignored",
            "exit_code": 0,
            "policy_rule": decision.rule,
            "locate": None,
            "collect": None,
            "quarantine": None,
            "delete": None,
            "timings": {"containment_s": None, "total_s": round(clock.elapsed(), 3)},
        }
        if output.is_machine:
            from falcoir.render.output import write_machine

            write_machine(doc, output)
        else:
            info(f"the response policy ignores this alert ({safe(decision.rule or 'no rule')})")
        return
    backend, store = _backend(
        kubeconfig, context, yes=yes, timeout=timeout, node=node, namespace=namespace,
        selector=selector,
    )  # fmt: skip
    # Locate's first request goes out now; the orchestrator and the live view are
    # imported while it is on the wire (falcoir.core.prefetch: once its connection is
    # open, or at once if locate ends first), the later steps' modules after them.
    ahead = ahead_for(
        decision.actions, decision.options, dry_run=dry_run, asks=not (yes or dry_run)
    )
    from falcoir.core.respond.real import RealBackend

    if isinstance(backend, RealBackend):
        early = backend.locate_early(alert, ahead, modules=LATER_MODULES)
        backend.wait_imports(LATER_MODULES)
    else:  # a test's backend: the same hand-over, nothing to wait for
        early = EarlyLocate(backend, alert, ahead).start()
    from falcoir.core.respond import RespondRequest, respond
    from falcoir.render.respond import StepView, ask_plan, print_summary

    request = RespondRequest(
        alert=alert,
        out_dir=out,
        actions=decision.actions,
        options=decision.options,
        dry_run=dry_run,
        policy_rule=decision.rule,
        alert_read_s=alert_read_s,
    )
    live = sys.stderr.isatty() and not output.is_machine
    with StepView(live=live, quiet=output.is_machine) as view:
        result = respond(
            early.backend(),
            request,
            store=store,
            clock=clock,
            confirm=None if (yes or dry_run) else (lambda plan: ask_plan(plan, view)),
            on_change=view.on_change,
            notes=view.note,
            report_writer=_render_report,
            locate_started=early.started_mono,
        )
    doc = result.to_dict()
    if output.is_machine:
        from falcoir.render.output import write_machine

        write_machine(doc, output)
    else:
        print_summary(doc)
    _exit(result)
    # Everything is written and sealed; the threads left (read-only probes) have
    # nothing to save: skip the interpreter's teardown.
    exit_now()


def _render_report(data: Any) -> Any:
    # Imported when the report is written, not on the way to containment.
    from falcoir.core import report

    return report.render(data)


def _exit(result: RespondResult) -> None:
    """The run's exit code, through the one error mapping (``guarded``)."""
    from falcoir.errors import EvidenceIncomplete, FalcoirError

    failed = result.failed
    if failed is not None:
        exc = failed.exception
        if isinstance(exc, FalcoirError):
            raise exc
        # Not one of ours (a bug, or an error a layer failed to map): still say which
        # step failed and why, on stderr, with the run's exit code.
        from falcoir.render.console import error, safe

        error(
            f"step {safe(failed.name)} failed: {safe(type(exc).__name__)}: {safe(exc)}",
            "the bundle and the action log keep what was saved before it",
        )
        raise typer.Exit(int(result.exit_code))
    if result.interrupted:
        raise KeyboardInterrupt
    if result.exit_code == 7:
        raise EvidenceIncomplete(
            "the evidence bundle is incomplete: some collectors failed or were cut short; "
            "the pod was not deleted",
            hint=f"see {result.bundle.get('dir') if result.bundle else 'the bundle'}",
        )


def _follow(
    alert_text: str | None,
    file: Path | None,
    pol: Any,
    *,
    out: Path,
    no_delete: bool,
    dry_run: bool,
    yes: bool,
    concurrency: int,
    timeout: float,
    node: str | None,
    namespace: str | None,
    selector: str | None,
    kubeconfig: str | None,
    context: str | None,
    output: OutputFormat,
) -> None:
    import sys
    from collections.abc import Iterable

    from falcoir.core.readlimits import bounded_lines
    from falcoir.core.respond.follow import FollowOptions, follow
    from falcoir.errors import InputError
    from falcoir.render.console import info, safe, warn
    from falcoir.render.output import write_machine
    from falcoir.render.respond import print_follow_line, print_follow_summary

    if alert_text is not None and file is not None:
        raise InputError("give the alerts either as an argument or with --file, not both")
    lines: Iterable[str]
    handle = None
    if alert_text is not None:
        lines = alert_text.splitlines()
    elif file is None or str(file) == "-":
        lines = bounded_lines(sys.stdin, "stdin", skip_long=True)
    else:
        try:
            handle = file.open(encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            raise InputError(f"cannot read {file}: {exc.strerror or exc}") from exc
        lines = bounded_lines(handle, str(file), skip_long=True)
    backend, store = _backend(
        kubeconfig, context, yes=yes, timeout=timeout, node=node, namespace=namespace,
        selector=selector,
    )  # fmt: skip
    # Who we are is asked once, before the first alert arrives, not on its way in.
    import threading

    threading.Thread(target=backend.operator, name="falcoir-whoami", daemon=True).start()
    apply = yes and not dry_run
    if not apply and not output.is_machine:
        info(
            "[dim]--follow without --yes: planning only (server-side dry runs), nothing changes[/]"
        )
    docs: list[dict[str, Any]] = []

    def on_incident(doc: dict[str, Any]) -> None:
        if output is OutputFormat.JSONL:
            write_machine(doc, output)
        elif output.is_machine:
            docs.append(doc)
        else:
            print_follow_line(doc)

    try:
        summary = follow(
            lines,
            backend=backend,
            policy=pol,
            store=store,
            options=FollowOptions(
                out_dir=out, concurrency=concurrency, apply=apply, delete=not no_delete
            ),
            on_incident=on_incident,
            on_note=lambda text: warn(safe(text)),
            report_writer=_render_report,
        )
    finally:
        if handle is not None:
            handle.close()
    sdoc = summary.to_dict()
    if output is OutputFormat.JSONL:
        write_machine({"summary": sdoc}, output)
    elif output.is_machine:
        write_machine({"summary": sdoc, "incidents": docs}, output)
    else:
        print_follow_summary(sdoc, sdoc["by_incident"])
    if summary.interrupted:
        raise KeyboardInterrupt
    if summary.failures:
        code = int((summary.failures[0].get("error") or {}).get("exit_code") or 1)
        raise typer.Exit(code)
