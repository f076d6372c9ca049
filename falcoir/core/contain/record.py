"""Keeping the incident's evidence bundles in step with its action log.

A bundle sealed by ``collect`` holds the action log as it was then. After a standalone
``quarantine``, ``release`` or ``delete`` changes the cluster, each existing bundle of
the incident is reopened, given the current log, and sealed again (same completeness),
so the bundle tells the whole story. ``respond`` does this itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from falcoir.core.incident import Incident, IncidentStore
from falcoir.errors import FalcoirError


@dataclass(frozen=True)
class BundleSync:
    updated: tuple[Path, ...] = ()
    failed: tuple[tuple[Path, str], ...] = ()


def sync_action_log(store: IncidentStore, incident: Incident) -> BundleSync:
    """Copy the incident's action log into each of its bundles and reseal them.
    Never raises: a bundle that cannot be resealed is reported in ``failed``."""
    from falcoir.core.bundle import BundleWriter

    current = store.get(incident.id) or incident
    updated: list[Path] = []
    failed: list[tuple[Path, str]] = []
    if not current.actions_path.exists():
        return BundleSync()
    for raw in current.bundles:
        path = Path(raw)
        if not (path / "bagit.txt").exists():
            continue
        try:
            writer = BundleWriter.reopen(path, actions_path=current.actions_path)
            writer.finalize(bool(writer.previous_complete))
        except (FalcoirError, OSError) as exc:
            failed.append((path, str(exc)))
            continue
        updated.append(path)
    return BundleSync(tuple(updated), tuple(failed))
