"""The Vault session: one authenticated ``hvac.Client`` shared by every Vault call of a run.

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

Connections: the session sends through one ``requests.Session`` whose pool keeps ``pool_size``
connections (default :data:`DEFAULT_POOL_SIZE`), so callers reading concurrently with that
many workers reuse connections instead of opening and discarding them.

Errors of every call made through the session are translated in one place, :func:`map_error`
(``where`` names the caller, e.g. a vault-kv target)::

    403 / 401, token invalid ......................... TargetForbidden ("token is invalid ...")
    403 / 401, token valid: denied by policy ......... TargetForbidden ("... by vault policy")
    login refused (400/403/404 at auth/*/login) ...... TargetForbidden
    400 check-and-set mismatch ....................... TargetConflict
    other 400 ........................................ TargetInvalid
    404 (no such mount / route) ...................... TargetInvalid
    503 sealed / standby, 500, 501, 502, 429 ......... TargetUnavailable
    connection refused, TLS, timeout ................. TargetUnavailable
    anything else hvac or requests raise ............. TargetUnavailable (class name)

The session acts for vault-kv targets (and for the run lock and ``doctor``, on the same paths),
so its errors are the ``Target*`` family. A 404 on reading a secret that does not exist is not
an error: the target is empty. Messages
quote Vault's own error strings (which never echo request data) through
:func:`rotator.secrets.redact`, never a request or response body, never a token; hvac's
exceptions are dropped from the chain (``from None``) since their text may hold a response body.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable
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
from requests.adapters import HTTPAdapter

from rotator.errors import (
    ConfigError,
    TargetConflict,
    TargetError,
    TargetForbidden,
    TargetInvalid,
    TargetUnavailable,
)
from rotator.secrets import Secret, redact, register_secret

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: The fraction of a token's TTL below which the session renews it.
RENEW_FRACTION: Final = 1 / 3

#: Connections the session keeps open to Vault (the ``workers`` a caller reads with).
DEFAULT_POOL_SIZE: Final = 8

#: How long a caller should wait after a check-and-set mismatch (seconds).
CONFLICT_DELAY: Final = 5.0
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
    ``pool_size`` is how many connections the default session keeps open to Vault (size it to
    the number of concurrent callers; a given ``http`` keeps its own adapters).
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
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        if pool_size < 1:
            raise ConfigError(f"vault connection pool size must be at least 1, not {pool_size}")
        self.pool_size = int(pool_size)
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
                return as_mapping(client.adapter.get(url))
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
        info = as_mapping(answer.get("data"))
        engine = str(info.get("type") or "")
        if engine not in ("kv", "generic"):
            raise TargetInvalid(f"{where}: mount {mount} is a {engine or 'unknown'} engine, not kv")
        options = as_mapping(info.get("options"))
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
                session=self._http if self._http is not None else self._new_http(),
            )
        return self._client

    def _new_http(self) -> requests.Session:
        """A ``requests.Session`` whose pool keeps :attr:`pool_size` connections per host."""
        http = requests.Session()
        # hvac prefers a given session's ``verify`` (default True) over its own argument.
        http.verify = str(self.ca_file) if self.ca_file else True
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.pool_size)
        http.mount("https://", adapter)
        http.mount("http://", adapter)
        return http

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
                granted = as_mapping(as_mapping(answer).get("auth"))
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
        data = as_mapping(as_mapping(answer).get("data"))
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
        granted = as_mapping(as_mapping(answer).get("auth"))
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
                    delay=CONFLICT_DELAY,
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


def as_mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else {} (Vault answers are read defensively)."""
    return value if isinstance(value, dict) else {}


def as_int(value: Any) -> int:
    """``value`` as an int, 0 when it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _seconds(value: Any) -> timedelta | None:
    """A positive number of seconds as a timedelta; None for 0 or missing (never expires)."""
    seconds = as_int(value)
    return timedelta(seconds=seconds) if seconds > 0 else None
