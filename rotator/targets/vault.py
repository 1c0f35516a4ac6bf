"""The ``vault-kv`` target: one field of a Vault KV secret (engine version 1 or 2), and the session.

:class:`VaultSession` is the one authenticated ``hvac.Client`` every vault-kv target of a run
shares. It logs in lazily, on the first call, with a static token (:class:`TokenAuth`), AppRole
(:class:`AppRoleAuth`) or Kubernetes auth (:class:`KubernetesAuth`, whose JWT is re-read from its
file at each login, so projected service-account tokens that kubelet rotates keep working).
After a login it remembers the lease; before each call, :meth:`VaultSession.ensure_fresh` renews
the token (``renew-self``) once less than a third of its TTL remains, and logs in again when
renewal is refused or cannot extend the token any more (its max TTL is reached).

A 403 does not say why. HashiCorp Vault answers a revoked, expired or unknown token with
``permission denied, invalid token``, but OpenBao answers it with a bare ``permission denied``,
the very text of a policy denial; so the session never decides from the text alone:

- a login-based session (AppRole, Kubernetes) that gets a 403 logs in once more and retries that
  one call once — a failed call changed nothing, so the retry is safe (I6); a second 403 is a
  real permission denial and is reported as such;
- a static token is never replaced: it is looked up once (``lookup-self``) to learn its TTL and
  renewed when it is renewable. On a 403 it is looked up again: when ``lookup-self`` answers, the
  token is valid and the path is denied by policy; when it is refused too, the token is invalid
  (expired, revoked, unknown) — or, since ``lookup-self`` needs the ``default`` policy, a token
  without it, and the error says both. Either way :class:`~rotator.errors.TargetForbidden`.

Logins and renewals are allowed in dry-run (I5). Tokens obtained by a login are registered
with :func:`rotator.secrets.register_secret` (the log redactor masks them) and are not revoked on
close: they expire with their TTL.

KV v2. A data key ``K`` of path ``P`` is described by two ``custom_metadata`` entries of ``P``:

- ``rotator.stackstate.io/K`` — :meth:`KeyMetadata.to_json` of the value last written;
- ``previous.rotator.stackstate.io/K`` — the entry of the value that write replaced.

A different prefix rather than a suffix keeps the two names apart from any other data key's
(``K.previous`` could be a data key). Vault limits a custom_metadata key to 128 characters and a
value to 512: when a data key is too long (over 97 characters, or unprintable) both names use
``sha256-<32 hex of the data key>`` in place of ``K``; when an entry's JSON is over 512
characters, the key names are left out of it (``previous-key-name``, then ``key-name``; the ids
stay). :meth:`VaultKvTarget.read` returns the entry whose fingerprint matches the value held.

A write reads the latest version (data, version number, custom_metadata), writes the
custom_metadata first — the whole map, since Vault replaces it: every other entry is kept —, then
the data with check-and-set on the version read (``cas=0`` for a new path), keeping every other
field of the secret. The order matters for crash safety (as in the ``file`` target): killed
between the two writes, the path still holds the old value and the ``previous`` entry still
describes it, while the new key, described but never pushed, is an orphan the sweep deletes. The
other order would leave a managed value that no metadata describes. A check-and-set mismatch
(someone wrote in between) is retried once from a fresh read, then raises
:class:`~rotator.errors.TargetConflict`. The custom_metadata write has no check-and-set: a
concurrent change of *another* entry between our read and write is lost (leader election makes
the rotator the only writer of its own entries). The metadata is written with a bare
``POST {mount}/metadata/{path}`` carrying only ``custom_metadata``: hvac's ``update_metadata``
always sends ``delete_version_after`` and would reset a key's own setting. A soft-deleted or
destroyed latest version reads as empty; writing over it uses its version number for the
check-and-set. The mount's engine version is checked once per session
(``sys/internal/ui/mounts``), so a v2 target on a v1 mount (or the reverse) fails instead of
writing an envelope as plain data.

KV v1. The value is field ``K``; its metadata is the sibling field ``_rotator.K`` holding the
same JSON, so consumers that read the whole path (e.g. an ``envFrom``-style sync) see that field
too. Value and metadata go in one write of the whole secret (read, merge, write): atomic, no
ordering problem. KV v1 has no check-and-set, so a concurrent writer's change of another field
between our read and our write is lost — one more reason to prefer KV v2.

Errors are translated in one place, :func:`map_error`::

    403 / 401, token invalid ......................... TargetForbidden ("token is invalid ...")
    403 / 401, token valid: denied by policy ......... TargetForbidden ("... by vault policy")
    login refused (400/403/404 at auth/*/login) ...... TargetForbidden
    400 check-and-set mismatch ....................... TargetConflict
    other 400 ........................................ TargetInvalid
    404 (no such mount / route) ...................... TargetInvalid
    503 sealed / standby, 500, 501, 502, 429 ......... TargetUnavailable
    connection refused, TLS, timeout ................. TargetUnavailable
    anything else hvac or requests raise ............. TargetUnavailable (class name)

A 404 on reading a secret that does not exist is not an error: the target is empty. Messages
quote Vault's own error strings (which never echo request data) through
:func:`rotator.secrets.redact`, never a request or response body, never a token; hvac's
exceptions are dropped from the chain (``from None``) since their text may hold a response body.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

import hvac
import hvac.exceptions
import requests
import structlog
from hvac import utils as hvac_utils

from rotator.errors import (
    TargetConflict,
    TargetError,
    TargetForbidden,
    TargetInvalid,
    TargetUnavailable,
)
from rotator.secrets import Secret, redact, register_secret
from rotator.targets.base import METADATA_PREFIX, KeyMetadata, TargetState

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Prefix of the custom_metadata entry describing the value written last (KV v2).
CURRENT_PREFIX: Final = f"{METADATA_PREFIX}/"
#: Prefix of the entry describing the value that write replaced (KV v2).
PREVIOUS_PREFIX: Final = f"previous.{METADATA_PREFIX}/"
#: Prefix of the sibling field holding the metadata JSON (KV v1).
V1_METADATA_PREFIX: Final = "_rotator."

#: Vault's limits on custom_metadata (KV plugin ``validateCustomMetadata``).
MAX_METADATA_KEY: Final = 128
MAX_METADATA_VALUE: Final = 512

#: The fraction of a token's TTL below which the session renews it.
RENEW_FRACTION: Final = 1 / 3

#: How long a caller should wait after losing the check-and-set twice (seconds).
_CONFLICT_DELAY: Final = 5.0
#: Longest Vault error text quoted in a message.
_MAX_MESSAGE: Final = 300
_CAS_MISMATCH = "check-and-set parameter did not match"
_MULTIERROR = re.compile(r"^\d+ errors? occurred:")

#: What the session found out about the token of a 403: ``valid`` (denied by policy),
#: ``invalid`` (expired, revoked or unknown), ``unknown`` (``lookup-self`` refused without saying
#: why: an invalid token, or a token without the ``default`` policy).
TokenVerdict = Literal["valid", "invalid", "unknown"]


# -- authentication -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenAuth:
    """A static Vault token: used as it is, renewed when renewable, never replaced."""

    token: Secret

    def describe(self) -> str:
        """What the auth is, for messages (never the token)."""
        return "token"


@dataclass(frozen=True)
class AppRoleAuth:
    """AppRole login with a role id and a secret id at ``auth/{mount}/login``."""

    role_id: str
    secret_id: Secret
    mount: str = "approle"

    def describe(self) -> str:
        """What the auth is, for messages (never the secret id)."""
        return f"approle at auth/{self.mount}"


@dataclass(frozen=True)
class KubernetesAuth:
    """Kubernetes login with the service-account JWT in ``jwt_file`` (re-read at each login)."""

    role: str
    jwt_file: Path
    mount: str = "kubernetes"

    def describe(self) -> str:
        """What the auth is, for messages (never the JWT)."""
        return f"kubernetes role {self.role} at auth/{self.mount}"


VaultAuth = TokenAuth | AppRoleAuth | KubernetesAuth


@dataclass(frozen=True)
class _Lease:
    """What the session knows of its token's lifetime, by its own clock."""

    ttl: timedelta | None  # what the login granted; None: never expires (or unknown)
    expires_at: datetime | None
    renewable: bool


