"""Locate: from a Falco alert (or ``--pod``) to the pod, container and process.

Public API: :func:`locate`, :class:`LocateOptions`, :class:`PodReplaced`.
"""

from __future__ import annotations

from falcoir.core.locate.engine import PodReplaced, locate
from falcoir.core.locate.options import LocateOptions

__all__ = ["LocateOptions", "PodReplaced", "locate"]
