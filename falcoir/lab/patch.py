"""The three PATCH flavours of the Kubernetes API: JSON patch, merge patch, strategic merge.

Strategic merge knows the list keys of the fields falcoir and kubectl touch (containers,
env, ports, volumes, conditions, ...) and the directives kubectl sends
(``$patch``, ``$setElementOrder/...``, ``$retainKeys``, ``$deleteFromPrimitiveList/...``).
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """The patch cannot be applied (400 BadRequest / 422)."""


# JSON patch (RFC 6902) ----------------------------------------------------------------


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [_unescape(t) for t in path[1:].split("/")]


def _get(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for t in tokens:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError(f"path not found: /{'/'.join(tokens)}")
            cur = cur[t]
        elif isinstance(cur, list):
            try:
                cur = cur[int(t)]
            except (ValueError, IndexError) as exc:
                raise PatchError(f"path not found: /{'/'.join(tokens)}") from exc
        else:
            raise PatchError(f"path not found: /{'/'.join(tokens)}")
    return cur


def _add(doc: Any, tokens: list[str], value: Any, replace: bool) -> Any:
    if not tokens:
        return value
    parent = _get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"replace operation does not apply: doc is missing key: {last}")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            if replace:
                raise PatchError("replace operation does not apply to '-'")
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError as exc:
                raise PatchError(f"invalid array index {last!r}") from exc
            if replace:
                if not 0 <= idx < len(parent):
                    raise PatchError("replace operation does not apply: index out of range")
                parent[idx] = value
            else:
                if not 0 <= idx <= len(parent):
                    raise PatchError("add operation does not apply: index out of range")
                parent.insert(idx, value)
    else:
        raise PatchError("add operation does not apply: parent is not a container")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"remove operation does not apply: doc is missing path: {last}")
        return parent.pop(last)
    if isinstance(parent, list):
        try:
            return parent.pop(int(last))
        except (ValueError, IndexError) as exc:
            raise PatchError("remove operation does not apply: index out of range") from exc
    raise PatchError("remove operation does not apply")


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    out = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation: {op!r}")
        kind, path = op["op"], _pointer(str(op["path"]))
        if kind == "add":
            out = _add(out, path, copy.deepcopy(op.get("value")), replace=False)
        elif kind == "replace":
            out = _add(out, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "remove":
            _remove(out, path)
        elif kind == "test":
            if _get(out, path) != op.get("value"):
                raise PatchError(f"testing value /{'/'.join(path)} failed")
        elif kind in ("move", "copy"):
            src = _pointer(str(op.get("from", "")))
            value = copy.deepcopy(_get(out, src))
            if kind == "move":
                _remove(out, src)
            out = _add(out, path, value, replace=False)
        else:
            raise PatchError(f"unexpected kind: {kind}")
    return out


# JSON merge patch (RFC 7386) ----------------------------------------------------------


def merge_patch(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# Strategic merge patch ----------------------------------------------------------------

MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "tolerations": "key",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "ephemeralContainerStatuses": "name",
    "addresses": "type",
    "taints": "key",
    "resourceClaims": "name",
    "readinessGates": "conditionType",
}
# Lists that strategic merge treats as sets of primitives (merged, not replaced).
PRIMITIVE_MERGE = {"finalizers"}


def _smp_list(path_key: str, base: list[Any], patch: list[Any]) -> list[Any]:
    key = MERGE_KEYS.get(path_key)
    if path_key in PRIMITIVE_MERGE:
        out = list(base)
        for item in patch:
            if item not in out:
                out.append(item)
        return out
    if key is None or not all(isinstance(x, dict) for x in patch):
        # Replace semantics; drop directive-only elements.
        return [copy.deepcopy(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [copy.deepcopy(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    out = [copy.deepcopy(x) for x in base]
    for item in patch:
        directive = item.get("$patch")
        ident = item.get(key)
        idx = next(
            (i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == ident), None
        )
        if directive == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        body = {k: v for k, v in item.items() if k != "$patch"}
        if idx is None:
            out.append(strategic_merge({}, body))
        else:
            out[idx] = strategic_merge(out[idx], body)
    return out


def strategic_merge(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(out.get(field), list) and isinstance(v, list):
                out[field] = [x for x in out[field] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = _smp_list(k, out[k], v)
        elif isinstance(v, list):
            out[k] = _smp_list(k, [], v)
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        else:
            out[k] = copy.deepcopy(v)
    if isinstance(retain, list):
        for k in list(out):
            if k not in retain:
                out.pop(k)
    return out


def apply_patch(doc: Any, patch: Any, content_type: str) -> Any:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json-patch+json":
        return json_patch(doc, patch)
    if ctype == "application/merge-patch+json":
        if not isinstance(patch, dict):
            raise PatchError("a merge patch must be a JSON object")
        return merge_patch(doc, patch)
    if ctype in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
        if not isinstance(patch, dict):
            raise PatchError("a strategic merge patch must be a JSON object")
        return strategic_merge(doc, patch)
    raise PatchError(f"unsupported patch type {ctype!r}")
