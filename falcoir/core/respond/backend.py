"""What the orchestrator asks of the pieces it drives (locate, collect, contain).

:class:`Backend` is the seam: :mod:`falcoir.core.respond.real` wires the real
``locate``/``collect``/``contain`` functions, tests plug in fakes. Results cross it as
plain JSON-able dicts with the stable keys of ``product.md`` (collect:
``incident bundle archive complete artifacts[]{name path sha256 bytes exit_code
status}``, quarantine: ``incident policy label verified{egress_blocked} dry_run``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from falcoir.core.alert import Alert
from falcoir.core.incident import ActionLog, Incident
from falcoir.core.policy import ActionOptions
from falcoir.core.target import Target

Progress = Callable[[str], None]
"""A one-line progress note from inside a step (shown next to it in the live view)."""

JSONDict = dict[str, Any]

IN_FORCE_KEY = "_policy_in_force_mono"
"""In a quarantine result: ``time.monotonic()`` when the policy selected the pod (policy
created and label applied, as the API confirmed). The orchestrator takes it out."""


@dataclass(frozen=True)
class Plan:
    """What respond is about to do to one pod: shown and confirmed before any change."""

    target: Target
    incident: str
    quarantine: bool
    collect: bool
    delete: bool
    options: ActionOptions
    dry_run: bool
    ask: bool = False
    """The operator will be asked to confirm it (then the plan says what the owner will
    do on deletion, which costs a few reads)."""
    owner_effect: str = ""
    """What the pod's owner will do when it is deleted (from ``plan_delete``)."""
    delete_plan: Mapping[str, Any] | None = None

    def lines(self) -> list[str]:
        t = self.target
        out = [f"pod {t.namespace}/{t.pod} (container {t.container or '?'}, node {t.node or '?'})"]
        out.append("1. volatile snapshot: processes and network connections (read-only)")
        if self.quarantine:
            extra = " and ingress" if self.options.ingress else ""
            out.append(
                f"2. quarantine: label falcoir.io/quarantine={self.incident} and a "
                f"NetworkPolicy denying egress{extra} for this pod only, then verify"
            )
        if self.collect:
            debug = (
                " (may add an ephemeral debug container)" if self.options.ephemeral_debug else ""
            )
            out.append(f"3. full evidence collection into a bundle{debug}")
        if self.delete:
            out.append(
                "4. delete the pod once the bundle is sealed"
                + (f": {self.owner_effect}" if self.owner_effect else "")
            )
        else:
            out.append("4. keep the pod (no delete)")
        return out

    def to_dict(self) -> JSONDict:
        return {
            "target": self.target.to_dict(),
            "incident": self.incident,
            "quarantine": self.quarantine,
            "collect": self.collect,
            "delete": self.delete,
            "options": self.options.to_dict(),
            "dry_run": self.dry_run,
            "owner_effect": self.owner_effect,
        }


class Bundle(Protocol):
    """An open evidence bundle (``falcoir.core.bundle.BundleWriter``)."""

    @property
    def dir(self) -> Path: ...


class Backend(Protocol):
    """Everything respond does to a cluster and to a bundle, one method per step."""

    def warm(self, *, stream: bool = False) -> None:
        """Start, in the background, what can be asked before the pod is known;
        ``stream``: alerts will keep coming (``--follow``)."""
        ...

    def operator(self) -> str: ...

    def context(self) -> str: ...

    def locate(
        self,
        alert: Alert,
        progress: Progress,
        ahead: ActionOptions | None = None,
        on_found: Callable[[Target], None] | None = None,
    ) -> Target:
        """``ahead``: the quarantine will follow unasked, with these options (the
        backend may start its reads as soon as the pod is known). ``on_found``: told
        the target as soon as the pod is known, before its owner chain (at most once;
        a backend may never call it, and return the whole target only)."""
        ...

    def check(self, target: Target, plan: Plan) -> JSONDict:
        """Permissions for the whole plan (raise ``Forbidden`` naming each missing one)
        and the delete plan: ``{"owner_effect": str, "delete_plan": {...}}``."""
        ...

    def open_bundle(
        self, out_dir: Path, incident: Incident, alert: Alert, target: Target
    ) -> Bundle: ...

    def snapshot(
        self, target: Target, bundle: Bundle, progress: Progress, started: Callable[[], None]
    ) -> JSONDict:
        """Processes + network, fast. ``{"artifacts": [...], "complete": bool}``.
        Calls ``started()`` once the commands that read them are on their way to the pod
        (containment may begin then: it never waits for their output to download)."""
        ...

    def quarantine(
        self,
        target: Target,
        alert: Alert,
        incident: Incident,
        log: ActionLog,
        options: ActionOptions,
        dry_run: bool,
        progress: Progress,
    ) -> JSONDict: ...

    def collect(
        self, target: Target, bundle: Bundle, options: ActionOptions, progress: Progress
    ) -> JSONDict:
        """The full collection: ``{"artifacts": [...], "complete": bool}``."""
        ...

    def seal(
        self,
        bundle: Bundle,
        complete: bool,
        note: str | None,
        target: Target | None = None,
        partial: str | None = None,
    ) -> JSONDict:
        """Finalize: ``{"dir", "archive", "archive_sha256", "complete"}``; ``target``: the
        located target (owner chain included) to record as ``target.json``; ``partial``:
        why it is only what was known when the pod was found (no owner chain)."""
        ...

    def delete(
        self,
        target: Target,
        incident: Incident,
        log: ActionLog,
        options: ActionOptions,
        dry_run: bool,
        progress: Progress,
    ) -> JSONDict: ...

    def add_to_bundle(
        self,
        bundle_dir: Path,
        files: Mapping[str, bytes],
        complete: bool,
        incident: Incident | None,
    ) -> JSONDict:
        """Reopen a sealed bundle, add ``files`` (relative names under ``data/``) and
        the incident's action log as it is now, seal again; returns the new seal
        result."""
        ...
