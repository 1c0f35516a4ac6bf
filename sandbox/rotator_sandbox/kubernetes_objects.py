"""What the API server does to an object between the request body and storage.

Decoding (400 on failure, like the real decoder): the body must be JSON (or YAML) of the right
``kind``/``apiVersion``; Secret ``data`` values must be standard padded base64 (the error names the
byte offset exactly as Go's ``encoding/base64`` does); Lease times are ``MicroTime`` and must have
exactly six fractional digits (``2006-01-02T15:04:05.000000Z07:00``). ``stringData`` is merged into
``data`` and dropped, as the v1 -> internal conversion does.

Defaulting and system fields: ``uid``, ``creationTimestamp``, ``generation`` (workloads, Jobs,
CronJobs), ``type: Opaque`` for Secrets, the apps/v1 and batch/v1 defaults and those of their pod
templates; a Job's selector and its ``controller-uid``/``job-name`` template labels are generated
on create (:func:`generate_job_selector`) unless ``spec.manualSelector`` is true.

Validation (422 ``Invalid`` with causes): object names, Secret data keys, immutable Secrets and
Secret types, workload selectors (required, matching the template, immutable), StatefulSet spec
fields that may not change, a Job's or CronJob's pod ``restartPolicy`` (``OnFailure`` or
``Never``) and immutable Job template, a CronJob's ``schedule``, Lease durations.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

import yaml

from rotator_sandbox import kubernetes_protobuf
from rotator_sandbox.kubernetes_errors import (
    ApiError,
    FieldError,
    bad_request,
    invalid,
    unsupported_media_type,
)
from rotator_sandbox.kubernetes_events import EventDecodeError, normalize_event, validate_event
from rotator_sandbox.kubernetes_resources import (
    CRONJOBS,
    DAEMONSETS,
    DEPLOYMENTS,
    EVENTS,
    JOBS,
    LEASES,
    NAMESPACES,
    SECRETS,
    STATEFULSETS,
    ResourceType,
)

_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_MICROTIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?P<rest>.*)$", re.DOTALL)
_ZONE = re.compile(r"^(Z|[+-]\d{2}:\d{2})$")

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
CONFIG_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
IMMUTABLE = "field is immutable"
PROTOBUF = "application/vnd.kubernetes.protobuf"
_BODY_MEDIA = ("application/json", "application/yaml", "application/x-yaml", "text/yaml", "*/*", "")
RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"

#: Byte limit of a Secret's data (``MaxSecretSize``).
MAX_SECRET_SIZE = 1024 * 1024


class DecodeError(Exception):
    """A value the Go decoder would reject; the caller wraps it per verb."""


# -- decoding ---------------------------------------------------------------------------------


def parse_body(raw: bytes, content_type: str | None) -> Any:
    """Parse a request body as JSON, or YAML when the client says so."""
    media = (content_type or "application/json").split(";")[0].strip().lower()
    text = raw.decode("utf-8", errors="replace")
    if media in ("application/yaml", "application/x-yaml", "text/yaml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise bad_request(f"error converting YAML to JSON: {exc}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DecodeError(f"json parse error: {exc}") from exc


def decode_object(rtype: ResourceType, raw: bytes, content_type: str | None) -> dict[str, Any]:
    """Decode a create/update body into a stored-form object (400 when the decoder would fail)."""
    media = (content_type or "application/json").split(";")[0].strip().lower()
    body: Any
    if media == PROTOBUF:
        try:
            body = kubernetes_protobuf.decode(raw)
        except (kubernetes_protobuf.UnsupportedProtobuf, UnicodeDecodeError) as exc:
            raise unsupported_media_type(
                ["application/json", "application/yaml"],
                f"{exc}; the sandbox decodes protobuf for Secrets, Namespaces and reviews only",
            ) from exc
    elif media not in _BODY_MEDIA:
        raise unsupported_media_type(["application/json", "application/yaml", PROTOBUF])
    else:
        try:
            body = parse_body(raw, content_type)
        except DecodeError as exc:
            raise bad_request(
                f"the object provided is unrecognized (must be of type {rtype.kind}): "
                f"couldn't get version/kind; {exc}"
            ) from exc
    if not isinstance(body, dict):
        raise bad_request(
            f"the object provided is unrecognized (must be of type {rtype.kind}): "
            "couldn't get version/kind; json parse error: cannot unmarshal into object"
        )
    api_version = body.get("apiVersion")
    kind = body.get("kind")
    if api_version and api_version != rtype.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({rtype.api_version})"
        )
    if kind and kind != rtype.kind:
        version = api_version.split("/")[-1] if isinstance(api_version, str) else rtype.version
        raise bad_request(
            f'{kind} in version "{version}" cannot be handled as a {rtype.kind}: '
            f'no kind "{kind}" is registered for version "{rtype.api_version}"'
        )
    try:
        return normalize(rtype, body)
    except DecodeError as exc:
        raise bad_request(
            f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: {exc}'
        ) from exc


def normalize(rtype: ResourceType, body: dict[str, Any]) -> dict[str, Any]:
    """Type-check what the Go structs would refuse and convert to the stored form."""
    obj = copy.deepcopy(body)
    obj["apiVersion"] = rtype.api_version
    obj["kind"] = rtype.kind
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise DecodeError(
            "json: cannot unmarshal into Go struct field "
            f"{rtype.kind}.metadata of type v1.ObjectMeta"
        )
    for field in ("labels", "annotations"):
        values = meta.get(field)
        if values is None:
            meta.pop(field, None)
            continue
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise DecodeError(
                f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{field} "
                "of type map[string]string"
            )
    if rtype is SECRETS:
        _normalize_secret(obj)
    elif rtype is LEASES:
        _normalize_lease(obj)
    elif rtype is EVENTS:
        try:
            normalize_event(obj, parse_microtime)
        except EventDecodeError as exc:
            raise DecodeError(str(exc)) from exc
    return obj


def go_base64_error(value: str) -> int | None:
    """Offset Go's ``base64.StdEncoding.Decode`` reports for ``value``, or None if it is valid."""
    src = value.encode("utf-8", errors="surrogatepass")
    si = 0
    n = len(src)
    while True:
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return None
                return si - j  # a partial quantum: padding is required
            char = src[si]
            si += 1
            if char in _B64_ALPHABET:
                j += 1
                continue
            if char in (0x0A, 0x0D):
                continue
            if char != ord("="):
                return si - 1
            if j in (0, 1):
                return si - 1
            if j == 2:
                while si < n and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    return n
                if src[si] != ord("="):
                    return si - 1
                si += 1
            while si < n and src[si] in (0x0A, 0x0D):
                si += 1
            if si < n:
                return si
            return None
        if si == n:
            return None


