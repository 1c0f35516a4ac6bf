"""The configuration file: typed models, YAML loading, ``${ENV}`` and ``*_file`` secrets.

:func:`load_config` turns a YAML file into a frozen :class:`RotatorConfig` in four steps, and any
failure is one :class:`~rotator.errors.ConfigError` whose message is a readable block naming the
file and every bad field in dotted/indexed form (``keys[1].targets[0].namespace``)::

    read file -> parse YAML (1.2, duplicate keys rejected) -> interpolate ${ENV} in every string
              -> validate with pydantic (types, *_file twins, cross-field checks, policy merge)

Conventions users rely on (documented in ``config.example.yaml``):

- Durations are ``90d``, ``12h``, ``30m``, ``45s`` or combinations in that order (``1d12h``);
  a plain integer means seconds. :func:`parse_duration` / :func:`format_duration` (defined in
  :mod:`rotator.timespec`, re-exported here) convert both ways.
- ``rotate_before`` is a duration or a percentage of ``validity`` (``"30%"``).
- ``${VAR}`` is replaced by the environment variable (unset is an error), ``${VAR:-default}``
  falls back when it is unset or empty, ``$${`` writes a literal ``${``. Mapping keys are not
  interpolated.
- Every secret field has a ``*_file`` twin read once at load time (surrounding whitespace
  stripped). An empty inline value counts as not given, so ``${VAR:-}`` makes an inline secret
  optional next to its file twin.
- Relative paths are resolved against the directory of the configuration file (as kubeconfig
  does), ``~`` is expanded.
- ``null`` means "use the default" for every field.
- Cron expressions (schedule, windows) are standard 5-field crontab lines evaluated in UTC, with
  day-of-week 0 or 7 = Sunday; :func:`cron_trigger` builds the APScheduler trigger for one.

Every managed key exposes its effective policy (``key.policy``): the ``defaults:`` section merged
with the key's overrides, percentages resolved, so no code downstream ever reads ``defaults``.

Error messages never contain a value from the file: only field paths, variable names, file paths
and type names. Secret fields are :class:`pydantic.SecretStr` and :func:`load_config` registers
them with the log redactor (:func:`rotator.secrets.register_secret`).
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal, NoReturn, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema, SkipJsonSchema
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from rotator.errors import ConfigError
from rotator.secrets import register_secret
from rotator.timespec import (
    DURATION_HINT,
    Percentage,
    cron_trigger,
    format_duration,
    parse_duration,
    validate_cron,
)

__all__ = [
    "DEFAULT_ALERT_EVENTS",
    "DEFAULT_CONFIG_FILE",
    "FAILURE_EVENTS",
    "AlertEvent",
    "AlertHook",
    "AlertmanagerAlert",
    "CommandAlert",
    "CommandConsumer",
    "Consumer",
    "Defaults",
    "FileTarget",
    "KeyKind",
    "KeyPolicy",
    "KubernetesSecretTarget",
    "KubernetesSettings",
    "KubernetesWorkloadConsumer",
    "LeaderElectionSettings",
    "LinuxAgentPreset",
    "ManagedKey",
    "OtelCollectorPreset",
    "PagerDutyAlert",
    "Percentage",
    "Preset",
    "PresetWorkload",
    "RotatorConfig",
    "Schedule",
    "ServerSettings",
    "SlackAlert",
    "StackStateK8sAgentPreset",
    "StackStateSettings",
    "SuseObservabilityAgentPreset",
    "SyncedSecretConsumer",
    "Target",
    "VaultAppRoleAuth",
    "VaultAuth",
    "VaultKubernetesAuth",
    "VaultKvTarget",
    "VaultSettings",
    "VaultTokenAuth",
    "WebhookAlert",
    "config_json_schema",
    "cron_trigger",
    "describe_key",
    "format_duration",
    "load_config",
    "parse_duration",
    "resolve_config_path",
    "resolve_policy",
    "validate_cron",
    "validation_error_lines",
]

#: Where the configuration is read from when neither ``--config`` nor ``$ROTATOR_CONFIG`` is given.
DEFAULT_CONFIG_FILE: Final = Path("rotator.yaml")

#: The environment variable naming the configuration file.
CONFIG_ENV_VAR: Final = "ROTATOR_CONFIG"

#: The service-account token Kubernetes mounts into every pod.
DEFAULT_SERVICE_ACCOUNT_TOKEN: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

#: Secret files are tiny; refusing big ones stops a typo (``/dev/zero``) from hanging the load.
MAX_SECRET_FILE_BYTES: Final = 64 * 1024

#: The largest configuration file read: a real one is a few kilobytes; a bigger one is a
#: mistake (a log file, /dev/zero) and would only cost memory and time to parse.
MAX_CONFIG_BYTES: Final = 1024 * 1024
#: The most values (mappings, lists, scalars) a configuration may expand to, counting every
#: use of a YAML alias in full: a few aliases nested ("billion laughs") would otherwise make
#: interpolation and validation build billions of objects from a tiny file.
MAX_CONFIG_NODES: Final = 100_000
#: The deepest nesting of mappings and lists accepted; real configurations nest about 6 deep.
#: It also stops a recursive alias (``&a [*a]``) and keeps every walk far from Python's limit.
MAX_CONFIG_DEPTH: Final = 64

# --------------------------------------------------------------------------------------------
# Field types of the time expressions (parsing itself lives in rotator.timespec)
# --------------------------------------------------------------------------------------------


def _to_duration(value: Any) -> Any:
    """Accept duration strings and integers (seconds); leave ``timedelta`` to pydantic."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):  # bool is an int subclass: `timeout: true` is a mistake
        # pydantic turns only ValueError into a validation error, so not TypeError here.
        raise ValueError(f"expected a duration ({DURATION_HINT})")  # noqa: TRY004
    if isinstance(value, int):
        if value < 0:
            raise ValueError("durations cannot be negative")
        return parse_duration(str(value))
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"expected a duration ({DURATION_HINT})")


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("durations cannot be negative")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


# Strings holding a ${VAR} reference are accepted too: editors validate the file as written.
_DURATION_PATTERN: Final = (
    r"^(?:\s*\d+\s*|\s*(?=\d)(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?\s*|.*\$\{.*)$"
)
_DURATION_JSON: Final[dict[str, Any]] = {
    "anyOf": [
        {"type": "string", "pattern": _DURATION_PATTERN},
        {"type": "integer", "minimum": 0},
    ],
    "description": f"A duration: {DURATION_HINT}.",
}

#: A non-negative duration field (``"90d"``, ``"1h30m"``, or seconds).
Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    AfterValidator(_not_negative),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(_DURATION_JSON),
]
#: A duration field that must be longer than zero.
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]

#: The longest ``validity`` of a key: ten years. A longer-lived credential defeats rotation,
#: and its expiry could exceed what StackState stores (and what a date can hold).
MAX_VALIDITY: Final = timedelta(days=3650)


def _bounded_validity(value: timedelta) -> timedelta:
    if value > MAX_VALIDITY:
        raise ValueError(
            f"must be at most {format_duration(MAX_VALIDITY)} (ten years): rotation exists so "
            "that no key lives that long"
        )
    return value


#: ``validity``: a positive duration of at most :data:`MAX_VALIDITY`.
Validity = Annotated[PositiveDuration, AfterValidator(_bounded_validity)]


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _to_rotate_before(value: Any) -> timedelta | Percentage:
    if isinstance(value, Percentage):
        percent = value.percent
    elif isinstance(value, str) and "%" in value:
        match = _PERCENT.match(value)
        if match is None:
            raise ValueError('expected a percentage of validity such as "30%", or a duration')
        percent = float(match.group(1))
    else:
        return _not_negative(_positive(_to_duration(value)))
    if not 1 <= percent <= 99:
        raise ValueError("a percentage of validity must be between 1% and 99%")
    return Percentage(percent)


def _format_rotate_before(value: timedelta | Percentage) -> str:
    return str(value) if isinstance(value, Percentage) else format_duration(value)


#: ``rotate_before``: a positive duration or a percentage (1-99%) of the key's validity.
RotateBefore = Annotated[
    timedelta | Percentage,
    PlainValidator(_to_rotate_before),
    PlainSerializer(_format_rotate_before, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _DURATION_PATTERN},
                {"type": "string", "pattern": r"^\s*\d+(?:\.\d+)?\s*%\s*$"},
                {"type": "integer", "minimum": 1},
            ],
            "description": f'A duration ({DURATION_HINT}) or a percentage of validity ("30%").',
        }
    ),
]

