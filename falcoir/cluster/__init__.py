"""All talk to the cluster: the only package that imports ``kubernetes``.

``connect()`` returns a :class:`falcoir.core.gateway.ClusterGateway`.
"""
