"""From an alert (or ``--pod``) to the pod, container and process it is about.

Strategies, cheapest first; each runs only when the previous one cannot answer:

1. ``k8s-fields``: the alert names the namespace and pod: one ``get``.
2. ``container-id``: find the pod whose container status carries the ID, on the
   alert's node only (a ``spec.nodeName`` field selector) when the node is known.
3. ``host-pid``: read ``/proc/<pid>/{status,cgroup,cmdline}`` on the node through the
   Falco pod there (or, with ``--node-debug``, a short-lived debug pod); the cgroup
   path names the pod UID and container ID, ``NSpid`` the pid inside the container.
   With no node known, every node's Falco pod is asked in parallel and only a node
   whose process matches the alert's name and command line is kept.
4. ``scan``: only within a namespace, selector or node the user gave: list the
   processes of each candidate container and compare them with the alert.

Reads that do not depend on each other go out together, each round trip counts: the
node's Falco pods are looked for while the pod (or the node's pods) is read; the
owner chain is read while the in-container pid is, with a ReplicaSet's Deployment (a
Job's CronJob) guessed from its name and read beside it. ``on_found`` hands the target
over before the owner chain is in. What locate read for a target (the pod, the owner
objects) is kept a short while for ``collect`` (:mod:`falcoir.core.locate.known`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

from falcoir.core.gateway import (
    CRON_JOBS,
    DAEMON_SETS,
    DEPLOYMENTS,
    JOBS,
    JSON,
    PODS,
    REPLICA_SETS,
    ClusterGateway,
    Resource,
)
from falcoir.core.locate.hostproc import (
    DebugPod,
    ProcRead,
    ProcReader,
    find_falco_pods,
    read_proc,
    reader_for,
    validate_host_proc,
)
from falcoir.core.locate.options import LocateOptions
from falcoir.core.locate.pods import (
    ContainerInfo,
    default_container,
    find_container_by_id,
    find_container_by_name,
    iter_containers,
    matches_uid,
    normalize_container_id,
    pod_key,
    pod_node,
    pod_phase,
    pod_uid,
)
from falcoir.core.locate.procfs import (
    Match,
    ProcStatus,
    describe,
    process_match,
    same_name,
    valid_pid,
)
from falcoir.core.owners import controller_ref, followable, owner_chain
from falcoir.core.target import LocateMethod, OwnerRef, PodRef, Target
from falcoir.errors import ApiNotFound, Forbidden, InputError, TargetAmbiguous, TargetNotFound

if TYPE_CHECKING:
    # Imported where used (after the first answer), not on the way to the first request
    # (an alert, when there is one, was parsed before: --pod has none).
    from falcoir.core.alert import Alert
    from falcoir.core.locate.scan import ContainerProcess

Step = Callable[[str], None]
T = TypeVar("T")

MAX_PARALLEL = 32
"""Execs in flight at once when every node's Falco pod is asked (one wave per this many
nodes: each wave is a round trip)."""
MAX_SCAN_CONTAINERS = 64
_EMPTY = ProcStatus()
_Matches: TypeAlias = "list[tuple[ContainerProcess, Match]]"


class PodReplaced(TargetNotFound):
    """The alert's pod is gone and its owner made a replacement (exit 5).

    ``replacements`` are ``ns/name`` of the pods that now stand in its place.
    """

    def __init__(
        self,
        message: str,
        *,
        gone: str,
        replacements: tuple[str, ...],
        owner: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.gone = gone
        self.replacements = replacements
        self.owner = owner


def _background(fn: Callable[[], T]) -> Future[T]:
    """Run ``fn`` in a daemon thread now (a hung call cannot keep falcoir alive); the
    future holds its result or its exception, raised again by ``result()``."""
    fut: Future[T] = Future()

    def run() -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn())
        except BaseException as exc:  # handed to whoever asks for the result
            fut.set_exception(exc)

    threading.Thread(target=run, daemon=True, name="falcoir-locate").start()
    return fut


@dataclass
class _Ctx:
    gateway: ClusterGateway
    alert: Alert | None
    options: LocateOptions
    step: Step
    host_proc: str
    notes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    """Why each strategy could not answer: the not-found message is made of these."""
    node_pods: dict[str, Future[list[JSON]]] = field(default_factory=dict)
    falco: dict[str | None, Future[tuple[list[JSON], str]]] = field(default_factory=dict)
    """Running Falco pods by node (``None``: every node), read once, maybe ahead."""
    no_falco_on_node: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_found: Callable[[Target], None] | None = None

    def prefetch_node_pods(self, node: str) -> None:
        """Start listing the node's pods now (each node's are listed once)."""
        with self.lock:
            if node not in self.node_pods:
                # -n narrows it (and lets identities with namespaced Roles only use it)
                self.node_pods[node] = _background(
                    lambda: self.gateway.list(
                        PODS, self.options.namespace, field_selector=f"spec.nodeName={node}"
                    )
                )

    def pods_on_node(self, node: str) -> list[JSON]:
        self.prefetch_node_pods(node)
        return self.node_pods[node].result()

    def prefetch_falco(self, node: str | None) -> None:
        """Start looking for the running Falco pods (on ``node``, or everywhere)."""
        with self.lock:
            if node not in self.falco:
                self.falco[node] = _background(
                    lambda: find_falco_pods(self.gateway, self.options, node)
                )

    def falco_pods(self, node: str | None) -> tuple[list[JSON], str]:
        """The running Falco pods on ``node`` (from every node's, when those were read
        ahead) and the selector that found them."""
        with self.lock:
            everywhere = self.falco.get(None) if node not in self.falco else None
        if node is not None and everywhere is not None:
            pods, selector = everywhere.result()
            here = [p for p in pods if pod_node(p) == node]
            if here:
                return here, selector
            # none by the selector that found the others: the node's own may differ
        self.prefetch_falco(node)
        return self.falco[node].result()

    def wants_pid_read(self) -> bool:
        """The in-container pid will be read through the node's Falco pod (the alert
        has a host pid but no ``proc.vpid``): its Falco pods can be looked for ahead."""
        proc = self.alert.process if self.alert else None
        return bool(proc and valid_pid(proc.pid) and not valid_pid(proc.vpid))


def _noop(_: str) -> None:
    return None


def locate(
    gateway: ClusterGateway,
    *,
    alert: Alert | None = None,
    pod: PodRef | None = None,
    options: LocateOptions = LocateOptions(),  # noqa: B008 - frozen dataclass
    on_step: Step | None = None,
    on_found: Callable[[Target], None] | None = None,
) -> Target:
    """Find the pod, container and process an alert (or ``--pod``) is about.

    ``on_found``, when given, is called (in the calling thread: keep it short) with the
    target as soon as the pod, container and pids are known, before the owner chain
    has been read (``owner`` is empty then), so that work which does not need the
    owners (a process snapshot, a quarantine) can start one round trip earlier. Called
    exactly once when the target is found, never when it is not.

    Raises ``TargetNotFound`` (saying which flag or field would help),
    ``TargetAmbiguous`` (with the candidates), ``Forbidden``, ``ClusterUnreachable``.
    """
    ctx = _Ctx(
        gateway=gateway,
        alert=alert,
        options=options,
        step=on_step or _noop,
        on_found=on_found,
        host_proc=validate_host_proc(options.host_proc),
    )
    if pod is not None:
        return _by_pod_flag(ctx, pod)
    if alert is None:
        raise InputError(
            "nothing to locate", hint="give the Falco alert, -f FILE, or --pod NS/NAME"
        )
    for strategy in (_by_k8s_fields, _by_container_id, _by_host_pid, _by_scan):
        target = strategy(ctx, alert)
        if target is not None:
            return target
    raise TargetNotFound(
        "cannot locate the alert's pod: " + "; ".join(ctx.reasons),
        hint=_what_would_help(ctx, alert),
    )


# -- building the result --------------------------------------------------------------


def _make_target(
    ctx: _Ctx,
    pod: JSON,
    container: ContainerInfo | None,
    method: LocateMethod,
    *,
    host_pid: int | None = None,
    vpid: int | None = None,
    runtime: str | None = None,
    container_id: str | None = None,
) -> Target:
    meta = pod.get("metadata") or {}
    if pod_phase(pod) in ("Succeeded", "Failed"):
        ctx.notes.append(f"pod phase is {pod_phase(pod)}: its containers have stopped")
    if meta.get("deletionTimestamp"):
        ctx.notes.append(f"pod is being deleted (since {meta.get('deletionTimestamp')})")
    # The owner chain is read while the pid is looked for (neither needs the other).
    cut_short: list[str] = []
    chain_read = _background(lambda: _owner_chain(ctx, pod, cut_short))
    if container is not None and ctx.alert is not None and vpid is None:
        host_pid, vpid = _enrich_pids(ctx, pod, container, host_pid)
    found = Target(
        namespace=str(meta.get("namespace")),
        pod=str(meta.get("name")),
        container=container.name if container else None,
        method=method,
        node=pod_node(pod),
        pod_uid=pod_uid(pod),
        container_id=(container.container_id if container else None) or container_id,
        container_runtime=(container.runtime if container else None) or runtime,
        vpid=vpid,
        host_pid=host_pid,
        image=container.image if container else None,
        notes=tuple(ctx.notes),
    )
    if ctx.on_found is not None:
        ctx.on_found(found)  # the owner chain may still be on its way
    chain, owners = chain_read.result()
    ctx.notes.extend(f"owner chain cut short: cannot {perm}" for perm in cut_short)
    if chain:
        ctx.step("owners: " + " -> ".join(f"{o.kind} {o.name}" for o in chain))
    target = replace(found, owner=chain, notes=tuple(ctx.notes))
    from falcoir.core.locate.known import Located, remember

    remember(target, Located(pod, owners))
    return target


class _Ahead:
    """The gateway, with some ``get`` calls started ahead: the owner chain reads one
    level after another (only an owner knows its own owner), but a ReplicaSet's
    Deployment and a Job's CronJob can be guessed from their names and read at the
    same time. A guess is only used when the chain asks for that very object (and its
    uid is checked there as always); a wrong guess costs one read, nothing else."""

    def __init__(self, gateway: ClusterGateway) -> None:
        self._gateway = gateway
        self._ahead: dict[tuple[str, str, str | None], Future[JSON]] = {}
        self.objects: dict[tuple[str, str], JSON] = {}
        """What the chain read, by ``(kind, name)``."""

    def start(self, resource: Resource, name: str, namespace: str | None) -> None:
        self._ahead[(resource.plural, name, namespace)] = _background(
            lambda: self._gateway.get(resource, name, namespace)
        )

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        ahead = self._ahead.pop((resource.plural, name, namespace), None)
        # the object, or the very error the read raised
        obj = ahead.result() if ahead is not None else self._gateway.get(resource, name, namespace)
        self.objects[(resource.kind, name)] = obj
        return obj

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._gateway, attr)


def _guess_owner(pod: JSON) -> tuple[Resource, str] | None:
    """The owner of the pod's owner, when its name gives it away: ``<deployment>-<pod
    template hash>`` for a ReplicaSet (the hash is the pod's ``pod-template-hash``
    label), ``<cronjob>-<scheduled minute>`` for a Job."""
    ref = controller_ref(pod)
    if ref is None or followable(ref) is None:
        return None
    labels = (pod.get("metadata") or {}).get("labels") or {}
    base, sep, suffix = ref.name.rpartition("-")
    if not (sep and base and suffix):
        return None
    if ref.kind == "ReplicaSet" and labels.get("pod-template-hash") == suffix:
        return DEPLOYMENTS, base
    if ref.kind == "Job" and suffix.isdigit() and len(suffix) >= 8:
        return CRON_JOBS, base
    return None


def _owner_chain(
    ctx: _Ctx, pod: JSON, cut_short: list[str]
) -> tuple[tuple[OwnerRef, ...], dict[tuple[str, str], JSON]]:
    """The chain, and the owner objects read for it."""
    gateway = _Ahead(ctx.gateway)
    guess = _guess_owner(pod)
    namespace = (pod.get("metadata") or {}).get("namespace")
    if guess is not None and isinstance(namespace, str):
        gateway.start(guess[0], guess[1], namespace)
    chain = owner_chain(cast(ClusterGateway, gateway), pod, on_forbidden=cut_short.append)
    return chain, gateway.objects


def _missing(exc: Forbidden) -> str:
    return "forbidden: " + (", ".join(exc.missing) or exc.message)


def _alert_pid(ctx: _Ctx) -> int | None:
    return valid_pid(ctx.alert.process.pid) if ctx.alert else None


def _enrich_pids(
    ctx: _Ctx, pod: JSON, container: ContainerInfo, host_pid: int | None
) -> tuple[int | None, int | None]:
    """The pid inside the container for a target found without ``/proc``: the alert's
    ``proc.vpid``; else ``NSpid`` of its host pid read through the node's Falco pod;
    else the process in the container whose name and command line match."""
    assert ctx.alert is not None
    proc = ctx.alert.process
    host_pid = host_pid or _alert_pid(ctx)
    if valid_pid(proc.vpid):
        return host_pid, valid_pid(proc.vpid)
    node = pod_node(pod)
    if host_pid and node and container.container_id:
        try:
            falco, _ = ctx.falco_pods(node)
            read = (
                # status and cgroup say it all: the command line is not needed here
                read_proc(
                    ctx.gateway,
                    reader_for(falco[0], ctx.host_proc),
                    host_pid,
                    want_cmdline=_never,
                )
                if falco
                else None
            )
        except Forbidden as exc:
            ctx.notes.append(f"in-container pid not read through Falco: {_missing(exc)}")
            read = None
        if read is not None:
            if read.ok and read.cgroup and read.cgroup.container_id == container.container_id:
                assert read.status is not None
                ctx.step(f"pid {host_pid}: NSpid on {node} gives pid {read.status.vpid} inside")
                return host_pid, read.status.vpid
            ctx.notes.append(
                f"host pid {host_pid} on {node} could not be tied to the container"
                + (f" ({read.problem})" if read.problem else "")
            )
            if read.ok:
                host_pid = None  # that pid is another process now
    if (proc.name or proc.cmdline) and container.running:
        from falcoir.core.locate.scan import list_processes, match_processes

        try:
            procs, problem = list_processes(
                ctx.gateway,
                str((pod.get("metadata") or {}).get("namespace")),
                str((pod.get("metadata") or {}).get("name")),
                container.name,
            )
        except Forbidden as exc:
            ctx.notes.append(f"in-container pid unknown: {_missing(exc)}")
            return host_pid, None
        found = [(p, m) for p, m in match_processes(proc, procs) if m == Match.STRONG]
        if len(found) == 1:
            ctx.step(f"process list in {container.name}: pid {found[0][0].pid} matches")
            return host_pid, found[0][0].pid
        if problem:
            ctx.notes.append(problem)
        elif found:
            pids = ", ".join(str(p.pid) for p, _ in found)
            ctx.notes.append(f"several processes match the alert in the container: {pids}")
        else:
            ctx.notes.append("no process in the container matches the alert any more")
    return host_pid, None


def _never(_: ProcStatus) -> bool:
    return False


def _pick_container(ctx: _Ctx, pod: JSON, *, cid: str | None = None) -> ContainerInfo | None:
    """``-c``, else the alert's container ID or name, else the pod's default."""
    key = pod_key(pod)
    if ctx.options.container:
        c = find_container_by_name(pod, ctx.options.container)
        if c is None:
            names = ", ".join(x.name for x in iter_containers(pod))
            raise TargetNotFound(
                f"pod {key} has no container {ctx.options.container!r} (it has {names})",
                hint="pick one of those with -c CONTAINER",
            )
        return c
    alert = ctx.alert
    cid = cid or (
        normalize_container_id(alert.container.full_id)
        or normalize_container_id(alert.container.id)
        if alert
        else None
    )
    if cid:
        c = find_container_by_id(pod, cid)
        if c is not None:
            return c
        ctx.notes.append(f"container id {cid[:12]} is not in pod {key} now (restarted?)")
    if alert and alert.container.name:
        c = find_container_by_name(pod, alert.container.name)
        if c is not None:
            return c
    c, note = default_container(pod)
    if note:
        ctx.notes.append(note)
    return c


# -- strategy 0: --pod ----------------------------------------------------------------


def _by_pod_flag(ctx: _Ctx, ref: PodRef) -> Target:
    try:
        pod = ctx.gateway.get(PODS, ref.name, ref.namespace)
    except ApiNotFound:
        ctx.step(f"--pod: {ref} — not found")
        _raise_gone(ctx, ref.namespace, ref.name, None, source="--pod")
    ctx.step(f"--pod: {ref} — found")
    return _make_target(ctx, pod, _pick_container(ctx, pod), LocateMethod.POD_FLAG)


# -- strategy 1: k8s fields -----------------------------------------------------------


def _by_k8s_fields(ctx: _Ctx, alert: Alert) -> Target | None:
    ns, name = alert.k8s.namespace, alert.k8s.pod
    if not (ns and name):
        ctx.reasons.append("the alert has no k8s.ns.name/k8s.pod.name")
        return None
    node = ctx.options.node or alert.node
    if node and ctx.wants_pid_read():
        ctx.prefetch_falco(node)  # the pod runs there: its Falco pod reads the pid
    try:
        pod = ctx.gateway.get(PODS, name, ns)
    except ApiNotFound:
        ctx.step(f"k8s fields: {ns}/{name} — gone")
        _raise_gone(ctx, ns, name, alert.k8s.pod_uid, source="the alert's k8s fields")
    uid = (alert.k8s.pod_uid or "").lower()
    if uid and not matches_uid(pod, uid):
        ctx.step(f"k8s fields: {ns}/{name} — same name, new uid")
        raise PodReplaced(
            f"pod {ns}/{name} of the alert (uid {uid}) is gone; a new pod with the same "
            f"name (uid {pod_uid(pod)}) replaced it",
            gone=f"{ns}/{name}",
            replacements=(f"{ns}/{name}",),
            hint=f"to act on the replacement anyway: --pod {ns}/{name}",
        )
    ctx.step(f"k8s fields: {ns}/{name} — found")
    return _make_target(ctx, pod, _pick_container(ctx, pod), LocateMethod.K8S_FIELDS)


_REPLACEMENT_OWNERS: tuple[Resource, ...] = (REPLICA_SETS, DAEMON_SETS, JOBS)


def _raise_gone(ctx: _Ctx, ns: str, name: str, uid: str | None, *, source: str) -> None:
    """Raise ``PodReplaced`` when the gone pod's owner made a replacement, else
    ``TargetNotFound``."""
    try:
        owner, replacements = _find_replacements(ctx, ns, name)
    except Forbidden as exc:
        # Not being allowed to look for a replacement does not change the answer.
        owner, replacements = None, []
        ctx.notes.append(f"could not look for a replacement: {_missing(exc)}")
    if replacements:
        names = ", ".join(replacements)
        raise PodReplaced(
            f"pod {ns}/{name} ({source}) no longer exists; {owner} replaced it with {names}",
            gone=f"{ns}/{name}",
            replacements=tuple(replacements),
            owner=owner,
            hint=f"the evidence in {name} is gone; to act on the replacement: "
            f"--pod {replacements[0]}",
        )
    raise TargetNotFound(
        f"pod {ns}/{name} ({source}) not found",
        hint=f"it was deleted, or the namespace is wrong; check with 'kubectl get pods -n {ns}'",
    )


def _find_replacements(ctx: _Ctx, ns: str, name: str) -> tuple[str | None, list[str]]:
    prefix, sep, _ = name.rpartition("-")
    if not sep or not prefix:
        return None, []
    for resource in _REPLACEMENT_OWNERS:
        try:
            owner = ctx.gateway.get(resource, prefix, ns)
        except ApiNotFound:
            continue
        match_labels = ((owner.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not match_labels:
            return None, []
        owner_uid = (owner.get("metadata") or {}).get("uid")
        top = controller_ref(owner)
        label = f"{resource.kind} {prefix}"
        if top is not None and top.kind == "Deployment":
            label += f" (Deployment {top.name})"
            try:
                deploy = ctx.gateway.get(DEPLOYMENTS, top.name, ns)
                match_labels = ((deploy.get("spec") or {}).get("selector") or {}).get(
                    "matchLabels"
                ) or match_labels
            except ApiNotFound:
                top = None
        selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
        pods = ctx.gateway.list(PODS, ns, label_selector=selector)
        found = []
        for p in pods:
            ref = controller_ref(p)
            pname = str((p.get("metadata") or {}).get("name"))
            if ref is None or pname == name or (p.get("metadata") or {}).get("deletionTimestamp"):
                continue
            same_owner = ref.uid == owner_uid if ref.uid and owner_uid else ref.name == prefix
            same_top = (
                top is not None
                and top.kind == "Deployment"
                and ref.kind == "ReplicaSet"
                and ref.name.startswith(f"{top.name}-")
            )
            if same_owner or same_top:
                found.append(f"{ns}/{pname}")
        return label, sorted(found)
    return None, []


# -- strategy 2: container id ---------------------------------------------------------


def _by_container_id(ctx: _Ctx, alert: Alert) -> Target | None:
    raw = alert.container.full_id or alert.container.id
    if raw and raw.strip().lower() == "host":
        ctx.reasons.append("container.id is 'host' (Falco saw a host process)")
        return None
    cid = normalize_container_id(alert.container.full_id) or normalize_container_id(
        alert.container.id
    )
    if not cid:
        ctx.reasons.append("the alert has no container.id")
        return None
    node = ctx.options.node or alert.node
    opts = ctx.options
    if ctx.wants_pid_read():
        # Its Falco pod reads the pid once the pod is found: look for it meanwhile
        # (with no node known, for all of them: small beside listing every pod).
        ctx.prefetch_falco(node)
    if node:
        pods = ctx.gateway.list(
            PODS,
            opts.namespace,
            label_selector=opts.selector,
            field_selector=f"spec.nodeName={node}",
        )
        where = f"node {node}"
        if not pods and not opts.namespace and not opts.selector:
            ctx.notes.append(f"no pods on a node named {node}; searched the whole cluster")
            node = None
    if not node:
        pods = ctx.gateway.list(PODS, opts.namespace, label_selector=opts.selector)
        where = f"namespace {opts.namespace}" if opts.namespace else "the whole cluster"
    matches = [(p, c) for p in pods if (c := find_container_by_id(p, cid)) is not None]
    if len(matches) > 1:
        raise TargetAmbiguous(
            f"container id {cid} matches {len(matches)} containers",
            candidates=[f"{pod_key(p)}/{c.name}" for p, c in matches],
            hint="give the full 64-hex container id, or --pod NS/NAME -c CONTAINER",
        )
    if not matches:
        ctx.step(f"container id {cid[:12]}: {len(pods)} pods on {where} — not found")
        ctx.reasons.append(f"no pod on {where} has container {cid[:12]}")
        return None
    pod, container = matches[0]
    ctx.step(f"container id {cid[:12]}: {pod_key(pod)}/{container.name} — found")
    return _make_target(ctx, pod, container, LocateMethod.CONTAINER_ID)


# -- strategy 3: host pid -------------------------------------------------------------


def _by_host_pid(ctx: _Ctx, alert: Alert) -> Target | None:
    raw_pid = alert.process.pid
    pid = valid_pid(raw_pid)
    if pid is None:
        ctx.reasons.append(
            "the alert has no proc.pid" if raw_pid is None else f"invalid pid {raw_pid!r}"
        )
        return None
    node = ctx.options.node or alert.node
    if node:
        read = _read_on_node(ctx, node, pid)
        if read is None:
            if ctx.no_falco_on_node and not ctx.options.node and not ctx.options.node_debug:
                # Falco's hostname is not always the node's name: ask every node
                # (a match of name and command line is still required).
                ctx.step(f"host pid {pid}: no Falco pod on a node named {node}; asking all")
                return _host_pid_all_nodes(ctx, alert, pid)
            return None
        m = process_match(alert.process, read.status or _EMPTY, read.argv)
        desc = describe(read.status or _EMPTY, read.argv)
        if m == Match.NONE:
            ctx.step(f"host pid {pid} on {node}: {desc} — not the alert's process")
            ctx.reasons.append(
                f"pid {pid} on node {node} is now {desc}, not the alert's process (it has exited)"
            )
            return None
        if m == Match.UNKNOWN:
            ctx.notes.append("the alert names no process: pid taken on the node's word alone")
        return _target_from_read(ctx, read, desc)
    return _host_pid_all_nodes(ctx, alert, pid)


def _read_on_node(ctx: _Ctx, node: str, pid: int) -> ProcRead | None:
    """Read pid's /proc on ``node`` through its Falco pod, or a debug pod if allowed."""
    # The node's pods are listed while its Falco pod is found and its /proc read.
    ctx.prefetch_node_pods(node)
    falco, selector = ctx.falco_pods(node)
    problem: str | None = None
    if falco:
        reader = reader_for(falco[0], ctx.host_proc)
        read = read_proc(ctx.gateway, reader, pid, together=True)
        if read.ok:
            ctx.step(f"host pid {pid}: read through Falco pod {reader.where} on {node}")
            return read
        problem = read.problem
        ctx.step(f"host pid {pid}: Falco pod {reader.where} on {node} — {problem}")
        if read.absent:
            ctx.reasons.append(f"no pid {pid} on node {node} (the process has exited)")
            return None
    else:
        ctx.no_falco_on_node = True
        problem = f"no running Falco pod on node {node} (selector {selector})"
        ctx.step(f"host pid {pid}: {problem}")
    if not ctx.options.node_debug:
        ctx.reasons.append(problem or f"cannot read /proc on node {node}")
        return None
    debug = DebugPod(ctx.gateway, node, ctx.options.debug_image, ctx.step)
    try:
        reader = debug.start()
        read = read_proc(ctx.gateway, reader, pid)
    finally:
        debug.stop()
        ctx.notes.extend(debug.record)
    if read.ok:
        return read
    ctx.reasons.append(read.problem or f"cannot read /proc on node {node}")
    return None


