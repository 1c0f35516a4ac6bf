"""Contract checks of StackState exchanges against the OpenAPI excerpt ``stackstate-openapi.yaml``.

They live with the tests, next to the excerpt (a copy of
``reference/stackstate-openapi-excerpt.yaml``), so that neither the emulators' distribution
(``sandbox/``) nor the product needs ``jsonschema`` at run time.

:func:`validate_response` takes one exchange (method, path, status, body) and lists every way the
answer departs from the excerpt; :func:`validate_request` does the same for a request. The test
suite runs the first over every answer the StackState emulator gave (``tests/plugins/
stackstate.py``), so a drifting emulator fails the tests that use it, and the second over every
request the emulator accepted, so a client sending fields the API would ignore is caught.

Validation is deliberately stricter than the excerpt in one way: an object that declares
``properties`` accepts no others (``additionalProperties: false`` is added), so an answer with an
unexpected field (say ``apiKey`` in a list) is a problem rather than noise. ``format: int64`` and
``int32`` are checked as integer ranges; ``readOnly``, ``example`` and ``discriminator`` are
annotations and do not affect validation. Schemas are checked with JSON Schema draft 4, the
closest draft to OpenAPI 3.0 (in particular, ``1.0`` is not an integer).

A status the operation does not document is a problem unless :data:`ALLOWED_UNDOCUMENTED`
accepts it. That allow-list names answers the real server gives although the generated spec is
silent about them; each entry says why it exists and pins the body it accepts.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

import jsonschema  # type: ignore[import-untyped]  # no stubs; the test extra installs it
import yaml

#: The excerpt, next to this module (a copy of reference/stackstate-openapi-excerpt.yaml).
SPEC_PATH: Final = Path(__file__).with_name("stackstate-openapi.yaml")

_METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_INT_RANGES: Final = {"int64": (-(2**63), 2**63 - 1), "int32": (-(2**31), 2**31 - 1)}


@functools.cache
def load_spec() -> dict[str, Any]:
    """The parsed excerpt (cached; callers must not mutate it)."""
    spec = yaml.safe_load(SPEC_PATH.read_text("utf-8"))
    if not isinstance(spec, dict) or "paths" not in spec:
        raise ValueError(f"{SPEC_PATH.name} is not an OpenAPI document")
    return spec


@dataclass(frozen=True)
class Operation:
    """One (method, path template) of the excerpt."""

    method: str  # upper case
    template: str  # e.g. "/security/tokens/{serviceTokenId}"
    operation_id: str
    spec: Mapping[str, Any]
    pattern: re.Pattern[str]

    @property
    def has_request_body(self) -> bool:
        """Whether the operation takes a JSON body."""
        return "requestBody" in self.spec

    @property
    def has_path_parameter(self) -> bool:
        """Whether the template has a ``{parameter}``."""
        return "{" in self.template

    def parameters(self, location: str) -> list[Mapping[str, Any]]:
        """The declared parameters in ``location`` (``query``, ``path``)."""
        return [p for p in self.spec.get("parameters", ()) if p.get("in") == location]


@functools.cache
def operations() -> tuple[Operation, ...]:
    """Every operation of the excerpt."""
    spec = load_spec()
    found: list[Operation] = []
    for template, item in spec["paths"].items():
        for method in _METHODS:
            if method not in item:
                continue
            op = item[method]
            found.append(
                Operation(
                    method=method.upper(),
                    template=template,
                    operation_id=op["operationId"],
                    spec=op,
                    pattern=_template_pattern(template, op, spec),
                )
            )
    return tuple(found)


def _template_pattern(
    template: str, op: Mapping[str, Any], spec: Mapping[str, Any]
) -> re.Pattern[str]:
    """A regex matching the template literally or with concrete values of its path parameters."""
    path_params = {p["name"]: p for p in op.get("parameters", ()) if p.get("in") == "path"}
    parts: list[str] = []
    for piece in re.split(r"(\{[^}]+\})", template):
        if piece.startswith("{") and piece.endswith("}"):
            name = piece[1:-1]
            schema = _resolve(path_params.get(name, {}).get("schema", {}), spec)
            value = "-?[0-9]+" if schema.get("type") == "integer" else "[^/]+"
            parts.append(f"(?:{re.escape(piece)}|{value})")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


def _resolve(schema: Mapping[str, Any], spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` (one level at a time, until a schema without one)."""
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part]
        schema = target
    return schema


