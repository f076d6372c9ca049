"""`falcoir lab scenario cryptominer`: play the walkthrough on a running lab."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from falcoir.cli.common import OutputOpt, guarded
from falcoir.cli.groups import lab_app
from falcoir.render.output import OutputFormat

scenario_app = typer.Typer(
    help="Play incident scenarios on a running lab.", no_args_is_help=True, rich_markup_mode=None
)

StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="FALCOIR_LAB_STATE_DIR",
        help="The running lab's state dir (default: $XDG_STATE_HOME/falcoir/lab).",
        show_default=False,
    ),
]


@scenario_app.command("cryptominer")
@guarded
def cryptominer(
    state_dir: StateDirOpt = None,
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Where the cryptominer-demo Deployment goes.")
    ] = "default",
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for Falco's alert.")
    ] = 60.0,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Deploy Falco and the walkthrough's cryptominer-demo, wait for Falco's alert, and
    print it on stdout (the text alert; -o json: the scenario with the alert as JSON)."""
    from falcoir.core.text import neutralize
    from falcoir.lab.client import LabClient
    from falcoir.lab.control import default_state_dir
    from falcoir.lab.scenario import play_cryptominer
    from falcoir.render.console import info, safe
    from falcoir.render.output import write_machine

    sd = (state_dir or default_state_dir()).expanduser().resolve()
    client = LabClient.from_state_dir(sd)
    sc = play_cryptominer(client, sd, namespace=namespace, timeout=timeout)
    if output.is_machine:
        write_machine(
            {
                "namespace": sc.namespace,
                "deployment": sc.deployment,
                "pod": sc.pod,
                "pod_uid": sc.pod_uid,
                "container": sc.container,
                "container_id": sc.container_id,
                "node": sc.node,
                "pod_ip": sc.pod_ip,
                "host_pid": sc.host_pid,
                "vpid": sc.vpid,
                "falco_pod": sc.falco_pod,
                "alert_text": sc.alert_text,
                "alert": sc.alert_json,
                "alerts_txt": str(sc.alerts_txt),
                "alerts_jsonl": str(sc.alerts_jsonl),
            },
            output,
        )
        return
    info(
        safe(
            f"cryptominer-demo: pod {sc.namespace}/{sc.pod} (miner host pid {sc.host_pid}); "
            f"Falco alerts in {sc.alerts_txt} and {sc.alerts_jsonl}"
        )
    )
    typer.echo(neutralize(sc.alert_text))


def register(app: typer.Typer) -> None:
    """Add ``falcoir lab scenario`` to the ``lab`` group."""
    lab_app.add_typer(scenario_app, name="scenario")
