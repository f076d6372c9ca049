"""The real backend: respond's steps wired to locate, collect (bundle) and contain."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falcoir.core.alert import Alert
from falcoir.core.gateway import ClusterGateway
from falcoir.core.incident import ActionLog, Incident, IncidentStore
from falcoir.core.locate import LocateOptions, locate
from falcoir.core.locate.hostproc import find_falco_pods
from falcoir.core.locate.options import DEFAULT_FALCO_SELECTORS
from falcoir.core.policy import ActionOptions
from falcoir.core.prefetch import Prefetch
from falcoir.core.rbac import (
    COLLECT_IN_NAMESPACE,
    OWNER_RESOURCES,
    Permission,
    delete_permissions,
    granted,
    quarantine_permissions,
)
from falcoir.core.respond.backend import IN_FORCE_KEY, JSONDict, Plan, Progress
from falcoir.core.respond.cache import FalcoPodsCache
from falcoir.core.respond.early import EarlyLocate, after_first_connection
from falcoir.core.target import LocateMethod, Target
from falcoir.errors import FalcoirError, Forbidden, TargetNotFound

if TYPE_CHECKING:
    from falcoir.core.bundle import BundleResult, BundleWriter
    from falcoir.core.collect import CollectOptions, CollectorEvent
    from falcoir.core.contain import DeletePlan, QuarantineOptions
    from falcoir.core.contain.common import Step as ContainStep
    from falcoir.core.contain.isolation import Prepared

# Collection, the bundle and containment are imported by the steps that use them, not
# with this module, so locate's first request does not wait for them: warm() imports
# them in the background once the API server has answered (falcoir.core.prefetch), and
# the steps wait for that before importing them.
LATER_MODULES = (
    "falcoir.core.bundle",
    "falcoir.core.collect",
    "falcoir.core.contain",
    "falcoir.core.contain.isolation",
    "falcoir.core.contain.removal",
    "bagit",  # reopening the bundle for the report
)

PRECHECK_PERMISSIONS: frozenset[Permission] = frozenset(
    {
        *COLLECT_IN_NAMESPACE,
        *quarantine_permissions(probe=True),
        *delete_permissions(owner_kinds=OWNER_RESOURCES),
    }
)
"""What the check step may ask about in the pod's namespace (all but ``--scale-owner``'s),
asked cluster-wide as soon as respond starts: what a ClusterRoleBinding grants need not
be asked again, on the way to containment, once the namespace is known."""
PRECHECK_WORKERS = 6
"""Cluster-wide questions in flight at once."""
PRECHECK_WAIT_S = 5.0
"""The longest the check step waits for that early answer before asking itself."""


def _quietly(fn: Callable[[], object]) -> Callable[[], None]:
    """``fn`` for a background thread whose failure only means nothing was read ahead
    (the step that needs it reads it again and reports what is wrong)."""

    def run() -> None:
        with contextlib.suppress(Exception):
            fn()

    return run


def _fresh(reads: Future[Prepared]) -> bool:
    """Reads still running, or done, without error, and young enough to be used."""
    if not reads.done():
        return True
    if reads.exception() is not None:
        return False
    return reads.result().fresh()


def _sealed(result: BundleResult) -> JSONDict:
    return {
        "dir": str(result.dir),
        "archive": str(result.archive),
        "archive_sha256": result.archive_sha256,
        "complete": result.complete,
    }


@dataclass
class RealBackend:
    """``gateway`` for the cluster, ``store`` for incidents; ``locate_options`` from the
    command line; ``collect_timeout`` bounds each command of the collection."""

    gateway: ClusterGateway
    store: IncidentStore
    locate_options: LocateOptions = field(default_factory=LocateOptions)
    collect_timeout: float = 30.0
    verify_seconds: float = 10.0
    probe_timeout: int = 1
    """Seconds the in-pod probe waits for a connection after the quarantine. The probe
    before the quarantine shows how fast the endpoint answers (milliseconds for a pool
    the miner is talking to), so one second is ample and keeps containment fast."""
    _snapshot_ok: dict[str, bool] = field(default_factory=dict)
    _alerts: dict[str, Alert] = field(default_factory=dict)
    _checked: dict[tuple[Any, ...], JSONDict] = field(default_factory=dict)
    _operator: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _will_delete: set[tuple[str, str]] = field(default_factory=set)
    _delete_plans: dict[tuple[str, str], tuple[float, Future[DeletePlan]]] = field(
        default_factory=dict
    )
    _located: dict[tuple[str, str], Alert] = field(default_factory=dict)
    _prepared_reads: dict[tuple[str, str], Future[Prepared]] = field(default_factory=dict)
    _everywhere: Future[frozenset[Permission]] | None = None
    _falco: FalcoPodsCache | None = None
    _later: Prefetch = field(default_factory=lambda: Prefetch(()))
    """The later steps' imports (started by warm(); until then nothing to wait for)."""
    _snapshot_running: dict[tuple[str, str], threading.Event] = field(default_factory=dict)
    delete_plan_max_age: float = 10.0
    """Seconds a delete plan read while containment is verified stays good to use."""

    # -- who and where ------------------------------------------------------------------
    def operator(self) -> str:
        with self._lock:
            if self._operator is None:
                try:
                    self._operator = self.gateway.whoami()
                except FalcoirError:
                    self._operator = "unknown"
            return self._operator

    def context(self) -> str:
        return self.gateway.context

    def warm(self, *, stream: bool = False, modules: Sequence[str] = ()) -> None:
        """Start asking, in the background and once, which permissions the check step
        may need are granted in every namespace (cluster-wide access reviews, sent while
        the pod is being located). ``stream``: alerts will keep coming (``--follow``):
        the Falco pods are remembered between alerts (:class:`FalcoPodsCache`).
        ``modules``: the caller's own, imported first with the later steps' (see
        :meth:`wait_imports`)."""
        with self._lock:
            if stream and self._falco is None:
                sel = self.locate_options.falco_selector
                cache = FalcoPodsCache(
                    self.gateway, selectors=(sel,) if sel else DEFAULT_FALCO_SELECTORS
                )
                self._falco = cache
                # Listed now, before the first alert, the way locate will list them.
                threading.Thread(
                    target=_quietly(
                        lambda: find_falco_pods(cache.gateway, self.locate_options, None)
                    ),
                    name="falcoir-falco-pods",
                    daemon=True,
                ).start()
            if self._everywhere is not None:
                return
            future: Future[frozenset[Permission]] = Future()
            self._everywhere = future

        def run() -> None:
            try:
                # A few at a time: they only need to be in before the check step (after
                # locate's exec and owner reads), and a burst of new connections would
                # take the interpreter from locate meanwhile.
                future.set_result(
                    granted(self.gateway, PRECHECK_PERMISSIONS, workers=PRECHECK_WORKERS)
                )
            except BaseException as exc:
                future.set_exception(exc)

        def ask() -> None:
            threading.Thread(target=run, name="falcoir-precheck", daemon=True).start()

        # While locate's first request is on the wire: the imports of what the bundle,
        # snapshot and quarantine need (the caller's modules first); once the API
        # server has answered, the questions.
        self._later = Prefetch((*modules, *LATER_MODULES), self.gateway, first=ask).start()

    def locate_early(
        self, alert: Alert, ahead: ActionOptions | None, *, modules: Sequence[str] = ()
    ) -> EarlyLocate:
        """Start locating ``alert`` now, before the orchestrator is imported (hand it
        over with :meth:`EarlyLocate.backend`), with :meth:`warm` (``modules``: the
        caller's, imported while locate's first request is on the wire:
        :meth:`wait_imports`) and who we are asked once its connection is open."""
        self.warm(modules=modules)
        early = EarlyLocate(self, alert, ahead, on_done=self.import_now).start()
        after_first_connection(self.gateway, self.operator)
        return early

    def wait_imports(self, modules: Sequence[str]) -> None:
        """Wait until ``modules`` (given to :meth:`warm`) are imported."""
        self._later.wait(modules)

    def import_now(self) -> None:
        """Import what :meth:`warm` imports without waiting for an answer any longer
        (locate ended without one: its error is on its way)."""
        self._later.go()

    def _granted_everywhere(self) -> frozenset[Permission]:
        future = self._everywhere
        if future is None:
            return frozenset()
        try:
            return future.result(timeout=PRECHECK_WAIT_S)
        except Exception:
            return frozenset()  # asked again in the namespace, where it counts

    # -- steps --------------------------------------------------------------------------
    def locate(
        self,
        alert: Alert,
        progress: Progress,
        ahead: ActionOptions | None = None,
        on_found: Callable[[Target], None] | None = None,
    ) -> Target:
        """``ahead``: the quarantine will go ahead without a question (``--yes``, not a
        dry run) with these options: its reads and the baseline probe start as soon as
        the pod is known, while its owner chain is read and the permissions checked."""

        def found(where: Target) -> None:
            if ahead is not None:
                self._prepare_ahead(alert, where, ahead)
            if on_found is not None:
                on_found(where)

        cache = self._falco
        hits = cache.hits if cache is not None else 0
        try:
            target = locate(
                cache.gateway if cache is not None else self.gateway,
                alert=alert,
                options=self.locate_options,
                on_step=progress,
                on_found=found,
            )
        except TargetNotFound:
            if cache is None or cache.hits == hits:
                raise
            # The Falco pods remembered may have moved on: once more, freshly listed.
            cache.forget()
            target = locate(
                self.gateway,
                alert=alert,
                options=self.locate_options,
                on_step=progress,
                on_found=found,
            )
        with self._lock:
            self._located[(target.namespace, target.pod)] = alert
        return target

    def check(self, target: Target, plan: Plan) -> JSONDict:
        if plan.delete and not plan.dry_run:
            with self._lock:
                self._will_delete.add((target.namespace, target.pod))
        if plan.quarantine and not plan.dry_run and not plan.ask:
            self._prepare_quarantine(target, plan)
        # The same plan in the same namespace needs the same permissions: in --follow
        # mode they are asked about once, not once per incident.
        key = (
            target.namespace,
            plan.quarantine,
            plan.collect,
            plan.delete,
            plan.dry_run,
            tuple(o.kind for o in target.owner),
        )
        if not plan.ask:
            with self._lock:
                cached = self._checked.get(key)
            if cached is not None:
                return {**cached, "cached": True}
        perms: set[Permission] = set(COLLECT_IN_NAMESPACE) if plan.collect else set()
        if plan.quarantine:
            perms.update(quarantine_permissions(probe=not plan.dry_run))
        if plan.delete:
            top = target.owner[-1].kind if target.owner and plan.options.scale_owner else None
            perms.update(
                delete_permissions(owner_kinds=[o.kind for o in target.owner], scale_owner_kind=top)
            )
        everywhere = self._granted_everywhere() & perms
        self._check_all(sorted(perms - everywhere), target.namespace)
        info: JSONDict = {
            "permissions": sorted(p.describe(target.namespace) for p in perms),
            "granted_cluster_wide": len(everywhere),
        }
        if plan.delete and plan.ask:
            self._later.wait()
            from falcoir.core.contain import plan_delete

            dplan = plan_delete(self.gateway, target, store=self.store)
            info["owner_effect"] = dplan.consequence
            info["delete_plan"] = dplan.to_dict()
        else:
            with self._lock:
                self._checked[key] = info
        return info

    def _check_all(self, perms: list[Permission], namespace: str) -> None:
        """Every access review at once (``check_permissions`` asks eight at a time):
        one round trip instead of two or three, on the way to containment."""
        from falcoir.core.rbac import check_permissions

        chunks = [perms[i : i + 8] for i in range(0, len(perms), 8)]
        if len(chunks) <= 1:
            check_permissions(self.gateway, perms, namespace)
            return
        errors: list[BaseException] = []

        def run(chunk: list[Permission]) -> None:
            try:
                check_permissions(self.gateway, chunk, namespace)
            except Exception as exc:  # re-raised below, in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in chunks[1:]]
        for t in threads:
            t.start()
        run(chunks[0])
        for t in threads:
            t.join()
        other = [e for e in errors if not isinstance(e, Forbidden)]
        if other:
            raise other[0]
        denied = [e for e in errors if isinstance(e, Forbidden)]
        if denied:
            missing = [m for e in denied for m in e.missing]
            raise Forbidden(
                f"RBAC forbids {len(missing)} permission(s) this needs; nothing was changed:",
                missing=missing,
                hint=denied[0].hint,
            )

    def open_bundle(
        self, out_dir: Path, incident: Incident, alert: Alert, target: Target
    ) -> BundleWriter:
        self._later.wait()
        from falcoir.core.bundle import BundleWriter

        writer = BundleWriter.create(
            out_dir,
            incident,
            alert_raw=alert.raw,
            target=target,
            context=self.context(),
            operator=self.operator(),
            # Opened as soon as the pod is known: target.json waits for the owner chain
            # (written when the bundle is sealed).
            target_file=False,
        )
        self._alerts[str(writer.dir)] = alert
        return writer

    def _collect_options(self, options: ActionOptions, *, volatile: bool) -> CollectOptions:
        self._later.wait()
        from falcoir.core.collect import CollectOptions

        return CollectOptions(
            timeout=self.collect_timeout,
            ephemeral_debug=options.ephemeral_debug,
            volatile=volatile,
        )

    @staticmethod
    def _progress(progress: Progress) -> Callable[[CollectorEvent], None]:
        def emit(event: CollectorEvent) -> None:
            text = f"{event.collector}: {event.state}"
            if event.status is not None:
                text += f" ({event.status.value})"
            progress(text)

        return emit

    def snapshot(
        self,
        target: Target,
        bundle: BundleWriter,
        progress: Progress,
        started: Callable[[], None],
    ) -> JSONDict:
        show = self._progress(progress)
        probe_may_go = self._snapshot_running_event((target.namespace, target.pod))
        running: set[str] = set()
        lock = threading.Lock()

        def on_event(event: CollectorEvent) -> None:
            if event.state in ("run", "done"):
                with lock:
                    running.add(event.collector)
                    if running >= {"processes", "network"}:
                        started()
                        probe_may_go.set()
            show(event)

        try:
            from falcoir.core.collect import snapshot

            result = snapshot(
                self.gateway,
                target,
                writer=bundle,
                options=self._collect_options(ActionOptions(), volatile=True),
                progress=on_event,
                alert=self._alerts.get(str(bundle.dir)),
            )
        except BaseException:
            self._snapshot_ok[str(bundle.dir)] = False
            raise
        finally:
            probe_may_go.set()  # ran or failed: the probe read ahead need wait no more
        doc: JSONDict = result.to_dict()
        self._snapshot_ok[str(bundle.dir)] = bool(result.complete)
        return doc

    def collect(
        self,
        target: Target,
        bundle: BundleWriter,
        options: ActionOptions,
        progress: Progress,
    ) -> JSONDict:
        # Processes and network again, after containment: the state the pod was left
        # in. (Also, collect's binary and file collectors wait for the process list.)
        volatile = True
        from falcoir.core.collect import collect

        result = collect(
            self.gateway,
            target,
            alert=self._alerts.get(str(bundle.dir)),
            writer=bundle,
            options=self._collect_options(options, volatile=volatile),
            progress=self._progress(progress),
        )
        doc: JSONDict = result.to_dict()
        return doc

    def quarantine(
        self,
        target: Target,
        alert: Alert,
        incident: Incident,
        log: ActionLog,
        options: ActionOptions,
        dry_run: bool,
        progress: Progress,
    ) -> JSONDict:
        in_force: list[float] = []

        def on_step(step: ContainStep) -> None:
            # Policy first, then label: once the label is on, the policy selects the pod.
            if step.name == "label" and step.status in ("ok", "unchanged") and not in_force:
                in_force.append(time.monotonic())
                if not dry_run:
                    self._prefetch_delete_plan(target)
            progress(f"{step.name}: {step.status}" + (f" ({step.detail})" if step.detail else ""))

        self._later.wait()
        from falcoir.core.contain import quarantine

        result = quarantine(
            self.gateway,
            target,
            alert=alert,
            options=self._quarantine_options(options, dry_run),
            incident=incident,
            log=log,
            on_step=on_step,
            store=None if dry_run else self.store,
            prepared=None if dry_run else self._prepared(target),
        )
        doc: JSONDict = result.to_dict()
        if in_force:
            doc[IN_FORCE_KEY] = in_force[0]
        return doc

    def seal(
        self,
        bundle: BundleWriter,
        complete: bool,
        note: str | None,
        target: Target | None = None,
        partial: str | None = None,
    ) -> JSONDict:
        from falcoir.core.bundle import ArtifactMeta

        if target is not None:
            bundle.add_target(target, partial=partial)
        if note:
            bundle.add_bytes(
                "respond-seal-note.txt",
                (note + "\n").encode(),
                ArtifactMeta(source="falcoir", collector="respond", note=note),
            )
        return _sealed(bundle.finalize(complete))

    def delete(
        self,
        target: Target,
        incident: Incident,
        log: ActionLog,
        options: ActionOptions,
        dry_run: bool,
        progress: Progress,
    ) -> JSONDict:
        def on_step(step: ContainStep) -> None:
            progress(f"{step.name}: {step.status}" + (f" ({step.detail})" if step.detail else ""))

        self._later.wait()
        from falcoir.core.contain import DeleteOptions, delete, plan_delete
        from falcoir.core.contain.removal import with_current_evidence

        prefetched = self._prefetched_delete_plan(target)
        # The bundle was sealed after the plan was read ahead: its evidence is read now.
        plan = (
            with_current_evidence(prefetched, self.store)
            if prefetched is not None
            else plan_delete(self.gateway, target, store=self.store)
        )
        result = delete(
            self.gateway,
            target,
            plan=plan,
            # A dry run has written no bundle yet; the real run deletes only after one
            # is sealed (the orchestrator makes sure of that).
            options=DeleteOptions(
                grace_period=options.grace_period,
                scale_owner=options.scale_owner,
                force=dry_run,
                dry_run=dry_run,
                check_permissions=False,
            ),
            incident=incident,
            log=log,
            on_step=on_step,
        )
        doc: JSONDict = result.to_dict()
        doc["owner_effect"] = plan.consequence
        return doc

    def _quarantine_options(self, options: ActionOptions, dry_run: bool) -> QuarantineOptions:
        self._later.wait()
        from falcoir.core.contain import QuarantineOptions

        return QuarantineOptions(
            ingress=options.ingress,
            allow_dns=options.allow_dns,
            allow_cidrs=options.allow_cidrs,
            dry_run=dry_run,
            check_permissions=False,  # checked for the whole plan in the check step
            verify_seconds=self.verify_seconds,
            probe_timeout=self.probe_timeout,
        )

    def _prepare_quarantine(self, target: Target, plan: Plan) -> None:
        """While the permissions are checked: read the pod and any policy already in
        place, and start the baseline probe (reads only; quarantine uses them if they
        are still fresh when it starts, as with --yes). Done already when locate found
        the pod with :meth:`warm`'s ``ahead``."""
        with self._lock:
            alert = self._located.get((target.namespace, target.pod))
        if alert is not None:
            self._start_prepare(
                target.namespace, target.pod, target.container, alert, plan.incident, plan.options
            )

    def _prepare_ahead(self, alert: Alert, where: Target, options: ActionOptions) -> None:
        """Locate has just found the pod (its owner chain is being read): open its
        incident (as the respond run will right after) and start the read-ahead, so the
        owner reads, the permission check and the quarantine's reads overlap."""
        try:
            incident = self.store.open(
                where.namespace, where.pod, where.pod_uid, alert_raw=alert.raw
            )
        except (OSError, ValueError):
            return  # the respond run opens it and says what is wrong
        if incident.policy:
            return  # quarantined already (another alert of this pod): nothing to read ahead
        self._start_prepare(
            where.namespace, where.pod, where.container, alert, incident.id, options
        )

    def _start_prepare(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        alert: Alert,
        incident_id: str,
        action_options: ActionOptions,
    ) -> None:
        key = (namespace, pod)
        with self._lock:
            running = self._prepared_reads.get(key)
            if running is not None and _fresh(running):
                return  # in flight or fresh (started when locate found the pod)
            future: Future[Prepared] = Future()
            self._prepared_reads[key] = future
        where = Target(namespace, pod, container, LocateMethod.POD_FLAG)
        after = self._snapshot_running_event(key)

        def run() -> None:
            try:
                options = self._quarantine_options(action_options, False)
                from falcoir.core.contain.isolation import prepare

                future.set_result(
                    prepare(
                        self.gateway,
                        where,
                        alert=alert,
                        incident_id=incident_id,
                        options=options,
                        probe_after=after,
                    )
                )
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=run, name="falcoir-prepare", daemon=True).start()

    def _snapshot_running_event(self, key: tuple[str, str]) -> threading.Event:
        """Set once the pod's volatile snapshot has its commands running: the baseline
        probe read ahead waits for it, so the snapshot does not see its connection."""
        with self._lock:
            return self._snapshot_running.setdefault(key, threading.Event())

    def _prepared(self, target: Target) -> Prepared | None:
        with self._lock:
            future = self._prepared_reads.pop((target.namespace, target.pod), None)
            self._snapshot_running.pop((target.namespace, target.pod), None)
        if future is None:
            return None
        try:
            return future.result(timeout=self.verify_seconds)
        except Exception:
            return None  # quarantine reads them itself, and raises what is wrong

    def _prefetch_delete_plan(self, target: Target) -> None:
        """Read what deleting the pod entails (reads only) while containment is being
        verified, so the delete step need not wait for those reads."""
        key = (target.namespace, target.pod)
        with self._lock:
            if key not in self._will_delete or key in self._delete_plans:
                return
            future: Future[DeletePlan] = Future()
            self._delete_plans[key] = (time.monotonic(), future)

        def run() -> None:
            try:
                self._later.wait()
                from falcoir.core.contain import plan_delete

                future.set_result(plan_delete(self.gateway, target, store=self.store))
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=run, name="falcoir-delete-plan", daemon=True).start()

    def _prefetched_delete_plan(self, target: Target) -> DeletePlan | None:
        """The plan read ahead, when it is fresh and for this very pod; else ``None``
        (the caller reads it now, and any error is raised from there)."""
        with self._lock:
            entry = self._delete_plans.pop((target.namespace, target.pod), None)
        if entry is None:
            return None
        started, future = entry
        try:
            plan = future.result(timeout=self.delete_plan_max_age)
        except Exception:
            return None
        if time.monotonic() - started > self.delete_plan_max_age:
            return None
        if target.pod_uid and plan.pod_uid != target.pod_uid:
            return None
        # The owners do not change under a pod. The pod might be replaced under the same
        # name meanwhile (a StatefulSet's): the delete carries the plan's uid as a
        # precondition, so the server refuses to delete any other pod.
        if not plan.pod_uid:
            return None
        # Which bundles exist is read again, as plan_delete reads it: they may be newer.
        inc = self.store.for_pod(plan.namespace, plan.pod, plan.pod_uid)
        bundles = tuple(b for b in (inc.bundles if inc else ()) if Path(b).exists())
        return replace(plan, incident=inc.id if inc else None, bundles=bundles)

    def add_to_bundle(
        self,
        bundle_dir: Path,
        files: Mapping[str, bytes],
        complete: bool,
        incident: Incident | None,
    ) -> JSONDict:
        self._later.wait()
        from falcoir.core.bundle import ArtifactMeta, BundleWriter

        writer = BundleWriter.reopen(
            bundle_dir, actions_path=incident.actions_path if incident else None
        )
        for name, data in files.items():
            writer.add_bytes(name, data, ArtifactMeta(source="falcoir", collector="respond"))
        return _sealed(writer.finalize(complete))