def find_operation(method: str, path: str, *, api_path: str = "/api") -> Operation | None:
    """The operation an exchange belongs to, or None when the excerpt has no such operation.

    ``path`` is the request path as sent, ``api_path`` included (``/api/security/tokens/42``);
    a path parameter may be left as its template (``/api/security/tokens/{serviceTokenId}``).
    """
    prefix = "/" + api_path.strip("/") if api_path.strip("/") else ""
    if not path.startswith(prefix + "/"):
        return None
    relative = path[len(prefix) :]
    for op in operations():
        if op.method == method.upper() and op.pattern.fullmatch(relative):
            return op
    return None


# -- the allow-list of undocumented answers ---------------------------------------------------

BodyRule = Callable[[bytes], list[str]]


def _empty(body: bytes) -> list[str]:
    return [] if not body else [f"expected an empty body, got {len(body)} bytes"]


def _anything(body: bytes) -> list[str]:
    del body
    return []


def _akka_rejection(body: bytes) -> list[str]:
    text = body.decode("utf-8", errors="replace")
    if re.match(
        r"(The request content was malformed|Request is missing required query parameter"
        r"|The query parameter '[^']+' was malformed)",
        text,
    ):
        return []
    return ["expected an Akka-HTTP rejection text"]


_NOT_FOUND_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "_type": {"type": "string", "pattern": "NotFoundError$"},
        "message": {"type": "string"},
    },
    "required": ["_type", "message"],
    "additionalProperties": False,
}


def _not_found_body(body: bytes) -> list[str]:
    return _check_json(body, _NOT_FOUND_SCHEMA, {})


@dataclass(frozen=True)
class Allowance:
    """An answer the excerpt does not document but the real server gives."""

    status: int
    applies: Callable[[Operation], bool]
    body: BodyRule
    why: str


def _every(op: Operation) -> bool:
    del op
    return True


def _takes_input(op: Operation) -> bool:
    return op.has_request_body or bool(op.parameters("query"))


def _deletes_by_id(op: Operation) -> bool:
    return op.method == "DELETE" and op.has_path_parameter


#: Undocumented answers that are not contract violations. Keep it short: every entry widens what
#: a test against the emulator accepts, so each one must be an answer the real server gives.
ALLOWED_UNDOCUMENTED: Final[tuple[Allowance, ...]] = (
    Allowance(
        401,
        _every,
        _empty,
        "every operation requires a credential (the spec's global `security`), but the generated "
        "spec documents 401 only on /user/authorization/for; the server answers without a body",
    ),
    Allowance(
        403,
        _every,
        _empty,
        "role-based access: an authenticated caller lacking the operation's permission (e.g. a "
        "service token holding only ingestion roles) is refused, without a body",
    ),
    Allowance(
        404,
        _deletes_by_id,
        _not_found_body,
        "deleting an id that does not exist (already deleted by another run or a human); the spec "
        "lists only 204/500, the emulator answers {_type: <Kind>NotFoundError, message}",
    ),
    Allowance(
        400,
        _takes_input,
        _akka_rejection,
        "a body that is not JSON or lacks a required field, or a missing/malformed query "
        "parameter, is rejected by Akka-HTTP before the operation runs, in its plain-text words",
    ),
    *(
        Allowance(
            status,
            _every,
            _anything,
            "answered by the ingress or load balancer in front of StackState (rate limit, backend "
            "down, gateway timeout); the API does not control that body",
        )
        for status in (429, 502, 503, 504)
    ),
)


# -- validation --------------------------------------------------------------------------------


def validate_response(
    method: str, path: str, status: int, body: bytes, *, api_path: str = "/api"
) -> list[str]:
    """Every way the answer departs from the excerpt; an empty list means it conforms."""
    op = find_operation(method, path, api_path=api_path)
    where = f"{method.upper()} {path} -> {status}"
    if op is None:
        return [f"{where}: the excerpt has no operation {method.upper()} {path}"]
    responses: Mapping[str, Any] = op.spec.get("responses", {})
    documented = responses.get(str(status))
    problems: list[str] = []
    if documented is not None:
        problems = _check_documented(documented, body)
        if not problems:
            return []
    allowances = [a for a in ALLOWED_UNDOCUMENTED if a.status == status and a.applies(op)]
    for allowance in allowances:
        if not allowance.body(body):
            return []
    if documented is None:
        if not allowances:
            listed = ", ".join(sorted(responses))
            return [f"{where}: status {status} is not documented for {op.operation_id} ({listed})"]
        problems = [p for a in allowances for p in a.body(body)]
    return [f"{where}: {problem}" for problem in problems]


