"""All talk to the cluster: the only package that imports ``kubernetes``.

``connect()`` returns a :class:`KubeGateway`, the real
:class:`falcoir.core.gateway.ClusterGateway`.
"""

from falcoir.cluster.gateway import (
    KubeGateway,
    RequestStats,
    RetryPolicy,
    Span,
    connect,
    critical_path,
)

__all__ = ["KubeGateway", "RequestStats", "RetryPolicy", "Span", "connect", "critical_path"]
