"""Kubernetes names and label values, checked before they reach a request or a label.

Light on purpose (``re`` only): the CLI checks ``--pod NS/NAME`` with these on the way
to the first request, without importing containment.
"""

from __future__ import annotations

import re

from falcoir.errors import InputError

_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# (always used with fullmatch: ``$`` would also match before a final newline)


def validate_label_value(value: str) -> str:
    """A Kubernetes label value: at most 63 chars, alphanumeric at both ends,
    ``-_.`` inside. Raises :class:`InputError`."""
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise InputError(f"not a valid label value: {value!r}")
    return value


def validate_namespace(value: str) -> str:
    """A namespace name (a DNS-1123 label), else ``InputError``."""
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise InputError(f"not a valid namespace name: {value!r}")
    return value


def validate_pod_name(value: str) -> str:
    """A pod name (a DNS-1123 subdomain), else ``InputError``."""
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise InputError(f"not a valid pod name: {value!r}")
    return value