_CRON_JSON: Final[dict[str, Any]] = {
    "type": "string",
    "description": "A 5-field crontab expression in UTC: minute hour day month day-of-week.",
}
#: A validated 5-field crontab expression (UTC).
CronExpression = Annotated[str, AfterValidator(validate_cron), WithJsonSchema(_CRON_JSON)]

# --------------------------------------------------------------------------------------------
# Small field types
# --------------------------------------------------------------------------------------------


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Expand ``~`` and resolve a relative path against the configuration file's directory."""
    path = value.expanduser()
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if not path.is_absolute() and isinstance(base, Path):
        path = base / path
    return path


def _existing_file(value: Path) -> Path:
    if not value.is_file():
        raise ValueError(f"file not found: {value}")
    return value


#: A path; relative ones are resolved against the configuration file's directory.
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
#: A path that must name an existing file at load time.
ExistingFile = Annotated[ConfigPath, AfterValidator(_existing_file)]

NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(
    r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
)
_SECRET_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def _namespace(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(
            "must be a Kubernetes namespace name: lower-case letters, digits and '-', "
            "at most 63 characters"
        )
    return value


def _object_name(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(
            "must be a Kubernetes object name: lower-case letters, digits, '-' and '.', "
            "at most 253 characters"
        )
    return value


def _secret_data_key(value: str) -> str:
    if not _SECRET_DATA_KEY.match(value):
        raise ValueError(
            "must be a Secret data key: letters, digits, '-', '_' and '.', at most 253 characters"
        )
    return value


def _key_name(value: str) -> str:
    if not _KEY_NAME.match(value):
        raise ValueError(
            "must be 1-200 characters of letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (it prefixes the StackState key names)"
        )
    return value


def _mount(value: str) -> str:
    mount = value.strip().strip("/")
    if not mount:
        raise ValueError("must name a Vault mount, e.g. secret")
    return mount


def _vault_path(value: str) -> str:
    path = value.strip().strip("/")
    if not path or "//" in path:
        raise ValueError("must be a Vault path such as stackstate/agent-prod")
    return path


def _http_url(value: str) -> str:
    """Check an http(s) URL and strip a trailing slash; messages never repeat the URL."""
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.username or parts.password:
        raise ValueError("the URL must not contain credentials; use the secret fields instead")
    if parts.query or parts.fragment:
        raise ValueError("the URL must not contain a query string or fragment")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("the URL has an invalid port") from None
    return url.rstrip("/")


def _http_url_secret(value: SecretStr) -> SecretStr:
    _http_url(value.get_secret_value())
    return value


def _non_empty_secret(value: SecretStr) -> SecretStr:
    if not value.get_secret_value():
        raise ValueError("must not be empty")
    return value


def _file_mode(value: Any, info: ValidationInfo) -> Any:
    """File modes are octal: ``"0600"``, ``"600"``, ``"0o600"``, or YAML's unquoted ``0600``.

    An integer from Python code (``0o600``) is the mode itself; an integer from a configuration
    file is what YAML 1.2 made of an unquoted ``0600`` (the decimal 600), so its digits are read
    as octal again.
    """
    if isinstance(value, bool):
        raise ValueError('expected an octal file mode such as "0600"')  # noqa: TRY004 - see above
    from_file = isinstance(info.context, dict) and "source" in info.context
    if isinstance(value, int) and not from_file:
        text = f"{value:o}" if value >= 0 else "-"
    else:
        text = str(value).strip().lower().removeprefix("0o")
    if not text or any(char not in "01234567" for char in text):
        raise ValueError('expected an octal file mode such as "0600"')
    mode = int(text, 8)
    if mode > 0o777:
        raise ValueError('a file mode is at most "0777"')
    return mode


def _kv_version(value: Any) -> Any:
    # ${KV_VERSION} interpolates to a string; the Literal below wants the number.
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


KeyName = Annotated[str, AfterValidator(_key_name)]
Namespace = Annotated[str, AfterValidator(_namespace)]
ObjectName = Annotated[str, AfterValidator(_object_name)]
SecretDataKey = Annotated[str, AfterValidator(_secret_data_key)]
HttpUrlStr = Annotated[str, AfterValidator(_http_url)]
SecretValue = Annotated[SecretStr, AfterValidator(_non_empty_secret)]
FileMode = Annotated[
    int,
    BeforeValidator(_file_mode),
    PlainSerializer(lambda mode: f"{mode:04o}", return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": ["string", "integer"],
            "pattern": r"^(0o)?[0-7]{1,4}$",
            "description": 'Octal permission bits, e.g. "0600".',
        }
    ),
]
WorkloadKind = Literal["Deployment", "DaemonSet", "StatefulSet"]
ConsumerAction = Literal["restart", "wait"]

# --------------------------------------------------------------------------------------------
# Errors that know their place
# --------------------------------------------------------------------------------------------

#: Error type of the problems found by cross-field checks (see :func:`_raise_problems`).
_PROBLEMS: Final = "rotator_config"


def _raise_problems(problems: list[tuple[str, str]]) -> NoReturn:
    """Raise several located problems at once from a validator.

    pydantic reports one error per raise, at the validator's own location. The sub-paths ride
    along in the error's context, and :func:`_format_errors` appends them to that location, so
    a model-level check can still name ``keys[3].targets[1]``.
    """
    summary = "; ".join(f"{path}: {message}" if path else message for path, message in problems)
    raise PydanticCustomError(
        _PROBLEMS,
        "{summary}",
        {"summary": summary, "problems": [[path, message] for path, message in problems]},
    )


def _join_path(base: str, sub: str) -> str:
    if not sub:
        return base
    if not base:
        return sub.lstrip(".")
    return base + sub if sub.startswith("[") else f"{base}.{sub}"


# --------------------------------------------------------------------------------------------
# Base model and *_file secret twins
# --------------------------------------------------------------------------------------------


class _Model(BaseModel):
    """Common settings: unknown fields are errors, instances are immutable, null = default."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        coerce_numbers_to_str=True,  # `namespace: 2024` or `tier: 1` in YAML are meant as strings
        use_attribute_docstrings=True,  # field docstrings become JSON-schema descriptions
    )

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            # Only known fields: a misspelt `namspace:` with no value must still be reported.
            return {k: v for k, v in data.items() if v is not None or k not in cls.model_fields}
        return data


def _read_secret_file(path: Path) -> str:
    """Read a secret from a file, stripped; :class:`ValueError` with a message naming the path."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_SECRET_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{path} is empty")
    return text


def _load_secret_twins(data: Any, names: Iterable[str], info: ValidationInfo) -> Any:
    """Fill each secret field ``name`` from ``name_file`` when the file twin is given."""
    if not isinstance(data, dict):
        return data
    result = dict(data)
    problems: list[tuple[str, str]] = []
    for name in names:
        file_key = f"{name}_file"
        if result.get(name) == "":
            del result[name]  # `${VAR:-}` left nothing: the file twin (or the default) applies
        file_value = result.get(file_key)
        if file_value is None:
            continue
        if result.get(name) is not None:
            problems.append((file_key, f"give either {name} or {file_key}, not both"))
            continue
        if not isinstance(file_value, str | os.PathLike):
            continue  # the field's own type check reports it
        path = _resolve_path(Path(file_value), info)
        try:
            result[name] = _read_secret_file(path)
        except ValueError as exc:
            problems.append((file_key, str(exc)))
    if problems:
        _raise_problems(problems)
    return result


# --------------------------------------------------------------------------------------------
# stackstate, kubernetes, vault
# --------------------------------------------------------------------------------------------


