"""The three patch formats the API server accepts for built-in types.

- ``application/json-patch+json`` (RFC 6902): a list of operations on JSON pointers.
- ``application/merge-patch+json`` (RFC 7386): maps merge recursively, ``null`` deletes a key,
  lists are replaced whole.
- ``application/strategic-merge-patch+json``: like a merge patch, but lists that Kubernetes
  declares with a patch merge key (containers, env, volumes, ... by ``name``) merge element-wise,
  and the ``$patch`` / ``$retainKeys`` / ``$deleteFromPrimitiveList`` / ``$setElementOrder``
  directives are honoured. This is the subset ``kubectl patch``, ``kubectl rollout restart`` and
  ``kubectl apply`` rely on.

Errors raise :class:`PatchError`; the emulator maps them to the Status the real server answers.
"""

from __future__ import annotations

import copy
from typing import Any

#: Lists whose elements merge by a key in strategic merge patches (field name -> merge key).
#: Upstream declares these per Go struct field; the field names are unambiguous within the
#: types the emulator serves (pod templates, object metadata, workload status).
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
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}

#: Lists of scalars that merge as sets (``patchStrategy: merge`` on a primitive list).
MERGE_PRIMITIVE_LISTS = frozenset({"finalizers"})


class PatchError(Exception):
    """A patch that cannot be applied; ``code`` is the HTTP status to answer."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- RFC 7386 ------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch and return the result (inputs are not modified)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- RFC 6902 ------------------------------------------------------------------------------


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _parse_pointer(pointer: Any) -> list[str]:
    if not isinstance(pointer, str):
        raise PatchError(400, "missing path")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(422, f"invalid JSON pointer {pointer!r}")
    return [_unescape(t) for t in pointer[1:].split("/")]


def _list_index(container: list[Any], token: str, *, for_add: bool) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit():
        raise PatchError(422, f"invalid index {token!r}")
    index = int(token)
    limit = len(container) if for_add else len(container) - 1
    if index > limit:
        raise PatchError(422, f"index out of range: {index}")
    return index


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_list_index(node, token, for_add=False)]
        else:
            raise PatchError(422, "doc is missing path")
    return node


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(422, "doc is missing key")
        return parent[last]
    if isinstance(parent, list):
        return parent[_list_index(parent, last, for_add=False)]
    raise PatchError(422, "doc is missing path")


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise PatchError(422, "cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(422, "Unable to remove nonexistent key")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_list_index(parent, last, for_add=False))
    raise PatchError(422, "doc is missing path")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, for_add=True), value)
    else:
        raise PatchError(422, "doc is missing path")
    return doc


def json_patch(document: Any, operations: Any) -> Any:
    """Apply an RFC 6902 patch and return the result (the input is not modified)."""
    if not isinstance(operations, list):
        raise PatchError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(document)
    for op in operations:
        if not isinstance(op, dict):
            raise PatchError(
                400, "json: cannot unmarshal into Go value of type jsonpatch.Operation"
            )
        kind = op.get("op")
        tokens = _parse_pointer(op.get("path"))
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, tokens)
        elif kind == "replace":
            if not tokens:
                doc = copy.deepcopy(op.get("value"))
                continue
            _get(doc, tokens)
            parent = _parent(doc, tokens)
            if isinstance(parent, dict):
                parent[tokens[-1]] = copy.deepcopy(op.get("value"))
            else:
                parent[_list_index(parent, tokens[-1], for_add=False)] = copy.deepcopy(
                    op.get("value")
                )
        elif kind in ("move", "copy"):
            source = _parse_pointer(op.get("from"))
            value = _remove(doc, source) if kind == "move" else copy.deepcopy(_get(doc, source))
            doc = _add(doc, tokens, value)
        elif kind == "test":
            if _get(doc, tokens) != op.get("value"):
                raise PatchError(422, "testing value failed")
        else:
            raise PatchError(422, f"Unexpected kind: {kind}")
    return doc


# -- strategic merge patch -----------------------------------------------------------------


def strategic_merge_patch(original: Any, patch: Any) -> Any:
    """Apply a strategic merge patch to an object and return the result."""
    if not isinstance(patch, dict):
        raise PatchError(400, "invalid JSON document")
    return _smp_map(original if isinstance(original, dict) else {}, patch)


def _smp_map(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise PatchError(400, f"Unknown patch type: {directive}")
    result = copy.deepcopy(original)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = _smp_map(current if isinstance(current, dict) else {}, value)
        elif isinstance(value, list):
            result[key] = _smp_list(key, result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(field: str, original: Any, patch: list[Any]) -> list[Any]:
    current = copy.deepcopy(original) if isinstance(original, list) else []
    if field in MERGE_PRIMITIVE_LISTS:
        for item in patch:
            if item not in current:
                current.append(copy.deepcopy(item))
        return current
    key = MERGE_KEYS.get(field)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return copy.deepcopy(patch)
    for item in patch:
        if item.get("$patch") == "replace" and set(item) == {"$patch"}:
            return [copy.deepcopy(i) for i in patch if i is not item]
    for item in patch:
        if key not in item:
            raise PatchError(400, f"map: {item} does not contain declared merge key: {key}")
        index = next(
            (
                i
                for i, existing in enumerate(current)
                if isinstance(existing, dict) and existing.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                current.pop(index)
            continue
        if index is None:
            current.append(_smp_map({}, item))
        else:
            current[index] = _smp_map(current[index], item)
    return current