class VaultSession:
    """One authenticated hvac client shared by every vault-kv target of a run.

    ``clock`` (aware UTC ``now``) measures token lifetimes; tests pass the emulator's clock.
    ``http`` is the ``requests.Session`` hvac sends through (default: a new one); a caller may
    give one with its own adapters or response hooks, e.g. to watch the calls made.
    """

    def __init__(
        self,
        *,
        url: str,
        namespace: str | None,
        ca_file: Path | None,
        timeout: float,
        auth: VaultAuth,
        clock: Callable[[], datetime] | None = None,
        http: requests.Session | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.namespace = namespace.strip("/") if namespace else None
        self.ca_file = ca_file
        self.timeout = timeout
        self.auth = auth
        self._clock = clock or (lambda: datetime.now(UTC))
        self._http = http
        self._lock = threading.RLock()
        self._client: hvac.Client | None = None
        self._lease: _Lease | None = None
        #: Incremented by every login, so concurrent callers re-login once per dead token.
        self._generation = 0
        #: KV version of each mount checked so far (None: Vault would not tell).
        self._mounts: dict[str, int | None] = {}

    # -- public API ------------------------------------------------------------------------------

    def describe(self) -> str:
        """``vault <host>[ namespace <ns>]`` for messages and plans."""
        host = urlsplit(self.url).netloc or self.url
        return f"vault {host}" + (f" namespace {self.namespace}" if self.namespace else "")

    def client(self) -> hvac.Client:
        """The hvac client, logged in and with a fresh token."""
        return self._fresh(f"{self.describe()}: vault auth ({self.auth.describe()})")

    def ensure_fresh(self) -> None:
        """Log in if not yet done, renew a token running low, or log in again (see module doc)."""
        self._fresh(f"{self.describe()}: vault auth ({self.auth.describe()})")

    def call(self, operation: Callable[[hvac.Client], T], *, where: str) -> T:
        """Run one Vault call on a fresh client; errors come out translated (:func:`map_error`).

        On a 403 a login-based session logs in again and runs ``operation`` once more (a second
        403 is a permission denial); a static token is never replaced: ``lookup-self`` tells an
        invalid token from a policy denial, and TargetForbidden says which (see module doc).
        """
        auth_where = f"{where}: vault auth ({self.auth.describe()})"
        client = self._fresh(auth_where)
        generation = self._generation
        try:
            return operation(client)
        except hvac.exceptions.Forbidden as exc:
            if isinstance(self.auth, TokenAuth):
                raise self._static_denied(exc, where) from None
        except Exception as exc:  # noqa: BLE001 - every failure is translated, none escapes raw
            raise self._mapped(exc, where) from None
        with self._lock:
            if self._generation == generation:
                # Maybe revoked or expired behind our back (OpenBao does not say which): one
                # new login, then one retry.
                log.warning("vault.forbidden", auth=self.auth.describe(), action="login")
                self._login(auth_where)
            client = self._require_client()
        try:
            return operation(client)
        except Exception as exc:  # noqa: BLE001 - as above; a 403 now is a policy denial
            raise self._mapped(exc, where) from None

    def kv_version(self, mount: str, *, where: str) -> int | None:
        """The KV version of ``mount`` (cached), or None when Vault does not tell us.

        Raises TargetInvalid when the mount exists but is not a KV engine.
        """
        if mount in self._mounts:
            return self._mounts[mount]

        def lookup(client: hvac.Client) -> dict[str, Any] | None:
            url = hvac_utils.format_url("/v1/sys/internal/ui/mounts/{mount}", mount=mount)
            try:
                return _mapping(client.adapter.get(url))
            except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden) as exc:
                if not _preflight_refusal(exc):
                    raise  # a refused token: the session decides (log in again, or report)
                # Vault answers "preflight capability check returned 403" both for a missing
                # mount and for one we may not see: let the real call say which it is.
                return None

        answer = self.call(lookup, where=where)
        if answer is None:
            self._mounts[mount] = None
            return None
        info = _mapping(answer.get("data"))
        engine = str(info.get("type") or "")
        if engine not in ("kv", "generic"):
            raise TargetInvalid(f"{where}: mount {mount} is a {engine or 'unknown'} engine, not kv")
        options = _mapping(info.get("options"))
        version = 2 if str(options.get("version") or "1") == "2" else 1
        self._mounts[mount] = version
        return version

    def close(self) -> None:
        """Close the HTTP session (the token is left to expire)."""
        with self._lock:
            if self._client is not None:
                self._client.adapter.close()
            self._client = None
            self._lease = None

    # -- token lifecycle -------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self._clock()

    def _require_client(self) -> hvac.Client:
        if self._client is None:
            # "" rather than None: hvac would fall back to VAULT_TOKEN / ~/.vault-token.
            self._client = hvac.Client(
                url=self.url,
                token="",
                verify=str(self.ca_file) if self.ca_file else True,
                timeout=self.timeout,
                namespace=self.namespace,
                session=self._http,
            )
        return self._client

    def _fresh(self, where: str) -> hvac.Client:
        with self._lock:
            lease = self._lease
            if lease is None:
                self._login(where)
                return self._require_client()
            if lease.ttl is None or lease.expires_at is None:
                return self._require_client()
            remaining = lease.expires_at - self._now()
            if remaining > lease.ttl * RENEW_FRACTION:
                return self._require_client()
            if remaining > timedelta(0) and lease.renewable and self._renew(where, lease):
                return self._require_client()
            if isinstance(self.auth, TokenAuth):
                if remaining <= timedelta(0):
                    raise TargetForbidden(
                        f"{where}: permission denied, the configured token has expired "
                        "(a static token is never replaced: configure a new one)"
                    )
                return self._require_client()  # nothing more to do until it expires
            self._login(where)
            return self._require_client()

    def _login(self, where: str) -> None:
        """Obtain a token (or adopt the static one) and remember its lease."""
        client = self._require_client()
        auth = self.auth
        now = self._now()
        try:
            if isinstance(auth, TokenAuth):
                client.token = auth.token.reveal()
                lease = self._lookup_static(client)
            else:
                if isinstance(auth, AppRoleAuth):
                    answer = client.auth.approle.login(
                        role_id=auth.role_id,
                        secret_id=auth.secret_id.reveal(),
                        mount_point=auth.mount,
                    )
                else:
                    answer = client.auth.kubernetes.login(
                        role=auth.role, jwt=_read_jwt(auth.jwt_file, where), mount_point=auth.mount
                    )
                granted = _mapping(_mapping(answer).get("auth"))
                token = str(granted.get("client_token") or "")
                register_secret(token)
                client.token = token
                ttl = _seconds(granted.get("lease_duration"))
                lease = _Lease(
                    ttl=ttl,
                    expires_at=None if ttl is None else now + ttl,
                    renewable=bool(granted.get("renewable")),
                )
        except TargetError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated, none escapes raw
            raise map_error(
                exc,
                where=where,
                timeout=self.timeout,
                auth=auth.describe(),
                login=not isinstance(auth, TokenAuth),
            ) from None
        if not client.token:
            raise TargetForbidden(f"{where}: vault login answered without a token")
        self._lease = lease
        self._generation += 1
        log.info(
            "vault.login",
            auth=auth.describe(),
            ttl_seconds=None if lease.ttl is None else int(lease.ttl.total_seconds()),
            renewable=lease.renewable,
        )

    def _lookup_static(self, client: hvac.Client) -> _Lease:
        """The lease of the static token from ``lookup-self`` (unknown if not allowed)."""
        now = self._now()
        try:
            answer = client.auth.token.lookup_self()
        except hvac.exceptions.Forbidden as exc:
            if _invalid_token(exc):
                raise
            # No lookup-self permission (a token without the default policy): we cannot know
            # its TTL, so we only learn of its expiry when a call is refused.
            return _Lease(ttl=None, expires_at=None, renewable=False)
        data = _mapping(_mapping(answer).get("data"))
        remaining = _seconds(data.get("ttl"))
        if remaining is None:
            return _Lease(ttl=None, expires_at=None, renewable=False)  # root: never expires
        ttl = _seconds(data.get("creation_ttl")) or remaining
        return _Lease(ttl=ttl, expires_at=now + remaining, renewable=bool(data.get("renewable")))

    def _renew(self, where: str, lease: _Lease) -> bool:
        """Renew the token; False when it cannot be extended (refused, or at its max TTL)."""
        client = self._require_client()
        now = self._now()
        try:
            answer = client.auth.token.renew_self()
        except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest) as exc:
            # Revoked, expired, or "lease is not renewable": only a new login helps.
            log.warning("vault.renew_refused", auth=self.auth.describe(), reason=_said(exc))
            self._lease = dataclasses.replace(lease, renewable=False)
            return False
        except Exception as exc:  # noqa: BLE001 - translated, none escapes raw
            raise map_error(exc, where=where, timeout=self.timeout) from None
        granted = _mapping(_mapping(answer).get("auth"))
        duration = _seconds(granted.get("lease_duration")) or timedelta(0)
        renewable = bool(granted.get("renewable"))
        self._lease = _Lease(ttl=lease.ttl, expires_at=now + duration, renewable=renewable)
        log.info(
            "vault.token_renewed",
            auth=self.auth.describe(),
            ttl_seconds=int(duration.total_seconds()),
        )
        if lease.ttl is not None and duration <= lease.ttl * RENEW_FRACTION:
            # Capped by the token's max TTL: renewing again cannot keep it alive.
            self._lease = dataclasses.replace(self._lease, renewable=False)
            return False
        return True

    def _static_denied(self, exc: hvac.exceptions.Forbidden, where: str) -> TargetError:
        """Why a static token got a 403, found out with ``lookup-self`` (see module doc)."""
        verdict: TokenVerdict
        try:
            self._require_client().auth.token.lookup_self()
        except hvac.exceptions.Forbidden as refused:
            verdict = "invalid" if _invalid_token(refused) or _invalid_token(exc) else "unknown"
        except Exception as failed:  # noqa: BLE001 - cannot tell: report the call's own 403
            log.warning(
                "vault.lookup_self_failed", auth=self.auth.describe(), error=type(failed).__name__
            )
            return self._mapped(exc, where)
        else:
            verdict = "valid"
        log.warning("vault.forbidden", auth=self.auth.describe(), verdict=verdict)
        return self._mapped(exc, where, verdict=verdict)

    def _mapped(
        self, exc: Exception, where: str, *, verdict: TokenVerdict | None = None
    ) -> TargetError:
        if isinstance(exc, TargetError):
            return exc
        return map_error(
            exc, where=where, timeout=self.timeout, auth=self.auth.describe(), verdict=verdict
        )