class StackStateSettings(_Model):
    """How to reach the StackState / SUSE Observability API and authenticate to it."""

    url: HttpUrlStr
    """Base URL of StackState, e.g. https://observability.example.com (trailing slash removed)."""
    api_path: str = "/api"
    """Path of the API under the base URL."""
    service_token: SecretValue | None = None
    """Service token sent as X-API-Key."""
    service_token_file: ConfigPath | None = None
    """File holding the service token (read at load time)."""
    api_token: SecretValue | None = None
    """Personal API token sent as X-API-Token."""
    api_token_file: ConfigPath | None = None
    """File holding the API token (read at load time)."""
    service_bearer_file: ConfigPath | None = None
    """Kubernetes service-account token file sent as X-API-ServiceBearer, re-read per request."""
    ca_file: ExistingFile | None = None
    """Extra CA bundle (PEM) for TLS; certificates are always verified."""
    timeout: PositiveDuration = timedelta(seconds=10)
    """Timeout of each API request."""
    allow_insecure_http: bool = False
    """Allow an http:// url (test and sandbox set-ups only)."""

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any, info: ValidationInfo) -> Any:
        return _load_secret_twins(data, ("service_token", "api_token"), info)

    @field_validator("api_path")
    @classmethod
    def _api_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError('must start with "/", e.g. /api')
        return value.rstrip("/") or "/"

    @model_validator(mode="after")
    def _checks(self) -> StackStateSettings:
        problems = []
        if urlsplit(self.url).scheme == "http" and not self.allow_insecure_http:
            problems.append(("url", "http:// URLs need stackstate.allow_insecure_http: true"))
        if not (self.service_token or self.api_token or self.service_bearer_file):
            problems.append(
                (
                    "service_token",
                    "no credential: give service_token, api_token, their *_file twins, or "
                    "service_bearer_file",
                )
            )
        if problems:
            _raise_problems(problems)
        return self

    @property
    def api_url(self) -> str:
        """The URL every API path is appended to: ``url`` + ``api_path``."""
        return self.url + ("" if self.api_path == "/" else self.api_path)


class KubernetesSettings(_Model):
    """The default Kubernetes connection; in-cluster configuration when nothing is given."""

    kubeconfig: ExistingFile | None = None
    """Kubeconfig file; null: in-cluster configuration."""
    context: NonEmptyStr | None = None
    """Kubeconfig context; targets and consumers may name another one."""
    foreign_owner_labels: list[NonEmptyStr] = Field(default_factory=list)
    """Extra label names that mark a Secret as owned by someone else (e.g. the label an Argo CD
    installation tracks resources by); Helm, Argo CD, Flux and ownerReferences are built in."""


class VaultTokenAuth(_Model):
    """Vault token authentication."""

    method: Literal["token"]
    token: SecretValue | None = None
    """The Vault token."""
    token_file: ConfigPath | None = None
    """File holding the Vault token (read at load time)."""

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any, info: ValidationInfo) -> Any:
        return _load_secret_twins(data, ("token",), info)

    @model_validator(mode="after")
    def _required(self) -> VaultTokenAuth:
        if self.token is None:
            _raise_problems([("token", "give token or token_file")])
        return self


class VaultAppRoleAuth(_Model):
    """Vault AppRole authentication."""

    method: Literal["approle"]
    role_id: NonEmptyStr
    """The AppRole role id."""
    secret_id: SecretValue | None = None
    """The AppRole secret id."""
    secret_id_file: ConfigPath | None = None
    """File holding the secret id (read at load time)."""
    mount: Annotated[str, AfterValidator(_mount)] = "approle"
    """Mount path of the AppRole auth method."""

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any, info: ValidationInfo) -> Any:
        return _load_secret_twins(data, ("secret_id",), info)

    @model_validator(mode="after")
    def _required(self) -> VaultAppRoleAuth:
        if self.secret_id is None:
            _raise_problems([("secret_id", "give secret_id or secret_id_file")])
        return self


class VaultKubernetesAuth(_Model):
    """Vault Kubernetes authentication with the pod's service-account token."""

    method: Literal["kubernetes"]
    role: NonEmptyStr
    """Vault role bound to the rotator's service account."""
    jwt_file: ConfigPath = DEFAULT_SERVICE_ACCOUNT_TOKEN
    """Service-account token file, re-read at every login (projected tokens rotate)."""
    mount: Annotated[str, AfterValidator(_mount)] = "kubernetes"
    """Mount path of the Kubernetes auth method."""


VaultAuth = Annotated[
    VaultTokenAuth | VaultAppRoleAuth | VaultKubernetesAuth, Field(discriminator="method")
]


class VaultSettings(_Model):
    """How to reach Vault; needed by vault-kv targets."""

    url: HttpUrlStr
    """Vault address; http:// is accepted (dev Vault), https:// is verified."""
    namespace: NonEmptyStr | None = None
    """Vault Enterprise namespace."""
    ca_file: ExistingFile | None = None
    """Extra CA bundle (PEM) for TLS."""
    auth: VaultAuth
    """Authentication: method token, approle or kubernetes."""
    timeout: PositiveDuration = timedelta(seconds=10)
    """Timeout of each Vault request."""


# --------------------------------------------------------------------------------------------
# Policy: defaults, per-key overrides, the effective KeyPolicy
# --------------------------------------------------------------------------------------------


