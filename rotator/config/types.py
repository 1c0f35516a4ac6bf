"""Field types of the configuration: durations, names, paths, URLs, secrets, file modes.

Each type is an ``Annotated`` alias whose validators raise :class:`ValueError` with a message that
never repeats the value (it may be a secret); pydantic places the message at the field's path.
Durations and cron expressions are parsed by :mod:`rotator.timespec`; this module only adapts them
to pydantic (accepted inputs, JSON serialization, JSON schema for editors).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
)

from rotator.timespec import (
    DURATION_HINT,
    Percentage,
    format_duration,
    parse_duration,
    validate_cron,
)

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


def resolve_path(value: Path, info: ValidationInfo) -> Path:
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
ConfigPath = Annotated[Path, AfterValidator(resolve_path)]
#: A path that must name an existing file at load time.
ExistingFile = Annotated[ConfigPath, AfterValidator(_existing_file)]

#: A string with surrounding whitespace stripped that must not be empty.
NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(
    r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
)
_SECRET_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def is_env_name(text: str) -> bool:
    """``text`` is an environment variable name: letters, digits and _, not starting with a
    digit (``${VAR}`` references, env-file variables, ``env:`` of commands)."""
    return _ENV_NAME.match(text) is not None


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
#: A secret http(s) URL (e.g. a Slack incoming webhook: anyone holding it can post).
SecretHttpUrl = Annotated[SecretValue, AfterValidator(_http_url_secret)]
#: The mount path of a Vault secrets engine or auth method, without slashes around it.
VaultMount = Annotated[str, AfterValidator(_mount)]
#: A secret path under a Vault mount, without slashes around it.
VaultPath = Annotated[str, AfterValidator(_vault_path)]
#: The version of a Vault KV engine (``${KV_VERSION}`` gives text: it is read as the number).
KvVersion = Annotated[Literal[1, 2], BeforeValidator(_kv_version)]
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


def _env_var_name(value: str) -> str:
    if not is_env_name(value):
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
