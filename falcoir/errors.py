"""One error hierarchy for all of falcoir, and the one place that maps it to exit codes.

Every layer raises a subclass of :class:`FalcoirError`. The CLI edge
(:func:`falcoir.cli.common.guarded`) turns it into one message, an optional hint, and the
exit code given by :func:`exit_code_for`. Nothing else decides exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes: a documented contract for runbooks (see README)."""

    OK = 0
    """Done."""
    FAILED = 1
    """The step failed (an API error, a command that could not run, an unexpected bug)."""
    USAGE = 2
    """Bad usage or bad input: a flag, an alert we cannot read, a malformed file."""
    UNREACHABLE = 3
    """The cluster cannot be reached, or we are not authenticated."""
    FORBIDDEN = 4
    """RBAC forbids something the plan needs."""
    NOT_FOUND = 5
    """The target (pod, container, process) was not found."""
    AMBIGUOUS = 6
    """More than one target matches; nothing was acted on."""
    INCOMPLETE = 7
    """Done, but the evidence is incomplete (some collector failed or was cut short)."""


class FalcoirError(Exception):
    """Base of every error falcoir raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(FalcoirError):
    """Bad usage or input: names what was wrong."""


class ConfirmationRefused(InputError):
    """A mutating action needs confirmation and none could be had (or the user said no)."""


class ClusterError(FalcoirError):
    """A failure talking to the cluster."""


class ClusterUnreachable(ClusterError):
    """No connection, TLS failure, timeout, or 401 Unauthorized."""


class ApiError(ClusterError):
    """The API server answered with an error Status."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


class ApiNotFound(ApiError):
    """404 from the API server."""


class ApiConflict(ApiError):
    """409 from the API server: AlreadyExists or Conflict."""


class PreconditionFailed(ApiConflict):
    """409 because a precondition the request carried (a uid, a resourceVersion) does
    not hold: the name now belongs to another object, or it changed."""


class ApiInvalid(ApiError):
    """422 (Invalid) or 400 (BadRequest) from the API server."""


class Forbidden(ApiError):
    """403 from the API server, or a failed access review before acting.

    ``missing`` names each permission that is lacking, as ``verb resource[/sub] -n ns``.
    """

    def __init__(
        self,
        message: str,
        *,
        missing: Sequence[str] = (),
        status: int = 403,
        reason: str = "Forbidden",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, status=status, reason=reason, hint=hint)
        self.missing = tuple(missing)


class TargetNotFound(FalcoirError):
    """The pod, container or process the alert points at cannot be found."""


class TargetAmbiguous(FalcoirError):
    """Several candidates match; ``candidates`` lists them as ``ns/pod[/container]``."""

    def __init__(
        self, message: str, *, candidates: Sequence[str] = (), hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.candidates = tuple(candidates)


class EvidenceIncomplete(FalcoirError):
    """The evidence bundle was written but some of it is missing or cut short."""


class LabError(FalcoirError):
    """The local lab could not start, stop or answer."""


_EXIT_CODES: tuple[tuple[type[BaseException], ExitCode], ...] = (
    # Most specific first: the first isinstance match wins.
    (InputError, ExitCode.USAGE),
    (ClusterUnreachable, ExitCode.UNREACHABLE),
    (Forbidden, ExitCode.FORBIDDEN),
    (ApiNotFound, ExitCode.NOT_FOUND),
    (TargetNotFound, ExitCode.NOT_FOUND),
    (TargetAmbiguous, ExitCode.AMBIGUOUS),
    (EvidenceIncomplete, ExitCode.INCOMPLETE),
    (FalcoirError, ExitCode.FAILED),
)


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for an exception: the single mapping the whole tool uses."""
    for cls, code in _EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return ExitCode.FAILED