class Schedule(_Model):
    """When the rotator checks keys: every ``interval``, or at the times of a ``cron`` line."""

    interval: PositiveDuration | None = None
    """Time between runs (1h when neither interval nor cron is given)."""
    cron: CronExpression | None = None
    """Crontab expression (UTC) of the runs, instead of interval."""
    jitter: Duration = timedelta(seconds=30)
    """Random delay added to each scheduled run, so many keys and replicas spread their load."""
    recheck: PositiveDuration = timedelta(minutes=1)
    """While consumers switch over (or a failed run retries), check this often instead."""

    @model_validator(mode="before")
    @classmethod
    def _default_interval(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("interval") is None and data.get("cron") is None:
            return {**data, "interval": timedelta(hours=1)}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Schedule:
        if self.interval is not None and self.cron is not None:
            _raise_problems([("cron", "give either interval or cron, not both")])
        return self

    def describe(self) -> str:
        """``every 1h`` or ``cron '0 */6 * * *'``."""
        if self.cron is not None:
            return f"cron '{self.cron}'"
        assert self.interval is not None
        return f"every {format_duration(self.interval)}"


#: alert_before when neither defaults nor the key set it (capped at half of rotate_before).
DEFAULT_ALERT_BEFORE: Final = timedelta(days=7)

#: The policy fields that ``defaults:`` holds and each managed key may override.
POLICY_FIELDS: Final = (
    "validity",
    "rotate_before",
    "grace_period",
    "switch_timeout",
    "orphan_min_age",
    "schedule",
    "windows",
    "alert_before",
)


class Defaults(_Model):
    """The policy every managed key inherits unless it overrides a field."""

    validity: Validity = timedelta(days=90)
    """Lifetime of each new key."""
    rotate_before: RotateBefore = timedelta(days=14)
    """Rotate when expiry is this close: a duration, or a percentage of validity ("30%")."""
    grace_period: Duration = timedelta(minutes=10)
    """After all consumers switched, wait this long before revoking the old key."""
    switch_timeout: PositiveDuration = timedelta(minutes=30)
    """Consumers not switched after this long raise switch_timeout; the old key is kept."""
    orphan_min_age: PositiveDuration = timedelta(hours=1)
    """Managed keys no target references are deleted once older than this."""
    schedule: Schedule = Field(default_factory=Schedule)
    """When to check: interval (default 1h) or cron."""
    windows: list[CronExpression] = Field(default_factory=list)
    """Maintenance windows (crontab expressions, UTC) rotations are limited to; empty: any time."""
    alert_before: Duration | None = None
    """Raise key_expiring when the key in use expires within this; must be below rotate_before.

    Default: 7d, or half of rotate_before when that is shorter."""

    @model_validator(mode="after")
    def _consistent(self) -> Defaults:
        policy = resolve_policy(self)
        problems = [(fields[0], message) for fields, message in _policy_problems(policy)]
        if problems:
            _raise_problems(problems)
        return self


class KeyPolicy(_Model):
    """The effective policy of one managed key: defaults merged with its overrides, resolved."""

    validity: Duration
    """Lifetime of each new key."""
    rotate_before: Duration
    """Rotate when expiry is this close (a percentage already resolved against validity)."""
    rotate_before_percent: float | None = None
    """The percentage rotate_before was given as, if it was."""
    grace_period: Duration
    switch_timeout: Duration
    orphan_min_age: Duration
    schedule: Schedule
    windows: tuple[str, ...] = ()
    """Maintenance windows (crontab, UTC); empty: rotations may happen any time."""
    alert_before: Duration


def resolve_policy(defaults: Defaults, key: ManagedKey | None = None) -> KeyPolicy:
    """Merge ``key``'s overrides over ``defaults`` and resolve a percentage ``rotate_before``.

    This does not check the result (:class:`RotatorConfig` does, naming the fields).
    """
    values: dict[str, Any] = {name: getattr(defaults, name) for name in POLICY_FIELDS}
    if key is not None:
        for name in POLICY_FIELDS:
            override = getattr(key, name)
            if override is not None:
                values[name] = override
    rotate_before = values.pop("rotate_before")
    percent = None
    if isinstance(rotate_before, Percentage):
        percent = rotate_before.percent
        rotate_before = rotate_before.of(values["validity"])
    alert_before = values.pop("alert_before")
    if alert_before is None:
        half = timedelta(seconds=round(rotate_before.total_seconds() / 2))
        alert_before = min(DEFAULT_ALERT_BEFORE, half)
    return KeyPolicy(
        **{**values, "windows": tuple(values["windows"])},
        rotate_before=rotate_before,
        rotate_before_percent=percent,
        alert_before=alert_before,
    )


def _policy_problems(policy: KeyPolicy) -> list[tuple[tuple[str, ...], str]]:
    """Consistency rules of one policy: each broken one with the fields it involves and why."""
    fd = format_duration
    rotate = fd(policy.rotate_before)
    if policy.rotate_before_percent is not None:
        rotate = f"{rotate} = {policy.rotate_before_percent:g}% of validity"
    problems: list[tuple[tuple[str, ...], str]] = []
    if policy.rotate_before >= policy.validity:
        problems.append(
            (
                ("rotate_before", "validity"),
                f"rotate_before ({rotate}) must be shorter than validity ({fd(policy.validity)})"
                f", or every key would be rotated at once",
            )
        )
    elif policy.rotate_before <= policy.switch_timeout + policy.grace_period:
        problems.append(
            (
                ("rotate_before", "switch_timeout", "grace_period"),
                f"rotate_before ({rotate}) must be longer than switch_timeout + grace_period "
                f"({fd(policy.switch_timeout + policy.grace_period)}), so consumers "
                f"switch before the old key expires",
            )
        )
    if policy.alert_before >= policy.rotate_before:
        problems.append(
            (
                ("alert_before", "rotate_before"),
                f"alert_before ({fd(policy.alert_before)}) must be shorter than rotate_before "
                f"({rotate}), or key_expiring would fire before every rotation",
            )
        )
    interval = policy.schedule.interval
    if interval is not None and interval >= policy.rotate_before:
        problems.append(
            (
                ("schedule", "rotate_before"),
                f"schedule.interval ({fd(interval)}) must be shorter than rotate_before "
                f"({rotate}), or a key can expire between two runs",
            )
        )
    return problems


# --------------------------------------------------------------------------------------------
# Presets, targets, consumers
# --------------------------------------------------------------------------------------------


class PresetWorkload(_Model):
    """A workload a preset restarts, replacing the chart's default list."""

    kind: WorkloadKind
    name: ObjectName


class _HelmPreset(_Model):
    """Fields shared by the presets of Helm-installed agents and collectors."""

    release: ObjectName
    """Helm release name."""
    namespace: Namespace
    """Namespace of the release."""
    secret_name: ObjectName | None = None
    """Override the Secret the rotator writes (agent charts: default <release>-rotated-api-key,
    which the chart is pointed at with the Helm values rotate --dry-run and doctor print)."""
    secret_key: SecretDataKey | None = None
    """Override the data key in that Secret."""
    workloads: list[PresetWorkload] | None = None
    """Restart exactly these workloads instead of discovering every workload that reads the
    Secret (discovery is the default)."""
    action: ConsumerAction = "restart"
    """restart the workloads, or wait for Reloader/VSO/ESO to do it."""
    context: NonEmptyStr | None = None
    """Kubeconfig context of the cluster the release runs in."""


class SuseObservabilityAgentPreset(_HelmPreset):
    """The current suse-observability-agent Helm chart."""

    type: Literal["suse-observability-agent"]


class StackStateK8sAgentPreset(_HelmPreset):
    """The older stackstate-k8s-agent Helm chart."""

    type: Literal["stackstate-k8s-agent"]


class OtelCollectorPreset(_HelmPreset):
    """An OpenTelemetry Collector set up as the SUSE Observability docs describe."""

    type: Literal["otel-collector"]
    release: ObjectName = "opentelemetry-collector"
    """Helm release name of the collector (its Deployment is named after it)."""


class LinuxAgentPreset(_Model):
    """The StackState Agent on a Linux host (systemd)."""

    type: Literal["linux-agent"]
    path: ConfigPath = Path("/etc/stackstate-agent/stackstate.yaml")
    """The agent's configuration file."""
    field: NonEmptyStr = "api_key"
    """Dotted YAML path of the key in that file."""
    service: NonEmptyStr = "stackstate-agent"
    """systemd unit restarted after a change."""


Preset = Annotated[
    SuseObservabilityAgentPreset
    | StackStateK8sAgentPreset
    | OtelCollectorPreset
    | LinuxAgentPreset,
    Field(discriminator="type"),
]


class KubernetesSecretTarget(_Model):
    """A data key of a Kubernetes Secret."""

    type: Literal["kubernetes-secret"]
    namespace: Namespace
    name: ObjectName
    """Secret name."""
    key: SecretDataKey
    """Data key in the Secret."""
    context: NonEmptyStr | None = None
    """Kubeconfig context; default: kubernetes.context."""
    allow_foreign_owner: bool = False
    """Write the Secret although Helm, Argo CD, Flux or a controller owns it (they will write
    their value back: only for owners that render the value the rotator gives them)."""


class VaultKvTarget(_Model):
    """A key of a Vault KV secret (engine version 1 or 2)."""

    type: Literal["vault-kv"]
    mount: Annotated[str, AfterValidator(_mount)] = "secret"
    """Mount path of the KV engine."""
    path: Annotated[str, AfterValidator(_vault_path)]
    """Secret path under the mount."""
    key: NonEmptyStr
    """Key inside the secret."""
    kv_version: Annotated[Literal[1, 2], BeforeValidator(_kv_version)] = 2
    """KV engine version."""


class FileTarget(_Model):
    """A local file: the whole file (raw), a variable of an env file, or a field of a YAML file."""

    type: Literal["file"]
    path: ConfigPath
    format: Literal["raw", "env", "yaml"] = "raw"
    """raw: the file is the key; env: KEY=value lines; yaml: a field of a YAML document."""
    field: NonEmptyStr | None = None
    """env: the variable name; yaml: the dotted path of the field. Not used by raw."""
    mode: FileMode | None = None
    """Permission bits; null: an existing file keeps its mode, a new file gets 0600."""

    @model_validator(mode="after")
    def _field_matches_format(self) -> FileTarget:
        if self.format == "raw" and self.field is not None:
            _raise_problems([("field", "a raw file holds only the key: remove field")])
        if self.format != "raw" and self.field is None:
            what = "variable name" if self.format == "env" else "dotted path of the YAML field"
            _raise_problems([("field", f"format {self.format} needs field (the {what})")])
        if self.format == "env" and self.field is not None and not _ENV_NAME.match(self.field):
            _raise_problems([("field", "must be a variable name: letters, digits and _")])
        if self.format == "yaml" and self.field is not None and "" in self.field.split("."):
            _raise_problems([("field", "must be a dotted path such as api_key or agent.api_key")])
        return self


Target = Annotated[KubernetesSecretTarget | VaultKvTarget | FileTarget, Field(discriminator="type")]


class KubernetesWorkloadConsumer(_Model):
    """A Deployment, DaemonSet or StatefulSet reading the key; switched when its rollout is done."""

    type: Literal["kubernetes-workload"]
    namespace: Namespace
    kind: WorkloadKind | None = None
    """Deployment, DaemonSet or StatefulSet (with name or selector; not with discover)."""
    name: ObjectName | None = None
    """Workload name (or selector, or discover)."""
    selector: dict[str, str] | None = None
    """Label selector matching the workloads (or name, or discover)."""
    discover: bool = False
    """Find, on every run, every Deployment, DaemonSet and StatefulSet of the namespace whose
    pod template reads the key of this managed key's kubernetes-secret target(s) there (env
    secretKeyRef, envFrom, secret or projected volumes); CronJobs and Jobs are listed only."""
    legacy_secrets: list[ObjectName] = Field(default_factory=list)
    """With discover: Secrets readers must have left (e.g. a chart's own Secret the key moved
    from); a workload still reading one blocks the key, since it would keep the old key."""
    action: ConsumerAction = "restart"
    """restart it, or wait for Reloader/VSO/ESO to restart it."""
    context: NonEmptyStr | None = None
    """Kubeconfig context; default: kubernetes.context."""

    @model_validator(mode="after")
    def _name_xor_selector(self) -> KubernetesWorkloadConsumer:
        given = sum((self.name is not None, self.selector is not None, self.discover))
        if given != 1:
            _raise_problems([("name", "give exactly one of name, selector or discover: true")])
        if self.selector is not None and not self.selector:
            _raise_problems([("selector", "must hold at least one label")])
        if self.discover and self.kind is not None:
            _raise_problems([("kind", "discover finds every kind: remove kind")])
        if not self.discover and self.kind is None:
            _raise_problems([("kind", "Field required (Deployment, DaemonSet or StatefulSet)")])
        if self.legacy_secrets and not self.discover:
            _raise_problems([("legacy_secrets", "only used with discover: true")])
        return self


class SyncedSecretConsumer(_Model):
    """A Secret that ESO/VSO syncs from a vault-kv target: switched when it holds the new value."""

    type: Literal["synced-secret"]
    namespace: Namespace
    name: ObjectName
    key: SecretDataKey
    context: NonEmptyStr | None = None


def _env_var_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(
            "must be a variable name: letters, digits and _, not starting with a digit"
        )
    return value


def _env_var_value(value: Any) -> Any:
    """Numbers are written as text (``PORT: 8080``); anything else is left to str validation."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


#: The ``env:`` of a command consumer or alert hook: what the child gets besides PATH, HOME,
#: LANG and LC_ALL (rotator.childenv). Values may use ${VAR}; they are never logged.
ChildEnv = dict[
    Annotated[str, AfterValidator(_env_var_name)],
    Annotated[str, BeforeValidator(_env_var_value)],
]


class CommandConsumer(_Model):
    """A command run after the push (e.g. systemctl restart); exit status 0 means switched."""

    type: Literal["command"]
    command: Annotated[list[NonEmptyStr], Field(min_length=1)]
    """Program and arguments (no shell)."""
    timeout: PositiveDuration = timedelta(minutes=2)
    pass_key: Literal["none", "stdin"] = "none"  # noqa: S105 - a mode name, not a password
    """stdin: the new key value is written to the command's standard input."""
    env: ChildEnv = Field(default_factory=dict)
    """Environment variables of the command (values may use ${VAR}). It gets these, PATH,
    HOME, LANG and LC_ALL (when set), ROTATOR_MANAGED_KEY and ROTATOR_FINGERPRINT, nothing
    else: never the rotator's own credentials."""


Consumer = Annotated[
    KubernetesWorkloadConsumer | SyncedSecretConsumer | CommandConsumer,
    Field(discriminator="type"),
]

# --------------------------------------------------------------------------------------------
# Managed keys
# --------------------------------------------------------------------------------------------


class KeyKind(StrEnum):
    """The two kinds of StackState keys."""

    SERVICE_TOKEN = "service-token"  # noqa: S105 - a key kind, not a password
    INGESTION_API_KEY = "ingestion-api-key"


class ManagedKey(_Model):
    """One logical credential, backed over time by a sequence of StackState keys."""

    name: KeyName
    """Managed key name; StackState keys are named <name>-<UTC timestamp>."""
    kind: KeyKind
    roles: list[NonEmptyStr] | None = None
    """Roles of the service token (service-token only, required)."""
    description: str | None = None
    """Description stored with ingestion API keys (plus a managed-by marker)."""
    dedicated_subject: NonEmptyStr | None = None
    """Dedicated subject of the service token (service-token only)."""
    adopt_key_id: Annotated[int, Field(gt=0)] | None = None
    """Id of the hand-made key the targets hold today; revoked once replaced."""
    preset: Preset | None = None
    """Shorthand that expands into the targets and consumers of a well-known consumer."""
    targets: list[Target] = Field(default_factory=list)
    """Where the value is written."""
    consumers: list[Consumer] = Field(default_factory=list)
    """What reads the value and must switch over."""
    validity: Validity | None = None
    """Override of defaults.validity."""
    rotate_before: RotateBefore | None = None
    """Override of defaults.rotate_before."""
    grace_period: Duration | None = None
    """Override of defaults.grace_period."""
    switch_timeout: PositiveDuration | None = None
    """Override of defaults.switch_timeout."""
    orphan_min_age: PositiveDuration | None = None
    """Override of defaults.orphan_min_age."""
    schedule: Schedule | None = None
    """Override of defaults.schedule."""
    windows: list[CronExpression] | None = None
    """Override of defaults.windows ([] removes inherited windows)."""
    alert_before: Duration | None = None
    """Override of defaults.alert_before."""

    _policy: KeyPolicy | None = PrivateAttr(default=None)

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: list[str] | None) -> list[str] | None:
        return None if roles is None else list(dict.fromkeys(roles))

    @model_validator(mode="after")
    def _kind_rules(self) -> ManagedKey:
        problems = []
        if self.kind is KeyKind.SERVICE_TOKEN and not self.roles:
            problems.append(
                (
                    "roles",
                    "a service-token needs roles, e.g. [stackstate-ingest-telemetry], or it "
                    "cannot ingest anything",
                )
            )
        if self.kind is KeyKind.INGESTION_API_KEY:
            if self.roles is not None:
                problems.append(
                    (
                        "roles",
                        "ingestion API keys carry no roles (only service tokens do): remove "
                        "roles or use kind: service-token",
                    )
                )
            if self.dedicated_subject is not None:
                problems.append(("dedicated_subject", "only service tokens have a subject"))
        if not self.targets and self.preset is None:
            problems.append(
                ("targets", "give at least one target or a preset, or the key is never delivered")
            )
        if problems:
            _raise_problems(problems)
        return self

    @property
    def policy(self) -> KeyPolicy:
        """The effective policy (defaults merged with this key's overrides).

        Keys loaded as part of a :class:`RotatorConfig` carry the policy resolved against its
        ``defaults:``; a key validated on its own falls back to the built-in defaults.
        """
        if self._policy is None:
            return resolve_policy(Defaults(), self)
        return self._policy

    def overrides(self) -> frozenset[str]:
        """Names of the policy fields this key sets itself."""
        return frozenset(name for name in POLICY_FIELDS if getattr(self, name) is not None)


