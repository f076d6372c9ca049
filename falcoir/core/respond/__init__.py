"""``respond``: the orchestrator (one alert), follow mode (a stream) and their parts.

The names below are imported when first used (PEP 562), not with the package: the
command imports the backend (:mod:`falcoir.core.respond.real`) and sends locate's first
request before the orchestrator, the step graph and follow mode are loaded
(:mod:`falcoir.core.respond.early`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from falcoir.core.respond.backend import Backend, Plan
    from falcoir.core.respond.graph import StepRecord, StepStatus
    from falcoir.core.respond.orchestrator import RespondRequest, RespondResult, respond

_WHERE = {
    "Backend": "falcoir.core.respond.backend",
    "Plan": "falcoir.core.respond.backend",
    "StepRecord": "falcoir.core.respond.graph",
    "StepStatus": "falcoir.core.respond.graph",
    "RespondRequest": "falcoir.core.respond.orchestrator",
    "RespondResult": "falcoir.core.respond.orchestrator",
    "respond": "falcoir.core.respond.orchestrator",
}

__all__ = [
    "Backend",
    "Plan",
    "RespondRequest",
    "RespondResult",
    "StepRecord",
    "StepStatus",
    "respond",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value