def _host_pid_all_nodes(ctx: _Ctx, alert: Alert, pid: int) -> Target | None:
    falco, selector = ctx.falco_pods(None)
    by_node: dict[str, JSON] = {}
    for p in falco:
        by_node.setdefault(pod_node(p) or "?", p)
    if not by_node:
        ctx.step(f"host pid {pid}: no node known and no running Falco pod (selector {selector})")
        ctx.reasons.append(
            f"no node is known and no running Falco pod was found (selector {selector})"
        )
        return None
    if not (alert.process.name or alert.process.cmdline):
        ctx.reasons.append(
            f"no node is known and the alert names no process to tell nodes' pid {pid} apart"
        )
        return None
    ctx.step(f"host pid {pid}: no node known; asking {len(by_node)} Falco pods")
    readers = [reader_for(p, ctx.host_proc) for p in by_node.values()]
    alert_name = alert.process.name

    def want(status: ProcStatus) -> bool:
        # A different process name rules the node out: no need for its cmdline.
        return not alert_name or status.name is None or same_name(alert_name, status.name)

    def ask(reader: ProcReader) -> ProcRead:
        def candidate(status: ProcStatus) -> bool:
            wanted = want(status)
            if wanted and reader.node != "?" and status.pid == pid:
                # Its pods are listed while its command line is read.
                ctx.prefetch_node_pods(reader.node)
            return wanted

        return read_proc(ctx.gateway, reader, pid, want_cmdline=candidate, together=one)

    one = len(readers) == 1
    if one and readers[0].node != "?":
        # One node: its pods are listed while its /proc is read (both are needed).
        ctx.prefetch_node_pods(readers[0].node)
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(readers))) as pool:
        reads = list(pool.map(ask, readers))
    strong: list[ProcRead] = []
    weak: list[ProcRead] = []
    problems: list[str] = []
    for read in reads:
        if not read.ok:
            if not read.absent and read.problem:
                problems.append(f"{read.reader.node}: {read.problem}")
            continue
        m = process_match(alert.process, read.status or _EMPTY, read.argv)
        if m == Match.STRONG:
            strong.append(read)
        elif m == Match.WEAK:
            weak.append(read)
    if problems:
        ctx.notes.append("could not read some nodes: " + "; ".join(problems[:5]))
    chosen: ProcRead | None = None
    if len(strong) == 1:
        chosen = strong[0]
    elif len(strong) > 1:
        raise TargetAmbiguous(
            f"pid {pid} runs the alert's process on {len(strong)} nodes",
            candidates=[
                f"node {r.reader.node}: {describe(r.status or _EMPTY, r.argv)}" for r in strong
            ],
            hint="give the node with --node NODE",
        )
    elif len(weak) == 1:
        if not ctx.options.yes:
            r = weak[0]
            raise TargetAmbiguous(
                f"pid {pid} on node {r.reader.node} has the alert's process name but the "
                "alert gives no command line to confirm it; nothing was acted on",
                candidates=[f"node {r.reader.node}: {describe(r.status or _EMPTY, r.argv)}"],
                hint="re-run with --yes to accept this weak match, or give --node NODE",
            )
        chosen = weak[0]
        ctx.notes.append("weak match (process name only) accepted with --yes")
    elif len(weak) > 1:
        raise TargetAmbiguous(
            f"pid {pid} has the alert's process name on {len(weak)} nodes",
            candidates=[
                f"node {r.reader.node}: {describe(r.status or _EMPTY, r.argv)}" for r in weak
            ],
            hint="give the node with --node NODE",
        )
    if chosen is None:
        ctx.step(f"host pid {pid}: no node runs the alert's process")
        ctx.reasons.append(
            f"none of the {len(readers)} nodes with a Falco pod runs the alert's process "
            f"as pid {pid} (it has exited, or its node has no Falco pod)"
            + (f"; could not read {len(problems)}: " + "; ".join(problems[:3]) if problems else "")
        )
        return None
    desc = describe(chosen.status or _EMPTY, chosen.argv)
    ctx.step(f"host pid {pid}: node {chosen.reader.node} runs {desc}")
    return _target_from_read(ctx, chosen, desc)