# --------------------------------------------------------------------------------------------
# Alerts, server, leader election
# --------------------------------------------------------------------------------------------


class AlertEvent(StrEnum):
    """Events an alert hook can be sent."""

    ROTATION_FAILED = "rotation_failed"
    KEY_EXPIRING = "key_expiring"
    KEY_EXPIRED = "key_expired"
    SWITCH_TIMEOUT = "switch_timeout"
    CONFIG_INVALID = "config_invalid"
    RECOVERED = "recovered"
    ROTATION_SUCCEEDED = "rotation_succeeded"


#: Events that mean something needs attention.
FAILURE_EVENTS: Final = frozenset(
    {
        AlertEvent.ROTATION_FAILED,
        AlertEvent.KEY_EXPIRING,
        AlertEvent.KEY_EXPIRED,
        AlertEvent.SWITCH_TIMEOUT,
        AlertEvent.CONFIG_INVALID,
    }
)
#: What a hook receives unless it lists ``events``: the failures, and ``recovered`` so that
#: incidents opened by a failure (PagerDuty, Alertmanager) are resolved again.
DEFAULT_ALERT_EVENTS: Final = (
    AlertEvent.ROTATION_FAILED,
    AlertEvent.KEY_EXPIRING,
    AlertEvent.KEY_EXPIRED,
    AlertEvent.SWITCH_TIMEOUT,
    AlertEvent.CONFIG_INVALID,
    AlertEvent.RECOVERED,
)


class _AlertHookBase(_Model):
    name: NonEmptyStr | None = None
    """Name of the hook in logs and metrics; default: <type>[<index>]."""
    events: Annotated[list[AlertEvent], Field(min_length=1)] = Field(
        default_factory=lambda: list(DEFAULT_ALERT_EVENTS)
    )
    """Events sent to this hook; default: every failure event and recovered."""
    timeout: PositiveDuration = timedelta(seconds=10)
    """Timeout of each delivery."""
    repeat_interval: PositiveDuration = timedelta(hours=4)
    """An ongoing problem is sent again after this long."""

    @field_validator("events")
    @classmethod
    def _unique_events(cls, events: list[AlertEvent]) -> list[AlertEvent]:
        return list(dict.fromkeys(events))