def validate_request(
    method: str, path: str, body: bytes, *, query: str = "", api_path: str = "/api"
) -> list[str]:
    """Every way a request departs from the excerpt (body and query); empty means it conforms."""
    op = find_operation(method, path, api_path=api_path)
    where = f"{method.upper()} {path}"
    if op is None:
        return [f"{where}: the excerpt has no operation {method.upper()} {path}"]
    problems = _check_query(op, query)
    request_body = op.spec.get("requestBody")
    if request_body is None:
        if body:
            problems.append(f"{op.operation_id} takes no body, got {len(body)} bytes")
    elif not body:
        if request_body.get("required", False):
            problems.append(f"{op.operation_id} requires a JSON body")
    else:
        schema = request_body["content"]["application/json"]["schema"]
        problems.extend(_check_json(body, schema, load_spec()))
    return [f"{where}: {problem}" for problem in problems]


def _check_query(op: Operation, query: str) -> list[str]:
    declared = {p["name"]: p for p in op.parameters("query")}
    given = parse_qs(query, keep_blank_values=True)
    problems = [f"unknown query parameter {name!r}" for name in given if name not in declared]
    for name, param in declared.items():
        values = given.get(name)
        if not values:
            if param.get("required", False):
                problems.append(f"missing required query parameter {name!r}")
            continue
        kind = param.get("schema", {}).get("type")
        if kind == "boolean" and any(v not in ("true", "false") for v in values):
            problems.append(f"query parameter {name!r} must be true or false")
    return problems


def _check_documented(documented: Mapping[str, Any], body: bytes) -> list[str]:
    content = documented.get("content")
    if content is None:
        return _empty(body)
    media = content.get("application/json")
    if media is None:
        return [f"the spec documents no JSON answer here ({', '.join(content)})"]
    return _check_json(body, media["schema"], load_spec())


def _check_json(body: bytes, schema: Mapping[str, Any], spec: Mapping[str, Any]) -> list[str]:
    try:
        document = json.loads(body)
    except ValueError:
        return [f"expected a JSON body, got {len(body)} bytes that are not JSON"]
    validator = _validator(id(schema), schema, spec)
    problems = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        location = "$" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        problems.append(f"{location}: {_describe(error)}")
    return problems


def _describe(error: jsonschema.ValidationError) -> str:
    """A message that names the rule broken without echoing the value (it may be a key)."""
    if error.validator in ("required", "additionalProperties"):
        return str(error.message)
    return f"value breaks {error.validator}={error.validator_value!r}"


_validators: dict[int, jsonschema.protocols.Validator] = {}


def _validator(
    key: int, schema: Mapping[str, Any], spec: Mapping[str, Any]
) -> jsonschema.protocols.Validator:
    # Schemas come from the cached spec or module constants, so id() is a stable cache key.
    cached = _validators.get(key)
    if cached is not None:
        return cached
    components = _strict(copy.deepcopy(dict(spec.get("components", {}))))
    root = {"allOf": [_strict(copy.deepcopy(dict(schema)))], "components": components}
    validator = jsonschema.Draft4Validator(root, format_checker=_format_checker())
    _validators[key] = validator
    return validator


def _strict(node: Any) -> Any:
    """Add ``additionalProperties: false`` to every object schema that lists its properties."""
    if isinstance(node, dict):
        for value in node.values():
            _strict(value)
        props = node.get("properties")
        # Only where ``properties`` is the keyword (maps names to schemas), not a property name.
        if (
            isinstance(props, dict)
            and "additionalProperties" not in node
            and all(isinstance(v, dict) for v in props.values())
        ):
            node["additionalProperties"] = False
    elif isinstance(node, list):
        for item in node:
            _strict(item)
    return node


@functools.cache
def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    for name, (low, high) in _INT_RANGES.items():
        checker.checks(name)(_int_range_check(low, high))
    return checker


def _int_range_check(low: int, high: int) -> Callable[[object], bool]:
    def check(instance: object) -> bool:
        if isinstance(instance, bool) or not isinstance(instance, int):
            return True  # a format applies to its type only; ``type`` reports the rest
        return low <= instance <= high

    return check
