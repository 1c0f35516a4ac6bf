"""Readable messages from pydantic's validation errors, never quoting a value from the file.

:func:`validation_error_lines` turns a :class:`pydantic.ValidationError` of
:class:`~rotator.config.RotatorConfig` into ``path: message`` lines: the path in dotted/indexed
form (``keys[1].targets[0].namespace``, the tags pydantic inserts for discriminated unions
dropped), problems raised together by :func:`~rotator.config.base.raise_problems` each at its own
path, unknown fields with a "did you mean", unknown tags with the expected ones. Inputs are never
included: a value may be a secret, and mapping keys that do not look like names are masked.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from rotator.config.base import PROBLEMS_TYPE, join_path
from rotator.config.model import RotatorConfig

#: Mapping keys shown in paths (here and by the loader); others (e.g. a mangled `token:value`
#: line) are masked.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_./-]{1,64}$")
_UNKNOWN = object()


def _strip_type(tp: Any) -> Any:
    """Remove Annotated wrappers and a None member of a union."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        if get_origin(tp) in (Union, types.UnionType):
            members = [arg for arg in get_args(tp) if arg is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


#: The fields our discriminated unions are tagged by.
_DISCRIMINATORS: Final = ("type", "method")


def _tags(member: Any) -> tuple[str, tuple[object, ...]] | None:
    """(discriminator, tags) of one member model of a discriminated union."""
    if _is_model(member):
        for name in _DISCRIMINATORS:
            field = member.model_fields.get(name)
            if field is not None and get_origin(field.annotation) is Literal:
                return name, get_args(field.annotation)
    return None


def _tagged_member(union: Any, tag: object) -> Any:
    """The member of a discriminated union of models whose tag is ``tag``."""
    for member in get_args(union):
        found = _tags(member)
        if found is not None and tag in found[1]:
            return member
    return _UNKNOWN


def _union_tags(union: Any) -> tuple[str, list[str]]:
    """(discriminator name, tags) of a discriminated union of models."""
    name, tags = "type", list[str]()
    for member in get_args(union):
        found = _tags(member)
        if found is not None:
            name = found[0]
            tags.extend(str(tag) for tag in found[1])
    return name, tags


def _render_key(name: object, *, first: bool) -> str:
    if isinstance(name, int):
        return f"[{name}]"
    text = str(name)
    if not SAFE_NAME.match(text):
        # A mapping key that does not look like a name may be a mangled `secret:value` line.
        return "[<unprintable key>]" if not first else "<unprintable key>"
    return text if first else f".{text}"


def _walk_loc(loc: tuple[int | str, ...]) -> tuple[str, Any, Any]:
    """Render a pydantic location as ``keys[1].targets[0].namespace``.

    Walks the model types alongside the location so that the tags pydantic inserts for
    discriminated unions (``targets.0.kubernetes-secret.namespace``) are dropped, and returns
    (path, the type holding the last element, the type at the location).
    """
    tp: Any = RotatorConfig
    parent: Any = _UNKNOWN
    path = ""
    for item in loc:
        tp = _strip_type(tp)
        origin = get_origin(tp)
        if origin in (Union, types.UnionType) and not isinstance(item, int):
            member = _tagged_member(tp, item)
            if member is not _UNKNOWN:
                tp = member
                continue
        parent = tp
        if _is_model(tp):
            field = tp.model_fields.get(item) if isinstance(item, str) else None
            tp = field.annotation if field is not None else _UNKNOWN
        elif origin in (list, tuple) and isinstance(item, int):
            tp = get_args(tp)[0]
        elif origin is dict:
            path += f'["{item}"]' if SAFE_NAME.match(str(item)) else "[<unprintable key>]"
            tp = get_args(tp)[1]
            continue
        else:
            tp = _UNKNOWN
        path += _render_key(item, first=not path)
    return path, parent, _strip_type(tp)


def _describe_error(error: Mapping[str, Any], parent: Any, here: Any, loc: tuple[Any, ...]) -> str:
    """A readable message for one pydantic error; never includes the input value."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        message = "unknown field"
        name = loc[-1] if loc else None
        if _is_model(parent) and isinstance(name, str) and SAFE_NAME.match(name):
            close = difflib.get_close_matches(name, list(parent.model_fields), n=1, cutoff=0.6)
            if close:
                message += f"; did you mean {close[0]!r}?"
        return message
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        name, tags = _union_tags(here)
        expected = ", ".join(tags) or str(ctx.get("expected_tags", ""))
        if kind == "union_tag_not_found":
            return f"missing {name} (one of: {expected})"
        # The tag the user wrote is not repeated: it could be anything, a secret included.
        return f"unknown {name}; expected one of: {expected}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping"
    if kind == "list_type":
        return "must be a list"
    if kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1:
        return "must not be empty"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


def validation_error_lines(exc: ValidationError) -> list[str]:
    """The ``path: message`` lines of a ValidationError of :class:`RotatorConfig`: one per
    problem, in document order, without duplicates, never quoting a value."""
    lines: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        path, parent, here = _walk_loc(loc)
        ctx = error.get("ctx") or {}
        if error["type"] == PROBLEMS_TYPE:
            for sub, message in ctx.get("problems", []):
                lines.append(f"{join_path(path, sub) or '(top level)'}: {message}")
            continue
        lines.append(f"{path or '(top level)'}: {_describe_error(error, parent, here, loc)}")
    return list(dict.fromkeys(lines))


def error_block(source: object, lines: Iterable[str]) -> str:
    """The one message of a :class:`~rotator.errors.ConfigError`: the file, then each line."""
    return f"invalid configuration in {source}:\n" + "\n".join(f"  {line}" for line in lines)