class WebhookAlert(_AlertHookBase):
    """POST the event as JSON, optionally signed (X-Rotator-Signature: sha256=<hex HMAC>)."""

    type: Literal["webhook"]
    url: HttpUrlStr
    hmac_secret: SecretValue | None = None
    """Key of the HMAC-SHA256 signature of the body."""
    hmac_secret_file: ConfigPath | None = None
    """File holding the HMAC key (read at load time)."""
    headers: dict[NonEmptyStr, SecretStr] = Field(default_factory=dict)
    """Extra request headers; values are treated as secrets (e.g. Authorization)."""

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any, info: ValidationInfo) -> Any:
        return _load_secret_twins(data, ("hmac_secret",), info)


class SlackAlert(_AlertHookBase):
    """A Slack incoming webhook."""

    type: Literal["slack"]
    webhook_url: Annotated[SecretValue, AfterValidator(_http_url_secret)] | None = None
    """The incoming-webhook URL (a secret: anyone holding it can post)."""
    webhook_url_file: ConfigPath | None = None
    """File holding the webhook URL (read at load time)."""

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any, info: ValidationInfo) -> Any:
        return _load_secret_twins(data, ("webhook_url",), info)

    @model_validator(mode="after")
    def _required(self) -> SlackAlert:
        if self.webhook_url is None:
            _raise_problems([("webhook_url", "give webhook_url or webhook_url_file")])
        return self


class PagerDutyAlert(_AlertHookBase):
    """PagerDuty Events API v2: trigger on failure, resolve on recovered (same dedup key)."""

    type: Literal["pagerduty"]
    routing_key: SecretValue | None = None
    """Integration (routing) key of the service."""
    routing_key_file: ConfigPath | None = None
    """File holding the routing key (read at load time)."""
    url: HttpUrlStr = "https://events.pagerduty.com/v2/enqueue"
    """Events API endpoint."""

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any, info: ValidationInfo) -> Any:
        return _load_secret_twins(data, ("routing_key",), info)

    @model_validator(mode="after")
    def _required(self) -> PagerDutyAlert:
        if self.routing_key is None:
            _raise_problems([("routing_key", "give routing_key or routing_key_file")])
        return self


class AlertmanagerAlert(_AlertHookBase):
    """Prometheus Alertmanager (POST <url>/api/v2/alerts)."""

    type: Literal["alertmanager"]
    url: HttpUrlStr
    """Alertmanager base URL."""


class CommandAlert(_AlertHookBase):
    """A command that receives the event JSON on standard input."""

    type: Literal["command"]
    command: Annotated[list[NonEmptyStr], Field(min_length=1)]
    """Program and arguments (no shell)."""
    env: ChildEnv = Field(default_factory=dict)
    """Environment variables of the command (values may use ${VAR}). It gets these, PATH,
    HOME, LANG and LC_ALL (when set), nothing else: never the rotator's own credentials."""


AlertHook = Annotated[
    WebhookAlert | SlackAlert | PagerDutyAlert | AlertmanagerAlert | CommandAlert,
    Field(discriminator="type"),
]


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError('must be "host:port" with a port from 0 to 65535, e.g. 0.0.0.0:9108')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(char.isspace() for char in host):
        raise ValueError('must be "host:port", e.g. 0.0.0.0:9108 or [::]:9108')
    return host, int(port)


class ServerSettings(_Model):
    """The daemon's HTTP endpoints: /metrics, /healthz, /readyz."""

    listen: str = "0.0.0.0:9108"
    """Address to listen on: host:port ([::]:port for IPv6; port 0 picks a free one)."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _split_listen(value.strip())
        return value.strip()

    @property
    def host(self) -> str:
        """The host part of ``listen`` (brackets of an IPv6 address removed)."""
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port part of ``listen``."""
        return _split_listen(self.listen)[1]


#: client-go's JitterFactor: renew_deadline must exceed retry_period by this factor.
_LEADER_JITTER: Final = 1.2


class LeaderElectionSettings(_Model):
    """Several replicas elect one active leader through a coordination.k8s.io Lease."""

    enabled: bool = False
    namespace: Namespace | None = None
    """Namespace of the Lease (required when enabled)."""
    lease_name: ObjectName = "stackstate-key-rotator"
    lease_duration: PositiveDuration = timedelta(seconds=15)
    """How long a lease is valid without renewal."""
    renew_deadline: PositiveDuration = timedelta(seconds=10)
    """The leader gives up leadership when it could not renew for this long."""
    retry_period: PositiveDuration = timedelta(seconds=2)
    """Time between attempts to acquire or renew."""
    identity: NonEmptyStr | None = None
    """Holder identity; default: the host (pod) name."""
    context: NonEmptyStr | None = None
    """Kubeconfig context of the cluster holding the Lease."""

    @model_validator(mode="after")
    def _timings(self) -> LeaderElectionSettings:
        problems = []
        if self.enabled and self.namespace is None:
            problems.append(("namespace", "required when leader election is enabled"))
        if self.renew_deadline >= self.lease_duration:
            problems.append(("renew_deadline", "must be shorter than lease_duration"))
        elif self.renew_deadline <= self.retry_period * _LEADER_JITTER:
            problems.append(
                ("retry_period", "must be shorter than renew_deadline / 1.2 (as in client-go)")
            )
        if problems:
            _raise_problems(problems)
        return self


#: The kinds of shared lock a writing run takes (see :class:`LockSettings`).
LockType = Literal["lease", "vault", "file"]


class LockSettings(_Model):
    """The lock that lets one actor at a time write: ``rotate`` runs and the daemon's leader.

    ``lease`` is the ``leader_election`` Lease (its namespace, name and timings): a ``rotate``
    finding a live daemon holding it hands its request over to that daemon, otherwise it holds
    the Lease for the duration of its run. ``vault`` is a check-and-set entry in Vault KV v2, for
    hosts without Kubernetes. ``file`` is the per-config lock file: one machine only.
    """

    type: LockType | None = None
    """lease, vault or file; default: lease when leader_election is enabled, else file."""
    mount: Annotated[str, AfterValidator(_mount)] = "secret"
    """vault: the KV v2 mount holding the lock entry."""
    path: Annotated[str, AfterValidator(_vault_path)] = "stackstate-key-rotator/lock"
    """vault: path of the lock entry (holder and expiry in its data)."""
    ttl: PositiveDuration = timedelta(seconds=60)
    """vault: the entry expires this long after its last renewal (renewed every ttl/3)."""

    def effective_type(self, leader_election: LeaderElectionSettings) -> LockType:
        """The lock in use: ``type``, else lease with leader election, else file."""
        if self.type is not None:
            return self.type
        return "lease" if leader_election.enabled else "file"


# --------------------------------------------------------------------------------------------
# The whole file
# --------------------------------------------------------------------------------------------


def _target_location(target: Target, default_context: str) -> tuple[tuple[str, ...], str, str]:
    """(where, data key, readable description) of what a target writes."""
    if isinstance(target, KubernetesSecretTarget):
        context = target.context or default_context
        where = ("kubernetes-secret", context, target.namespace, target.name)
        return where, target.key, f"key {target.key} of Secret {target.namespace}/{target.name}"
    if isinstance(target, VaultKvTarget):
        return (
            ("vault-kv", target.mount, target.path),
            target.key,
            f"key {target.key} of Vault {target.mount}/{target.path}",
        )
    field = target.field or ""
    what = f"field {field} of file {target.path}" if field else f"file {target.path}"
    # The real path: two paths reaching one file through a symlinked directory are one target.
    return ("file", os.path.realpath(target.path)), field, what


def _overlaps(first: str, second: str) -> bool:
    """Two data keys of one location collide: equal, whole-file (""), or nested YAML paths."""
    if not first or not second or first == second:
        return True
    return first.startswith(second + ".") or second.startswith(first + ".")


class HistorySettings(_Model):
    """The audit history: every action and outcome appended as JSON lines (optional)."""

    path: ConfigPath | None = None
    """JSON-lines file; null keeps no history (the daemon needs no writable disk)."""
    max_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024
    """When the file grows past this it is rotated once to <path>.1."""