# -- the target -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    """The latest version of a KV v2 secret as read before a write."""

    data: dict[str, Any] | None  # None: no such secret, or its latest version is deleted
    version: int  # the current version number (0: none), what check-and-set must carry
    custom: dict[str, str] | None  # custom_metadata; None: the answer did not say


class VaultKvTarget:
    """A field of a secret in a Vault KV engine (v1 or v2), through a shared session."""

    def __init__(
        self,
        session: VaultSession,
        *,
        mount: str,
        path: str,
        key: str,
        kv_version: Literal[1, 2],
    ) -> None:
        self.session = session
        self.mount = mount.strip("/")
        self.path = path.strip("/")
        self.key = key
        self.kv_version: Literal[1, 2] = kv_version
        if not self.mount or not self.path or not key:
            raise TargetInvalid(f"{self.id}: mount, path and key must not be empty")
        if kv_version not in (1, 2):
            raise TargetInvalid(f"{self.id}: kv_version must be 1 or 2")

    # -- Target protocol -------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """``vault-kv:[ns=namespace/]mount/path[key]``."""
        ns = f"ns={self.session.namespace}/" if self.session.namespace else ""
        return f"vault-kv:{ns}{self.mount}/{self.path}[{self.key}]"

    def describe(self) -> str:
        """One line for plans."""
        return (
            f"Vault KV v{self.kv_version} {self.mount}/{self.path} key {self.key} "
            f"({self.session.describe()})"
        )

    def read(self) -> TargetState:
        """The value of our field and the metadata entry describing it (nothing there: empty)."""
        self._check_mount()
        if self.kv_version == 1:
            data = self._read_v1()
            value = self._value(data)
            metadata = None
            if value is not None and data is not None:
                found = KeyMetadata.from_json(_str_or_none(data.get(self.v1_metadata_field)))
                if found is not None and found.fingerprint == value.fingerprint:
                    metadata = found
            return TargetState(value=value, metadata=metadata, version=None)
        snapshot = self._read_v2()
        value = self._value(snapshot.data)
        metadata = None
        if value is not None:
            metadata = self._describing(snapshot.custom or {}, value.fingerprint)
        version = str(snapshot.version) if snapshot.version else None
        return TargetState(value=value, metadata=metadata, version=version)

    def write(self, value: Secret, metadata: KeyMetadata) -> None:
        """Write the value and its metadata, keeping every other field and metadata entry."""
        self._check_mount()
        if self.kv_version == 1:
            self._write_v1(value, metadata)
            return
        try:
            self._write_v2_once(value, metadata)
        except TargetConflict:
            log.info("vault.cas_conflict", target=self.id, action="retry")
            try:
                self._write_v2_once(value, metadata)
            except TargetConflict:
                raise TargetConflict(
                    f"{self.id}: check-and-set failed twice, another writer keeps changing "
                    "the secret",
                    delay=_CONFLICT_DELAY,
                ) from None

    def write_metadata(self, metadata: KeyMetadata) -> None:
        """Replace the metadata entry of ``metadata.fingerprint``; the value is not touched."""
        self._check_mount()
        if self.kv_version == 1:
            data = dict(self._read_v1() or {})
            data[self.v1_metadata_field] = metadata.to_json()
            self._put_v1(data)
            return
        snapshot = self._with_custom(self._read_v2())
        custom = dict(snapshot.custom or {})
        current = KeyMetadata.from_json(custom.get(self.current_metadata_key))
        previous = KeyMetadata.from_json(custom.get(self.previous_metadata_key))
        if current is not None and current.fingerprint == metadata.fingerprint:
            entries = self._entries(custom, metadata, previous)
        elif (
            current is not None
            and previous is not None
            and previous.fingerprint == (metadata.fingerprint)
        ):
            entries = self._entries(custom, current, metadata)
        else:
            held = _describing_held(current, previous, self._value(snapshot.data), metadata)
            entries = self._entries(custom, metadata, held)
        self._post_custom(entries)

    # -- metadata names ---------------------------------------------------------------------------

    @property
    def current_metadata_key(self) -> str:
        """custom_metadata key of the entry for the value written last (KV v2)."""
        return CURRENT_PREFIX + self._metadata_name()

    @property
    def previous_metadata_key(self) -> str:
        """custom_metadata key of the entry for the value the last write replaced (KV v2)."""
        return PREVIOUS_PREFIX + self._metadata_name()

    @property
    def v1_metadata_field(self) -> str:
        """The sibling field holding our metadata JSON (KV v1)."""
        return V1_METADATA_PREFIX + self.key

    def _metadata_name(self) -> str:
        """The data key, or its hash when a metadata key naming it would exceed Vault's limit."""
        longest = len(PREVIOUS_PREFIX) + len(self.key)
        if longest <= MAX_METADATA_KEY and self.key.isprintable():
            return self.key
        return "sha256-" + hashlib.sha256(self.key.encode("utf-8")).hexdigest()[:32]

    # -- KV v2 -----------------------------------------------------------------------------------

    def _read_v2(self) -> _Snapshot:
        def read(client: hvac.Client) -> _Snapshot:
            try:
                answer = client.secrets.kv.v2.read_secret_version(
                    path=self.path, mount_point=self.mount, raise_on_deleted_version=True
                )
            except hvac.exceptions.InvalidPath as exc:
                body = exc.json
                if exc.errors or not isinstance(body, dict):
                    raise  # "no handler for route": no such mount, mapped by the session
                # Missing secret (404 {"errors": []}), or a deleted / destroyed latest version
                # (404 with the envelope and data.data null): empty.
                meta = _mapping(_mapping(body.get("data")).get("metadata"))
                return _Snapshot(data=None, version=_int(meta.get("version")), custom=_custom(meta))
            content = _mapping(_mapping(answer).get("data"))
            meta = _mapping(content.get("metadata"))
            data = content.get("data")
            return _Snapshot(
                data=dict(data) if isinstance(data, dict) else None,
                version=_int(meta.get("version")),
                custom=_custom(meta),
            )

        return self.session.call(read, where=self.id)

    def _with_custom(self, snapshot: _Snapshot) -> _Snapshot:
        """Fill in custom_metadata (and the version) from the metadata endpoint when unknown."""
        if snapshot.custom is not None:
            return snapshot

        def read(client: hvac.Client) -> dict[str, Any]:
            try:
                answer = client.secrets.kv.v2.read_secret_metadata(
                    path=self.path, mount_point=self.mount
                )
            except hvac.exceptions.InvalidPath as exc:
                if exc.errors:
                    raise
                return {}
            return _mapping(answer)

        meta = _mapping(self.session.call(read, where=self.id).get("data"))
        version = _int(meta.get("current_version")) or snapshot.version
        return _Snapshot(data=snapshot.data, version=version, custom=_custom(meta) or {})

    def _write_v2_once(self, value: Secret, metadata: KeyMetadata) -> None:
        snapshot = self._with_custom(self._read_v2())
        custom = dict(snapshot.custom or {})
        held = self._value(snapshot.data)
        previous = _describing_held(
            KeyMetadata.from_json(custom.get(self.current_metadata_key)),
            KeyMetadata.from_json(custom.get(self.previous_metadata_key)),
            held,
            metadata,
        )
        # Metadata first: see the module docstring for why this order is crash-safe.
        self._post_custom(self._entries(custom, metadata, previous))
        data = dict(snapshot.data or {})
        data[self.key] = value.reveal()

        def put(client: hvac.Client) -> None:
            client.secrets.kv.v2.create_or_update_secret(
                path=self.path, secret=data, cas=snapshot.version, mount_point=self.mount
            )

        self.session.call(put, where=self.id)

    def _entries(
        self, custom: dict[str, str], current: KeyMetadata, previous: KeyMetadata | None
    ) -> dict[str, str]:
        """``custom`` with our two entries set (previous removed when there is none)."""
        merged = dict(custom)
        merged[self.current_metadata_key] = self._encode(current)
        if previous is None:
            merged.pop(self.previous_metadata_key, None)
        else:
            merged[self.previous_metadata_key] = self._encode(previous)
        return merged

    def _encode(self, metadata: KeyMetadata) -> str:
        """Compact JSON within Vault's 512-character limit (names dropped if needed)."""
        for candidate in (
            metadata,
            dataclasses.replace(metadata, previous_key_name=None),
            dataclasses.replace(metadata, previous_key_name=None, key_name=None),
        ):
            text = candidate.to_json()
            if len(text) <= MAX_METADATA_VALUE:
                return text
        raise TargetInvalid(
            f"{self.id}: metadata does not fit Vault's {MAX_METADATA_VALUE}-character limit"
        )

    def _post_custom(self, custom: dict[str, str]) -> None:
        def post(client: hvac.Client) -> None:
            url = hvac_utils.format_url(
                "/v1/{mount}/metadata/{path}", mount=self.mount, path=self.path
            )
            client.adapter.post(url, json={"custom_metadata": custom})

        self.session.call(post, where=self.id)

    def _describing(self, custom: Mapping[str, str], fingerprint: str) -> KeyMetadata | None:
        """The entry (current or previous) whose fingerprint is ``fingerprint``."""
        for name in (self.current_metadata_key, self.previous_metadata_key):
            found = KeyMetadata.from_json(custom.get(name))
            if found is not None and found.fingerprint == fingerprint:
                return found
        return None

    # -- KV v1 -----------------------------------------------------------------------------------

    def _read_v1(self) -> dict[str, Any] | None:
        def read(client: hvac.Client) -> dict[str, Any] | None:
            try:
                answer = client.secrets.kv.v1.read_secret(path=self.path, mount_point=self.mount)
            except hvac.exceptions.InvalidPath as exc:
                if exc.errors or not isinstance(exc.json, dict):
                    raise
                return None
            data = _mapping(answer).get("data")
            return dict(data) if isinstance(data, dict) else {}

        return self.session.call(read, where=self.id)

    def _write_v1(self, value: Secret, metadata: KeyMetadata) -> None:
        data = dict(self._read_v1() or {})
        data[self.key] = value.reveal()
        data[self.v1_metadata_field] = metadata.to_json()
        self._put_v1(data)

    def _put_v1(self, data: dict[str, Any]) -> None:
        def put(client: hvac.Client) -> None:
            client.secrets.kv.v1.create_or_update_secret(
                path=self.path, secret=data, method="PUT", mount_point=self.mount
            )

        self.session.call(put, where=self.id)

    # -- shared ----------------------------------------------------------------------------------

    def _check_mount(self) -> None:
        found = self.session.kv_version(self.mount, where=self.id)
        if found is not None and found != self.kv_version:
            raise TargetInvalid(
                f"{self.id}: mount {self.mount} is a KV v{found} engine, the target says "
                f"kv_version {self.kv_version}"
            )

    def _value(self, data: Mapping[str, Any] | None) -> Secret | None:
        raw = None if data is None else data.get(self.key)
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise TargetInvalid(f"{self.id}: field {self.key} is not a string")
        return Secret(raw)


