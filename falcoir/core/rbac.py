"""The Kubernetes permissions each falcoir command needs.

One table serves two purposes: the up-front SelfSubjectAccessReviews a command runs
before it changes anything (:func:`check_permissions`), and ``examples/rbac.yaml``, the
least-privilege ClusterRoles an operator binds (:func:`rbac_manifest`; a test keeps the
file and this table in step, and another checks that every API call the contain
commands make is covered by what they declare).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from falcoir.core.gateway import ClusterGateway
from falcoir.errors import Forbidden


@dataclass(frozen=True, order=True)
class Permission:
    """One verb on one resource (``group`` is ``""`` for the core API group)."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def describe(self, namespace: str | None = None) -> str:
        """``create networkpolicies.networking.k8s.io -n prod`` (kubectl's spelling)."""
        res = self.full_resource
        if self.group:
            base, _, sub = res.partition("/")
            res = f"{base}.{self.group}" + (f"/{sub}" if sub else "")
        return f"{self.verb} {res}" + (f" -n {namespace}" if namespace else "")

    def __str__(self) -> str:
        return self.describe()


def _p(verb: str, resource: str, group: str = "", subresource: str = "") -> Permission:
    return Permission(verb, resource, group, subresource)


# Owner kinds: the resource and API group to read (``get``) while walking a pod's
# owner chain, and how to stop the top controller (``scale`` subresource or
# ``spec.suspend``).
OWNER_RESOURCES: Mapping[str, tuple[str, str]] = {
    "ReplicaSet": ("replicasets", "apps"),
    "Deployment": ("deployments", "apps"),
    "StatefulSet": ("statefulsets", "apps"),
    "DaemonSet": ("daemonsets", "apps"),
    "ReplicationController": ("replicationcontrollers", ""),
    "Job": ("jobs", "batch"),
    "CronJob": ("cronjobs", "batch"),
}
SCALABLE_KINDS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"})
SUSPENDABLE_KINDS = frozenset({"Job", "CronJob"})


def owner_read_permissions(kinds: Iterable[str] | None = None) -> tuple[Permission, ...]:
    """``get`` on each owner kind (all known kinds when ``kinds`` is None)."""
    wanted = OWNER_RESOURCES if kinds is None else [k for k in kinds if k in OWNER_RESOURCES]
    return tuple(sorted({_p("get", *OWNER_RESOURCES[k]) for k in wanted}))


def stop_owner_permissions(kind: str) -> tuple[Permission, ...]:
    """What ``delete --scale-owner`` needs to stop a controller of ``kind``."""
    res, group = OWNER_RESOURCES[kind]
    if kind in SCALABLE_KINDS:
        return (_p("patch", res, group, "scale"),)
    if kind in SUSPENDABLE_KINDS:
        return (_p("patch", res, group),)
    return ()


PROBE = (_p("create", "pods", "", "exec"), _p("get", "pods", "", "exec"))
"""Exec (the in-pod probe). WebSocket exec is authorised as ``get`` today and as
``create`` from Kubernetes 1.35: both are needed."""


def quarantine_permissions(
    *, probe: bool = True, detach_owner_kind: str | None = None
) -> tuple[Permission, ...]:
    """``falcoir quarantine``: read the pod, create the policy, label the pod, probe."""
    perms = {
        _p("get", "pods"),
        _p("list", "pods"),
        _p("patch", "pods"),
        _p("get", "networkpolicies", "networking.k8s.io"),
        _p("create", "networkpolicies", "networking.k8s.io"),
    }
    if probe:
        perms.update(PROBE)
    if detach_owner_kind is not None:
        perms.update(owner_read_permissions([detach_owner_kind]))
    return tuple(sorted(perms))


def release_permissions() -> tuple[Permission, ...]:
    """``falcoir release``: find the labelled pods and falcoir's policies, undo them."""
    return tuple(
        sorted(
            {
                _p("get", "pods"),
                _p("list", "pods"),
                _p("patch", "pods"),
                _p("get", "networkpolicies", "networking.k8s.io"),
                _p("list", "networkpolicies", "networking.k8s.io"),
                _p("delete", "networkpolicies", "networking.k8s.io"),
            }
        )
    )


def delete_permissions(
    *, owner_kinds: Iterable[str] = (), scale_owner_kind: str | None = None
) -> tuple[Permission, ...]:
    """``falcoir delete``: read the pod and its owners, delete it (and stop the owner)."""
    perms = {_p("get", "pods"), _p("delete", "pods")}
    perms.update(owner_read_permissions(owner_kinds))
    if scale_owner_kind is not None:
        perms.update(stop_owner_permissions(scale_owner_kind))
    return tuple(sorted(perms))


def _all_stop_permissions() -> set[Permission]:
    out: set[Permission] = set()
    for kind in OWNER_RESOURCES:
        out.update(stop_owner_permissions(kind))
    return out


_READ_PODS = (_p("get", "pods"), _p("list", "pods"))

LOCATE_PERMISSIONS: tuple[Permission, ...] = tuple(
    sorted({*_READ_PODS, *PROBE, *owner_read_permissions(), _p("get", "nodes")})
)
"""``falcoir locate`` (best knowledge of the locate engine: pods across namespaces,
exec into the Falco pod to read the node's ``/proc``, the owner chain; the opt-in node
debug pod needs ``create``/``delete pods`` in the Falco namespace on top)."""

COLLECT_IN_NAMESPACE: tuple[Permission, ...] = (
    _p("get", "pods"),
    *PROBE,
    _p("get", "pods", "", "log"),
    _p("list", "events"),
)
"""What the evidence collection needs in the pod's namespace (``respond`` checks these
up front, before it acts)."""

