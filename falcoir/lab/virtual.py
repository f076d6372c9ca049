"""The virtual runtime: pods that are objects only (no processes), for extra nodes,
scale tests and benchmarks, and for the lab node when no Linux runtime is available."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from falcoir.lab.runtime import ContainerNotRunning, ExecProcess, RuntimeEvents

JSON = dict[str, Any]


def fake_container_id(pod_uid: str, container: str) -> str:
    """A stable ``containerd://<64 hex>`` ID for a virtual container."""
    return "containerd://" + hashlib.sha256(f"{pod_uid}/{container}".encode()).hexdigest()


def fake_image_id(image: str) -> str:
    repo = image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image
    if "/" not in repo:
        repo = f"docker.io/library/{repo}"
    elif "." not in repo.split("/")[0]:
        repo = f"docker.io/{repo}"
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def running_status(pod: JSON, pod_ip: str, host_ip: str) -> JSON:
    """A full PodStatus for a pod whose containers all run."""
    now = _now()
    spec = pod.get("spec", {})
    uid = pod["metadata"].get("uid", "")

    def cstatus(c: JSON) -> JSON:
        return {
            "name": c["name"],
            "ready": True,
            "started": True,
            "restartCount": 0,
            "image": c.get("image", ""),
            "imageID": fake_image_id(c.get("image", "")),
            "containerID": fake_container_id(uid, c["name"]),
            "state": {"running": {"startedAt": now}},
            "lastState": {},
        }

    def cond(t: str) -> JSON:
        return {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}

    status: JSON = {
        "phase": "Running",
        "conditions": [
            cond("PodReadyToStartContainers"),
            cond("Initialized"),
            cond("Ready"),
            cond("ContainersReady"),
            cond("PodScheduled"),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": pod.get("status", {}).get("startTime") or now,
        "containerStatuses": [cstatus(c) for c in spec.get("containers") or []],
        "qosClass": pod.get("status", {}).get("qosClass", "BestEffort"),
    }
    if spec.get("initContainers"):
        status["initContainerStatuses"] = [
            {
                **cstatus(c),
                "ready": True,
                "started": False,
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": now,
                        "finishedAt": now,
                        "containerID": fake_container_id(uid, c["name"]),
                    }
                },
            }
            for c in spec["initContainers"]
        ]
    if spec.get("ephemeralContainers"):
        status["ephemeralContainerStatuses"] = [
            {**cstatus(c), "ready": False} for c in spec["ephemeralContainers"]
        ]
    return status


class VirtualRuntime:
    """Pods become Running at once with fake containerd IDs; exec answers an error."""

    isolated = False

    def __init__(self, node_name: str, *, node_index: int = 0, host_ip: str = "127.0.0.1"):
        self.node_name = node_name
        self.host_ip = host_ip
        self._subnet = node_index
        self._next_ip = 2
        self._ips: dict[str, str] = {}
        self._events: RuntimeEvents | None = None

    def _ip(self, uid: str) -> str:
        if uid not in self._ips:
            n = self._next_ip
            self._next_ip += 1
            self._ips[uid] = (
                f"10.{244 + (self._subnet >> 8) % 8}.{self._subnet % 256}.{n % 254 + 1}"
            )
        return self._ips[uid]

    async def start(self, events: RuntimeEvents) -> None:
        self._events = events

    def status_for(self, pod: JSON) -> JSON:
        return running_status(pod, self._ip(pod["metadata"]["uid"]), self.host_ip)

    async def run_pod(self, pod: JSON) -> None:
        md = pod["metadata"]
        if self._events is not None:
            self._events.pod_status(md["namespace"], md["name"], md["uid"], self.status_for(pod))

    async def kill_pod(self, pod: JSON, grace_seconds: int) -> None:
        self._ips.pop(pod["metadata"].get("uid", ""), None)

    async def exec(
        self, pod: JSON, container: str, argv: list[str], *, stdin: bool, tty: bool
    ) -> ExecProcess:
        raise ContainerNotRunning(
            f"pod {pod['metadata'].get('name')} runs on {self.node_name}, a virtual node of "
            "the falcoir lab: it is an object only and has no processes to exec into"
        )

    def log_path(self, pod: JSON, container: str, *, previous: bool) -> Path | None:
        return None

    async def add_ephemeral_container(self, pod: JSON, container: JSON) -> None:
        await self.run_pod(pod)

    async def apply_network_policies(
        self,
        pods: list[JSON],
        policies: list[JSON],
        namespaces: dict[str, dict[str, str]] | None = None,
    ) -> None:
        return None

    async def shutdown(self) -> None:
        self._ips.clear()