class RotatorConfig(_Model):
    """The whole configuration file."""

    stackstate: StackStateSettings
    """How to reach and authenticate to StackState."""
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    """Default Kubernetes connection (in-cluster when empty)."""
    vault: VaultSettings | None = None
    """Vault connection; needed by vault-kv targets."""
    defaults: Defaults = Field(default_factory=Defaults)
    """Policy every managed key inherits."""
    keys: list[ManagedKey]
    """The managed keys."""
    alerts: list[AlertHook] = Field(default_factory=list)
    """Where alerts go."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    """The daemon's HTTP endpoints."""
    leader_election: LeaderElectionSettings = Field(default_factory=LeaderElectionSettings)
    """Leader election between replicas."""
    history: HistorySettings = Field(default_factory=HistorySettings)
    """Audit history of actions and outcomes (rotator history)."""
    lock: LockSettings = Field(default_factory=LockSettings)
    """The shared lock of writing runs (lease, vault or file)."""
    source: SkipJsonSchema[Path | None] = Field(default=None, exclude=True)
    """The file this configuration was loaded from (set by load_config, not by users)."""

    @model_validator(mode="before")
    @classmethod
    def _source_from_context(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        if "source" in data:
            # Not a user setting: report it like any unknown field.
            raise PydanticCustomError(
                _PROBLEMS, "{summary}", _one_problem("source", "unknown field")
            )
        source = info.context.get("source") if isinstance(info.context, dict) else None
        return {**data, "source": source} if source is not None else data

    @field_validator("lock", mode="after")
    @classmethod
    def _lock_needs_its_backend(cls, lock: LockSettings, info: ValidationInfo) -> LockSettings:
        election = info.data.get("leader_election")
        if (
            lock.type == "lease"
            and isinstance(election, LeaderElectionSettings)
            and election.namespace is None
        ):
            _raise_problems(
                [("type", "a lease lock uses the leader_election Lease: set its namespace")]
            )
        # `vault` is absent from info.data when its own validation failed: do not pile on.
        if lock.type == "vault" and "vault" in info.data and info.data["vault"] is None:
            _raise_problems([("type", "a vault lock needs a vault: section (url and auth)")])
        return lock

    @field_validator("keys", mode="after")
    @classmethod
    def _resolve_and_check_keys(
        cls, keys: list[ManagedKey], info: ValidationInfo
    ) -> list[ManagedKey]:
        problems: list[tuple[str, str]] = []
        seen_names: dict[str, int] = {}
        for index, key in enumerate(keys):
            if key.name in seen_names:
                problems.append(
                    (
                        f"[{index}].name",
                        f"duplicate managed key name {key.name!r} "
                        f"(also keys[{seen_names[key.name]}])",
                    )
                )
            else:
                seen_names[key.name] = index

        defaults = info.data.get("defaults")
        if isinstance(defaults, Defaults):
            # `defaults` passed its own checks, so any problem here comes from an override.
            for index, key in enumerate(keys):
                policy = resolve_policy(defaults, key)
                key._policy = policy  # the config attaches what it resolved to each key
                overridden = key.overrides()
                for fields, why in _policy_problems(policy):
                    owned = [name for name in fields if name in overridden]
                    inherited = [name for name in fields if name not in overridden]
                    note = f" ({', '.join(inherited)} from defaults)" if inherited else ""
                    where = owned[0] if owned else "validity"  # a percentage of validity
                    problems.append((f"[{index}].{where}", why + note))

        # `vault` is absent from info.data when its own validation failed: do not pile on.
        if "vault" in info.data and info.data["vault"] is None:
            for index, key in enumerate(keys):
                for t_index, target in enumerate(key.targets):
                    if isinstance(target, VaultKvTarget):
                        problems.append(
                            (
                                f"[{index}].targets[{t_index}]",
                                "a vault-kv target needs a vault: section (url and auth)",
                            )
                        )

        kubernetes = info.data.get("kubernetes")
        default_context = ""
        if isinstance(kubernetes, KubernetesSettings) and kubernetes.context:
            default_context = kubernetes.context
        problems.extend(_target_collisions(keys, default_context))
        problems.extend(_discovery_problems(keys, default_context))
        if problems:
            _raise_problems(problems)
        return keys

    def key(self, name: str) -> ManagedKey:
        """The managed key called ``name`` (:class:`KeyError` when there is none)."""
        for key in self.keys:
            if key.name == name:
                return key
        raise KeyError(name)


def _one_problem(path: str, message: str) -> dict[str, Any]:
    return {"summary": f"{path}: {message}", "problems": [[path, message]]}


def _discovery_problems(keys: list[ManagedKey], default_context: str) -> list[tuple[str, str]]:
    """A ``discover: true`` consumer needs a kubernetes-secret target in its namespace: the
    readers of that Secret are what it finds."""
    from rotator.presets import expand_preset  # noqa: PLC0415 - presets imports this module

    problems = []
    for index, key in enumerate(keys):
        targets = [*(expand_preset(key.preset)[0] if key.preset else []), *key.targets]
        for c_index, consumer in enumerate(key.consumers):
            if not isinstance(consumer, KubernetesWorkloadConsumer) or not consumer.discover:
                continue
            context = consumer.context or default_context
            if not any(
                isinstance(t, KubernetesSecretTarget)
                and t.namespace == consumer.namespace
                and (t.context or default_context) == context
                for t in targets
            ):
                problems.append(
                    (
                        f"[{index}].consumers[{c_index}].discover",
                        "finds the readers of this key's kubernetes-secret target in namespace "
                        f"{consumer.namespace}, and the key has none there",
                    )
                )
    return problems


def _target_collisions(keys: list[ManagedKey], default_context: str) -> list[tuple[str, str]]:
    """Two targets (of any keys) writing the same data key of one Secret, Vault path or file."""
    problems = []
    written: dict[tuple[str, ...], list[tuple[str, str, str | None, str]]] = {}
    # Presets expand into targets too; a preset's Secret may collide with a target's.
    from rotator.presets import expand_preset  # noqa: PLC0415 - presets imports this module

    for index, key in enumerate(keys):
        located: list[tuple[str, Target]] = []
        if key.preset is not None:
            located += [(f"[{index}].preset", t) for t in expand_preset(key.preset)[0]]
        located += [(f"[{index}].targets[{n}]", t) for n, t in enumerate(key.targets)]
        for path, target in located:
            where, data_key, what = _target_location(target, default_context)
            fmt = target.format if isinstance(target, FileTarget) else None
            here = f"keys{path}"
            for other_key, other_here, other_fmt, other_what in written.get(where, []):
                if fmt != other_fmt:
                    problems.append(
                        (
                            path,
                            f"{what} is also written as format {other_fmt} by {other_here}",
                        )
                    )
                elif _overlaps(data_key, other_key):
                    problems.append(
                        (
                            path,
                            f"{what} is also written by {other_here}"
                            + ("" if other_what == what else f" ({other_what})")
                            + "; two targets must not write the same data key",
                        )
                    )
            written.setdefault(where, []).append((data_key, here, fmt, what))
    return problems


# --------------------------------------------------------------------------------------------
# ${ENV} interpolation
# --------------------------------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")


def _interpolate_string(text: str, environ: Mapping[str, str]) -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}``; ``$${`` is a literal ``${``.

    Raises :class:`ValueError` (never quoting the text, which may be a secret).
    """

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$${":  # noqa: S105 - the escape sequence, not a password
            return "${"
        body = match.group("body")
        if body is None:
            raise ValueError("unterminated ${ (write $${ for a literal ${)")
        name, has_default, default = body.partition(":-")
        if not _ENV_NAME.match(name):
            raise ValueError(
                "invalid ${...} reference: a variable name is letters, digits and _ "
                "(write $${ for a literal ${)"
            )
        if "${" in default:
            raise ValueError(f"the default of ${{{name}:-...}} cannot hold another ${{...}}")
        value = environ.get(name)
        if value is None or (has_default and value == ""):
            if has_default:
                return default
            raise ValueError(
                f"environment variable {name} is not set (write ${{{name}:-default}} "
                f"for a fallback)"
            )
        return value

    return _REFERENCE.sub(replace, text)


class _TooBig(Exception):
    """Internal: the parsed document exceeds MAX_CONFIG_NODES or MAX_CONFIG_DEPTH."""


class _Budget:
    """Counts the values an interpolation walk builds, refusing more than MAX_CONFIG_NODES."""

    def __init__(self) -> None:
        self.nodes = 0

    def spend(self, path: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_CONFIG_NODES:
            raise _TooBig(
                f"the document expands to more than {MAX_CONFIG_NODES} values (YAML aliases "
                "count each time they are used); refusing to load it"
            )
        if depth > MAX_CONFIG_DEPTH:
            shown = path if len(path) <= 60 else path[:60] + "..."
            raise _TooBig(
                f"{shown or '(top level)'}: nested deeper than {MAX_CONFIG_DEPTH} levels "
                "(a recursive YAML alias?); refusing to load it"
            )


def _interpolate(
    data: Any,
    environ: Mapping[str, str],
    path: str = "",
    *,
    budget: _Budget | None = None,
    depth: int = 0,
) -> tuple[Any, list[str]]:
    """Interpolate every string value of parsed YAML; returns (data, problems as lines).

    Every value built is counted in ``budget`` (each use of an alias anew) and the nesting is
    bounded: :class:`_TooBig` past :data:`MAX_CONFIG_NODES` or :data:`MAX_CONFIG_DEPTH`.
    """
    budget = budget if budget is not None else _Budget()
    budget.spend(path, depth)
    if isinstance(data, dict):
        problems: list[str] = []
        result: dict[Any, Any] = {}
        for name, value in data.items():
            shown = str(name) if _SAFE_NAME.match(str(name)) else "[<unprintable key>]"
            result[name], found = _interpolate(
                value, environ, _join_path(path, shown), budget=budget, depth=depth + 1
            )
            problems.extend(found)
        return result, problems
    if isinstance(data, list):
        problems = []
        items = []
        for index, value in enumerate(data):
            item, found = _interpolate(
                value, environ, f"{path}[{index}]", budget=budget, depth=depth + 1
            )
            items.append(item)
            problems.extend(found)
        return items, problems
    if isinstance(data, str):
        try:
            return _interpolate_string(data, environ), []
        except ValueError as exc:
            return data, [f"{path or '(top level)'}: {exc}"]
    if isinstance(data, datetime | date):
        return data.isoformat(), []  # YAML timestamps: no field takes a date, all mean text
    return data, []


# --------------------------------------------------------------------------------------------
# Error messages
# --------------------------------------------------------------------------------------------

#: Mapping keys shown in paths; others (e.g. a mangled `token:value` line) are masked.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_./-]{1,64}$")
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
    if not _SAFE_NAME.match(text):
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
            path += f'["{item}"]' if _SAFE_NAME.match(str(item)) else "[<unprintable key>]"
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
        if _is_model(parent) and isinstance(name, str) and _SAFE_NAME.match(name):
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


def _format_errors(exc: ValidationError) -> list[str]:
    """One ``path: message`` line per problem, in document order, without duplicates."""
    lines: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        path, parent, here = _walk_loc(loc)
        ctx = error.get("ctx") or {}
        if error["type"] == _PROBLEMS:
            for sub, message in ctx.get("problems", []):
                lines.append(f"{_join_path(path, sub) or '(top level)'}: {message}")
            continue
        lines.append(f"{path or '(top level)'}: {_describe_error(error, parent, here, loc)}")
    return list(dict.fromkeys(lines))


def _error_block(source: object, lines: Iterable[str]) -> str:
    return f"invalid configuration in {source}:\n" + "\n".join(f"  {line}" for line in lines)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def resolve_config_path(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """The configuration file: ``--config``, else ``$ROTATOR_CONFIG``, else ``./rotator.yaml``."""
    for candidate in (cli_value, environ.get(CONFIG_ENV_VAR)):
        if candidate:
            return Path(candidate).expanduser()
    return DEFAULT_CONFIG_FILE


def _parse_yaml(text: str, source: object) -> Any:
    yaml = YAML(typ="safe", pure=True)  # YAML 1.2: `no`/`on` stay strings, duplicates refused
    try:
        return yaml.load(text)
    except RecursionError:
        # The parser recurses once per level: a document this deep is never a configuration.
        raise ConfigError(
            f"invalid YAML in {source}: nested too deeply (at most {MAX_CONFIG_DEPTH} levels)"
        ) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        if isinstance(exc, DuplicateKeyError):
            # ruamel's own message quotes both values, which may be secrets.
            found = re.search(r'found duplicate key "([^"]*)"', str(exc.problem))
            key = found.group(1) if found and _SAFE_NAME.match(found.group(1)) else "?"
            problem = f"duplicate key {key!r}"
        else:
            problem = str(exc.problem or exc.context or "syntax error")
        raise ConfigError(f"invalid YAML in {source}{where}: {problem}") from None
    except YAMLError as exc:
        raise ConfigError(f"invalid YAML in {source}: {type(exc).__name__}") from None


def _read_config_text(file: Path) -> str:
    """The file's text, refusing (``_TooBig``) more than :data:`MAX_CONFIG_BYTES`; OSError and
    UnicodeDecodeError propagate."""
    with file.open("rb") as handle:
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise _TooBig
    return raw.decode("utf-8")


def _walk_secrets(value: Any) -> Iterator[SecretStr]:
    if isinstance(value, SecretStr):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _walk_secrets(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk_secrets(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk_secrets(item)


def load_config(path: Path | str, *, environ: Mapping[str, str] | None = None) -> RotatorConfig:
    """Read, interpolate and validate a configuration file.

    ``environ`` is the environment for ``${VAR}`` (default: the process environment). Every
    problem raises :class:`~rotator.errors.ConfigError` with one readable block naming the file
    and the fields; messages never contain values from the file. Secret values are registered
    with the log redactor.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    file = Path(path)
    message = None
    try:
        text = _read_config_text(file)
    except FileNotFoundError:
        message = (
            f"configuration file {file} not found (give --config FILE or set {CONFIG_ENV_VAR})"
        )
    except IsADirectoryError:
        message = f"configuration file {file} is a directory"
    except OSError as exc:
        message = f"cannot read configuration file {file}: {exc.strerror or type(exc).__name__}"
    except UnicodeDecodeError:
        message = f"configuration file {file} is not UTF-8 text"
    except _TooBig:
        message = (
            f"configuration file {file} is larger than {MAX_CONFIG_BYTES // 1024 // 1024} MiB "
            "(the limit for a configuration); is it the right file?"
        )
    if message is not None:
        raise ConfigError(message)

    data = _parse_yaml(text, file)
    if data is None:
        raise ConfigError(f"configuration file {file} is empty")
    if not isinstance(data, dict):
        raise ConfigError(
            f"invalid configuration in {file}: the top level must be a mapping of sections "
            f"(stackstate, keys, ...), not a {type(data).__name__}"
        )
    try:
        data, problems = _interpolate(data, env)
    except _TooBig as exc:
        problems = [str(exc)]
    if problems:
        raise ConfigError(_error_block(file, problems))

    context = {"base_dir": file.absolute().parent, "source": file.absolute()}
    lines = None
    try:
        config = RotatorConfig.model_validate(data, context=context)
    except ValidationError as exc:
        # Raised outside this block so the ValidationError (which quotes inputs) is not chained.
        lines = _format_errors(exc)
    if lines is not None:
        raise ConfigError(_error_block(file, lines))
    for secret in _walk_secrets(config):
        register_secret(secret.get_secret_value())
    return config


def validation_error_lines(exc: ValidationError) -> list[str]:
    """The ``path: message`` lines of a ValidationError of :class:`RotatorConfig` (no values)."""
    return _format_errors(exc)


# --------------------------------------------------------------------------------------------
# Schema and summaries
# --------------------------------------------------------------------------------------------


class _SchemaGenerator(GenerateJsonSchema):
    """Show defaults the way users write them (``10s``, not ``PT10S``)."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        if isinstance(dft, Percentage):
            return str(dft)
        if isinstance(dft, BaseModel):
            return dft.model_dump(mode="json")
        return super().encode_default(dft)


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the file as users write it, for editors.

    Cross-field rules (e.g. rotate_before < validity) are checked by :func:`load_config` only.
    """
    schema = RotatorConfig.model_json_schema(mode="validation", schema_generator=_SchemaGenerator)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "stackstate-key-rotator configuration",
    }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def describe_key(key: ManagedKey) -> str:
    """One line for ``rotator check-config``.

    e.g. ``agent-prod: service-token, validity 90d, rotate 14d before expiry, 2 targets,
    1 consumer, schedule every 1h``.
    """
    policy = key.policy
    rotate = format_duration(policy.rotate_before)
    if policy.rotate_before_percent is not None:
        rotate += f" ({policy.rotate_before_percent:g}% of validity)"
    parts = [
        str(key.kind),
        f"validity {format_duration(policy.validity)}",
        f"rotate {rotate} before expiry",
        _count(len(key.targets), "target"),
        _count(len(key.consumers), "consumer"),
        f"schedule {policy.schedule.describe()}",
    ]
    if policy.windows:
        parts.append(_count(len(policy.windows), "window"))
    if key.preset is not None:
        parts.append(f"preset {key.preset.type}")
    if key.adopt_key_id is not None:
        parts.append(f"adopts key {key.adopt_key_id}")
    return f"{key.name}: " + ", ".join(parts)