def _normalize_secret(obj: dict[str, Any]) -> None:
    data = obj.get("data")
    if data is None:
        obj.pop("data", None)
        data = {}
    elif not isinstance(data, dict):
        raise DecodeError(
            "json: cannot unmarshal into Go struct field Secret.data of type map[string][]uint8"
        )
    for key, value in data.items():
        if not isinstance(value, str):
            raise DecodeError(
                f"json: cannot unmarshal {_json_type(value)} into Go struct field "
                "Secret.data of type []uint8"
            )
        offset = go_base64_error(value)
        if offset is not None:
            raise DecodeError(f"illegal base64 data at input byte {offset}")
        data[key] = base64.b64encode(
            base64.b64decode(value.replace("\n", "").replace("\r", ""))
        ).decode()
    string_data = obj.pop("stringData", None)
    if string_data is not None:
        if not isinstance(string_data, dict) or not all(
            isinstance(v, str) for v in string_data.values()
        ):
            raise DecodeError(
                "json: cannot unmarshal into Go struct field Secret.stringData of type "
                "map[string]string"
            )
        for key, value in string_data.items():
            data[key] = base64.b64encode(value.encode()).decode()
    if data:
        obj["data"] = data


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def parse_microtime(value: Any) -> str:
    """Parse a ``MicroTime`` like Go (``RFC3339Micro``) and return its canonical UTC form."""
    if not isinstance(value, str):
        raise DecodeError(
            f"json: cannot unmarshal {_json_type(value)} into Go value of type string"
        )
    match = _MICROTIME.match(value)
    if match is None:
        raise DecodeError(
            f'parsing time "{value}" as "{RFC3339_MICRO}": cannot parse "{value}" as "2006"'
        )
    rest = match["rest"]
    if len(rest) < 7 or rest[0] not in ".," or not rest[1:7].isdigit():
        raise DecodeError(
            f'parsing time "{value}" as "{RFC3339_MICRO}": cannot parse "{rest}" as ".000000"'
        )
    zone = rest[7:]
    if not _ZONE.match(zone):
        raise DecodeError(
            f'parsing time "{value}" as "{RFC3339_MICRO}": cannot parse "{zone}" as "Z07:00"'
        )
    iso = value[:19] + "." + rest[1:7] + ("+00:00" if zone == "Z" else zone)
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError as exc:
        raise DecodeError(f'parsing time "{value}": {exc}') from exc
    return format_microtime(moment)


