"""The one interface the domain uses to talk to a cluster.

``falcoir.cluster`` implements it with the official ``kubernetes`` client; tests use
``tests/fakes.py``. Objects cross this boundary as raw Kubernetes JSON (``dict``), the
same shape the API server sends, so fakes and the lab can produce them exactly.

Errors: implementations raise only :mod:`falcoir.errors` classes
(``ClusterUnreachable``, ``Forbidden``, ``ApiNotFound``, ``ApiConflict``,
``ApiInvalid``, ``ApiError``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol

JSON = dict[str, Any]
JSONPatch = JSON | list[JSON]
"""A merge/strategic-merge patch (mapping) or a JSON patch (list of operations)."""


@dataclass(frozen=True)
class Resource:
    """A Kubernetes resource type, as the REST paths name it."""

    group_version: str
    """``v1`` for the core group, else ``group/version``."""
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return self.group_version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The REST path of the collection or of one object."""
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
        return base


PODS = Resource("v1", "pods", "Pod")
NODES = Resource("v1", "nodes", "Node", namespaced=False)
NAMESPACES = Resource("v1", "namespaces", "Namespace", namespaced=False)
EVENTS = Resource("v1", "events", "Event")
NETWORK_POLICIES = Resource("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy")
REPLICA_SETS = Resource("apps/v1", "replicasets", "ReplicaSet")
DEPLOYMENTS = Resource("apps/v1", "deployments", "Deployment")
STATEFUL_SETS = Resource("apps/v1", "statefulsets", "StatefulSet")
DAEMON_SETS = Resource("apps/v1", "daemonsets", "DaemonSet")
REPLICATION_CONTROLLERS = Resource("v1", "replicationcontrollers", "ReplicationController")
JOBS = Resource("batch/v1", "jobs", "Job")
CRON_JOBS = Resource("batch/v1", "cronjobs", "CronJob")

RESOURCES_BY_KIND: Mapping[str, Resource] = {
    r.kind: r
    for r in (
        PODS,
        NODES,
        NAMESPACES,
        EVENTS,
        NETWORK_POLICIES,
        REPLICA_SETS,
        DEPLOYMENTS,
        STATEFUL_SETS,
        DAEMON_SETS,
        REPLICATION_CONTROLLERS,
        JOBS,
        CRON_JOBS,
    )
}


@dataclass(frozen=True)
class ExecResult:
    """What one command run in a container produced, whatever happened.

    ``exit_code`` is the command's exit status (0 on Success, N from the
    NonZeroExitCode cause); ``None`` when it could not run or did not finish, in which
    case ``error`` says why (``"executable file not found"``, ``"timeout"``,
    ``"stream dropped"``, the API's message...).
    """

    argv: tuple[str, ...]
    container: str | None
    stdout: bytes
    stderr: bytes
    exit_code: int | None
    started: datetime
    ended: datetime
    error: str | None = None
    error_reason: str | None = None
    """``NotFound`` (the binary does not exist in the image), ``Timeout``,
    ``StreamDropped``, ``InternalError``, ``Forbidden``... when ``error`` is set."""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    stdout_bytes: int = 0
    """Bytes of stdout received (counted also when streamed to a sink)."""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None

    @property
    def ran(self) -> bool:
        """The command started (it has an exit code, even a non-zero one)."""
        return self.exit_code is not None


class ClusterGateway(Protocol):
    """Everything the domain asks of a cluster. Thread-safe: callers use threads."""

    @property
    def context(self) -> str:
        """The kubeconfig context name in use (``in-cluster`` when there is none)."""
        ...

    @property
    def server(self) -> str:
        """The API server URL."""
        ...

    def whoami(self) -> str:
        """The user the API server says we are (SelfSubjectReview), else the
        kubeconfig user name."""
        ...

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        """One object. Raises ``ApiNotFound``."""
        ...

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> list[JSON]:
        """All items (follows ``continue`` tokens); ``namespace=None`` lists across
        namespaces for namespaced resources."""
        ...

    def create(self, resource: Resource, body: JSON, *, dry_run: bool = False) -> JSON:
        """Create in ``body['metadata']['namespace']``. Raises ``ApiConflict`` if it exists."""
        ...

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: JSONPatch,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> JSON:
        """``patch_type``: ``merge`` (JSON merge patch), ``strategic``, or ``json``
        (JSON patch, ``patch`` is a list). ``subresource``: e.g. ``scale``,
        ``ephemeralcontainers``, ``status``."""
        ...

    def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        dry_run: bool = False,
        uid: str | None = None,
    ) -> JSON:
        """Returns the deleted object (or the Status the server returned). With ``uid``,
        only the object with that uid: ``ApiConflict`` when the name now belongs to
        another object."""
        ...

    def exec(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 30.0,
        max_bytes: int = 16 * 1024 * 1024,
        stdout_sink: BinaryIO | None = None,
    ) -> ExecResult:
        """Run ``argv`` (never through a shell we build) in the container.

        Never raises for what the command did: a missing binary, a timeout, a dropped
        stream are all reported in the result. Raises ``Forbidden`` when RBAC denies
        exec, ``ApiNotFound`` when the pod is gone, ``ClusterUnreachable``.
        At most ``max_bytes`` of each of stdout and stderr are kept, and of stderr
        never more than 1 MiB (the rest is counted and dropped, and the
        ``*_truncated`` flag set). With ``stdout_sink``,
        stdout is written there as it arrives instead of held in memory.
        """
        ...

    def read_log(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
        timestamps: bool = False,
        timeout: float = 30.0,
    ) -> bytes:
        """Container log bytes, raw."""
        ...

    def access_review(
        self,
        verb: str,
        resource: str,
        *,
        namespace: str | None = None,
        group: str = "",
        subresource: str = "",
        name: str = "",
    ) -> bool:
        """SelfSubjectAccessReview: is this allowed for us?"""
        ...
