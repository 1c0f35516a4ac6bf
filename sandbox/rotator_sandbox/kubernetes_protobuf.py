"""Just enough of the Kubernetes protobuf encoding to accept what kubectl's typed clients send.

``kubectl create secret``, ``kubectl create namespace`` and ``kubectl auth can-i`` POST their
object as ``application/vnd.kubernetes.protobuf``: the magic ``k8s\\x00`` followed by a
``runtime.Unknown`` envelope (``typeMeta``, ``raw``) whose ``raw`` is the ``v1.Secret`` /
``v1.Namespace`` / ``authorization/v1.SelfSubjectAccessReview`` message (field numbers from
``k8s.io/api/core/v1/generated.proto``, ``k8s.io/api/authorization/v1/generated.proto``,
``k8s.io/api/authentication/v1/generated.proto`` and
``k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto``). This module decodes those types (and
TokenReview, which Go clients may send the same way) into the JSON form the rest of the emulator
works with; other kinds raise :class:`UnsupportedProtobuf` (the emulator answers 415: send
JSON). Answers are always JSON, which every client accepts.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"


class UnsupportedProtobuf(Exception):
    """A protobuf body the emulator cannot decode."""


def _varint(buf: bytes, index: int) -> tuple[int, int]:
    shift = 0
    value = 0
    while True:
        if index >= len(buf):
            raise UnsupportedProtobuf("truncated varint")
        byte = buf[index]
        index += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) for every field of a message."""
    index = 0
    while index < len(buf):
        key, index = _varint(buf, index)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, index = _varint(buf, index)
        elif wire == 1:
            value, index = buf[index : index + 8], index + 8
        elif wire == 2:
            length, index = _varint(buf, index)
            value, index = buf[index : index + length], index + length
        elif wire == 5:
            value, index = buf[index : index + 4], index + 4
        else:
            raise UnsupportedProtobuf(f"unsupported wire type {wire}")
        yield number, value


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise UnsupportedProtobuf("expected a length-delimited field")
    return value.decode("utf-8")


def _entry(value: int | bytes) -> tuple[str, bytes]:
    """A map entry (key = 1, value = 2)."""
    if not isinstance(value, bytes):
        raise UnsupportedProtobuf("expected a map entry")
    key = ""
    data = b""
    for number, item in _fields(value):
        if number == 1:
            key = _text(item)
        elif number == 2 and isinstance(item, bytes):
            data = item
    return key, data


def _time(value: int | bytes) -> str | None:
    if not isinstance(value, bytes):
        return None
    seconds = 0
    for number, item in _fields(value):
        if number == 1 and isinstance(item, int):
            seconds = item
    if seconds == 0:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _object_meta(buf: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    for number, value in _fields(buf):
        if number in strings:
            text = _text(value)
            if text:
                meta[strings[number]] = text
        elif number == 7 and isinstance(value, int) and value:
            meta["generation"] = value
        elif number == 8:
            stamp = _time(value)
            if stamp:
                meta["creationTimestamp"] = stamp
        elif number in (11, 12):
            key, data = _entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = data.decode()
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def _secret(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret"}
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number == 2:
            key, data = _entry(value)
            obj.setdefault("data", {})[key] = base64.b64encode(data).decode()
        elif number == 3:
            text = _text(value)
            if text:
                obj["type"] = text
        elif number == 4:
            key, data = _entry(value)
            obj.setdefault("stringData", {})[key] = data.decode()
        elif number == 5 and isinstance(value, int):
            obj["immutable"] = bool(value)
    return obj


def _namespace(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace"}
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number == 2 and isinstance(value, bytes):
            finalizers = [_text(v) for n, v in _fields(value) if n == 1]
            if finalizers:
                obj["spec"] = {"finalizers": finalizers}
    return obj


def _strings(buf: bytes, names: dict[int, str]) -> dict[str, str]:
    """The non-empty string fields of a message (Go's ``omitempty`` in the JSON form)."""
    found: dict[str, str] = {}
    for number, value in _fields(buf):
        if number in names:
            text = _text(value)
            if text:
                found[names[number]] = text
    return found


_RESOURCE_ATTRIBUTES = {
    1: "namespace",
    2: "verb",
    3: "group",
    4: "version",
    5: "resource",
    6: "subresource",
    7: "name",
}


def _self_subject_access_review(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {},
    }
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number == 2 and isinstance(value, bytes):
            for inner, item in _fields(value):
                if inner == 1 and isinstance(item, bytes):
                    obj["spec"]["resourceAttributes"] = _strings(item, _RESOURCE_ATTRIBUTES)
                elif inner == 2 and isinstance(item, bytes):
                    obj["spec"]["nonResourceAttributes"] = _strings(item, {1: "path", 2: "verb"})
    return obj


def _token_review(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
    spec: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number == 2 and isinstance(value, bytes):
            for inner, item in _fields(value):
                if inner == 1:
                    spec["token"] = _text(item)
                elif inner == 2:
                    spec.setdefault("audiences", []).append(_text(item))
    obj["spec"] = spec
    return obj


_DECODERS = {
    ("v1", "Secret"): _secret,
    ("v1", "Namespace"): _namespace,
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): _self_subject_access_review,
    ("authentication.k8s.io/v1", "TokenReview"): _token_review,
}


def decode(body: bytes) -> dict[str, Any]:
    """Decode a protobuf request body into its JSON form."""
    if not body.startswith(MAGIC):
        raise UnsupportedProtobuf("missing the k8s protobuf magic prefix")
    api_version = kind = ""
    raw = b""
    for number, value in _fields(body[len(MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            for inner, item in _fields(value):
                if inner == 1:
                    api_version = _text(item)
                elif inner == 2:
                    kind = _text(item)
        elif number == 2 and isinstance(value, bytes):
            raw = value
    decoder = _DECODERS.get((api_version, kind))
    if decoder is None:
        raise UnsupportedProtobuf(f"protobuf decoding of {api_version}/{kind} is not emulated")
    return decoder(raw)