def format_microtime(moment: datetime) -> str:
    """``MicroTime`` as the server writes it: UTC, six fractional digits, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _normalize_lease(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if spec is None:
        return
    if not isinstance(spec, dict):
        raise DecodeError(
            "json: cannot unmarshal into Go struct field Lease.spec of type v1.LeaseSpec"
        )
    for field in ("acquireTime", "renewTime"):
        if field in spec:
            if spec[field] is None:
                del spec[field]
            else:
                spec[field] = parse_microtime(spec[field])
    for field in ("leaseDurationSeconds", "leaseTransitions"):
        value = spec.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise DecodeError(
                f"json: cannot unmarshal {_json_type(value)} into Go struct field "
                f"LeaseSpec.spec.{field} of type int32"
            )


def go_map(value: Any) -> str:
    """Go's ``%+v`` of a decoded JSON value (used in the Invalid ``patch`` error)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_map(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_map(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- defaults and system fields ---------------------------------------------------------------


def _default_pod_template(template: dict[str, Any]) -> None:
    spec = template.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for field in ("containers", "initContainers"):
        for container in spec.get(field) or []:
            if not isinstance(container, dict):
                continue
            image = str(container.get("image", ""))
            tag = image.rsplit("/", 1)[-1]
            latest = ":" not in tag or tag.endswith(":latest")
            container.setdefault(
                "imagePullPolicy", "Always" if latest and "@" not in image else "IfNotPresent"
            )
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})


def apply_defaults(rtype: ResourceType, obj: dict[str, Any]) -> None:
    """Server-side defaulting of a decoded object."""
    if rtype is SECRETS:
        obj.setdefault("type", "Opaque")
    elif rtype is NAMESPACES:
        spec = obj.setdefault("spec", {})
        spec.setdefault("finalizers", ["kubernetes"])
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")
        obj["status"] = {"phase": "Active"}
    elif rtype.workload:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            _default_workload(rtype, spec)
    elif rtype in (JOBS, CRONJOBS):
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        if rtype is JOBS:
            _default_job(obj["metadata"], spec)
        else:
            _default_cronjob(spec)


def _default_workload(rtype: ResourceType, spec: dict[str, Any]) -> None:
    """The apps/v1 defaults of a Deployment, DaemonSet or StatefulSet and its pod template."""
    if rtype is DEPLOYMENTS:
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
    elif rtype is DAEMONSETS:
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)
    elif rtype is STATEFULSETS:
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        policy = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        policy.setdefault("whenDeleted", "Retain")
        policy.setdefault("whenScaled", "Retain")
    template = spec.get("template")
    if isinstance(template, dict):
        _default_pod_template(template)


def _default_cronjob(spec: dict[str, Any]) -> None:
    """``SetDefaults_CronJob`` (batch/v1), plus the pod defaults of its job's template."""
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_spec = (spec.get("jobTemplate") or {}).get("spec")
    template = job_spec.get("template") if isinstance(job_spec, dict) else None
    if isinstance(template, dict):
        _default_pod_template(template)


def _default_job(meta: dict[str, Any], spec: dict[str, Any]) -> None:
    """``SetDefaults_Job`` (batch/v1)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.get("template")
    if not isinstance(template, dict):
        return
    labels = (template.get("metadata") or {}).get("labels")
    if labels and not meta.get("labels"):
        meta["labels"] = dict(labels)
    _default_pod_template(template)


#: The labels the Job strategy adds to a pod template (legacy and prefixed forms).
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
CONTROLLER_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")


def generate_job_selector(obj: dict[str, Any]) -> None:
    """The Job strategy's ``PrepareForCreate``: without ``spec.manualSelector`` the selector is
    ``batch.kubernetes.io/controller-uid: <uid>`` and the template gets the job-name and
    controller-uid labels (``metadata.uid`` must already be set)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector") is True:
        return
    template = spec.get("template")
    if not isinstance(template, dict):
        return
    meta = obj["metadata"]
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    for label in JOB_NAME_LABELS:
        labels.setdefault(label, str(meta.get("name", "")))
    for label in CONTROLLER_UID_LABELS:
        labels.setdefault(label, str(meta["uid"]))
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    match_labels = selector.setdefault("matchLabels", {})
    match_labels.setdefault(CONTROLLER_UID_LABELS[0], str(meta["uid"]))


# -- validation -------------------------------------------------------------------------------


