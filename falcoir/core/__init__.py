"""The domain core: alerts, targets, evidence, containment.

Knows nothing of typer, rich, or the ``kubernetes`` package (an import-linter contract
in ``pyproject.toml`` enforces it). Talks to a cluster only through
:class:`falcoir.core.gateway.ClusterGateway`.
"""
