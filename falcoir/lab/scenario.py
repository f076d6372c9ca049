"""Scenarios played on a running lab through its API. ``cryptominer`` plays ``seed/``.

:func:`play_cryptominer` applies, through :class:`~falcoir.lab.client.LabClient`:

- the ``falco`` DaemonSet in namespace ``falco`` (labels ``app.kubernetes.io/name=falco``,
  ``app.kubernetes.io/instance=falco``; ``hostPID``, the host's ``/proc`` at
  ``/host/proc`` as in the official chart) running the lab's Falco stand-in, which
  writes the alert to its log, to ``DIR/falco/alerts.txt`` and, as Falco JSON, to
  ``DIR/falco/alerts.jsonl``;
- the walkthrough's ``cryptominer-demo`` Deployment (label ``app=cryptominer``,
  container ``miner``, image ``ubuntu:latest``) whose ``/bin/sh -c`` command writes
  ``/tmp/xmrig`` (a harmless stand-in compiled from ``assets/xmrig.c``, copied from a
  read-only ``hostPath`` instead of the walkthrough's download) and runs
  ``/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x``. The miner talks
  stratum to the lab's pool (``DIR/pool/received.jsonl``).

It returns once Falco has alerted on the miner, with the alert and where the miner is.
Playing it again while it runs returns the same miner's alert.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from falcoir.errors import LabError
from falcoir.lab.assets import asset, compile_c
from falcoir.lab.client import LabApiError, LabClient

JSON = dict[str, Any]

MINER_ARGS = "-o pool.example.com:3333 -u wallet_address -p x"
# The container's own /tmp (a private tmpfs), as in the walkthrough.
MINER_COMMAND = (
    f"cp /opt/payload/xmrig /tmp/xmrig && chmod +x /tmp/xmrig && /tmp/xmrig {MINER_ARGS}"
)
FALCO_NAMESPACE = "falco"
FALCO_IMAGE = "falcosecurity/falco:0.39.2"


@dataclass(frozen=True)
class CryptominerScenario:
    """Where the scenario's miner runs, and what Falco said about it."""

    namespace: str
    deployment: str
    pod: str
    pod_uid: str
    container: str
    container_id: str
    """``containerd://<64 hex>``, as in the pod's status."""
    node: str
    pod_ip: str
    host_pid: int
    vpid: int
    alert_text: str
    """The walkthrough's text alert with the real host pid (one line)."""
    alert_json: JSON = field(repr=False)
    """The same event as Falco JSON."""
    falco_pod: str
    state_dir: Path

    @property
    def alerts_txt(self) -> Path:
        return self.state_dir / "falco" / "alerts.txt"

    @property
    def alerts_jsonl(self) -> Path:
        return self.state_dir / "falco" / "alerts.jsonl"

    @property
    def pool_records(self) -> Path:
        return self.state_dir / "pool" / "received.jsonl"

    def pool_messages(self) -> int:
        """Stratum messages the lab's pool has had from this pod so far (the miner sends
        one every 0.5 s while it can reach the pool)."""
        from falcoir.lab.linux.pool import messages_from

        return messages_from(self.state_dir, self.pod_ip)


def payload_dir(state_dir: Path) -> Path:
    """Build (once) the directory holding the miner stand-in the Deployment copies."""
    d = Path(state_dir).resolve() / "scenario" / "payload"
    d.mkdir(parents=True, exist_ok=True)
    built = compile_c("xmrig", d.parent / "build")
    target = d / "xmrig"
    src = built if built is not None else asset("xmrig.sh")
    if not target.exists() or target.read_bytes() != src.read_bytes():
        tmp = d / ".xmrig.tmp"
        shutil.copyfile(src, tmp)
        tmp.chmod(0o755)
        tmp.replace(target)
    return d


def _mount(name: str, path: str, *, read_only: bool = False) -> JSON:
    return {"name": name, "mountPath": path, **({"readOnly": True} if read_only else {})}


def _host_path(name: str, path: str) -> JSON:
    return {"name": name, "hostPath": {"path": path, "type": "DirectoryOrCreate"}}


def falco_manifests(state_dir: Path) -> list[JSON]:
    sd = Path(state_dir).resolve()
    labels = {"app.kubernetes.io/name": "falco", "app.kubernetes.io/instance": "falco"}
    (sd / "falco").mkdir(parents=True, exist_ok=True)
    (sd / "runtime" / "containers").mkdir(parents=True, exist_ok=True)
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FALCO_NAMESPACE}},
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "falco", "namespace": FALCO_NAMESPACE, "labels": dict(labels)},
            "spec": {
                "selector": {"matchLabels": dict(labels)},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {
                        "hostPID": True,
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [
                            {
                                "name": "falco",
                                "image": FALCO_IMAGE,
                                "args": [
                                    "--proc",
                                    "/host/proc",
                                    "--cri",
                                    "/host/run/falcoir/containers",
                                    "--out",
                                    "/var/run/falcoir-alerts",
                                ],
                                "env": [
                                    {
                                        "name": "FALCO_HOSTNAME",
                                        "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                                    }
                                ],
                                "securityContext": {"privileged": True},
                                "volumeMounts": [
                                    _mount("proc-fs", "/host/proc", read_only=True),
                                    _mount("cri", "/host/run/falcoir/containers", read_only=True),
                                    _mount("alerts", "/var/run/falcoir-alerts"),
                                ],
                            }
                        ],
                        "volumes": [
                            _host_path("proc-fs", "/proc"),
                            _host_path("cri", str(sd / "runtime" / "containers")),
                            _host_path("alerts", str(sd / "falco")),
                        ],
                    },
                },
            },
        },
    ]


