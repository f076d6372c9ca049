"""Forensic evidence collection through the exec API and the Kubernetes API.

Public API (other commands code against it):

- :func:`collect` every collector into a :class:`~falcoir.core.bundle.BundleWriter`;
- :func:`snapshot` the quick volatile part (processes + network), for ``respond``
  before containment;
- :func:`run_collect` the whole ``falcoir collect``: incident, bundle, collect, seal
  (also when interrupted), record the bundle in the incident store;
- :func:`start_collect` the same, started from the target locate hands over before it
  reads the owner chain (``locate(on_found=...)``), finished with the final one
  (:meth:`Started.finish`), one round trip earlier;
- :func:`target_from_pod` a :class:`~falcoir.core.target.Target` for ``--pod NS/NAME``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

from falcoir.core.alert import Alert
from falcoir.core.bundle import (
    INFO_INCOMPLETE_REASON,
    INFO_OPERATOR,
    INFO_TARGET_STATUS,
    TARGET_NAME,
    TARGET_UNKNOWN,
    BundleError,
    BundleResult,
    BundleWriter,
)
from falcoir.core.collect.engine import Pending, begin, collect, snapshot
from falcoir.core.collect.model import (
    BinaryEvidence,
    CollectOptions,
    CollectorEvent,
    CollectorOutcome,
    CollectorStatus,
    CollectResult,
)
from falcoir.core.gateway import PODS, ClusterGateway
from falcoir.core.incident import Incident, IncidentStore
from falcoir.core.target import LocateMethod, OwnerRef, PodRef, Target
from falcoir.core.text import neutralize
from falcoir.errors import FalcoirError, TargetAmbiguous, TargetNotFound

__all__ = [
    "BinaryEvidence",
    "CollectOptions",
    "CollectResult",
    "CollectorEvent",
    "CollectorOutcome",
    "CollectorStatus",
    "Started",
    "collect",
    "run_collect",
    "snapshot",
    "start_collect",
    "target_from_pod",
]

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def target_from_pod(
    gateway: ClusterGateway, ref: PodRef, container: str | None = None, *, vpid: int | None = None
) -> Target:
    """The target for ``--pod NS/NAME [-c CONTAINER]``: the pod as the API has it.

    Without ``-c``: the only container, else the ``default-container`` annotation,
    else ambiguous (exit 6) listing the choices."""
    pod = gateway.get(PODS, ref.name, ref.namespace)
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in spec.get("containers") or []]
    eph = [c.get("name") for c in spec.get("ephemeralContainers") or []]
    notes: list[str] = []
    if container is not None:
        if container not in names and container not in eph:
            raise TargetNotFound(
                f"pod {ref} has no container {container!r}",
                hint="containers: " + ", ".join(str(n) for n in names),
            )
    elif len(names) == 1:
        container = names[0]
    else:
        default = (meta.get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
        if default in names:
            container = default
            notes.append(
                f"container {default} chosen by the {DEFAULT_CONTAINER_ANNOTATION} annotation"
            )
        else:
            raise TargetAmbiguous(
                f"pod {ref} has {len(names)} containers; say which with -c",
                candidates=[f"{ref}/{n}" for n in names],
            )
    image = next(
        (c.get("image") for c in spec.get("containers") or [] if c.get("name") == container),
        None,
    )
    cid = runtime = None
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container and cs.get("containerID"):
            runtime, _, cid = str(cs["containerID"]).partition("://")
    owners = tuple(
        OwnerRef(str(o.get("kind")), str(o.get("name")), o.get("uid"), o.get("apiVersion"))
        for o in meta.get("ownerReferences") or []
    )
    return Target(
        namespace=ref.namespace,
        pod=ref.name,
        container=container,
        method=LocateMethod.POD_FLAG,
        node=spec.get("nodeName"),
        pod_uid=meta.get("uid"),
        container_id=cid or None,
        container_runtime=runtime or None,
        vpid=vpid,
        owner=owners,
        image=image,
        notes=tuple(notes),
    )


def run_collect(
    gateway: ClusterGateway,
    target: Target,
    *,
    alert: Alert | None,
    out_dir: Path,
    options: CollectOptions | None = None,
    store: IncidentStore | None = None,
    progress: Callable[[CollectorEvent], None] | None = None,
) -> CollectResult:
    """Open (or reuse) the pod's incident, write a new bundle, collect, seal it (also
    when something fails or the user interrupts: then it is marked incomplete), and
    record it in the incident store."""
    started = start_collect(
        gateway,
        target,
        alert=alert,
        out_dir=out_dir,
        options=options,
        store=store,
        progress=progress,
    )
    return started.finish(target)


class Started:
    """A collection under way (:func:`start_collect`): :meth:`finish` it with the
    final target, or :meth:`abandon` it when locate fails after all.

    ``target``: what was known when it started (``located=False``: locate's early one,
    without the owner chain), ``None`` when nothing was. Whatever happens, the sealed
    bundle has a ``target.json`` or says in ``bag-info.txt`` why it has none."""

    def __init__(
        self,
        store: IncidentStore,
        incident: Incident,
        writer: BundleWriter,
        pending: Pending | None,
        asking: threading.Thread,
        who: list[str],
        *,
        target: Target | None = None,
        located: bool = True,
    ) -> None:
        self.store = store
        self.incident = incident
        self.writer = writer
        self.pending = pending
        self.target = target
        self._located = located
        self._final: Target | None = None
        self._asking = asking
        self._who = who
        self._sealed = False

    def _seal(self, complete: bool, why: str | None = None) -> BundleResult:
        self._sealed = True
        self._asking.join(30)
        self.writer.info[INFO_OPERATOR] = neutralize(self._who[0] if self._who else "unknown")
        self._ensure_target(why or "the collection stopped before the target was written")
        sealed = self.writer.finalize(complete)
        self.store.add_bundle(self.incident, sealed.dir)
        return sealed

    def _ensure_target(self, why: str) -> None:
        """``target.json`` before sealing: the final target (``finish`` may have been
        interrupted before writing it), else what was known when the collection began,
        marked partial; with neither, ``bag-info.txt`` says the target is unknown."""
        if self.writer.has(TARGET_NAME):
            return
        target = self._final or self.target
        partial = None if self._final is not None or self._located else why
        problem = "no target was located"
        if target is not None:
            try:
                self.writer.add_target(target, partial=partial)
            except (BundleError, OSError, KeyboardInterrupt) as exc:
                problem = f"target.json could not be written ({type(exc).__name__}: {exc})"
            else:
                if partial is not None:
                    self.writer.info[INFO_INCOMPLETE_REASON] = neutralize(
                        f"{why}; target.json holds what was known when the collection "
                        "began (pod, container, pids), not the owner chain"
                    )[:2000]
                return
        self.writer.info[INFO_TARGET_STATUS] = TARGET_UNKNOWN
        self.writer.info[INFO_INCOMPLETE_REASON] = neutralize(
            f"{problem} ({why}): this bundle does not say which pod it is about"
            + (f" beyond Falcoir-Target ({target.namespace}/{target.pod})" if target else "")
        )[:2000]

    def finish(self, target: Target) -> CollectResult:
        """``target``: locate's final one (the same pod, with its owner chain); written
        to the bundle at once, then every collector is waited for and the bundle is
        sealed (incomplete when something failed or Ctrl-C was pressed)."""
        interrupted = False
        self._final = target
        try:
            try:
                self.writer.add_target(target)
            except KeyboardInterrupt:
                interrupted = True  # sealed below as interrupted, with what was captured
            if self.pending is None:
                raise KeyboardInterrupt
            result = self.pending.wait(target, interrupted=interrupted)
        except BaseException:
            if not self._sealed:
                self._seal(False)
            raise
        return result.sealed(self._seal(result.complete), self.incident.id)

    def abandon(self, reason: str | None = None) -> BundleResult | None:
        """Seal what was captured as incomplete (locate failed, or Ctrl-C, after the
        collection had started): the bundle says so, nothing is lost. ``target.json``
        holds what was known (marked partial: the owner chain was not read), and
        ``bag-info.txt`` why (``reason``, else the exception being handled)."""
        if self._sealed:
            return None
        return self._seal(False, reason or _why_abandoned())


def _why_abandoned() -> str:
    """Why a collection is abandoned, from the exception being handled (``abandon`` is
    called from an ``except`` block), in plain words."""
    exc = sys.exc_info()[1]
    if exc is None:
        return "the collection was abandoned before locate had finished"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C) before locate had finished"
    return f"locate failed after the collection began ({_describe(exc)})"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted: Ctrl-C"
    return f"{type(exc).__name__}: {str(exc) or 'no detail'}"


def start_collect(
    gateway: ClusterGateway,
    target: Target,
    *,
    alert: Alert | None,
    out_dir: Path,
    options: CollectOptions | None = None,
    store: IncidentStore | None = None,
    progress: Callable[[CollectorEvent], None] | None = None,
    located: bool = True,
) -> Started:
    """Open (or reuse) the pod's incident, create the bundle and start every collector;
    returns at once. ``located=False``: ``target`` is the one locate hands over before
    reading the owner chain; the owners collector waits for :meth:`Started.finish`."""
    store = store or IncidentStore()
    incident = store.open(
        target.namespace, target.pod, target.pod_uid, alert_raw=alert.raw if alert else None
    )
    # Who we are, asked beside the collection (one round trip less on the way).
    log = incident.action_log(None)
    who: list[str] = []

    def ask() -> None:
        try:
            who.append(gateway.whoami())
        except FalcoirError:
            who.append("unknown")
        log.actor = who[0]

    asking = threading.Thread(target=ask, daemon=True, name="falcoir-whoami")
    asking.start()
    writer = BundleWriter.create(
        out_dir,
        incident,
        alert_raw=alert.raw if alert else None,
        target=target,
        context=gateway.context,
        operator="unknown",
        target_file=False,
    )
    try:
        pending = begin(
            gateway,
            target,
            alert=alert,
            writer=writer,
            options=options,
            progress=progress,
            action_log=log,
            located=located,
        )
    except BaseException as exc:
        Started(store, incident, writer, None, asking, who, target=target, located=located).abandon(
            f"the collection could not start ({_describe(exc)})"
        )
        raise
    return Started(store, incident, writer, pending, asking, who, target=target, located=located)