# -- error translation ----------------------------------------------------------------------------


def map_error(
    exc: BaseException,
    *,
    where: str,
    timeout: float,
    auth: str = "token",
    login: bool = False,
    verdict: TokenVerdict | None = None,
) -> TargetError:
    """Translate an hvac or requests failure into the rotator's error tree.

    The one place this module does so (see the module docstring for the table). ``where``
    starts the message (a target id); ``auth`` names the auth method for an invalid token;
    ``login`` marks a failed login, whose refusals all mean the credentials need a human.
    ``verdict`` is what the session found out about the token of a 403 (:data:`TokenVerdict`);
    without one, only Vault's ``invalid token`` text marks the token as invalid.
    """
    name = type(exc).__name__
    if isinstance(exc, hvac.exceptions.VaultError):
        said = _said(exc)
        detail = f": {said}" if said else ""
        if login and isinstance(
            exc,
            hvac.exceptions.Forbidden
            | hvac.exceptions.Unauthorized
            | hvac.exceptions.InvalidRequest
            | hvac.exceptions.InvalidPath,
        ):
            return TargetForbidden(f"{where}: vault login refused, permission denied{detail}")
        if isinstance(exc, hvac.exceptions.Forbidden | hvac.exceptions.Unauthorized):
            if verdict is None:
                verdict = "invalid" if _invalid_token(exc) else "valid"
            if verdict == "invalid":
                return TargetForbidden(
                    f"{where}: permission denied, vault auth ({auth}) token is invalid, "
                    "expired or revoked"
                )
            if verdict == "unknown":
                return TargetForbidden(
                    f"{where}: permission denied, vault auth ({auth}): invalid token, or a "
                    "token without the default policy (auth/token/lookup-self is refused too)"
                )
            return TargetForbidden(f"{where}: permission denied by vault policy{detail}")
        if isinstance(exc, hvac.exceptions.InvalidRequest):
            if _CAS_MISMATCH in said:
                return TargetConflict(
                    f"{where}: check-and-set failed, the secret changed since it was read",
                    delay=_CONFLICT_DELAY,
                )
            return TargetInvalid(f"{where}: vault refused the request (400){detail}")
        if isinstance(exc, hvac.exceptions.InvalidPath):
            return TargetInvalid(f"{where}: no such mount or path in vault (404){detail}")
        if isinstance(exc, hvac.exceptions.VaultDown):
            return TargetUnavailable(f"{where}: vault is unavailable (503){detail}")
        statuses = {
            hvac.exceptions.RateLimitExceeded: 429,
            hvac.exceptions.InternalServerError: 500,
            hvac.exceptions.VaultNotInitialized: 501,
            hvac.exceptions.BadGateway: 502,
        }
        for kind, status in statuses.items():
            if isinstance(exc, kind):
                return TargetUnavailable(f"{where}: vault answered {status}{detail}")
        return TargetUnavailable(f"{where}: unexpected vault error ({name}){detail}")
    if isinstance(exc, requests.Timeout):
        return TargetUnavailable(f"{where}: vault did not answer within {timeout:g}s")
    if isinstance(exc, requests.exceptions.SSLError):
        return TargetUnavailable(f"{where}: TLS handshake with vault failed")
    if isinstance(exc, requests.ConnectionError):
        return TargetUnavailable(f"{where}: cannot connect to vault ({name})")
    if isinstance(exc, requests.RequestException):
        return TargetUnavailable(f"{where}: vault request failed ({name})")
    return TargetUnavailable(f"{where}: vault call failed ({name})")


