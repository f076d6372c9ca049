"""`falcoir locate`: from a Falco alert (or ``--pod``) to the pod, container and process.

With ``-o json|jsonl|yaml`` the result goes to stdout; the human table, and how the
target was found as it happens, go to stderr (product contract: stdout carries nothing
but machine output), with every value from the alert or the cluster neutralised first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from falcoir.cli.common import (
    AlertArg,
    AlertFileOpt,
    ContextOpt,
    KubeconfigOpt,
    OutputOpt,
    guarded,
)
from falcoir.render.output import OutputFormat

if TYPE_CHECKING:
    from falcoir.core.target import Target

PodOpt = Annotated[
    str | None,
    typer.Option(
        "--pod", help="The pod, as NAMESPACE/NAME, when you already know it.", show_default=False
    ),
]
NodeOpt = Annotated[
    str | None,
    typer.Option(
        "--node", help="The node that raised the alert (JSON alerts carry it).", show_default=False
    ),
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Search only this namespace.", show_default=False),
]
SelectorOpt = Annotated[
    str | None,
    typer.Option(
        "--selector", "-l", help="Search only pods with these labels.", show_default=False
    ),
]
ContainerOpt = Annotated[
    str | None,
    typer.Option("--container", "-c", help="The container in the pod.", show_default=False),
]
FalcoSelectorOpt = Annotated[
    str | None,
    typer.Option(
        "--falco-selector",
        help="Labels of the Falco pods (default: app.kubernetes.io/name=falco, then app=falco).",
        show_default=False,
    ),
]
FalcoNamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--falco-namespace", help="Namespace of the Falco pods (default: any).", show_default=False
    ),
]
HostProcOpt = Annotated[
    str,
    typer.Option("--host-proc", help="Where the Falco pods mount the host's /proc."),
]
NodeDebugOpt = Annotated[
    bool,
    typer.Option(
        "--node-debug",
        help="If no Falco pod can read the node's /proc, start a short-lived node debug "
        "pod (hostPID, read-only host /proc), use it and delete it.",
    ),
]
YesOpt = Annotated[
    bool,
    typer.Option(
        "--yes",
        "-y",
        help="Accept a weak match (the process name only) instead of stopping at exit 6.",
    ),
]
DebugImageOpt = Annotated[
    str,
    typer.Option("--debug-image", help="Image of the node debug pod."),
]


def register(app: typer.Typer) -> None:
    """Add ``locate`` to ``app``."""
    app.command("locate")(locate_command)


@guarded
def locate_command(
    alert: AlertArg = None,
    file: AlertFileOpt = None,
    pod: PodOpt = None,
    node: NodeOpt = None,
    namespace: NamespaceOpt = None,
    selector: SelectorOpt = None,
    container: ContainerOpt = None,
    falco_selector: FalcoSelectorOpt = None,
    falco_namespace: FalcoNamespaceOpt = None,
    host_proc: HostProcOpt = "/host/proc",
    node_debug: NodeDebugOpt = False,
    debug_image: DebugImageOpt = "busybox:1.36",
    yes: YesOpt = False,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Find the pod, container and process a Falco alert is about.

    Cheapest first: the alert's k8s fields, its container id (on its node only), its
    host pid read through the Falco pod's /host/proc, and last, only within -n/-l/--node,
    a scan of candidate pods' processes. Exit 5 if not found (the message says which
    flag or field would help), 6 if ambiguous.
    """
    from falcoir.cli import common

    # The input first (bad input: exit 2, nothing sent), then the cluster, then locate.
    parsed, pod_ref = common.alert_or_pod(alert, file, pod)
    from falcoir.core.locate import LocateOptions, locate
    from falcoir.render.console import info, safe

    options = LocateOptions(
        node=node,
        namespace=namespace,
        selector=selector,
        container=container,
        falco_selector=falco_selector,
        falco_namespace=falco_namespace,
        host_proc=host_proc,
        node_debug=node_debug,
        debug_image=debug_image,
        yes=yes,
    )
    gateway = common.connect(kubeconfig, context)

    def step(line: str) -> None:
        info(f"[dim]locate:[/] {safe(line)}")

    target = locate(gateway, alert=parsed, pod=pod_ref, options=options, on_step=step)
    if output.is_machine:
        from falcoir.render.output import write_machine

        write_machine(target.to_dict(), output)
    else:
        typer.echo(render_target(target), err=True)


def render_target(target: Target) -> str:
    """The human result: one ``key  value`` line per field, values neutralised."""
    from falcoir.core.text import neutralize

    owner = " -> ".join(f"{o.kind} {o.name}" for o in target.owner) or "-"
    rows = [
        ("pod", f"{target.namespace}/{target.pod}"),
        ("container", target.container or "-"),
        ("node", target.node or "-"),
        ("pod uid", target.pod_uid or "-"),
        (
            "container id",
            (f"{target.container_runtime}://" if target.container_runtime else "")
            + (target.container_id or "-"),
        ),
        ("pid", _pids(target)),
        ("owner", owner),
        ("image", target.image or "-"),
        ("method", target.method.value),
    ]
    if target.replaced_by:
        rows.append(("replaced by", target.replaced_by))
    rows.extend(("note", n) for n in target.notes)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {neutralize(str(v))}" for k, v in rows)


def _pids(target: Target) -> str:
    parts = []
    if target.vpid is not None:
        parts.append(f"{target.vpid} in the container")
    if target.host_pid is not None:
        parts.append(f"{target.host_pid} on the node")
    return ", ".join(parts) or "-"
