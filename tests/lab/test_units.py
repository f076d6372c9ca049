"""Selectors, the three patch types and Table rendering, without a server."""

from __future__ import annotations

import pytest

from falcoir.lab.patch import PatchError, apply_patch, json_patch, merge_patch, strategic_merge
from falcoir.lab.selectors import (
    SelectorError,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector,
    validate_label_selector,
)
from falcoir.lab.tables import human_duration

LABELS = {"app": "cryptominer", "tier": "web", "env": "prod"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=cryptominer", True),
        ("app==cryptominer", True),
        ("app!=cryptominer", False),
        ("app in (a,cryptominer)", True),
        ("app notin (a,cryptominer)", False),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("missing", False),
        ("app=cryptominer,env in (prod, staging),!quarantine", True),
        ("app=cryptominer,env=dev", False),
        ("missing!=x", True),
        ("", True),
    ],
)
def test_label_selector(selector: str, expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), LABELS) is expected


@pytest.mark.parametrize("bad", ["a=b=c", "app in a", "a b", "=x", "a=,", "k=" + "v" * 64])
def test_label_selector_rejects(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(bad)


def test_label_selector_object() -> None:
    reqs = selector_from_label_selector(
        {
            "matchLabels": {"app": "cryptominer"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod"]},
                {"key": "q", "operator": "DoesNotExist"},
            ],
        }
    )
    assert reqs is not None
    assert labels_match(reqs, LABELS)
    assert not labels_match(reqs, {**LABELS, "q": "1"})
    assert selector_from_label_selector(None) is None
    assert selector_from_label_selector({}) == []
    errs = validate_label_selector(
        {"matchExpressions": [{"key": "a", "operator": "In"}, {"key": "b", "operator": "Bogus"}]},
        "spec.podSelector",
    )
    assert [e[0] for e in errs] == [
        "spec.podSelector.matchExpressions[0].values",
        "spec.podSelector.matchExpressions[1].operator",
    ]


def test_field_selector_pods() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {"nodeName": "lab-node"},
        "status": {"phase": "Running"},
    }
    pred = parse_field_selector("spec.nodeName=lab-node,status.phase!=Failed", "pods")
    assert pred is not None and pred(pod)
    pred = parse_field_selector("spec.hostNetwork=false,metadata.name==p", "pods")
    assert pred is not None and pred(pod)
    pred = parse_field_selector("spec.nodeName=other", "pods")
    assert pred is not None and not pred(pod)
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.containers"):
        parse_field_selector("spec.containers=x", "pods")
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.nodeName"):
        parse_field_selector("spec.nodeName=x", "deployments")


def test_json_patch() -> None:
    doc = {"metadata": {"labels": {"a": "1", "x/y": "2"}}, "list": [1, 2]}
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/metadata/labels/b", "value": "3"},
            {"op": "remove", "path": "/metadata/labels/x~1y"},
            {"op": "replace", "path": "/list/0", "value": 9},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "copy", "from": "/metadata/labels/a", "path": "/copied"},
        ],
    )
    assert out == {"metadata": {"labels": {"a": "1", "b": "3"}}, "list": [9, 2, 3], "copied": "1"}
    assert doc["metadata"]["labels"] == {"a": "1", "x/y": "2"}  # not mutated
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "test", "path": "/metadata/labels/a", "value": "2"}])
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "remove", "path": "/nope"}])


def test_merge_patch() -> None:
    doc = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert merge_patch(doc, {"a": {"b": None, "d": 3}, "l": [5]}) == {
        "a": {"c": 2, "d": 3},
        "l": [5],
    }


def test_strategic_merge_keyed_lists_and_directives() -> None:
    app = {"name": "app", "image": "v1", "env": [{"name": "A", "value": "1"}]}
    pod = {
        "metadata": {"labels": {"app": "x"}, "finalizers": ["a"]},
        "spec": {"containers": [app, {"name": "side", "image": "s"}]},
    }
    patch = {
        "metadata": {"labels": {"quarantine": "true"}, "finalizers": ["b"]},
        "spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
            "containers": [
                {"name": "app", "env": [{"name": "B", "value": "2"}]},
                {"name": "side", "$patch": "delete"},
            ],
            "ephemeralContainers": [{"name": "dbg", "image": "busybox"}],
        },
    }
    out = strategic_merge(pod, patch)
    assert out["metadata"]["labels"] == {"app": "x", "quarantine": "true"}
    assert out["metadata"]["finalizers"] == ["a", "b"]
    assert [c["name"] for c in out["spec"]["containers"]] == ["app"]
    assert out["spec"]["containers"][0]["image"] == "v1"
    assert out["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
    ]
    assert out["spec"]["ephemeralContainers"] == [{"name": "dbg", "image": "busybox"}]
    assert strategic_merge({"a": {"b": 1}}, {"a": {"$patch": "replace", "c": 2}}) == {"a": {"c": 2}}


def test_apply_patch_dispatch() -> None:
    assert apply_patch({"a": [1]}, {"a": [2]}, "application/merge-patch+json") == {"a": [2]}
    assert (
        apply_patch({"a": 1}, [{"op": "remove", "path": "/a"}], "application/json-patch+json") == {}
    )
    with pytest.raises(PatchError):
        apply_patch({}, {}, "text/plain")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600, "3h"), (3 * 86400, "3d")],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_lab_server_start_skips_aiohttps_client_ca_loading() -> None:
    """The server process imports aiohttp without loading the CA bundle for client
    contexts it never uses (a cold-start cost); those contexts fail closed, and the real
    ssl.create_default_context is back afterwards."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = """
import json, ssl, time
from falcoir.lab.serve import without_client_ca_loading
real = ssl.create_default_context
t0 = time.perf_counter()
with without_client_ca_loading():
    import falcoir.lab.server
    from aiohttp import connector
took = time.perf_counter() - t0
ctx = connector._SSL_CONTEXT_VERIFIED
print(json.dumps({
    "cas": ctx.cert_store_stats()["x509_ca"],
    "unverified_cas": connector._SSL_CONTEXT_UNVERIFIED.cert_store_stats()["x509_ca"],
    "required": ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname,
    "restored": ssl.create_default_context is real,
    "after_cas": ssl.create_default_context().cert_store_stats()["x509_ca"],
}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=True,
    )
    doc = json.loads(out.stdout)
    assert doc["cas"] == 0 and doc["unverified_cas"] == 0
    assert doc["required"] is True and doc["restored"] is True
    assert doc["after_cas"] > 0  # outside the import, CAs load as usual