def _errors(exc: hvac.exceptions.VaultError) -> list[str]:
    """Vault's error strings, multierror lists (``2 errors occurred: * a * b``) split up."""
    raw = exc.errors
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        return []
    found: list[str] = []
    for item in raw:
        text = str(item)
        if _MULTIERROR.match(text):
            found.extend(
                line.strip()[2:].strip()
                for line in text.splitlines()
                if line.strip().startswith("* ")
            )
        elif text.strip():
            found.append(" ".join(text.split()))
    return found


def _said(exc: hvac.exceptions.VaultError) -> str:
    """What Vault said, quoted safely (redacted, shortened); never a response body."""
    text = redact("; ".join(_errors(exc)))
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _invalid_token(exc: hvac.exceptions.VaultError) -> bool:
    """Vault's (not OpenBao's) marker of a revoked, expired or unknown token."""
    return any("invalid token" in error for error in _errors(exc))


def _preflight_refusal(exc: hvac.exceptions.VaultError) -> bool:
    """``sys/internal/ui/mounts`` refusing a mount the token may not see (or that is missing)."""
    return isinstance(exc, hvac.exceptions.InvalidRequest) or any(
        "preflight capability check" in error for error in _errors(exc)
    )


# -- small helpers --------------------------------------------------------------------------------


def _describing_held(
    current: KeyMetadata | None,
    previous: KeyMetadata | None,
    held: Secret | None,
    new: KeyMetadata,
) -> KeyMetadata | None:
    """The existing entry describing the value held, when that value is not the new one."""
    if held is None or held.fingerprint == new.fingerprint:
        return None
    for entry in (current, previous):
        if entry is not None and entry.fingerprint == held.fingerprint:
            return entry
    return None


def _read_jwt(path: Path, where: str) -> str:
    try:
        jwt = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TargetForbidden(
            f"{where}: cannot read the service-account token {path}: {reason}"
        ) from None
    if not jwt:
        raise TargetForbidden(f"{where}: the service-account token file {path} is empty")
    return jwt


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _custom(meta: Mapping[str, Any]) -> dict[str, str] | None:
    """custom_metadata from a metadata block: None when absent, {} when null."""
    if "custom_metadata" not in meta:
        return None
    raw = meta["custom_metadata"]
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _seconds(value: Any) -> timedelta | None:
    """A positive number of seconds as a timedelta; None for 0 or missing (never expires)."""
    seconds = _int(value)
    return timedelta(seconds=seconds) if seconds > 0 else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