def validate_name(rtype: ResourceType, name: str) -> list[FieldError]:
    """Name rules: DNS-1123 label for namespaces, subdomain for everything else served."""
    if not name:
        return [FieldError.required("metadata.name", "name or generateName is required")]
    if rtype is NAMESPACES:
        errors = []
        if len(name) > 63:
            errors.append(
                FieldError.invalid("metadata.name", name, "must be no more than 63 characters")
            )
        if not _DNS1123_LABEL.match(name):
            errors.append(FieldError.invalid("metadata.name", name, LABEL_MESSAGE))
        return errors
    errors = []
    if len(name) > 253:
        errors.append(
            FieldError.invalid("metadata.name", name, "must be no more than 253 characters")
        )
    if not _DNS1123_SUBDOMAIN.match(name):
        errors.append(FieldError.invalid("metadata.name", name, SUBDOMAIN_MESSAGE))
    return errors


def _validate_secret(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    errors: list[FieldError] = []
    total = 0
    for key, value in (obj.get("data") or {}).items():
        path = f"data[{key}]"
        if len(key) > 253:
            errors.append(FieldError.invalid(path, key, "must be no more than 253 characters"))
        if not _CONFIG_KEY.match(key):
            errors.append(FieldError.invalid(path, key, CONFIG_KEY_MESSAGE))
        if key in (".", ".."):
            errors.append(FieldError.invalid(path, key, "must not be '.'"))
        elif key.startswith(".."):
            errors.append(FieldError.invalid(path, key, "must not start with '..'"))
        total += len(value) * 3 // 4
    if total > MAX_SECRET_SIZE:
        errors.append(
            FieldError(
                "FieldValueTooLong", "data", detail=f"may not be longer than {MAX_SECRET_SIZE}"
            )
        )
    if old is not None:
        if obj.get("type") != old.get("type"):
            errors.append(FieldError.invalid("type", obj.get("type"), IMMUTABLE))
        if old.get("immutable") is True:
            if obj.get("immutable") is not True:
                errors.append(
                    FieldError.forbidden("immutable", "field is immutable when `immutable` is set")
                )
            if obj.get("data") != old.get("data"):
                errors.append(
                    FieldError.forbidden("data", "field is immutable when `immutable` is set")
                )
    return errors


def _label_selector_repr(selector: Any) -> str:
    labels = (selector or {}).get("matchLabels") or {}
    inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
    return (
        f"v1.LabelSelector{{MatchLabels:map[string]string{{{inner}}}, "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
    )


def _validate_workload(
    rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
) -> list[FieldError]:
    from rotator_sandbox.kubernetes_selectors import (  # noqa: PLC0415 - avoids a cycle at import
        labels_match,
        selector_from_label_selector,
    )

    errors: list[FieldError] = []
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError.required("spec")]
    replicas = spec.get("replicas")
    if rtype is not DAEMONSETS and isinstance(replicas, int) and replicas < 0:
        errors.append(
            FieldError.invalid("spec.replicas", replicas, "must be greater than or equal to 0")
        )
    selector = spec.get("selector")
    raw_template = spec.get("template")
    template: dict[str, Any] = raw_template if isinstance(raw_template, dict) else {}
    if not selector:
        errors.append(FieldError.required("spec.selector"))
    else:
        requirements = selector_from_label_selector(selector)
        if not requirements:
            errors.append(
                FieldError.invalid(
                    "spec.selector",
                    _label_selector_repr(selector),
                    "empty selector is invalid for deployment",
                )
            )
        template_labels = (template.get("metadata") or {}).get("labels") or {}
        if requirements and not labels_match(requirements, template_labels):
            errors.append(
                FieldError.invalid(
                    "spec.template.metadata.labels",
                    template_labels,
                    "`selector` does not match template `labels`",
                )
            )
    errors += _validate_containers(template, "spec.template")
    if old is not None:
        old_spec = old.get("spec") or {}
        if old_spec.get("selector") != spec.get("selector"):
            errors.append(
                FieldError.invalid(
                    "spec.selector", _label_selector_repr(spec.get("selector")), IMMUTABLE
                )
            )
        if rtype is STATEFULSETS:
            mutable = {
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            }
            changed = {
                k
                for k in set(spec) | set(old_spec)
                if k not in mutable and spec.get(k) != old_spec.get(k)
            }
            if changed:
                errors.append(
                    FieldError.forbidden(
                        "spec",
                        "updates to statefulset spec for fields other than 'replicas', "
                        "'ordinals', 'template', 'updateStrategy', "
                        "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
                        "forbidden",
                    )
                )
    return errors


