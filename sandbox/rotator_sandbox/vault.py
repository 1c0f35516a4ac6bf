"""An in-memory emulator of the HashiCorp Vault HTTP API paths the rotator (through hvac) uses.

It serves, over real HTTP on 127.0.0.1, what the KV secrets engines, the token store, the
Kubernetes and AppRole auth methods, namespaces and the health endpoints of Vault 1.15 answer,
with Vault's status codes and bodies (taken from hvac 2.4 and from the sources of Vault's
router and KV plugin):

=============================================  ===============================================
path (under ``/v1/``, relative to a namespace)  behaviour
=============================================  ===============================================
``{kv2}/data/{p}``                             GET [?version=N] / POST / PUT / PATCH / DELETE
``{kv2}/metadata/{p}``                         GET / POST / PUT / PATCH / DELETE / LIST
``{kv2}/delete|undelete|destroy/{p}``          POST / PUT ``{"versions": [...]}``
``{kv2}/config``                               GET / POST (``cas_required``, ``max_versions``,
                                               ``delete_version_after``)
``{kv1}/{p}``                                  GET / POST / PUT / DELETE / LIST
``auth/token/lookup-self``                     GET (POST)
``auth/token/renew-self``                      POST ``{"increment"?}``
``auth/token/revoke-self``                     POST
``auth/token/create``                          POST
``auth/{kubernetes mount}/login``              POST ``{"role", "jwt"}`` (unauthenticated)
``auth/{approle mount}/login``                 POST ``{"role_id", "secret_id"}`` (unauth.)
``sys/health``, ``sys/seal-status``            GET (unauthenticated, answered while sealed)
``sys/mounts``, ``sys/internal/ui/mounts/{p}``  GET
``sys/capabilities-self``                      POST ``{"paths": [...]}``
=============================================  ===============================================

LIST is accepted as the ``LIST`` verb and as ``GET ?list=true``.

Order of checks, as in Vault: sealed (503 ``Vault is sealed``) → unauthenticated endpoints →
token (403 ``permission denied`` when missing; 403 ``2 errors occurred: permission denied,
invalid token`` when unknown, expired or revoked) → ACL (403 ``1 error occurred: permission
denied``) → routing (404 ``no handler for route "<path>". route entry not found.``) → the
engine's own validation (400 ``{"errors": [...]}``).

Every error answer is ``Content-Type: application/json`` exactly (hvac parses error bodies only on
an exact match) with ``{"errors": [...]}``; a missing secret is 404 ``{"errors": []}``. A read of
a soft-deleted or destroyed KV v2 version is 404 with the normal envelope, ``data.data`` null,
the version metadata filled and no ``errors`` key, which is what
``read_secret_version(raise_on_deleted_version=False)`` relies on.

Policies are a small model of Vault's ACLs: a policy maps path patterns (``+`` matches one
segment, a trailing ``*`` any suffix) to capabilities (``create read update delete list patch
sudo deny``). The most specific matching pattern wins (Vault's priority rules); capabilities of
the same pattern in several policies of one token are united. ``root`` allows everything and
``default`` holds Vault's token self-service paths. Policy paths are relative to the token's
namespace; policies themselves are global here (Vault keeps them per namespace).

Namespaces (a Vault Enterprise feature) are separate storage: ``X-Vault-Namespace: ns1/ns2/`` with
path ``secret/data/foo`` is the same as path ``ns1/ns2/secret/data/foo``. A token belongs to the
namespace it was created or logged in through and works there and in its child namespaces.

Time comes from the injected ``clock`` (aware UTC); tokens expire by it and KV timestamps use it.
A version deleted at instant *t* reads as deleted from *t* on (Vault uses "before now", which a
frozen test clock would never reach).

Every request is recorded in :attr:`VaultEmulator.seen` with whether it carried
``X-Vault-Request: true`` (not enforced: Vault requires it only on some listeners/paths) and the
accessor of its token (never the token).

Tests seed and inspect state with :meth:`VaultEmulator.write`, :meth:`~VaultEmulator.read`,
:meth:`~VaultEmulator.metadata`, :meth:`~VaultEmulator.create_token`,
:meth:`~VaultEmulator.set_policy` and friends; all hold :attr:`Emulator.lock`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import secrets
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from rotator_sandbox._server import Emulator, Request, Response

#: The Vault version the emulator claims in ``sys/health`` and ``sys/seal-status``.
VAULT_VERSION: Final = "1.15.2"

#: Vault's default ``default_lease_ttl`` and ``max_lease_ttl`` (768h): KV v1 lease hint, login TTL.
DEFAULT_LEASE_TTL: Final = timedelta(seconds=2764800)
SYSTEM_MAX_TTL: Final = timedelta(seconds=2764800)

#: KV v2 keeps this many versions when neither the mount nor the key sets ``max_versions``.
DEFAULT_MAX_VERSIONS: Final = 10

#: The capabilities a policy rule may grant.
CAPABILITIES: Final = frozenset(
    {"create", "read", "update", "delete", "list", "patch", "sudo", "deny"}
)

#: Vault's built-in ``default`` policy, reduced to the token self-service paths.
DEFAULT_POLICY_RULES: Final[Mapping[str, frozenset[str]]] = {
    "auth/token/lookup-self": frozenset({"read"}),
    "auth/token/renew-self": frozenset({"update"}),
    "auth/token/revoke-self": frozenset({"update"}),
    "sys/capabilities-self": frozenset({"update"}),
}

# Error texts exactly as Vault renders them (multierror formatting included).
PERMISSION_DENIED: Final = "permission denied"
ACL_DENIED: Final = "1 error occurred:\n\t* permission denied\n\n"
INVALID_TOKEN: Final = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
SEALED: Final = "Vault is sealed"
CAS_MISMATCH: Final = "check-and-set parameter did not match the current version"
CAS_REQUIRED: Final = "check-and-set parameter required for this call"
NO_DATA: Final = "no data provided"
INVALID_APPROLE: Final = "invalid role or secret ID"
V2_INVALID_PATH_WARNING: Final = (
    "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API "
    "endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation."
)

_CUSTOM_METADATA_MAX_KEYS: Final = 64
_CUSTOM_METADATA_MAX_KEY_LENGTH: Final = 128
_CUSTOM_METADATA_MAX_VALUE_LENGTH: Final = 512
_CUSTOM_METADATA_PREFIX: Final = "custom_metadata validation failed"

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_DURATION_UNITS: Final[Mapping[str, float]] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


# -- value helpers --------------------------------------------------------------------------------


def rfc3339(moment: datetime) -> str:
    """Format like Go's ``time.RFC3339Nano`` in UTC (trailing fractional zeros dropped)."""
    moment = moment.astimezone(UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def go_duration(delta: timedelta) -> str:
    """Format whole seconds like Go's ``time.Duration.String`` (``0s``, ``1m30s``, ``1h0m0s``)."""
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def parse_duration(value: object) -> timedelta:
    """Parse a Vault duration (seconds as a number or digit string, or Go syntax like ``1h30m``).

    Raises ``ValueError`` for anything else, including negative durations.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")  # noqa: TRY004 - a field value error
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text == "":
            seconds = 0.0
        elif re.fullmatch(r"\d+", text):
            seconds = float(text)
        else:
            pos = 0
            seconds = 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos:
                    raise ValueError(f"invalid duration {value!r}")
                seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text):
                raise ValueError(f"invalid duration {value!r}")
    else:
        raise ValueError(f"invalid duration {value!r}")  # noqa: TRY004 - a field value error
    if seconds < 0:
        raise ValueError(f"negative duration {value!r}")
    return timedelta(seconds=seconds)


def _json_copy(value: Any) -> Any:
    """A deep copy that also proves the value is JSON (what Vault stores)."""
    return json.loads(json.dumps(value))


def _weak_string(value: object) -> str:
    """Go's ``mapstructure.WeakDecode`` into a string, for the types JSON carries."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if value is None:
        return ""
    raise ValueError(f"'' expected type 'string', got unconvertible type '{type(value).__name__}'")


def _weak_int(value: object) -> int:
    """Go's ``mapstructure.WeakDecode`` into an int."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    raise ValueError(f"cannot parse {value!r} as an integer")


def _weak_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "t", "f"}:
        return value.lower() in {"true", "1", "t"}
    raise ValueError(f"cannot parse {value!r} as a boolean")


def _int_list(value: object) -> list[int]:
    """Vault's ``TypeCommaIntSlice``: a list of ints, one int, or a comma separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [_weak_int(part) for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [_weak_int(item) for item in value]
    return [_weak_int(value)]


def _string_list(value: object) -> list[str]:
    """Vault's ``TypeCommaStringSlice``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [_weak_string(item).strip() for item in value if _weak_string(item).strip()]
    return [_weak_string(value)]


def _children(keys: Iterable[str], folder: str) -> list[str]:
    """Immediate children of ``folder`` ("" or ending in "/"); sub-folders end in "/"."""
    found: set[str] = set()
    for key in keys:
        if not key.startswith(folder):
            continue
        rest = key[len(folder) :]
        if not rest:
            continue
        head, slash, _ = rest.partition("/")
        found.add(head + slash)
    return sorted(found)


def _jwt_claims(jwt: str) -> dict[str, Any]:
    """The payload of a JWT without verifying it (only to fill login metadata); {} if unreadable."""
    parts = jwt.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


# -- state ----------------------------------------------------------------------------------------


@dataclass
class _Version:
    data: dict[str, Any] | None  # None once destroyed
    created_time: datetime
    deletion_time: datetime | None = None
    destroyed: bool = False

    def gone(self, now: datetime) -> bool:
        """Soft-deleted (deletion time reached) or destroyed."""
        return self.destroyed or (self.deletion_time is not None and self.deletion_time <= now)

    def describe(self) -> dict[str, Any]:
        return {
            "created_time": rfc3339(self.created_time),
            "deletion_time": "" if self.deletion_time is None else rfc3339(self.deletion_time),
            "destroyed": self.destroyed,
        }


@dataclass
class _KeyMetadata:
    created_time: datetime
    updated_time: datetime
    versions: dict[int, _Version] = field(default_factory=dict)
    current_version: int = 0
    oldest_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: timedelta = timedelta(0)
    custom_metadata: dict[str, str] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "cas_required": self.cas_required,
            "created_time": rfc3339(self.created_time),
            "current_version": self.current_version,
            "custom_metadata": copy.deepcopy(self.custom_metadata),
            "delete_version_after": go_duration(self.delete_version_after),
            "max_versions": self.max_versions,
            "oldest_version": self.oldest_version,
            "updated_time": rfc3339(self.updated_time),
            "versions": {str(n): v.describe() for n, v in sorted(self.versions.items())},
        }


@dataclass
class _Mount:
    path: str
    version: int
    accessor: str = field(default_factory=lambda: f"kv_{secrets.token_hex(4)}")
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    kv1: dict[str, dict[str, Any]] = field(default_factory=dict)
    kv2: dict[str, _KeyMetadata] = field(default_factory=dict)
    cas_required: bool = False
    max_versions: int = 0
    delete_version_after: timedelta = timedelta(0)


@dataclass
class _KubernetesRole:
    jwts: frozenset[str]
    policies: tuple[str, ...]
    ttl: timedelta
    max_ttl: timedelta | None


@dataclass
class _AppRole:
    role_name: str
    secret_ids: frozenset[str]
    policies: tuple[str, ...]
    ttl: timedelta
    max_ttl: timedelta | None


@dataclass
class _AuthMount:
    path: str
    kind: str  # "kubernetes" | "approle"
    accessor: str = field(default_factory=lambda: f"auth_{secrets.token_hex(4)}")
    kubernetes_roles: dict[str, _KubernetesRole] = field(default_factory=dict)
    approles: dict[str, _AppRole] = field(default_factory=dict)


@dataclass
class _Namespace:
    path: str  # "" for the root namespace, else "ns1" / "ns1/ns2" (no slashes at the ends)
    mounts: dict[str, _Mount] = field(default_factory=dict)
    auth: dict[str, _AuthMount] = field(default_factory=dict)


@dataclass
class _Token:
    id: str
    accessor: str
    policies: tuple[str, ...]
    namespace: str
    issue_time: datetime
    ttl: timedelta | None  # None: never expires (root)
    expire_time: datetime | None
    max_expire_time: datetime | None
    renewable: bool
    display_name: str
    path: str
    orphan: bool
    meta: dict[str, str] | None = None
    parent: str | None = None
    entity_id: str = ""

    def is_root(self) -> bool:
        return "root" in self.policies


@dataclass(frozen=True)
class SeenRequest:
    """One request as Vault-specific headers describe it (the token itself is never kept)."""

    method: str
    path: str
    namespace: str | None
    accessor: str | None
    vault_request_header: bool


@dataclass
class _Call:
    """One authenticated API call after namespace resolution."""

    request: Request
    method: str  # GET, LIST, POST, PUT, PATCH, DELETE
    namespace: _Namespace
    path: str  # relative to the namespace, no leading slash
    body: dict[str, Any]
    token: _Token


class VaultEmulator(Emulator):
    """Vault's KV v1/v2, token, Kubernetes and AppRole auth, namespaces, seal and health APIs."""

    name = "vault"

    def __init__(
        self,
        *,
        root_token: str = "sandbox-root-token",  # noqa: S107 - the sandbox's public fake token
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[str, str] | None = None,
        mounts: Mapping[str, int] | None = None,
        sealed: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(host=host, port=port, tls=tls)
        #: Returns the aware UTC "now" used for token expiry and KV timestamps; replaceable.
        self.clock: Callable[[], datetime] = clock or _utcnow
        self.root_token = root_token
        self.sealed = sealed
        #: Every request, with its Vault headers (see :class:`SeenRequest`).
        self.seen: list[SeenRequest] = []
        self.cluster_name = f"vault-cluster-{secrets.token_hex(4)}"
        self.cluster_id = str(uuid.uuid4())
        self._namespaces: dict[str, _Namespace] = {"": _Namespace("")}
        self._policies: dict[str, dict[str, frozenset[str]]] = {
            "default": dict(DEFAULT_POLICY_RULES)
        }
        self._tokens: dict[str, _Token] = {}
        now = self._now()
        self._tokens[root_token] = _Token(
            id=root_token,
            accessor=self._new_accessor(),
            policies=("root",),
            namespace="",
            issue_time=now,
            ttl=None,
            expire_time=None,
            max_expire_time=None,
            renewable=False,
            display_name="root",
            path="auth/token/root",
            orphan=True,
        )
        for mount, version in (mounts if mounts is not None else {"secret": 2, "kv": 1}).items():
            self.add_mount(mount, version)

    # -- in-process API: configuration ---------------------------------------------------------

    def add_namespace(self, name: str, mounts: Mapping[str, int] | None = None) -> None:
        """Create namespace ``name`` ("ns1" or "ns1/ns2"; parents are created empty as needed).

        ``mounts`` maps KV mount paths to KV versions; default ``secret`` (v2) and ``kv`` (v1).
        """
        path = name.strip("/")
        if not path:
            raise ValueError("the root namespace always exists")
        with self.lock:
            parts = path.split("/")
            for depth in range(1, len(parts)):
                parent = "/".join(parts[:depth])
                self._namespaces.setdefault(parent, _Namespace(parent))
            if path in self._namespaces:
                raise ValueError(f"namespace {path!r} already exists")
            self._namespaces[path] = _Namespace(path)
        for mount, version in (mounts if mounts is not None else {"secret": 2, "kv": 1}).items():
            self.add_mount(mount, version, namespace=path)

    def add_mount(self, mount: str, version: int, *, namespace: str | None = None) -> None:
        """Enable a KV engine (``version`` 1 or 2) at ``mount`` in a namespace."""
        if version not in (1, 2):
            raise ValueError("KV version must be 1 or 2")
        path = mount.strip("/")
        if not path or path.split("/")[0] in {"sys", "auth", "cubbyhole", "identity"}:
            raise ValueError(f"cannot mount a KV engine at {mount!r}")
        with self.lock:
            ns = self._namespace(namespace)
            if path in ns.mounts:
                raise ValueError(f"path is already in use at {path}/")
            ns.mounts[path] = _Mount(path, version)

    def configure_mount(
        self,
        mount: str,
        *,
        cas_required: bool | None = None,
        max_versions: int | None = None,
        delete_version_after: timedelta | None = None,
        namespace: str | None = None,
    ) -> None:
        """Set a KV v2 mount's ``config`` (what ``POST {mount}/config`` sets)."""
        with self.lock:
            kv = self._kv_mount(mount, namespace, version=2)
            if cas_required is not None:
                kv.cas_required = cas_required
            if max_versions is not None:
                kv.max_versions = max_versions
            if delete_version_after is not None:
                kv.delete_version_after = delete_version_after

    def set_policy(self, name: str, rules: Mapping[str, Collection[str]]) -> None:
        """Create or replace policy ``name``: path pattern → capabilities."""
        if name == "root":
            raise ValueError("cannot update the root policy")
        parsed: dict[str, frozenset[str]] = {}
        for pattern, capabilities in rules.items():
            caps = frozenset(capabilities)
            unknown = caps - CAPABILITIES
            if unknown:
                raise ValueError(f"unknown capabilities {sorted(unknown)} for {pattern!r}")
            if "*" in pattern[:-1]:
                raise ValueError(f"'*' is only allowed at the end of a path: {pattern!r}")
            parsed[pattern.lstrip("/")] = caps
        with self.lock:
            self._policies[name] = parsed

    def delete_policy(self, name: str) -> None:
        """Remove a policy; tokens that name it lose its rules."""
        with self.lock:
            self._policies.pop(name, None)

    def create_token(
        self,
        policies: Sequence[str] = ("default",),
        ttl: timedelta = timedelta(hours=1),
        renewable: bool = True,
        namespace: str | None = None,
        *,
        max_ttl: timedelta | None = None,
        no_default_policy: bool = False,
        display_name: str = "token",
        meta: Mapping[str, str] | None = None,
    ) -> str:
        """Issue a service token and return its id.

        Like Vault, the ``default`` policy is added unless ``no_default_policy``. The token can be
        renewed up to ``max_ttl`` (default the system maximum, 768h) after it was issued.
        """
        names = list(policies)
        if not no_default_policy and "root" not in names:
            names.append("default")
        with self.lock:
            ns = self._namespace(namespace)
            token = self._issue(
                policies=names,
                namespace=ns.path,
                ttl=ttl,
                max_ttl=max_ttl,
                renewable=renewable,
                display_name=display_name,
                path="auth/token/create",
                orphan=False,
                meta=dict(meta) if meta is not None else None,
            )
            return token.id

    def revoke_token(self, token: str) -> None:
        """Revoke a token and, as Vault does, every token created from it."""
        with self.lock:
            self._revoke(token)

    def add_kubernetes_role(
        self,
        role: str,
        jwt: str | Collection[str],
        policies: Sequence[str] = (),
        ttl: timedelta = DEFAULT_LEASE_TTL,
        *,
        max_ttl: timedelta | None = None,
        mount: str = "kubernetes",
        namespace: str | None = None,
    ) -> None:
        """Accept ``jwt`` (one or several) at ``auth/{mount}/login`` for ``role``."""
        jwts = frozenset([jwt] if isinstance(jwt, str) else jwt)
        with self.lock:
            auth = self._auth_mount(mount, "kubernetes", namespace)
            auth.kubernetes_roles[role] = _KubernetesRole(jwts, tuple(policies), ttl, max_ttl)

    def add_approle(
        self,
        role_id: str,
        secret_id: str | Collection[str],
        policies: Sequence[str] = (),
        ttl: timedelta = DEFAULT_LEASE_TTL,
        *,
        role_name: str | None = None,
        max_ttl: timedelta | None = None,
        mount: str = "approle",
        namespace: str | None = None,
    ) -> None:
        """Accept ``role_id`` with ``secret_id`` (one or several) at ``auth/{mount}/login``."""
        ids = frozenset([secret_id] if isinstance(secret_id, str) else secret_id)
        with self.lock:
            auth = self._auth_mount(mount, "approle", namespace)
            auth.approles[role_id] = _AppRole(
                role_name or role_id, ids, tuple(policies), ttl, max_ttl
            )

    def seal(self) -> None:
        """Seal: every path but ``sys/health`` and ``sys/seal-status`` answers 503."""
        with self.lock:
            self.sealed = True

    def unseal(self) -> None:
        """Unseal."""
        with self.lock:
            self.sealed = False

    # -- in-process API: inspection and seeding ------------------------------------------------

    def write(
        self, mount: str, path: str, data: Mapping[str, Any], namespace: str | None = None
    ) -> int:
        """Seed a secret: a new KV v2 version (no CAS), or the KV v1 value. Returns the version."""
        with self.lock:
            kv = self._kv_mount(mount, namespace)
            key = path.strip("/")
            if kv.version == 1:
                kv.kv1[key] = _json_copy(dict(data))
                return 0
            now = self._now()
            meta = kv.kv2.get(key)
            if meta is None:
                meta = kv.kv2[key] = _KeyMetadata(created_time=now, updated_time=now)
            version, _ = self._add_version(kv, meta, _json_copy(dict(data)), now)
            return version

    def read(
        self,
        mount: str,
        path: str,
        *,
        namespace: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any] | None:
        """The data of a secret (latest or ``version``); None if missing, deleted or destroyed."""
        with self.lock:
            kv = self._kv_mount(mount, namespace)
            key = path.strip("/")
            if kv.version == 1:
                value = kv.kv1.get(key)
                return None if value is None else copy.deepcopy(value)
            meta = kv.kv2.get(key)
            if meta is None:
                return None
            entry = meta.versions.get(version or meta.current_version)
            if entry is None or entry.gone(self._now()) or entry.data is None:
                return None
            return copy.deepcopy(entry.data)

    def metadata(
        self, mount: str, path: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """What ``GET {mount}/metadata/{path}`` answers in ``data`` (KV v2), or None if missing."""
        with self.lock:
            kv = self._kv_mount(mount, namespace, version=2)
            meta = kv.kv2.get(path.strip("/"))
            return None if meta is None else meta.describe()

    def update_metadata(
        self,
        mount: str,
        path: str,
        *,
        custom_metadata: Mapping[str, str] | None = None,
        max_versions: int | None = None,
        cas_required: bool | None = None,
        namespace: str | None = None,
    ) -> None:
        """Seed KV v2 key metadata (created if missing); ``custom_metadata`` replaces the map."""
        with self.lock:
            kv = self._kv_mount(mount, namespace, version=2)
            key = path.strip("/")
            meta = kv.kv2.get(key)
            if meta is None:
                now = self._now()
                meta = kv.kv2[key] = _KeyMetadata(created_time=now, updated_time=now)
            if custom_metadata is not None:
                meta.custom_metadata = dict(custom_metadata)
            if max_versions is not None:
                meta.max_versions = max_versions
            if cas_required is not None:
                meta.cas_required = cas_required

    def lookup_token(self, token: str) -> dict[str, Any] | None:
        """What ``lookup-self`` answers in ``data`` for a live token, or None."""
        with self.lock:
            found = self._live_token(token)
            return None if found is None else self._describe_token(found)

    def namespaces(self) -> list[str]:
        """Every namespace path ("" is the root)."""
        with self.lock:
            return sorted(self._namespaces)

    # -- HTTP ----------------------------------------------------------------------------------

    def error_response(self, status: int, message: str) -> Response:
        """Vault's error body: ``{"errors": [message]}``, ``Content-Type: application/json``."""
        return _go_encoded(Response(status, {"errors": [message]}))

    def handle(self, request: Request) -> Response:
        """Answer one Vault API request."""
        with self.lock:
            response = self._handle(request)
        response.headers.setdefault("Cache-Control", "no-store")
        return _go_encoded(response)

    def _handle(self, request: Request) -> Response:
        token_value = self._token_value(request)
        token = self._tokens.get(token_value) if token_value else None
        self.seen.append(
            SeenRequest(
                method=request.method,
                path=request.path,
                namespace=request.header("X-Vault-Namespace"),
                accessor=token.accessor if token is not None else None,
                vault_request_header=(request.header("X-Vault-Request") or "").lower() == "true",
            )
        )
        if not request.path.startswith("/v1/"):
            return Response(404, {"errors": []})
        ns, rel = self._resolve(request.header("X-Vault-Namespace") or "", request.path[4:])
        method = request.method
        if method == "GET" and (request.query_one("list") or "").lower() == "true":
            method = "LIST"

        if rel in ("sys/health", "sys/seal-status"):
            if method not in ("GET", "HEAD"):
                return self.error_response(405, "unsupported operation")
            return self._health(request) if rel == "sys/health" else self._seal_status()
        if self.sealed:
            return self.error_response(503, SEALED)
        if method == "HEAD":
            return Response(405)

        body: dict[str, Any] = {}
        if method in ("POST", "PUT", "PATCH") and request.body.strip():
            try:
                parsed = request.json()
            except ValueError as exc:
                return self.error_response(400, f"failed to parse JSON input: {exc}")
            if not isinstance(parsed, dict):
                return self.error_response(
                    400, "failed to parse JSON input: body is not a JSON object"
                )
            body = parsed

        login = self._login_mount(ns, rel)
        if login is not None and method in ("POST", "PUT"):
            return self._login(ns, login, body)

        if not token_value:
            return self.error_response(403, PERMISSION_DENIED)
        live = self._live_token(token_value)
        if live is None:
            return self.error_response(403, INVALID_TOKEN)
        if not self._within(live.namespace, ns.path):
            return self.error_response(403, ACL_DENIED)
        call = _Call(request, method, ns, rel, body, live)
        return self._route(call)

    # -- routing -------------------------------------------------------------------------------

    def _route(self, call: _Call) -> Response:
        path = call.path
        if path.startswith("auth/token/"):
            return self._token_api(call, path[len("auth/token/") :])
        if path == "sys/mounts":
            return self._authorized(call, "read") or self._sys_mounts(call)
        if path.startswith("sys/internal/ui/mounts/"):
            return self._ui_mount(call, path[len("sys/internal/ui/mounts/") :])
        if path == "sys/capabilities-self":
            return self._capabilities_self(call)
        mount = self._find_mount(call.namespace, path)
        if mount is None:
            return self._authorized(call, self._plain_capability(call.method)) or (
                self._no_handler(path)
            )
        sub = path[len(mount.path) :].lstrip("/") if path != mount.path else ""
        if mount.version == 2:
            return self._kv2(call, mount, sub)
        return self._kv1(call, mount, sub)

    @staticmethod
    def _plain_capability(method: str) -> str:
        return {
            "GET": "read",
            "LIST": "list",
            "DELETE": "delete",
            "PATCH": "patch",
        }.get(method, "update")

    def _no_handler(self, path: str) -> Response:
        return self.error_response(404, f'no handler for route "{path}". route entry not found.')

    # -- KV v2 ---------------------------------------------------------------------------------

    def _kv2(self, call: _Call, mount: _Mount, sub: str) -> Response:
        area, slash, key = sub.partition("/")
        if area == "config" and not slash:
            return self._kv2_config(call, mount)
        if area == "data" and slash:
            return self._kv2_data(call, mount, key)
        if area == "metadata" and slash:
            return self._kv2_metadata(call, mount, key)
        if area in ("delete", "undelete", "destroy") and slash:
            return self._kv2_versions(call, mount, area, key)
        denied = self._authorized(call, self._plain_capability(call.method))
        if denied is not None:
            return denied
        # What the KV v2 backend answers to v1-style paths: 404, a warning, no errors key.
        return Response(404, self._envelope(warnings=[V2_INVALID_PATH_WARNING]))

    def _kv2_config(self, call: _Call, mount: _Mount) -> Response:
        if call.method == "GET":
            denied = self._authorized(call, "read")
            if denied is not None:
                return denied
            return Response(
                200,
                self._envelope(
                    data={
                        "cas_required": mount.cas_required,
                        "delete_version_after": go_duration(mount.delete_version_after),
                        "max_versions": mount.max_versions,
                    }
                ),
            )
        if call.method not in ("POST", "PUT"):
            return self._unsupported(call)
        denied = self._authorized(call, "update")
        if denied is not None:
            return denied
        try:
            if "cas_required" in call.body:
                mount.cas_required = _weak_bool(call.body["cas_required"])
            if "max_versions" in call.body:
                mount.max_versions = _weak_int(call.body["max_versions"])
            if "delete_version_after" in call.body:
                mount.delete_version_after = parse_duration(call.body["delete_version_after"])
        except ValueError as exc:
            return self.error_response(400, f"Field validation failed: {exc}")
        return Response(204)

    def _kv2_data(self, call: _Call, mount: _Mount, key: str) -> Response:
        meta = mount.kv2.get(key)
        if call.method == "GET":
            return self._authorized(call, "read") or self._kv2_read(call, mount, key)
        if call.method in ("POST", "PUT"):
            capability = "update" if meta is not None else "create"
            return self._authorized(call, capability) or self._kv2_write(call, mount, key)
        if call.method == "PATCH":
            return self._authorized(call, "patch") or self._kv2_patch(call, mount, key)
        if call.method == "DELETE":
            return self._authorized(call, "delete") or self._kv2_delete_latest(mount, key)
        return self._unsupported(call)

    def _kv2_read(self, call: _Call, mount: _Mount, key: str) -> Response:
        meta = mount.kv2.get(key)
        if meta is None:
            return Response(404, {"errors": []})
        number = meta.current_version
        raw_version = call.request.query_one("version")
        if raw_version:
            try:
                requested = _weak_int(raw_version)
            except ValueError:
                return self.error_response(
                    400,
                    "Field validation failed: error converting input "
                    f'{raw_version} for field "version"',
                )
            if requested > 0:
                number = requested
        entry = meta.versions.get(number)
        if entry is None:
            return Response(404, {"errors": []})
        version_meta = {"version": number, **entry.describe()}
        version_meta["custom_metadata"] = copy.deepcopy(meta.custom_metadata)
        if entry.gone(self._now()) or entry.data is None:
            return Response(404, self._envelope(data={"data": None, "metadata": version_meta}))
        return Response(
            200,
            self._envelope(data={"data": copy.deepcopy(entry.data), "metadata": version_meta}),
        )

    def _kv2_write(self, call: _Call, mount: _Mount, key: str) -> Response:
        if not key:
            return self.error_response(400, "missing path")
        data = call.body.get("data")
        if data is None:
            return self.error_response(400, NO_DATA)
        if not isinstance(data, dict):
            return self.error_response(
                400, 'Field validation failed: expected a map for field "data"'
            )
        meta = mount.kv2.get(key)
        fresh = meta is None
        now = self._now()
        if meta is None:
            meta = _KeyMetadata(created_time=now, updated_time=now)
        problem = self._check_cas(call.body, mount, meta)
        if problem is not None:
            return self.error_response(400, problem)
        if fresh:
            mount.kv2[key] = meta
        number, entry = self._add_version(mount, meta, _json_copy(data), now)
        return Response(200, self._envelope(data=self._version_answer(meta, number, entry)))

    def _kv2_patch(self, call: _Call, mount: _Mount, key: str) -> Response:
        content_type = (call.request.header("Content-Type") or "").split(";")[0].strip()
        if content_type != "application/merge-patch+json":
            return self.error_response(
                415, "PATCH requires Content-Type of application/merge-patch+json"
            )
        patch = call.body.get("data")
        if patch is None:
            return self.error_response(400, NO_DATA)
        if not isinstance(patch, dict):
            return self.error_response(
                400, 'Field validation failed: expected a map for field "data"'
            )
        meta = mount.kv2.get(key)
        if meta is None:
            return Response(404, {"errors": []})
        problem = self._check_cas(call.body, mount, meta)
        if problem is not None:
            return self.error_response(400, problem)
        current = meta.versions.get(meta.current_version)
        if current is None:
            return Response(404, {"errors": []})
        if current.gone(self._now()) or current.data is None:
            answer = self._version_answer(meta, meta.current_version, current)
            return Response(404, self._envelope(data=answer))
        merged = _merge_patch(copy.deepcopy(current.data), patch)
        number, entry = self._add_version(mount, meta, _json_copy(merged), self._now())
        return Response(200, self._envelope(data=self._version_answer(meta, number, entry)))

    def _kv2_delete_latest(self, mount: _Mount, key: str) -> Response:
        meta = mount.kv2.get(key)
        if meta is not None:
            latest = meta.versions.get(meta.current_version)
            now = self._now()
            if latest is not None and not latest.gone(now):
                latest.deletion_time = now
        return Response(204)

    def _kv2_versions(self, call: _Call, mount: _Mount, action: str, key: str) -> Response:
        if call.method not in ("POST", "PUT"):
            return self._authorized(call, self._plain_capability(call.method)) or (
                self._unsupported(call)
            )
        denied = self._authorized(call, "update")
        if denied is not None:
            return denied
        try:
            numbers = _int_list(call.body.get("versions"))
        except ValueError as exc:
            return self.error_response(400, f"Field validation failed: {exc}")
        if not numbers:
            message = "no version number provided"
            if action != "destroy":
                message = "No version number provided"
            return self.error_response(400, message)
        meta = mount.kv2.get(key)
        if meta is None:
            return Response(204)
        now = self._now()
        for number in numbers:
            entry = meta.versions.get(number)
            if entry is None or entry.destroyed:
                continue
            if action == "delete":
                if not entry.gone(now):
                    entry.deletion_time = now
            elif action == "undelete":
                entry.deletion_time = self._deletion_time(mount, meta, now)
            else:
                entry.destroyed = True
                entry.data = None
        return Response(204)

    def _kv2_metadata(self, call: _Call, mount: _Mount, key: str) -> Response:
        meta = mount.kv2.get(key)
        if call.method == "LIST":
            denied = self._authorized(call, "list")
            if denied is not None:
                return denied
            folder = key if key == "" or key.endswith("/") else key + "/"
            return self._list_answer(_children(mount.kv2, folder))
        if call.method == "GET":
            denied = self._authorized(call, "read")
            if denied is not None:
                return denied
            if meta is None:
                return Response(404, {"errors": []})
            return Response(200, self._envelope(data=meta.describe()))
        if call.method == "DELETE":
            denied = self._authorized(call, "delete")
            if denied is not None:
                return denied
            mount.kv2.pop(key, None)
            return Response(204)
        if call.method in ("POST", "PUT", "PATCH"):
            if call.method == "PATCH":
                capability = "patch"
            else:
                capability = "update" if meta is not None else "create"
            denied = self._authorized(call, capability)
            if denied is not None:
                return denied
            return self._kv2_metadata_write(call, mount, key, patch=call.method == "PATCH")
        return self._unsupported(call)

    def _kv2_metadata_write(self, call: _Call, mount: _Mount, key: str, *, patch: bool) -> Response:
        if not key:
            return self.error_response(400, "missing path")
        body = call.body
        fields = ("max_versions", "cas_required", "delete_version_after", "custom_metadata")
        if not patch and not any(name in body for name in fields):
            return Response(204)  # Vault's fast path: nothing to set, nothing created
        custom: dict[str, str] | None = None
        if "custom_metadata" in body:
            raw = body["custom_metadata"]
            if not isinstance(raw, dict):
                return self.error_response(
                    400, 'Field validation failed: expected a map for field "custom_metadata"'
                )
            try:
                custom = {
                    str(k): _weak_string(v) for k, v in raw.items() if not (patch and v is None)
                }
            except ValueError as exc:
                return self.error_response(400, f"{_CUSTOM_METADATA_PREFIX}: {exc}")
            problems = _custom_metadata_problems(custom)
            if problems:
                return self.error_response(400, _multierror(problems))
            if patch:
                # A merge patch: null removes a key, other keys are set, the rest is kept.
                current = mount.kv2.get(key)
                merged = dict(current.custom_metadata or {}) if current is not None else {}
                for name in (str(k) for k, v in raw.items() if v is None):
                    merged.pop(name, None)
                merged.update(custom)
                custom = merged
        try:
            max_versions = _weak_int(body["max_versions"]) if "max_versions" in body else None
            cas_required = _weak_bool(body["cas_required"]) if "cas_required" in body else None
            delete_after = (
                parse_duration(body["delete_version_after"])
                if "delete_version_after" in body
                else None
            )
        except ValueError as exc:
            return self.error_response(400, f"Field validation failed: {exc}")
        warnings: list[str] | None = None
        if cas_required is False and mount.cas_required:
            warnings = [
                '"cas_required" set to false, but is mandated by backend config. '
                "This value will be ignored."
            ]
        meta = mount.kv2.get(key)
        if meta is None:
            if patch:
                return Response(404, {"errors": []})
            now = self._now()
            meta = mount.kv2[key] = _KeyMetadata(created_time=now, updated_time=now)
        if max_versions is not None:
            meta.max_versions = max_versions
        if cas_required is not None:
            meta.cas_required = cas_required
        if delete_after is not None:
            meta.delete_version_after = delete_after
        if custom is not None:
            meta.custom_metadata = custom
        if warnings:
            return Response(200, self._envelope(warnings=warnings))
        return Response(204)

    def _check_cas(self, body: Mapping[str, Any], mount: _Mount, meta: _KeyMetadata) -> str | None:
        options = body.get("options")
        if isinstance(options, dict) and "cas" in options:
            try:
                cas = _weak_int(options["cas"])
            except ValueError:
                return "error parsing check-and-set parameter"
            if cas != meta.current_version:
                return CAS_MISMATCH
            return None
        if mount.cas_required or meta.cas_required:
            return CAS_REQUIRED
        return None

    def _deletion_time(self, mount: _Mount, meta: _KeyMetadata, start: datetime) -> datetime | None:
        """Vault's ``deletionTime``: start + the smaller non-zero delete_version_after, if any."""
        candidates = [
            d for d in (mount.delete_version_after, meta.delete_version_after) if d > timedelta(0)
        ]
        return start + min(candidates) if candidates else None

    def _add_version(
        self, mount: _Mount, meta: _KeyMetadata, data: dict[str, Any], now: datetime
    ) -> tuple[int, _Version]:
        """Vault's ``AddVersion``: append, then slide the window of kept versions."""
        entry = _Version(data=data, created_time=now)
        entry.deletion_time = self._deletion_time(mount, meta, now)
        meta.current_version += 1
        meta.versions[meta.current_version] = entry
        meta.updated_time = now
        keep = max(meta.max_versions, mount.max_versions) or DEFAULT_MAX_VERSIONS
        if meta.current_version - meta.oldest_version >= keep:
            drop_up_to = meta.current_version - keep
            for number in range(meta.oldest_version, drop_up_to + 1):
                meta.versions.pop(number, None)
            meta.oldest_version = drop_up_to + 1
        return meta.current_version, entry

    @staticmethod
    def _version_answer(meta: _KeyMetadata, number: int, entry: _Version) -> dict[str, Any]:
        return {
            "version": number,
            **entry.describe(),
            "custom_metadata": copy.deepcopy(meta.custom_metadata),
        }

    # -- KV v1 ---------------------------------------------------------------------------------

    def _kv1(self, call: _Call, mount: _Mount, key: str) -> Response:
        if call.method == "LIST":
            denied = self._authorized(call, "list")
            if denied is not None:
                return denied
            folder = key if key == "" or key.endswith("/") else key + "/"
            return self._list_answer(_children(mount.kv1, folder))
        if call.method == "GET":
            denied = self._authorized(call, "read")
            if denied is not None:
                return denied
            value = mount.kv1.get(key)
            if value is None:
                return Response(404, {"errors": []})
            lease = DEFAULT_LEASE_TTL
            hint = value.get("ttl", value.get("lease"))
            if hint is not None:
                try:
                    lease = parse_duration(hint)
                except ValueError:
                    lease = DEFAULT_LEASE_TTL
            answer = self._envelope(
                data=copy.deepcopy(value), lease_duration=int(lease.total_seconds())
            )
            return Response(200, answer)
        if call.method in ("POST", "PUT"):
            capability = "update" if key in mount.kv1 else "create"
            denied = self._authorized(call, capability)
            if denied is not None:
                return denied
            if not key:
                return self.error_response(400, "missing path")
            if not call.body:
                return self.error_response(400, "missing data fields")
            mount.kv1[key] = _json_copy(call.body)
            return Response(204)
        if call.method == "DELETE":
            denied = self._authorized(call, "delete")
            if denied is not None:
                return denied
            mount.kv1.pop(key, None)
            return Response(204)
        return self._authorized(call, self._plain_capability(call.method)) or (
            self._unsupported(call)
        )

    def _list_answer(self, keys: list[str]) -> Response:
        if not keys:
            return Response(404, {"errors": []})
        return Response(200, self._envelope(data={"keys": keys}))

    def _unsupported(self, call: _Call) -> Response:
        return self.error_response(405, "1 error occurred:\n\t* unsupported operation\n\n")

    # -- tokens --------------------------------------------------------------------------------

    def _token_api(self, call: _Call, action: str) -> Response:
        if action == "lookup-self" and call.method in ("GET", "POST", "PUT"):
            capability = "read" if call.method == "GET" else "update"
            denied = self._authorized(call, capability)
            if denied is not None:
                return denied
            data = self._describe_token(call.token)
            return Response(200, self._envelope(data=data, mount_type="token"))
        if action == "renew-self" and call.method in ("POST", "PUT"):
            return self._authorized(call, "update") or self._renew_self(call)
        if action == "revoke-self" and call.method in ("POST", "PUT"):
            denied = self._authorized(call, "update")
            if denied is not None:
                return denied
            self._revoke(call.token.id)
            return Response(204)
        if action in ("create", "create-orphan") and call.method in ("POST", "PUT"):
            return self._authorized(call, "update") or self._token_create(
                call, orphan=action == "create-orphan"
            )
        return self._authorized(call, self._plain_capability(call.method)) or self._no_handler(
            call.path
        )

    def _renew_self(self, call: _Call) -> Response:
        token = call.token
        if token.ttl is None or token.expire_time is None:
            return self.error_response(400, "lease not found or lease is not renewable")
        if not token.renewable:
            return self.error_response(400, "lease is not renewable")
        increment = token.ttl
        if call.body.get("increment") not in (None, "", 0):
            try:
                increment = parse_duration(call.body["increment"])
            except ValueError as exc:
                return self.error_response(400, f"Field validation failed: {exc}")
        now = self._now()
        warnings: list[str] | None = None
        ttl = increment
        if token.max_expire_time is not None and now + ttl > token.max_expire_time:
            capped = max(token.max_expire_time - now, timedelta(0))
            warnings = [
                f'TTL of "{go_duration(ttl)}" exceeded the effective max_ttl of '
                f'"{go_duration(capped)}"; TTL value is capped accordingly'
            ]
            ttl = capped
        token.expire_time = now + ttl
        auth = self._auth_block(token, lease=ttl)
        return Response(200, self._envelope(auth=auth, warnings=warnings, mount_type="token"))

    def _token_create(self, call: _Call, *, orphan: bool) -> Response:
        parent = call.token
        body = call.body
        try:
            requested = _string_list(body.get("policies")) if "policies" in body else None
            ttl = parse_duration(body["ttl"]) if body.get("ttl") not in (None, "") else None
            explicit_max = (
                parse_duration(body["explicit_max_ttl"])
                if body.get("explicit_max_ttl") not in (None, "")
                else None
            )
            renewable = _weak_bool(body.get("renewable", True))
            no_default = _weak_bool(body.get("no_default_policy", False))
        except ValueError as exc:
            return self.error_response(400, f"Field validation failed: {exc}")
        names = list(requested) if requested is not None else list(parent.policies)
        if not parent.is_root():
            allowed = set(parent.policies)
            if not set(names) - {"default"} <= allowed:
                return self.error_response(400, "child policies must be subset of parent")
        if not no_default and "root" not in names:
            names.append("default")
        if no_default and "default" in names and requested is None:
            names.remove("default")
        is_root_child = "root" in names
        meta_raw = body.get("meta")
        meta = (
            {str(k): _weak_string(v) for k, v in meta_raw.items()}
            if isinstance(meta_raw, dict)
            else None
        )
        token = self._issue(
            policies=names,
            namespace=call.namespace.path,
            ttl=None if is_root_child and ttl is None else (ttl or DEFAULT_LEASE_TTL),
            max_ttl=explicit_max,
            renewable=renewable and not is_root_child,
            display_name=f"token-{body['display_name']}" if body.get("display_name") else "token",
            path="auth/token/create",
            orphan=orphan,
            meta=meta,
            parent=None if orphan else parent.id,
        )
        lease = token.ttl or timedelta(0)
        auth = self._auth_block(token, lease=lease)
        return Response(200, self._envelope(auth=auth, mount_type="token"))

    def _issue(
        self,
        *,
        policies: Iterable[str],
        namespace: str,
        ttl: timedelta | None,
        max_ttl: timedelta | None,
        renewable: bool,
        display_name: str,
        path: str,
        orphan: bool,
        meta: dict[str, str] | None = None,
        parent: str | None = None,
    ) -> _Token:
        now = self._now()
        limit = max_ttl if max_ttl is not None else SYSTEM_MAX_TTL
        if ttl is not None and ttl > limit:
            ttl = limit
        token = _Token(
            id=f"hvs.{secrets.token_urlsafe(18)}",
            accessor=self._new_accessor(),
            policies=tuple(sorted(set(policies))),
            namespace=namespace,
            issue_time=now,
            ttl=ttl,
            expire_time=None if ttl is None else now + ttl,
            max_expire_time=None if ttl is None else now + limit,
            renewable=renewable,
            display_name=display_name,
            path=path,
            orphan=orphan,
            meta=meta,
            parent=parent,
        )
        self._tokens[token.id] = token
        return token

    def _revoke(self, token_id: str) -> None:
        if self._tokens.pop(token_id, None) is None:
            return
        for child in [t.id for t in self._tokens.values() if t.parent == token_id]:
            self._revoke(child)

    def _live_token(self, token_id: str) -> _Token | None:
        token = self._tokens.get(token_id)
        if token is None:
            return None
        if token.expire_time is not None and token.expire_time <= self._now():
            self._revoke(token_id)  # Vault's expiration manager revokes expired tokens
            return None
        return token

    def _describe_token(self, token: _Token) -> dict[str, Any]:
        now = self._now()
        remaining = (
            0
            if token.expire_time is None
            else max(0, int((token.expire_time - now).total_seconds()))
        )
        data: dict[str, Any] = {
            "accessor": token.accessor,
            "creation_time": int(token.issue_time.timestamp()),
            "creation_ttl": 0 if token.ttl is None else int(token.ttl.total_seconds()),
            "display_name": token.display_name,
            "entity_id": token.entity_id,
            "expire_time": None if token.expire_time is None else rfc3339(token.expire_time),
            "explicit_max_ttl": 0,
            "id": token.id,
            "issue_time": rfc3339(token.issue_time),
            "meta": copy.deepcopy(token.meta),
            "num_uses": 0,
            "orphan": token.orphan,
            "path": token.path,
            "policies": list(token.policies),
            "renewable": token.renewable,
            "ttl": remaining,
            "type": "service",
        }
        if token.namespace:
            data["namespace_path"] = token.namespace + "/"
        return data

    def _auth_block(self, token: _Token, *, lease: timedelta) -> dict[str, Any]:
        return {
            "client_token": token.id,
            "accessor": token.accessor,
            "policies": list(token.policies),
            "token_policies": list(token.policies),
            "metadata": copy.deepcopy(token.meta),
            "lease_duration": int(lease.total_seconds()),
            "renewable": token.renewable,
            "entity_id": token.entity_id,
            "token_type": "service",
            "orphan": token.orphan,
            "mfa_requirement": None,
            "num_uses": 0,
        }

    def _new_accessor(self) -> str:
        return secrets.token_urlsafe(18)

    @staticmethod
    def _token_value(request: Request) -> str:
        value = request.header("X-Vault-Token")
        if value:
            return value.strip()
        authorization = request.header("Authorization") or ""
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return credential.strip()
        return ""

    # -- auth methods --------------------------------------------------------------------------

    def _login_mount(self, ns: _Namespace, path: str) -> _AuthMount | None:
        if not (path.startswith("auth/") and path.endswith("/login")):
            return None
        return ns.auth.get(path[len("auth/") : -len("/login")])

    def _login(self, ns: _Namespace, auth: _AuthMount, body: Mapping[str, Any]) -> Response:
        if auth.kind == "kubernetes":
            role_name = body.get("role")
            jwt = body.get("jwt")
            if not role_name:
                return self.error_response(400, "missing role")
            if not jwt:
                return self.error_response(400, "missing jwt")
            role = auth.kubernetes_roles.get(str(role_name))
            if role is None:
                return self.error_response(400, f'invalid role name "{role_name}"')
            if not any(secrets.compare_digest(str(jwt), known) for known in role.jwts):
                return self.error_response(403, PERMISSION_DENIED)
            claims = _jwt_claims(str(jwt))
            subject = str(claims.get("sub", ""))
            sa_namespace, sa_name = "", ""
            if subject.startswith("system:serviceaccount:"):
                sa_namespace, _, sa_name = subject[len("system:serviceaccount:") :].partition(":")
            k8s = claims.get("kubernetes.io")
            sa_uid = ""
            if isinstance(k8s, dict) and isinstance(k8s.get("serviceaccount"), dict):
                sa_uid = str(k8s["serviceaccount"].get("uid", ""))
            metadata = {
                "role": str(role_name),
                "service_account_name": sa_name,
                "service_account_namespace": sa_namespace,
                "service_account_secret_name": "",
                "service_account_uid": sa_uid,
            }
            token = self._issue(
                policies=[*role.policies, "default"],
                namespace=ns.path,
                ttl=role.ttl,
                max_ttl=role.max_ttl,
                renewable=True,
                display_name=f"{auth.path}-{sa_namespace}-{sa_name}".rstrip("-"),
                path=f"auth/{auth.path}/login",
                orphan=True,
                meta=metadata,
            )
        else:
            role_id = body.get("role_id")
            secret_id = body.get("secret_id")
            if not role_id:
                return self.error_response(400, "missing role_id")
            approle = auth.approles.get(str(role_id))
            if approle is None or not any(
                secrets.compare_digest(str(secret_id or ""), known) for known in approle.secret_ids
            ):
                return self.error_response(400, INVALID_APPROLE)
            token = self._issue(
                policies=[*approle.policies, "default"],
                namespace=ns.path,
                ttl=approle.ttl,
                max_ttl=approle.max_ttl,
                renewable=True,
                display_name=auth.path,
                path=f"auth/{auth.path}/login",
                orphan=True,
                meta={"role_name": approle.role_name},
            )
        answer = self._envelope(
            auth=self._auth_block(token, lease=token.ttl or timedelta(0)), mount_type=auth.kind
        )
        return Response(200, answer)

    # -- sys -----------------------------------------------------------------------------------

    def _health(self, request: Request) -> Response:
        def code(name: str, default: int) -> int:
            raw = request.query_one(name)
            if raw is None or not raw.isdigit():
                return default
            return int(raw)

        now = self._now()
        if self.sealed:
            status = code("sealedcode", 503)
            body: dict[str, Any] = {
                "initialized": True,
                "sealed": True,
                "standby": True,
                "performance_standby": False,
                "replication_performance_mode": "unknown",
                "replication_dr_mode": "unknown",
                "server_time_utc": int(now.timestamp()),
                "version": VAULT_VERSION,
            }
        else:
            status = code("activecode", 200)
            body = {
                "initialized": True,
                "sealed": False,
                "standby": False,
                "performance_standby": False,
                "replication_performance_mode": "disabled",
                "replication_dr_mode": "disabled",
                "server_time_utc": int(now.timestamp()),
                "version": VAULT_VERSION,
                "cluster_name": self.cluster_name,
                "cluster_id": self.cluster_id,
            }
        if request.method == "HEAD":
            return Response(status)
        return Response(status, body)

    def _seal_status(self) -> Response:
        body: dict[str, Any] = {
            "type": "shamir",
            "initialized": True,
            "sealed": self.sealed,
            "t": 1,
            "n": 1,
            "progress": 0,
            "nonce": "",
            "version": VAULT_VERSION,
            "build_date": "2023-11-06T11:33:28Z",
            "migration": False,
            "recovery_seal": False,
            "storage_type": "inmem",
        }
        if not self.sealed:
            body["cluster_name"] = self.cluster_name
            body["cluster_id"] = self.cluster_id
        return Response(200, body)

    def _sys_mounts(self, call: _Call) -> Response:
        if call.method != "GET":
            return self._unsupported(call)
        mounts = {f"{m.path}/": self._describe_mount(m) for m in call.namespace.mounts.values()}
        answer = self._envelope(data=mounts, mount_type="system")
        return Response(200, {**mounts, **answer})

    def _ui_mount(self, call: _Call, path: str) -> Response:
        mount = self._find_mount(call.namespace, path.strip("/"))
        if mount is None:
            return self.error_response(
                400,
                "preflight capability check returned 403, please ensure client's policies "
                f'grant access to path "{path.strip("/")}/"',
            )
        return Response(200, self._envelope(data=self._describe_mount(mount), mount_type="system"))

    @staticmethod
    def _describe_mount(mount: _Mount) -> dict[str, Any]:
        return {
            "accessor": mount.accessor,
            "config": {
                "default_lease_ttl": 0,
                "force_no_cache": False,
                "max_lease_ttl": 0,
            },
            "description": "",
            "external_entropy_access": False,
            "local": False,
            "options": {"version": str(mount.version)},
            "path": f"{mount.path}/",
            "plugin_version": "",
            "seal_wrap": False,
            "type": "kv",
            "uuid": mount.uuid,
        }

    # -- sys/capabilities-self -------------------------------------------------------------------

    def _capabilities_self(self, call: _Call) -> Response:
        """The calling token's capabilities on each path of ``paths``, as Vault computes them.

        ``root`` for a root token; else the capabilities of the most specific matching policy
        pattern (united across the token's policies), sorted; ``deny`` when none matches or the
        match denies. Like Vault, the answer repeats ``data`` at the top level and adds
        ``capabilities`` when exactly one path was asked for (backwards compatibility).
        """
        if call.method not in ("POST", "PUT"):
            return self._unsupported(call)
        denied = self._authorized(call, "update")
        if denied is not None:
            return denied
        paths = _string_list(call.body.get("paths", call.body.get("path")))
        if not paths:
            return self.error_response(400, "paths must be supplied")
        data: dict[str, list[str]] = {}
        for path in paths:
            data[path] = self._capabilities_of(call, path.strip("/"))
        if len(paths) == 1:
            data["capabilities"] = data[paths[0]]
        return Response(200, {**data, **self._envelope(data=data, mount_type="system")})

    def _capabilities_of(self, call: _Call, path: str) -> list[str]:
        """What :meth:`_allows` would grant on ``path`` (relative to the call's namespace)."""
        token = call.token
        if token.is_root():
            return ["root"]
        relative_ns = call.namespace.path[len(token.namespace) :].strip("/")
        full = f"{relative_ns}/{path}" if relative_ns else path
        best: tuple[tuple[int, int, int, int, str], set[str]] | None = None
        for name in token.policies:
            for pattern, caps in self._policies.get(name, {}).items():
                if not _pattern_matches(pattern, full):
                    continue
                rank = _pattern_priority(pattern)
                if best is None or rank > best[0]:
                    best = (rank, set(caps))
                elif rank == best[0]:
                    best[1].update(caps)
        if best is None or not best[1] or "deny" in best[1]:
            return ["deny"]
        return sorted(best[1])

    # -- ACL -----------------------------------------------------------------------------------

    def _authorized(self, call: _Call, capability: str) -> Response | None:
        """None when the call's token may use ``capability`` on its path, else the 403 answer."""
        if self._allows(call, capability):
            return None
        return self.error_response(403, ACL_DENIED)

    def _allows(self, call: _Call, capability: str) -> bool:
        token = call.token
        if token.is_root():
            return True
        relative_ns = call.namespace.path[len(token.namespace) :].strip("/")
        path = f"{relative_ns}/{call.path}" if relative_ns else call.path
        if call.method == "LIST" and not path.endswith("/"):
            path += "/"  # Vault checks list permissions on the folder
        best: tuple[tuple[int, int, int, int, str], set[str]] | None = None
        for name in token.policies:
            for pattern, caps in self._policies.get(name, {}).items():
                if not _pattern_matches(pattern, path):
                    continue
                rank = _pattern_priority(pattern)
                if best is None or rank > best[0]:
                    best = (rank, set(caps))
                elif rank == best[0]:
                    best[1].update(caps)
        if best is None:
            return False
        granted = best[1]
        return "deny" not in granted and capability in granted

    # -- lookups -------------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the Vault emulator's clock must return an aware datetime")
        return now.astimezone(UTC)

    def _namespace(self, namespace: str | None) -> _Namespace:
        path = (namespace or "").strip("/")
        found = self._namespaces.get(path)
        if found is None:
            raise KeyError(f"no namespace {path!r}")
        return found

    def _kv_mount(self, mount: str, namespace: str | None, version: int | None = None) -> _Mount:
        ns = self._namespace(namespace)
        found = ns.mounts.get(mount.strip("/"))
        if found is None:
            raise KeyError(f"no KV mount {mount!r} in namespace {ns.path!r}")
        if version is not None and found.version != version:
            raise ValueError(f"mount {mount!r} is KV v{found.version}, not v{version}")
        return found

    def _auth_mount(self, mount: str, kind: str, namespace: str | None) -> _AuthMount:
        ns = self._namespace(namespace)
        path = mount.strip("/")
        found = ns.auth.get(path)
        if found is None:
            found = ns.auth[path] = _AuthMount(path, kind)
        elif found.kind != kind:
            raise ValueError(f"auth mount {path!r} is a {found.kind} mount")
        return found

    def _resolve(self, header: str, path: str) -> tuple[_Namespace, str]:
        """Split header namespace + request path into (namespace, path inside it)."""
        prefix = header.strip("/")
        rest = f"{prefix}/{path}" if prefix else path
        current = ""
        while True:
            head, slash, tail = rest.partition("/")
            candidate = f"{current}/{head}" if current else head
            if slash and head and candidate in self._namespaces:
                current, rest = candidate, tail
                continue
            break
        return self._namespaces[current], rest

    @staticmethod
    def _within(token_namespace: str, namespace: str) -> bool:
        return token_namespace in ("", namespace) or namespace.startswith(token_namespace + "/")

    @staticmethod
    def _find_mount(ns: _Namespace, path: str) -> _Mount | None:
        best: _Mount | None = None
        for mount in ns.mounts.values():
            if (path == mount.path or path.startswith(mount.path + "/")) and (
                best is None or len(mount.path) > len(best.path)
            ):
                best = mount
        return best

    def _envelope(
        self,
        *,
        data: Any = None,
        auth: Any = None,
        warnings: list[str] | None = None,
        lease_duration: int = 0,
        mount_type: str = "kv",
    ) -> dict[str, Any]:
        return {
            "request_id": str(uuid.uuid4()),
            "lease_id": "",
            "renewable": False,
            "lease_duration": lease_duration,
            "data": data,
            "wrap_info": None,
            "warnings": warnings,
            "auth": auth,
            "mount_type": mount_type,
        }


# -- module helpers -------------------------------------------------------------------------------


def go_json(value: Any) -> bytes:
    """JSON as Go's ``json.Encoder`` writes it: compact, HTML-safe escapes, trailing newline."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text.encode() + b"\n"


def _go_encoded(response: Response) -> Response:
    """Fix the response bytes to Go's encoding (Vault's bodies byte for byte)."""
    if response.raw is None and response.body is not None:
        response.raw = go_json(response.body)
    response.content_type = "application/json"
    return response


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch (what Vault's ``HandlePatchOperation`` applies)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _custom_metadata_problems(custom: Mapping[str, str]) -> list[str]:
    """The KV plugin's ``validateCustomMetadata`` messages, in its order."""
    if len(custom) > _CUSTOM_METADATA_MAX_KEYS:
        return [
            f"{_CUSTOM_METADATA_PREFIX}: payload must contain at most "
            f"{_CUSTOM_METADATA_MAX_KEYS} keys, provided {len(custom)}"
        ]
    problems: list[str] = []
    for key, value in custom.items():
        if not 0 < len(key) <= _CUSTOM_METADATA_MAX_KEY_LENGTH:
            problems.append(
                f"{_CUSTOM_METADATA_PREFIX}: length of key {json.dumps(key)} is {len(key)} "
                f"but must be 0 < len(key) <= {_CUSTOM_METADATA_MAX_KEY_LENGTH}"
            )
        if not 0 < len(value) <= _CUSTOM_METADATA_MAX_VALUE_LENGTH:
            problems.append(
                f"{_CUSTOM_METADATA_PREFIX}: length of value for key {json.dumps(key)} is "
                f"{len(value)} but must be 0 < len(value) <= {_CUSTOM_METADATA_MAX_VALUE_LENGTH}"
            )
        if not key.isprintable():
            problems.append(
                f"{_CUSTOM_METADATA_PREFIX}: key {json.dumps(key)} ({key}) contains "
                "unprintable characters"
            )
        if not value.isprintable():
            problems.append(
                f"{_CUSTOM_METADATA_PREFIX}: value for key {json.dumps(key)} contains "
                "unprintable characters"
            )
    return problems


def _multierror(problems: Sequence[str]) -> str:
    """Format like hashicorp/go-multierror's ``Error()``."""
    noun = "error" if len(problems) == 1 else "errors"
    lines = "".join(f"\t* {p}\n" for p in problems)
    return f"{len(problems)} {noun} occurred:\n{lines}\n"


def _pattern_matches(pattern: str, path: str) -> bool:
    """Vault policy path matching: ``+`` is one segment, a trailing ``*`` any suffix."""
    glob = pattern.endswith("*")
    body = pattern[:-1] if glob else pattern
    regex = "".join("[^/]*" if ch == "+" else re.escape(ch) for ch in body)
    return re.fullmatch(regex + (".*" if glob else ""), path) is not None


def _pattern_priority(pattern: str) -> tuple[int, int, int, int, str]:
    """Higher is more specific, following Vault's documented priority rules."""
    positions = [i for i, ch in enumerate(pattern) if ch in "+*"]
    first_wildcard = positions[0] if positions else len(pattern) + 1
    return (
        first_wildcard,
        0 if pattern.endswith("*") else 1,
        -pattern.count("+"),
        len(pattern),
        pattern,
    )
