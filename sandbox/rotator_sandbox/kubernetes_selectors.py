"""Label and field selectors as the API server parses them (``labelSelector``, ``fieldSelector``).

Label selectors support the equality-based (``a=b``, ``a==b``, ``a!=b``) and set-based
(``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``) requirements, comma-separated (AND). Field
selectors support ``metadata.name`` and ``metadata.namespace`` with ``=``, ``==`` and ``!=`` on
every type, plus ``type`` on Secrets; any other field is rejected like the real server does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rotator_sandbox.kubernetes_errors import ApiError, bad_request

_LABEL_VALUE = r"[A-Za-z0-9_.\-/]*"
_SET_RE = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$")
_EQ_RE = re.compile(
    r"^\s*(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>" + _LABEL_VALUE + r")\s*$"
)
_EXISTS_RE = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    """One label requirement."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies the requirement."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


def _split_top_level(selector: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def parse_label_selector(selector: str) -> list[Requirement]:
    """Parse a ``labelSelector`` query value; raises a 400 ``ApiError`` when malformed."""
    requirements: list[Requirement] = []
    for part in _split_top_level(selector):
        if match := _SET_RE.match(part):
            values = tuple(v.strip() for v in match["values"].split(",") if v.strip())
            requirements.append(Requirement(match["key"], match["op"], values))
        elif match := _EQ_RE.match(part):
            op = "!=" if match["op"] == "!=" else "="
            requirements.append(Requirement(match["key"], op, (match["value"],)))
        elif match := _EXISTS_RE.match(part):
            op = "!exists" if match["neg"] else "exists"
            requirements.append(Requirement(match["key"], op))
        else:
            raise bad_request(f"unable to parse requirement: {part.strip()!r}")
    return requirements


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    """Whether every requirement holds for ``labels``."""
    actual = labels or {}
    return all(r.matches(actual) for r in requirements)


def selector_from_label_selector(selector: Mapping[str, Any] | None) -> list[Requirement]:
    """Requirements of a ``LabelSelector`` object (``matchLabels`` + ``matchExpressions``)."""
    if not selector:
        return []
    requirements = [
        Requirement(str(k), "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()
    ]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(str(expr.get("operator")), "in")
        requirements.append(
            Requirement(str(expr.get("key")), op, tuple(str(v) for v in expr.get("values") or []))
        )
    return requirements


FieldGetter = Callable[[dict[str, Any]], str]

_COMMON_FIELDS: dict[str, FieldGetter] = {
    "metadata.name": lambda o: str(o.get("metadata", {}).get("name", "")),
    "metadata.namespace": lambda o: str(o.get("metadata", {}).get("namespace", "")),
}
_EXTRA_FIELDS: dict[str, dict[str, FieldGetter]] = {
    "secrets": {"type": lambda o: str(o.get("type", ""))},
    "namespaces": {"status.phase": lambda o: str(o.get("status", {}).get("phase", ""))},
}


@dataclass(frozen=True)
class FieldRequirement:
    """One field selector term."""

    getter: FieldGetter
    negate: bool
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        """Whether the object satisfies the term."""
        return (self.getter(obj) == self.value) != self.negate


def parse_field_selector(selector: str, plural: str) -> list[FieldRequirement]:
    """Parse a ``fieldSelector``; unsupported fields answer 400 like the real server."""
    fields = {**_COMMON_FIELDS, **_EXTRA_FIELDS.get(plural, {})}
    requirements: list[FieldRequirement] = []
    for part in (p for p in selector.split(",") if p.strip()):
        match = re.match(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if match is None:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{part}'")
        name, op, value = match.groups()
        getter = fields.get(name)
        if getter is None:
            raise ApiError(
                400,
                "BadRequest",
                f"field label not supported: {name}",
            )
        requirements.append(FieldRequirement(getter, op == "!=", value))
    return requirements


def fields_match(requirements: list[FieldRequirement], obj: dict[str, Any]) -> bool:
    """Whether every field term holds for ``obj``."""
    return all(r.matches(obj) for r in requirements)