def _validate_containers(template: dict[str, Any], path: str) -> list[FieldError]:
    """Every pod template needs containers, each with a name and an image."""
    errors: list[FieldError] = []
    containers = (template.get("spec") or {}).get("containers")
    if not containers:
        return [FieldError.required(f"{path}.spec.containers")]
    for index, container in enumerate(containers):
        if not isinstance(container, dict) or not container.get("name"):
            errors.append(FieldError.required(f"{path}.spec.containers[{index}].name"))
        if isinstance(container, dict) and not container.get("image"):
            errors.append(FieldError.required(f"{path}.spec.containers[{index}].image"))
    return errors


def _validate_batch_template(template: Any, path: str) -> list[FieldError]:
    """A Job's pod template: containers, and a restartPolicy of OnFailure or Never."""
    if not isinstance(template, dict):
        return [FieldError.required(path)]
    errors = _validate_containers(template, path)
    policy = (template.get("spec") or {}).get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        errors.append(
            FieldError(
                "FieldValueNotSupported",
                f"{path}.spec.restartPolicy",
                policy,
                'supported values: "OnFailure", "Never"',
            )
        )
    return errors


def _validate_job(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldError.required("spec")]
    errors = _validate_batch_template(spec.get("template"), "spec.template")
    selector = spec.get("selector")
    uid = obj["metadata"].get("uid")
    if spec.get("manualSelector") is not True and old is None:
        generated = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        if selector != generated:
            errors.append(
                FieldError.invalid(
                    "spec.selector", _label_selector_repr(selector), "`selector` not auto-generated"
                )
            )
    if old is not None:
        old_spec = old.get("spec") or {}
        for field in ("selector", "template", "completionMode"):
            if spec.get(field) != old_spec.get(field):
                errors.append(FieldError.invalid(f"spec.{field}", spec.get(field), IMMUTABLE))
    return errors


#: Cron macros the CronJob controller's parser accepts besides five fields.
_CRON_MACROS = frozenset(
    ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
)


def _validate_cronjob(obj: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    name = str(obj["metadata"].get("name", ""))
    if len(name) > 52:
        errors.append(
            FieldError.invalid("metadata.name", name, "must be no more than 52 characters")
        )
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [*errors, FieldError.required("spec")]
    schedule = spec.get("schedule")
    if not schedule:
        errors.append(FieldError.required("spec.schedule"))
    elif isinstance(schedule, str) and schedule not in _CRON_MACROS:
        fields = schedule.split()
        if len(fields) != 5:
            errors.append(
                FieldError.invalid(
                    "spec.schedule",
                    schedule,
                    f"unparseable: expected exactly 5 fields, found {len(fields)}: {schedule}",
                )
            )
    job_spec = (spec.get("jobTemplate") or {}).get("spec")
    template = job_spec.get("template") if isinstance(job_spec, dict) else None
    errors += _validate_batch_template(template, "spec.jobTemplate.spec.template")
    return errors


def _validate_lease(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        errors.append(
            FieldError.invalid("spec.leaseDurationSeconds", duration, "must be greater than 0")
        )
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        errors.append(
            FieldError.invalid(
                "spec.leaseTransitions", transitions, "must be greater than or equal to 0"
            )
        )
    return errors


def validate(rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Raise 422 ``Invalid`` when the object breaks a rule the real server enforces."""
    name = obj["metadata"].get("name", "")
    errors = validate_name(rtype, name) if old is None else []
    if rtype is SECRETS:
        errors += _validate_secret(obj, old)
    elif rtype.workload:
        errors += _validate_workload(rtype, obj, old)
    elif rtype is JOBS:
        errors += _validate_job(obj, old)
    elif rtype is CRONJOBS:
        errors += _validate_cronjob(obj)
    elif rtype is LEASES:
        errors += _validate_lease(obj)
    elif rtype is EVENTS:
        errors += validate_event(obj)
    if errors:
        raise invalid(rtype.group, rtype.kind, name, errors)


def generation_changed(rtype: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether an update bumps ``metadata.generation`` (workload strategies' PrepareForUpdate)."""
    if not rtype.has_generation:
        return False
    if new.get("spec") != old.get("spec"):
        return True
    if rtype is DEPLOYMENTS:
        return bool(new["metadata"].get("annotations") != old["metadata"].get("annotations"))
    return False


def same_content(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether an update changes nothing (the server then skips the write: no new version)."""

    def strip(obj: dict[str, Any]) -> dict[str, Any]:
        clone = dict(obj)
        clone["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
        return clone

    return strip(new) == strip(old)


def invalid_patch(value: str, exc: Exception) -> ApiError:
    """The 422 a patch answers when its result cannot be decoded (``field.Invalid("patch")``)."""
    return invalid("", "", "", [FieldError.invalid("patch", value, str(exc))])
