"""falcoir: incident response for Falco alerts on Kubernetes."""

__version__ = "0.1.0"