def _target_from_read(ctx: _Ctx, read: ProcRead, desc: str) -> Target | None:
    node = read.reader.node
    cg = read.cgroup
    info = cg.best if cg else None
    status = read.status or _EMPTY
    if info is None or (info.pod_uid is None and info.container_id is None):
        paths = ", ".join(sorted({p for _, p in cg.paths})) if cg else "none"
        raise TargetNotFound(
            f"pid {read.pid} on node {node} ({desc}) is not in a pod: cgroup {paths}",
            hint="the process runs on the host itself, or its cgroup path is hidden; "
            "give --pod NS/NAME if you know the pod",
        )
    pods = ctx.pods_on_node(node)
    candidates: list[tuple[JSON, ContainerInfo | None]] = []
    if info.pod_uid:
        for p in pods:
            if matches_uid(p, info.pod_uid):
                c = find_container_by_id(p, info.container_id) if info.container_id else None
                candidates.append((p, c))
    elif info.container_id:
        for p in pods:
            c = find_container_by_id(p, info.container_id)
            if c is not None:
                candidates.append((p, c))
    if not candidates:
        ctx.reasons.append(
            f"pid {read.pid} on node {node} is in pod uid {info.pod_uid or '?'}, container "
            f"{(info.container_id or '?')[:12]}, but no pod on the node has it (just deleted?)"
        )
        ctx.step(f"host pid {read.pid}: cgroup names pod uid {info.pod_uid} — no such pod")
        return None
    pod, container = candidates[0]
    if container is None:
        if info.conmon:
            ctx.notes.append("the process is CRI-O's conmon for the container, not in it")
        elif info.container_id:
            ctx.notes.append(
                f"container {info.container_id[:12]} is not among the pod's container "
                "statuses (the pod sandbox?)"
            )
        container = _pick_container(ctx, pod)
    ctx.step(
        f"host pid {read.pid}: pod {pod_key(pod)} container "
        f"{container.name if container else '?'} "
        f"(cgroup {info.driver or '?'} v{cg.version if cg else '?'})"
    )
    return _make_target(
        ctx,
        pod,
        container,
        LocateMethod.HOST_PID,
        host_pid=read.pid,
        vpid=status.vpid,
        runtime=info.runtime,
        container_id=info.container_id,
    )


