"""``respond``: the orchestrator (one alert), follow mode (a stream) and their parts."""

from falcoir.core.respond.backend import Backend, Plan
from falcoir.core.respond.graph import StepRecord, StepStatus
from falcoir.core.respond.orchestrator import RespondRequest, RespondResult, respond

__all__ = [
    "Backend",
    "Plan",
    "RespondRequest",
    "RespondResult",
    "StepRecord",
    "StepStatus",
    "respond",
]
