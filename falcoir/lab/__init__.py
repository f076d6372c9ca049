"""The local lab: a Kubernetes API server whose pods are real Linux processes."""