# -- strategy 4: scan -----------------------------------------------------------------


def _by_scan(ctx: _Ctx, alert: Alert) -> Target | None:
    opts = ctx.options
    if not (opts.namespace or opts.selector or opts.node):
        ctx.reasons.append("no -n/-l/--node given to scan pods in")
        return None
    if not (alert.process.name or alert.process.cmdline):
        ctx.reasons.append("the alert names no process to look for in pods")
        return None
    field_selector = f"spec.nodeName={opts.node}" if opts.node else None
    pods = ctx.gateway.list(
        PODS, opts.namespace, label_selector=opts.selector, field_selector=field_selector
    )
    scope = ", ".join(
        x
        for x in (
            f"namespace {opts.namespace}" if opts.namespace else "",
            f"selector {opts.selector}" if opts.selector else "",
            f"node {opts.node}" if opts.node else "",
        )
        if x
    )
    jobs: list[tuple[JSON, ContainerInfo]] = []
    for p in pods:
        if pod_phase(p) != "Running":
            continue
        for c in iter_containers(p):
            if c.kind == "init" or not c.running:
                continue
            if opts.container and c.name != opts.container:
                continue
            jobs.append((p, c))
    if not jobs:
        ctx.reasons.append(f"no running container in {scope}")
        return None
    if len(jobs) > MAX_SCAN_CONTAINERS:
        ctx.reasons.append(
            f"{len(jobs)} containers in {scope}: too many to scan (limit {MAX_SCAN_CONTAINERS})"
        )
        return None
    ctx.step(f"scan: listing processes in {len(jobs)} containers ({scope})")
    from falcoir.core.locate.scan import list_processes, match_processes

    def run(job: tuple[JSON, ContainerInfo]) -> tuple[JSON, ContainerInfo, _Matches, str | None]:
        p, c = job
        meta = p.get("metadata") or {}
        procs, problem = list_processes(
            ctx.gateway, str(meta.get("namespace")), str(meta.get("name")), c.name
        )
        return p, c, match_processes(alert.process, procs), problem

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(jobs))) as pool:
        results = list(pool.map(run, jobs))
    strong = [(p, c, ms) for p, c, ms, _ in results if any(m == Match.STRONG for _, m in ms)]
    weak = [
        (p, c, ms) for p, c, ms, _ in results if ms and not any(m == Match.STRONG for _, m in ms)
    ]
    problems = [pr for *_, pr in results if pr]
    if problems:
        ctx.notes.append(f"{len(problems)} containers could not be listed: " + problems[0])
    pool_ = strong or weak
    if not pool_:
        ctx.reasons.append(f"no container in {scope} runs the alert's process")
        ctx.step("scan: no match")
        return None

    def cand(x: tuple[JSON, ContainerInfo, _Matches]) -> str:
        p, c, ms = x
        return f"{pod_key(p)}/{c.name} pid {ms[0][0].pid}: {' '.join(ms[0][0].argv)[:80]}"

    if len(pool_) > 1:
        raise TargetAmbiguous(
            f"{len(pool_)} containers in {scope} run a process matching the alert",
            candidates=[cand(x) for x in pool_],
            hint="narrow with -n/-l/--node/-c, or pick one with --pod NS/NAME -c CONTAINER",
        )
    pod, container, ms = pool_[0]
    if not strong:
        if not opts.yes:
            raise TargetAmbiguous(
                "only a weak match (process name, no command line to compare); "
                "nothing was acted on",
                candidates=[cand(pool_[0])],
                hint="re-run with --yes to accept it, or use --pod NS/NAME",
            )
        ctx.notes.append("weak match (process name only) accepted with --yes")
    vpids = [p.pid for p, m in ms if m == ms[0][1]]
    if len(vpids) > 1:
        ctx.notes.append(f"several matching processes in the container: pids {vpids}")
    ctx.step(f"scan: {pod_key(pod)}/{container.name} pid {vpids[0]} matches")
    ctx.notes.append(f"found by scanning the processes of {len(jobs)} containers in {scope}")
    return _make_target(ctx, pod, container, LocateMethod.SCAN, vpid=vpids[0])


# -- the not-found message ------------------------------------------------------------


def _what_would_help(ctx: _Ctx, alert: Alert) -> str:
    tips: list[str] = []
    if not (alert.k8s.namespace and alert.k8s.pod):
        tips.append("--pod NS/NAME if you know the pod")
    if not (alert.container.id or alert.container.full_id):
        tips.append("Falco's container.id field in the alert (-pc, or append_output)")
    if not (ctx.options.node or alert.node):
        tips.append("--node NODE (the node that raised the alert; JSON alerts carry it)")
    if valid_pid(alert.process.pid) and not ctx.options.node_debug:
        tips.append("--falco-selector if Falco's pods have other labels, or --node-debug")
    if not (ctx.options.namespace or ctx.options.selector or ctx.options.node):
        tips.append("-n NAMESPACE or -l SELECTOR to scan candidate pods")
    return "give " + "; or ".join(tips) if tips else "the process has probably exited"
