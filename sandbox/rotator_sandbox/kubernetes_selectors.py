"""Label and field selectors as the API server parses them (``labelSelector``, ``fieldSelector``).

Label selectors support the equality-based (``a=b``, ``a==b``, ``a!=b``), set-based
(``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``) and numeric (``a>1``, ``a<5``) requirements,
comma-separated (AND). As apimachinery's ``labels.Parse`` does, every key must be a qualified
name (an optional DNS-subdomain prefix and ``/``, then a name of at most 63 characters), every
value a valid label value (at most 63 characters, alphanumeric at both ends), ``in``/``notin``
need at least one value and ``>``/``<`` exactly one integer; anything else answers 400
``unable to parse requirement: ...``. Field
selectors support ``metadata.name`` and ``metadata.namespace`` with ``=``, ``==`` and ``!=`` on
every type, plus ``type`` on Secrets; any other field is rejected like the real server does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rotator_sandbox.kubernetes_errors import ApiError, bad_request
from rotator_sandbox.kubernetes_events import EVENT_FIELDS

_LABEL_VALUE = r"[^\s!=(),<>]*"
_SET_RE = re.compile(r"^\s*(?P<key>[^\s!=(),<>]+)\s+(?P<op>in|notin)\s+\((?P<values>[^()]*)\)\s*$")
_EQ_RE = re.compile(
    r"^\s*(?P<key>[^\s!=(),<>]+)\s*(?P<op>==|=|!=|>|<)\s*(?P<value>" + _LABEL_VALUE + r")\s*$"
)
_EXISTS_RE = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=(),<>]+)\s*$")

_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAME_HINT = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_HINT = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def _key_problems(key: str) -> list[str]:
    """What makes ``key`` not a qualified name (apimachinery's IsQualifiedName)."""
    parts = key.split("/")
    if len(parts) > 2:
        return [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character, with an optional DNS subdomain "
            "prefix and '/' (e.g. 'example.com/MyName')"
        ]
    problems = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        elif len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix):
            problems.append(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character"
            )
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    elif not _NAME_PART.match(name):
        problems.append(_NAME_HINT)
    return problems


def _requirement(key: str, op: str, values: tuple[str, ...]) -> Requirement:
    """A checked requirement; a 400 naming the field like the API server otherwise."""
    problems = _key_problems(key)
    if problems:
        raise bad_request(
            f'unable to parse requirement: key: Invalid value: "{key}": {"; ".join(problems)}'
        )
    if op in ("in", "notin") and not values:
        raise bad_request(
            'unable to parse requirement: values: Invalid value: "": '
            "for 'in', 'notin' operators, values set can't be empty"
        )
    if op in (">", "<"):
        if len(values) != 1:
            raise bad_request(
                'unable to parse requirement: values: Invalid value: "": '
                "for 'Gt', 'Lt' operators, exactly one value is required"
            )
        if not re.fullmatch(r"-?\d+", values[0]):
            raise bad_request(
                f'unable to parse requirement: values[0]: Invalid value: "{values[0]}": '
                "for 'Gt', 'Lt' operators, the value must be an integer"
            )
    for index, value in enumerate(values):
        if len(value) > 63:
            problem = "must be no more than 63 characters"
        elif op not in (">", "<") and not _LABEL_VALUE_RE.match(value):
            problem = _VALUE_HINT
        else:
            continue
        raise bad_request(
            f'unable to parse requirement: values[{index}][{key}]: Invalid value: "{value}": '
            f"{problem}"
        )
    return Requirement(key, op, values)


@dataclass(frozen=True)
class Requirement:
    """One label requirement."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists", ">", "<"
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
        if self.op in (">", "<"):
            # Objects whose label is absent or not an integer never match (as in the API).
            try:
                number = int(value or "")
            except ValueError:
                return False
            limit = int(self.values[0])
            return number > limit if self.op == ">" else number < limit
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
            requirements.append(_requirement(match["key"], match["op"], values))
        elif match := _EQ_RE.match(part):
            op = "=" if match["op"] == "==" else match["op"]
            requirements.append(_requirement(match["key"], op, (match["value"],)))
        elif match := _EXISTS_RE.match(part):
            op = "!exists" if match["neg"] else "exists"
            requirements.append(_requirement(match["key"], op, ()))
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
    "events": dict(EVENT_FIELDS),
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
