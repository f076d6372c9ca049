"""`falcoir collect`: capture what the pod is doing into a verifiable evidence bundle.

The result (bundle, archive, artifacts) goes to stdout with ``-o json|jsonl|yaml``;
the live progress (only when stderr is a terminal) and the human summary go to stderr.
Exit 0 when every collector succeeded, 7 when the bundle is written but incomplete.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from falcoir.cli.common import (
    AlertArg,
    AlertFileOpt,
    ContextOpt,
    KubeconfigOpt,
    OutputOpt,
    exit_now,
    guarded,
)
from falcoir.errors import EvidenceIncomplete
from falcoir.render.output import OutputFormat

if TYPE_CHECKING:
    from falcoir.core.collect import CollectOptions, Started
    from falcoir.core.target import Target

PodOpt = Annotated[
    str | None,
    typer.Option("--pod", help="The pod, as NAMESPACE/NAME (no alert needed).", show_default=False),
]
ContainerOpt = Annotated[
    str | None,
    typer.Option("--container", "-c", help="The container in the pod.", show_default=False),
]
OutOpt = Annotated[
    Path,
    typer.Option("--out", help="Directory for the bundle and its .tar.gz."),
]
PidOpt = Annotated[
    int | None,
    typer.Option(
        "--pid",
        help="The suspect process's pid inside the container (default: from the alert).",
        show_default=False,
        min=1,
    ),
]
EphemeralOpt = Annotated[
    bool,
    typer.Option(
        "--ephemeral-debug",
        help="When the image has no shell or tools, add an ephemeral debug container "
        "targeting the suspect container and collect from there (changes the pod spec "
        "for good; recorded).",
    ),
]
DebugImageOpt = Annotated[
    str, typer.Option("--debug-image", help="Image of the ephemeral debug container.")
]
TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", help="Seconds each command may run.", min=1.0),
]


LATER_MODULES = ("falcoir.core.bundle", "falcoir.core.collect")
"""Imported while locate runs (falcoir.core.prefetch)."""


def register(app: typer.Typer) -> None:
    """Add ``collect`` to ``app``."""
    app.command("collect")(collect_command)


@guarded
def collect_command(
    alert: AlertArg = None,
    file: AlertFileOpt = None,
    pod: PodOpt = None,
    container: ContainerOpt = None,
    out: OutOpt = Path("evidence"),
    pid: PidOpt = None,
    ephemeral_debug: EphemeralOpt = False,
    debug_image: DebugImageOpt = "busybox:1.36",
    timeout: TimeoutOpt = 30.0,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Capture processes, connections, /tmp, the suspect binary, the pod, its owners,
    node, events and logs into a BagIt evidence bundle (a directory and a .tar.gz).

    Every command runs through the exec API as an argv list, with a timeout and a byte
    limit, and is recorded with its exit code and stderr whatever happens. Nothing is
    written into the pod. Exit 7 when the bundle is written but incomplete.
    """
    from falcoir.cli import common

    # The input first (bad input: exit 2, nothing sent), then the cluster, then
    # locate: its first request goes out before anything it does not need is imported.
    parsed, pod_ref = common.alert_or_pod(alert, file, pod)
    gateway = common.connect(kubeconfig, context)
    from falcoir.core.locate import LocateOptions, locate
    from falcoir.core.prefetch import Prefetch
    from falcoir.render.console import info, safe

    # Collection is imported while locate waits for the API server, not before.
    prefetch = Prefetch(LATER_MODULES, gateway).start()
    quiet = output.is_machine
    live = not quiet and sys.stderr.isatty()
    early: list[Started] = []

    def step(line: str) -> None:
        if not quiet:
            info(f"[dim]locate:[/] {safe(line)}")

    def options() -> CollectOptions:
        prefetch.wait()
        from falcoir.core.collect import CollectOptions

        return CollectOptions(
            timeout=timeout, vpid=pid, ephemeral_debug=ephemeral_debug, debug_image=debug_image
        )

    def found(where: Target) -> None:  # collect while locate reads the owner chain
        opts = options()
        from falcoir.core.collect import start_collect

        early.append(
            start_collect(gateway, where, alert=parsed, out_dir=out, options=opts, located=False)
        )

    try:
        target = locate(
            gateway,
            alert=parsed,
            pod=pod_ref,
            options=LocateOptions(container=container),
            on_step=step,
            on_found=None if live else found,
        )
    except BaseException:
        for started in early:
            started.abandon()  # sealed incomplete: what was captured is kept
        raise
    if not quiet:
        info(
            f"collecting from [bold]{safe(target.namespace)}/{safe(target.pod)}[/] "
            f"container {safe(target.container or '-')} into {safe(out)}"
        )
    if early:
        result = early[0].finish(target)
    else:
        opts = options()
        from falcoir.core.collect import run_collect

        if live:
            from falcoir.render.bundle import CollectProgress

            with CollectProgress() as progress:
                result = run_collect(
                    gateway, target, alert=parsed, out_dir=out, options=opts, progress=progress
                )
        else:
            result = run_collect(gateway, target, alert=parsed, out_dir=out, options=opts)
    if quiet:
        from falcoir.render.output import write_machine

        write_machine(result.to_dict(), output)
    else:
        from falcoir.render.bundle import print_collect_summary

        print_collect_summary(result, collectors=not live)
    if not result.complete:
        failed = [c.name for c in result.collectors if not c.status.good]
        why = "interrupted" if result.interrupted else "not every collector succeeded"
        raise EvidenceIncomplete(
            f"evidence incomplete ({why}: {', '.join(failed) or 'see the bundle'}); "
            f"the bundle is sealed and says so: {result.bundle.dir if result.bundle else '?'}",
            hint="falcoir bundle show BUNDLE lists each artifact with its status and error",
        )
    exit_now()
