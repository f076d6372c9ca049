"""The interface between the lab's API server and what runs its pods.

The API server (``falcoir.lab.server``) stores objects and speaks HTTP; a
:class:`PodRuntime` makes pods scheduled on the lab's own node real. Two
implementations: a virtual one (objects only, for extra nodes and scale tests) and the
Linux one (``falcoir.lab.linux``: namespaces, cgroups, veth, nftables).

Pods cross this boundary as raw Kubernetes JSON. The runtime reports status changes
back through :class:`RuntimeEvents`; it never touches the object store directly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

JSON = dict[str, Any]


class RuntimeError_(Exception):
    """Base of runtime failures the server turns into Status JSON."""


class ExecNotFound(RuntimeError_):
    """The command's binary does not exist in the container's image profile.

    The server answers as a real kubelet does: Status ``InternalError`` (500) on the
    exec stream's channel 3, message ``... executable file not found in $PATH: unknown``.
    """


class ContainerNotRunning(RuntimeError_):
    """The container is not running (exited, not started, or the pod is virtual)."""


class RuntimeEvents(Protocol):
    """Callbacks from the runtime into the server."""

    def pod_status(self, namespace: str, name: str, uid: str, status: JSON) -> None:
        """Replace ``status`` of the pod (if it still exists with this uid) and notify
        watchers. ``status`` is a full PodStatus: phase, podIP, hostIP, conditions,
        containerStatuses (with ``containerd://<64 hex>`` containerID, state,
        restartCount, ready, image, imageID), ephemeralContainerStatuses."""
        ...

    def pod_event(
        self, namespace: str, name: str, uid: str, reason: str, message: str, type_: str
    ) -> None:
        """Record a core/v1 Event about the pod (Pulled, Created, Started, Killing...)."""
        ...


class ExecProcess(Protocol):
    """A command started in a container by ``PodRuntime.exec``."""

    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader | None
    """``None`` with a TTY (stderr is merged into stdout, as on a real kubelet)."""

    async def write_stdin(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    def resize(self, width: int, height: int) -> None: ...

    async def wait(self) -> int:
        """The exit status (128+N when killed by signal N)."""
        ...

    def kill(self) -> None: ...


class PodRuntime(Protocol):
    """Runs the pods scheduled on one node."""

    node_name: str
    isolated: bool
    """True when pods get their own namespaces and cgroups (root on Linux)."""

    async def start(self, events: RuntimeEvents) -> None: ...

    async def run_pod(self, pod: JSON) -> None:
        """Start the pod's containers (returns once they are started or failed)."""
        ...

    async def kill_pod(self, pod: JSON, grace_seconds: int) -> None:
        """SIGTERM, wait up to ``grace_seconds``, SIGKILL; release everything the pod held."""
        ...

    async def exec(
        self, pod: JSON, container: str, argv: list[str], *, stdin: bool, tty: bool
    ) -> ExecProcess:
        """Start ``argv`` inside the container's namespaces with its image profile.
        Raises ``ExecNotFound`` or ``ContainerNotRunning``."""
        ...

    def log_path(self, pod: JSON, container: str, *, previous: bool) -> Path | None:
        """Where the container's captured stdout/stderr is (``None`` if never ran).

        The server serves ``pods/log`` from this file. Raw bytes are fine; lines in the
        kubelet's CRI format (``<RFC3339Nano> stdout|stderr F|P <text>``) additionally
        give exact ``--timestamps`` and ``sinceSeconds``."""
        ...

    async def add_ephemeral_container(self, pod: JSON, container: JSON) -> None:
        """Start an ephemeral container sharing ``targetContainerName``'s pid namespace."""
        ...

    async def apply_network_policies(
        self,
        pods: list[JSON],
        policies: list[JSON],
        namespaces: dict[str, dict[str, str]] | None = None,
    ) -> None:
        """Enforce the given NetworkPolicies on this node's pods (all of them, every
        time: the runtime computes the full desired state). ``namespaces`` maps each
        namespace to its labels, for ``namespaceSelector`` peers; the server calls again
        whenever a namespace's labels change."""
        ...

    async def shutdown(self) -> None:
        """Kill every process and remove every cgroup, namespace, veth and rule."""
        ...
