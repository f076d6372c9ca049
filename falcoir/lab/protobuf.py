"""Just enough of the Kubernetes protobuf encoding to read the request bodies that
kubectl's typed clients send as ``application/vnd.kubernetes.protobuf``
(``kubectl auth can-i`` posts a SelfSubjectAccessReview that way).

The envelope is ``k8s\\x00`` + ``runtime.Unknown{typeMeta=1{apiVersion=1,kind=2},
raw=2}``; ``raw`` is the object's own message. Answers are always JSON (clients accept it).
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"
Fields = dict[int, list[bytes | int]]


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def fields(buf: bytes) -> Fields:
    out: Fields = {}
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        value: bytes | int
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ProtobufError("truncated field")
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.setdefault(num, []).append(value)
    return out


def _str(f: Fields, num: int) -> str:
    vals = f.get(num) or []
    v = vals[0] if vals else b""
    return v.decode() if isinstance(v, bytes) else str(v)


def _msg(f: Fields, num: int) -> Fields | None:
    vals = f.get(num) or []
    v = vals[0] if vals else None
    return fields(v) if isinstance(v, bytes) else None


def decode_envelope(body: bytes) -> tuple[str, str, bytes]:
    """``(apiVersion, kind, raw)`` of a ``k8s\\x00`` protobuf envelope."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf message")
    unknown = fields(body[len(MAGIC) :])
    tm = _msg(unknown, 1) or {}
    raw = (unknown.get(2) or [b""])[0]
    return _str(tm, 1), _str(tm, 2), raw if isinstance(raw, bytes) else b""


def decode_ssar(raw: bytes) -> dict[str, Any]:
    """A SelfSubjectAccessReview message as its JSON form (spec only)."""
    top = fields(raw)
    spec = _msg(top, 2) or {}
    out: dict[str, Any] = {}
    ra = _msg(spec, 1)
    if ra is not None:
        names = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
        out["resourceAttributes"] = {
            n: _str(ra, i + 1) for i, n in enumerate(names) if _str(ra, i + 1)
        }
    nra = _msg(spec, 2)
    if nra is not None:
        out["nonResourceAttributes"] = {"path": _str(nra, 1), "verb": _str(nra, 2)}
    return {"spec": out}


def decode_object_meta(raw: bytes) -> dict[str, Any]:
    """The parts of an ObjectMeta message a client sets on create."""
    f = fields(raw)
    out: dict[str, Any] = {}
    for num, key in ((1, "name"), (2, "generateName"), (3, "namespace")):
        if _str(f, num):
            out[key] = _str(f, num)
    for num, key in ((11, "labels"), (12, "annotations")):
        entries = {}
        for entry in f.get(num) or []:
            if isinstance(entry, bytes):
                kv = fields(entry)
                entries[_str(kv, 1)] = _str(kv, 2)
        if entries:
            out[key] = entries
    finalizers = [v.decode() for v in f.get(14) or [] if isinstance(v, bytes)]
    if finalizers:
        out["finalizers"] = finalizers
    return out


def decode_namespace(raw: bytes) -> dict[str, Any]:
    """A Namespace message (``kubectl create namespace`` sends one)."""
    md = (fields(raw).get(1) or [b""])[0]
    meta = decode_object_meta(md) if isinstance(md, bytes) else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