COLLECT_PERMISSIONS: tuple[Permission, ...] = tuple(
    sorted(
        {
            *LOCATE_PERMISSIONS,
            *COLLECT_IN_NAMESPACE,
            _p("patch", "pods", "", "ephemeralcontainers"),
        }
    )
)
"""``falcoir collect``: locate's, plus logs, events, and the ephemeral debug container
used for images without a shell."""

COMMAND_PERMISSIONS: Mapping[str, tuple[Permission, ...]] = {
    "locate": LOCATE_PERMISSIONS,
    "collect": COLLECT_PERMISSIONS,
    "quarantine": tuple(sorted(set(quarantine_permissions()) | set(owner_read_permissions()))),
    "release": release_permissions(),
    "delete": tuple(
        sorted(set(delete_permissions(owner_kinds=OWNER_RESOURCES)) | _all_stop_permissions())
    ),
}
COMMAND_PERMISSIONS = {
    **COMMAND_PERMISSIONS,
    "respond": tuple(sorted({p for perms in COMMAND_PERMISSIONS.values() for p in perms})),
}
"""Everything each command may need, whatever its options: the ClusterRoles of
``examples/rbac.yaml``. Another command module may declare its own list with
:func:`register_command`."""

_EXTRA: dict[str, tuple[Permission, ...]] = {}


def register_command(name: str, perms: Sequence[Permission]) -> None:
    """Let another command module declare what it needs (for ``examples/rbac.yaml``)."""
    _EXTRA[name] = tuple(sorted(set(perms)))


def command_permissions() -> dict[str, tuple[Permission, ...]]:
    return {**COMMAND_PERMISSIONS, **_EXTRA}


def rbac_rules(perms: Iterable[Permission]) -> list[dict[str, Any]]:
    """RBAC ``rules`` for ``perms``: one rule per (group, resource), verbs sorted."""
    grouped: dict[tuple[str, str], set[str]] = {}
    for p in perms:
        grouped.setdefault((p.group, p.full_resource), set()).add(p.verb)
    return [
        {"apiGroups": [group], "resources": [res], "verbs": sorted(verbs)}
        for (group, res), verbs in sorted(grouped.items())
    ]


def rbac_manifest(
    commands: Mapping[str, Sequence[Permission]] | None = None,
) -> list[dict[str, Any]]:
    """One ClusterRole ``falcoir-<command>`` per command (bind it with a RoleBinding in
    the namespaces the on-call engineer may act on)."""
    table = commands if commands is not None else command_permissions()
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": f"falcoir-{name}",
                "labels": {"app.kubernetes.io/name": "falcoir"},
            },
            "rules": rbac_rules(perms),
        }
        for name, perms in sorted(table.items())
    ]


def check_permissions(
    gateway: ClusterGateway, perms: Iterable[Permission], namespace: str | None
) -> None:
    """Ask the API server (SelfSubjectAccessReview) about every permission, in
    parallel; raise :class:`Forbidden` naming each one that is missing. Changes nothing."""
    wanted = sorted(set(perms))
    if not wanted:
        return

    def ask(p: Permission) -> bool:
        return gateway.access_review(
            p.verb, p.resource, namespace=namespace, group=p.group, subresource=p.subresource
        )

    with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
        answers = list(pool.map(ask, wanted))
    missing = [p.describe(namespace) for p, ok in zip(wanted, answers, strict=True) if not ok]
    if missing:
        raise Forbidden(
            f"RBAC forbids {len(missing)} permission(s) this needs; nothing was changed:",
            missing=missing,
            hint="ask for the matching ClusterRole in examples/rbac.yaml, bound in this "
            "namespace with a RoleBinding",
        )


def granted(
    gateway: ClusterGateway,
    perms: Iterable[Permission],
    namespace: str | None = None,
    *,
    workers: int = 16,
) -> frozenset[Permission]:
    """Which of ``perms`` the API server grants (``namespace`` None: in every namespace,
    which only a ClusterRoleBinding gives), ``workers`` questions at a time. Changes
    nothing; raises what the gateway raises."""
    wanted = sorted(set(perms))
    if not wanted:
        return frozenset()

    def ask(p: Permission) -> bool:
        return gateway.access_review(
            p.verb, p.resource, namespace=namespace, group=p.group, subresource=p.subresource
        )

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(wanted)))) as pool:
        answers = list(pool.map(ask, wanted))
    return frozenset(p for p, ok in zip(wanted, answers, strict=True) if ok)


RBAC_HEADER = """\
# Least-privilege ClusterRoles for falcoir, one per command (respond = all of them).
# Generated from falcoir/core/rbac.py (tests/contain/test_rbac.py keeps them in step):
#   python -c 'from falcoir.core.rbac import rbac_yaml; print(rbac_yaml(), end="")' \\
#     > examples/rbac.yaml
# Bind a role only where the on-call engineer may act, with a RoleBinding per namespace:
#   kubectl -n prod create rolebinding oncall-falcoir-quarantine \\
#     --clusterrole=falcoir-quarantine --group=oncall
# locate finds pods by container id or host pid across namespaces and reads the node
# through the Falco pod: bind falcoir-locate (and collect/respond) with a
# ClusterRoleBinding, or a RoleBinding in the workload and Falco namespaces.
# Every command checks what it needs up front (SelfSubjectAccessReview) and names each
# missing permission (exit 4) before it changes anything.
"""


def rbac_yaml() -> str:
    """``examples/rbac.yaml``: the header and one YAML document per ClusterRole."""
    import yaml

    docs = [yaml.safe_dump(d, sort_keys=False, default_flow_style=None) for d in rbac_manifest()]
    return RBAC_HEADER + "".join("---\n" + d for d in docs)
