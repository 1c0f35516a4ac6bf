"""Service-account tokens the Kubernetes emulator issues, and the TokenReview verdict on them.

A token is shaped like what ``TokenRequest`` hands out (a projected service-account token): three
base64url parts, a header ``{"alg": "RS256", "kid": ...}`` and the claims ``aud``, ``exp``,
``iat``, ``nbf``, ``iss``, ``jti``, ``sub`` (``system:serviceaccount:<ns>:<name>``) and
``kubernetes.io`` (``namespace``, ``serviceaccount {name, uid}``).

Why the shape matters: Vault's and OpenBao's ``kubernetes`` auth method parse the login JWT
*before* they ask the API server about it (``builtin/credential/kubernetes/path_login.go``:
``parseAndValidateJWT``). With no ``pem_keys`` configured they skip the signature
(``DontVerifySignature``) but still demand a JWS whose header ``alg`` is an RS/ES algorithm,
an ``exp`` that has not passed, and the ``kubernetes.io`` (or legacy
``kubernetes.io/serviceaccount/*``) claims naming the service account, its namespace and uid.
They then call TokenReview (``token_review.go``) with ``spec.audiences`` set to the token's own
``aud``, as the bearer their ``token_reviewer_jwt`` or else the login JWT itself, and compare the
username ``system:serviceaccount:<ns>:<name>`` and ``user.uid`` that come back with the claims.

The signature is an HMAC-SHA256 under a key private to the emulator, not RS256: nobody verifies it
but the emulator itself, which also requires the token to be one it issued (its ``jti``) for a
service account that still has the same uid (:meth:`ServiceAccountTokens.revoke` forgets an
account, as deleting and re-creating it would).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: ``iss`` of issued tokens and the API server's own audience (``--api-audiences`` default).
DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
#: Lifetime of a token unless the caller asks otherwise (``TokenRequest``'s default is 1h).
DEFAULT_EXPIRATION_SECONDS = 3600
#: Groups every service account belongs to, besides ``system:serviceaccounts:<namespace>``.
SERVICE_ACCOUNT_GROUPS = ("system:serviceaccounts", "system:authenticated")


class InvalidToken(Exception):
    """The token does not authenticate anyone; the message is TokenReview's ``status.error``."""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


@dataclass(frozen=True)
class TokenIdentity:
    """Who a valid token authenticates, as TokenReview reports it."""

    namespace: str
    name: str
    uid: str
    jti: str
    audiences: tuple[str, ...]

    @property
    def username(self) -> str:
        """``system:serviceaccount:<namespace>:<name>``."""
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def groups(self) -> list[str]:
        """The groups the authenticator adds for a service account."""
        return [
            SERVICE_ACCOUNT_GROUPS[0],
            f"system:serviceaccounts:{self.namespace}",
            SERVICE_ACCOUNT_GROUPS[1],
        ]

    def user_info(self) -> dict[str, Any]:
        """TokenReview's ``status.user``."""
        return {
            "username": self.username,
            "uid": self.uid,
            "groups": self.groups,
            "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={self.jti}"]},
        }


@dataclass(frozen=True)
class _Issued:
    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    expires: datetime


class ServiceAccountTokens:
    """Issues and authenticates service-account tokens (not thread-safe: callers lock)."""

    def __init__(self, issuer: str = DEFAULT_ISSUER) -> None:
        """``issuer`` goes into ``iss``; the signing key is random per instance."""
        self.issuer = issuer
        self._key = secrets.token_bytes(32)
        self._kid = _b64url(hashlib.sha256(self._key).digest()[:12])
        self._accounts: dict[tuple[str, str], str] = {}
        self._issued: dict[str, _Issued] = {}

    def account_uid(self, namespace: str, name: str) -> str:
        """The uid of a service account (it comes into being on first use)."""
        return self._accounts.setdefault((namespace, name), str(uuid.uuid4()))

    def issue(
        self,
        namespace: str,
        name: str,
        *,
        now: datetime,
        audiences: Sequence[str],
        expiration_seconds: int,
    ) -> str:
        """A signed-looking JWT for ``namespace/name`` valid from ``now``."""
        uid = self.account_uid(namespace, name)
        jti = str(uuid.uuid4())
        expires = now + timedelta(seconds=expiration_seconds)
        header = {"alg": "RS256", "kid": self._kid}
        claims = {
            "aud": list(audiences),
            "exp": _epoch(expires),
            "iat": _epoch(now),
            "iss": self.issuer,
            "jti": jti,
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": uid},
            },
            "nbf": _epoch(now),
            "sub": f"system:serviceaccount:{namespace}:{name}",
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        self._issued[jti] = _Issued(namespace, name, uid, tuple(audiences), expires)
        return f"{signing_input}.{self._sign(signing_input)}"

    def revoke(self, namespace: str, name: str) -> None:
        """Forget the service account: its tokens stop authenticating; a new one gets a new uid."""
        self._accounts.pop((namespace, name), None)

    def authenticate(self, token: str, now: datetime) -> TokenIdentity:
        """The identity behind ``token``, or :class:`InvalidToken` saying why there is none."""
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("[invalid bearer token, token lookup failed]")
        signing_input = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._sign(signing_input), parts[2]):
            raise InvalidToken(
                "[invalid bearer token, square/go-jose: error in cryptographic primitive]"
            )
        try:
            claims = json.loads(_unb64url(parts[1]))
        except (ValueError, binascii.Error) as exc:
            raise InvalidToken("[invalid bearer token, token lookup failed]") from exc
        issued = self._issued.get(str(claims.get("jti", "")))
        if issued is None:
            raise InvalidToken("[invalid bearer token, token lookup failed]")
        if now >= issued.expires:
            raise InvalidToken("[invalid bearer token, service account token has expired]")
        if self._accounts.get((issued.namespace, issued.name)) != issued.uid:
            raise InvalidToken(
                f"[invalid bearer token, serviceaccounts {json.dumps(issued.name)} not found]"
            )
        return TokenIdentity(
            issued.namespace, issued.name, issued.uid, str(claims["jti"]), issued.audiences
        )

    def _sign(self, signing_input: str) -> str:
        return _b64url(hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest())
