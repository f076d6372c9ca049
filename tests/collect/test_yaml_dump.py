"""The pod, owner, node and event YAML is written by libyaml's emitter (faster): the
same text as PyYAML's own, hostile values included, and the same object for the
few keys the two write in different forms."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from falcoir.core.collect import engine

DOCS: list[Any] = [
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "annotations": {
                "multi": "line one\nline two\n",
                "ansi": "\x1b[31mred\x1b[0m \x07 bell",
                "unicode": "é ✓ 日本 \u202e rtl \U0001f600",
                "yes": "yes",
                "on": "on",
                "null-ish": "~",
                "number-ish": "0x1F",
                "colon": "a: b",
                "long": "x" * 5000,
                "trailing": "space ",
            },
        },
        "spec": {"containers": [{"name": "c", "args": ["-c", "echo 'hi' \"there\""]}]},
        "status": {"restartCount": 3, "ratio": 0.5, "big": 2**70, "ready": True, "none": None},
    },
    [],
    {},
    [{"a": [1, [2, [3]]]}],
]
# Keys the two emitters write differently, both valid YAML of the same object: an
# empty key, and one of 125-128 characters (PyYAML's simple-key limit counts a bit
# differently from libyaml's), written as ``? key`` by one of them.
ODD_KEYS: list[Any] = [{"": "empty key"}, {"a" * 126: "v", "n": {"b" * 127: ["x"]}}]


@pytest.mark.parametrize("doc", DOCS)
def test_libyaml_writes_what_pyyaml_writes(doc: Any) -> None:
    pure = yaml.safe_dump(doc, sort_keys=False, allow_unicode=False, width=1 << 16).encode()
    assert engine._yaml(doc) == pure
    assert yaml.safe_load(engine._yaml(doc)) == doc


@pytest.mark.parametrize("doc", ODD_KEYS)
def test_odd_keys_load_back_the_same(doc: Any) -> None:
    assert yaml.safe_load(engine._yaml(doc)) == doc


def test_the_c_emitter_is_used_when_there_is_one() -> None:
    if not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("PyYAML without libyaml: the pure emitter is used")
    assert engine._DUMPER is yaml.CSafeDumper
