"""Reading ``../shared/falco-alerts/corpus.jsonl`` in place, and comparing a parse with it."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from falcoir.core.alert import Alert

REPO = Path(__file__).resolve().parents[2]


def corpus_path() -> Path:
    env = os.environ.get("FALCOIR_CORPUS")
    if env:
        return Path(env)
    for base in (REPO.parent / "shared", REPO.parent.parent / "shared", Path("/work/shared")):
        path = base / "falco-alerts" / "corpus.jsonl"
        if path.is_file():
            return path
    return REPO.parent / "shared" / "falco-alerts" / "corpus.jsonl"


@lru_cache(maxsize=1)
def records() -> tuple[dict[str, Any], ...]:
    with corpus_path().open(encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh if line.strip())


# Keys of the corpus' ``normalized`` that our model answers for; an extra one of these
# in our parse (not in ``expected``) is an error too.
CORE_KEYS = frozenset(
    {
        "proc_name",
        "cmdline",
        "pid",
        "container_id",
        "container_name",
        "k8s_ns",
        "k8s_pod",
        "user",
        "exepath",
        "parent",
        "image",
    }
)


def normalized_view(alert: Alert) -> dict[str, Any]:
    """Our alert in the corpus' ``normalized`` vocabulary."""
    p, c, k, n = alert.process, alert.container, alert.k8s, alert.connection
    d: dict[str, Any] = {
        "proc_name": p.name,
        "cmdline": p.cmdline,
        "pid": p.pid,
        "container_id": c.id,
        "container_name": c.name,
        "k8s_ns": k.namespace,
        "k8s_pod": k.pod,
        "user": p.user,
        "exepath": p.exepath,
        "parent": p.parent,
        "image": c.image,
        "image_tag": c.image_tag,
        "file": alert.file,
        "exec_command": alert.exec_command,
    }
    if n is not None:
        d.update(
            connection=n.raw,
            client_ip=n.client_ip,
            client_port=n.client_port,
            server_ip=n.server_ip,
            server_port=n.server_port,
            remote_ip=n.remote_ip,
            remote_port=n.remote_port,
        )
    return {key: v for key, v in d.items() if v is not None}


IGNORED_NORMALIZED = frozenset({"pid_namespace"})


def differences(record: dict[str, Any], alert: Alert) -> list[str]:
    """What our parse gets wrong against the record's ``expected`` (empty: fully right)."""
    e = record["expected"]
    out: list[str] = []
    for key in ("time", "priority", "message"):
        if key in e and getattr(alert, key) != e[key]:
            out.append(f"{key}: {getattr(alert, key)!r} != {e[key]!r}")
    if record["format"] != "text" and "rule" in e and alert.rule != e["rule"]:
        out.append(f"rule: {alert.rule!r} != {e['rule']!r}")
    if record["format"] == "text" and "fields" in e:
        expected_fields = [tuple(x) for x in e["fields"] + e.get("appended_fields", [])]
        if list(alert.fields) != expected_fields:
            out.append(f"fields: {alert.fields!r} != {expected_fields!r}")
    mine = normalized_view(alert)
    for key, value in e.get("normalized", {}).items():
        if key not in IGNORED_NORMALIZED and mine.get(key) != value:
            out.append(f"normalized.{key}: {mine.get(key)!r} != {value!r}")
    for key in CORE_KEYS:
        if key in mine and key not in e.get("normalized", {}):
            out.append(f"normalized.{key}: {mine[key]!r} not expected")
    return out
