"""What the user told ``locate`` beyond the alert."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_FALCO_SELECTORS: tuple[str, ...] = (
    "app.kubernetes.io/name=falco",
    "app=falco",
)
"""Labels of the Falco DaemonSet pods: the official chart's, then older charts'."""

DEFAULT_DEBUG_IMAGE = "busybox:1.36"


@dataclass(frozen=True)
class LocateOptions:
    """Scope and permissions for :func:`falcoir.core.locate.locate`.

    ``node``, ``namespace`` and ``selector`` narrow every search; the last-resort scan
    runs only inside a namespace, selector or node given here. ``container`` picks the
    container. ``falco_selector``/``falco_namespace`` find the Falco pods whose
    ``host_proc`` (the host's ``/proc`` as mounted in them) is read. ``node_debug``
    allows a short-lived node debug pod (``debug_image``) when no Falco pod can read
    the node. ``yes`` accepts a weak match (name only).
    """

    node: str | None = None
    namespace: str | None = None
    selector: str | None = None
    container: str | None = None
    falco_selector: str | None = None
    falco_namespace: str | None = None
    host_proc: str = "/host/proc"
    node_debug: bool = False
    debug_image: str = DEFAULT_DEBUG_IMAGE
    yes: bool = False
