"""Containment: quarantine a pod behind a verified NetworkPolicy, release it, delete it
knowing what its owner will do. Every change is appended to the incident's action log."""

from __future__ import annotations

from falcoir.core.contain.common import Step, owner_chain
from falcoir.core.contain.isolation import (
    QuarantineOptions,
    QuarantineResult,
    ReleasePlan,
    ReleaseResult,
    plan_release,
    quarantine,
    release,
)
from falcoir.core.contain.policy import LABEL_KEY, build_policy, policy_name, validate_cidr
from falcoir.core.contain.probe import Endpoint, parse_host_port, probe_endpoint
from falcoir.core.contain.removal import (
    DeleteOptions,
    DeletePlan,
    DeleteResult,
    delete,
    plan_delete,
    validate_delete,
)
from falcoir.core.rbac import Permission, check_permissions

__all__ = [
    "LABEL_KEY",
    "DeleteOptions",
    "DeletePlan",
    "DeleteResult",
    "Endpoint",
    "Permission",
    "QuarantineOptions",
    "QuarantineResult",
    "ReleasePlan",
    "ReleaseResult",
    "Step",
    "build_policy",
    "check_permissions",
    "delete",
    "owner_chain",
    "parse_host_port",
    "plan_delete",
    "plan_release",
    "policy_name",
    "probe_endpoint",
    "quarantine",
    "release",
    "validate_cidr",
    "validate_delete",
]
