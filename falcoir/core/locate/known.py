"""What ``locate`` read on the way to a :class:`~falcoir.core.target.Target`: the pod
and its owners' objects, for whatever comes next (``collect``) not to ask again.

Kept per target (a weak reference: it goes when the target does) and only for
``MAX_AGE`` seconds: ``collect`` saves the owners' objects from here (read moments ago,
and said so in the bundle) and plans its log reads from the pod, but always reads the
pod itself again for the evidence.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field

from falcoir.core.gateway import JSON
from falcoir.core.target import Target

MAX_AGE = 120.0


@dataclass(frozen=True)
class Located:
    pod: JSON
    owners: dict[tuple[str, str], JSON] = field(default_factory=dict)
    """Owner objects read for the chain, by ``(kind, name)``."""
    read_at: float = field(default_factory=time.monotonic)

    @property
    def age(self) -> float:
        return time.monotonic() - self.read_at


_KNOWN: weakref.WeakKeyDictionary[Target, Located] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def remember(target: Target, located: Located) -> None:
    with _LOCK:
        _KNOWN[target] = located


def recall(target: Target, max_age: float = MAX_AGE) -> Located | None:
    """What locate read for ``target`` (``None`` when unknown or too old)."""
    with _LOCK:
        found = _KNOWN.get(target)
    if found is None or found.age > max_age:
        return None
    meta = found.pod.get("metadata") or {}
    if (meta.get("namespace"), meta.get("name")) != (target.namespace, target.pod):
        return None
    return found
