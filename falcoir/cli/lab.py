"""`falcoir lab up|down|status|kubeconfig|faults|load`: the local lab."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from falcoir.cli.common import OutputOpt, guarded
from falcoir.cli.groups import lab_app
from falcoir.render.output import OutputFormat

StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="FALCOIR_LAB_STATE_DIR",
        help="Where the lab keeps its CA, tokens, kubeconfig and pods "
        "(default: $XDG_STATE_HOME/falcoir/lab).",
        show_default=False,
    ),
]


def _state_dir(value: Path | None) -> Path:
    from falcoir.lab.control import default_state_dir

    return (value or default_state_dir()).expanduser().resolve()


def _emit(doc: dict[str, object], output: OutputFormat, human: str) -> None:
    from falcoir.render.console import info, safe
    from falcoir.render.output import write_machine

    if output.is_machine:
        write_machine(doc, output)
    else:
        info(safe(human, keep_newlines=True))


@lab_app.command("up")
@guarded
def up(
    state_dir: StateDirOpt = None,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Return once the lab answers; it keeps running.")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="HTTPS port (0: a free one).")] = 0,
    latency_ms: Annotated[
        float, typer.Option("--latency-ms", help="Add this latency to every API request.")
    ] = 0.0,
    nodes: Annotated[
        int, typer.Option("--nodes", help="Extra virtual nodes (lab-vnode-001...): objects only.")
    ] = 0,
    enforce_network_policy: Annotated[
        bool,
        typer.Option(
            "--enforce-network-policy/--no-enforce-network-policy",
            help="Enforce NetworkPolicies on the lab node's pods (off: like flannel).",
        ),
    ] = True,
    runtime: Annotated[
        str | None,
        typer.Option("--runtime", help="Pod runtime: auto, linux or virtual.", hidden=True),
    ] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Start the lab: an HTTPS Kubernetes API server on 127.0.0.1 with its kubeconfig."""
    from falcoir.errors import InputError
    from falcoir.lab import control

    if not 0 <= port <= 65535:
        raise InputError(f"--port {port} is not a TCP port")
    if nodes < 0 or latency_ms < 0:
        raise InputError("--nodes and --latency-ms cannot be negative")
    sd = _state_dir(state_dir)
    if not detach:
        from falcoir.render.console import info, safe

        info(f"falcoir lab: starting in the foreground (state dir {safe(sd)}); Ctrl-C stops it")
    st = control.up(
        sd,
        port=port,
        nodes=nodes,
        latency_ms=latency_ms,
        enforce_network_policy=enforce_network_policy,
        runtime=runtime,
        detach=detach,
    )
    if detach:
        _emit(
            st.to_json(),
            output,
            f"falcoir lab is up at {st.server} (pid {st.pid}, runtime {st.runtime})\n"
            f"  export KUBECONFIG={st.kubeconfig}",
        )


@lab_app.command("down")
@guarded
def down(state_dir: StateDirOpt = None, output: OutputOpt = OutputFormat.TABLE) -> None:
    """Stop the lab and remove every process, namespace and rule it made."""
    from falcoir.lab import control

    sd = _state_dir(state_dir)
    done = control.down(sd)
    _emit(
        {"state_dir": str(sd), "done": done},
        output,
        "\n".join(done) if done else f"falcoir lab: nothing running for {sd}",
    )


@lab_app.command("status")
@guarded
def status(state_dir: StateDirOpt = None, output: OutputOpt = OutputFormat.TABLE) -> None:
    """Show whether the lab runs, where, and with which runtime (exit 1 if it is down)."""
    from falcoir.lab import control

    st = control.status(_state_dir(state_dir))
    human = (
        f"falcoir lab is up at {st.server} (pid {st.pid}, runtime {st.runtime})\n"
        f"  kubeconfig: {st.kubeconfig}"
        if st.running
        else f"falcoir lab is not running (state dir {st.state_dir})"
    )
    _emit(st.to_json(), output, human)
    if not st.running:
        raise typer.Exit(1)


@lab_app.command("kubeconfig")
@guarded
def kubeconfig(
    state_dir: StateDirOpt = None,
    path_only: Annotated[bool, typer.Option("--path", help="Print only the file's path.")] = False,
) -> None:
    """Print the lab's kubeconfig (contexts falcoir-lab and falcoir-lab-restricted)."""
    import sys

    from falcoir.errors import LabError

    sd = _state_dir(state_dir)
    path = sd / "kubeconfig"
    if not path.exists():
        raise LabError(f"no kubeconfig in {sd}", hint="start the lab: falcoir lab up --detach")
    if path_only:
        sys.stdout.write(f"{path}\n")
    else:
        sys.stdout.write(path.read_text())


@lab_app.command("faults")
@guarded
def faults(
    state_dir: StateDirOpt = None,
    latency_ms: Annotated[float, typer.Option("--latency-ms", help="Added latency.")] = 0.0,
    rate_429: Annotated[float, typer.Option("--rate-429", help="Fraction answered 429.")] = 0.0,
    rate_500: Annotated[float, typer.Option("--rate-500", help="Fraction answered 500.")] = 0.0,
    rate_503: Annotated[float, typer.Option("--rate-503", help="Fraction answered 503.")] = 0.0,
    rate_drop: Annotated[
        float, typer.Option("--rate-drop", help="Fraction of responses cut off mid-body.")
    ] = 0.0,
) -> None:
    """Set the running lab's fault injection (all zero: no faults). Takes effect at once."""
    from falcoir.errors import InputError
    from falcoir.lab.server import write_faults

    rates = (rate_429, rate_500, rate_503, rate_drop)
    if any(not 0 <= r <= 1 for r in rates) or sum(rates) > 1 or latency_ms < 0:
        raise InputError("rates are fractions between 0 and 1 (summing to at most 1)")
    sd = _state_dir(state_dir)
    write_faults(
        sd,
        {
            "latency_ms": latency_ms,
            "rate_429": rate_429,
            "rate_500": rate_500,
            "rate_503": rate_503,
            "rate_drop": rate_drop,
        },
    )


@lab_app.command("load")
@guarded
def load(
    state_dir: StateDirOpt = None,
    pods: Annotated[int, typer.Option("--pods", help="How many virtual pods.")] = 1000,
    nodes: Annotated[int, typer.Option("--nodes", help="Across this many virtual nodes.")] = 10,
    namespaces: Annotated[int, typer.Option("--namespaces", help="In this many namespaces.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same names).")] = 0,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Load a generated cluster (virtual nodes, Deployments, ReplicaSets, pods) into the lab."""
    from falcoir.lab.client import LabClient

    client = LabClient.from_state_dir(_state_dir(state_dir), timeout=300)
    counts = client.load_generated(pods=pods, nodes=nodes, namespaces=namespaces, seed=seed)
    _emit(counts, output, ", ".join(f"{k}: {v}" for k, v in counts.items()))


def register(app: typer.Typer) -> None:
    """Add ``falcoir lab`` to ``app``."""
    app.add_typer(lab_app, name="lab")