def miner_manifest(
    state_dir: Path, *, namespace: str = "default", name: str = "cryptominer-demo"
) -> JSON:
    payload = payload_dir(state_dir)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "cryptominer"}},
            "template": {
                "metadata": {"labels": {"app": "cryptominer"}},
                "spec": {
                    "containers": [
                        {
                            "name": "miner",
                            "image": "ubuntu:latest",
                            "command": ["/bin/sh", "-c", MINER_COMMAND],
                            "volumeMounts": [
                                {"name": "payload", "mountPath": "/opt/payload", "readOnly": True}
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "payload", "hostPath": {"path": str(payload), "type": "Directory"}}
                    ],
                },
            },
        },
    }


def _apply(client: LabClient, body: JSON) -> None:
    if body["kind"] == "Namespace":
        try:
            client.create("namespaces", body)
        except LabApiError as exc:
            if exc.reason != "AlreadyExists":
                raise
        return
    client.apply(body)


def _running_pod(client: LabClient, namespace: str, selector: str, container: str) -> JSON | None:
    for pod in client.list("pods", namespace, label_selector=selector):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") == container and "running" in (cs.get("state") or {}):
                return pod
    return None


def _container_id(pod: JSON, container: str) -> str:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            return str(cs.get("containerID", ""))
    return ""


def read_alerts(state_dir: Path) -> list[JSON]:
    """The Falco stand-in's JSON alerts so far."""
    path = Path(state_dir) / "falco" / "alerts.jsonl"
    out = []
    try:
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    except FileNotFoundError:
        pass
    return out


def _text_for(state_dir: Path, pid: int) -> str:
    try:
        lines = (Path(state_dir) / "falco" / "alerts.txt").read_text().splitlines()
    except FileNotFoundError:
        return ""
    return next((ln for ln in reversed(lines) if ln.endswith(f", pid={pid})")), "")


def _require_isolating_lab(sd: Path) -> None:
    """The miner needs the Linux runtime's namespaces, /etc/hosts and pool."""
    records = []
    for f in (sd / "runtime").glob("lab-*.json"):
        try:
            records.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    if not any(isinstance(r, dict) and r.get("gateway") for r in records):
        raise LabError(
            f"the lab at {sd} does not run isolated pods, so the cryptominer scenario "
            "cannot play there",
            hint="run `falcoir lab up` as root on Linux (with iproute2 and util-linux)",
        )


def play_cryptominer(
    client: LabClient,
    state_dir: Path,
    *,
    namespace: str = "default",
    name: str = "cryptominer-demo",
    timeout: float = 60.0,
) -> CryptominerScenario:
    """Apply Falco and the miner, wait for Falco's alert on it, return where it is."""
    sd = Path(state_dir).resolve()
    _require_isolating_lab(sd)
    for body in falco_manifests(sd):
        _apply(client, body)
    _apply(client, miner_manifest(sd, namespace=namespace, name=name))
    deadline = time.monotonic() + timeout
    pod: JSON | None = None
    falco: JSON | None = None
    while time.monotonic() < deadline:
        pod = pod or _running_pod(client, namespace, "app=cryptominer", "miner")
        falco = falco or _running_pod(
            client, FALCO_NAMESPACE, "app.kubernetes.io/name=falco", "falco"
        )
        if pod is not None and falco is not None:
            break
        time.sleep(0.1)
    if pod is None or falco is None:
        what = "the cryptominer-demo pod" if pod is None else "the falco pod"
        raise LabError(f"{what} did not start within {timeout:.0f} s",
                       hint="see `kubectl get pods -A` and `kubectl get events -A`")  # fmt: skip
    cid = _container_id(pod, "miner")
    short = cid.split("://", 1)[-1][:12]
    alert: JSON | None = None
    while time.monotonic() < deadline:
        pod = _running_pod(client, namespace, "app=cryptominer", "miner") or pod
        cid = _container_id(pod, "miner")
        short = cid.split("://", 1)[-1][:12]
        alert = next(
            (
                a
                for a in reversed(read_alerts(sd))
                if (a.get("output_fields") or {}).get("container.id") == short
            ),
            None,
        )
        if alert is not None:
            break
        time.sleep(0.1)
    if alert is None:
        raise LabError(
            f"Falco did not alert on the miner (container {short}) within {timeout:.0f} s",
            hint="is the lab isolated (root on Linux)? see `kubectl logs -n falco ds/falco`",
        )
    fields = alert["output_fields"]
    pid = int(fields["proc.pid"])
    text = ""
    for _ in range(20):
        text = _text_for(sd, pid)
        if text:
            break
        time.sleep(0.05)
    return CryptominerScenario(
        namespace=namespace,
        deployment=name,
        pod=pod["metadata"]["name"],
        pod_uid=pod["metadata"]["uid"],
        container="miner",
        container_id=cid,
        node=str(pod["spec"].get("nodeName", "")),
        pod_ip=str((pod.get("status") or {}).get("podIP", "")),
        host_pid=pid,
        vpid=int(fields.get("proc.vpid") or 0),
        alert_text=text,
        alert_json=alert,
        falco_pod=falco["metadata"]["name"],
        state_dir=sd,
    )
