"""Contract: the Vault emulator against a real OpenBao, request for request.

Each case sends the same raw HTTP request to both servers, set up the same way through
:class:`~tests.plugins.backends.VaultServer`, and compares what a client can rely on: the status
code, the ``Content-Type``, Vault's ``errors`` list, and the field names of the answer.

Tolerated everywhere (neither the rotator nor hvac reads them): the emulator's extra
``mount_type`` envelope field (HashiCorp Vault sends it, OpenBao does not); OpenBao's extra
``current_metadata_version`` / ``metadata_cas_required`` (KV metadata check-and-set, an OpenBao
feature) and ``deprecation_status`` / ``running_plugin_version`` / ``running_sha256`` (mount
descriptions); ``performance_standby`` in the emulator's ``sys/health`` (Vault's, not OpenBao's);
the ``Content-Type`` of an empty 204 answer (OpenBao says ``application/json``, the emulator
nothing).

The known divergences are cases marked ``xfail(strict=True)`` with the reason: when the emulator
(or OpenBao) changes so that they agree, the case passes unexpectedly and fails the suite, so the
list here stays true. The rotator copes with each of them (``rotator/targets/vault.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from rotator_sandbox.vault import VaultEmulator
from tests.plugins.backends import EmulatedVault, OpenBaoVault, VaultServer

#: Answer fields only one side sends, that no client here reads (see module docstring).
TOLERATED_FIELDS = frozenset(
    {
        "mount_type",
        "current_metadata_version",
        "metadata_cas_required",
        "deprecation_status",
        "running_plugin_version",
        "running_sha256",
        "performance_standby",
    }
)


@dataclass
class Setup:
    """What one server was set up with: tokens and AppRole ids by name."""

    server: VaultServer
    tokens: dict[str, str]


@dataclass(frozen=True)
class Answer:
    """What a client can rely on in one answer."""

    status: int
    content_type: str | None
    errors: list[str] | None
    fields: Any


def shape(value: Any) -> Any:
    """The field names of a JSON answer, recursively (values dropped but for their kind)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items()) if k not in TOLERATED_FIELDS}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__


def prepare(server: VaultServer) -> Setup:
    """The same state on either server."""
    server.set_policy("p", {"secret/data/allowed/*": ["read", "create", "update"]})
    tokens = {
        "root": server.root_token,
        "limited": server.create_token(["p"]),
        "no-default": server.create_token(["p"], no_default_policy=True),
        "revoked": server.create_token(["p"]),
        "unknown": "s.not-a-token-at-all-123",
        "none": "",
    }
    server.revoke_token(tokens["revoked"])
    tokens["role_id"], tokens["secret_id"] = server.add_approle("r", ["p"])
    server.write("secret", "x", {"a": "1"})
    server.write("secret", "gone", {"a": "1"})
    server.client().secrets.kv.v2.delete_latest_version_of_secret("gone")
    server.write("kv", "x", {"a": "1"})
    return Setup(server, tokens)


Body = dict[str, Any] | Callable[[dict[str, str]], dict[str, Any]] | None


def send(setup: Setup, method: str, path: str, token: str, body: Body) -> Answer:
    """One raw request, as hvac would send it."""
    headers = {"X-Vault-Request": "true"}
    if setup.tokens[token]:
        headers["X-Vault-Token"] = setup.tokens[token]
    payload = body(setup.tokens) if callable(body) else body
    answer = requests.request(
        method, f"{setup.server.url}{path}", headers=headers, json=payload, timeout=5
    )
    try:
        parsed = answer.json()
    except ValueError:
        parsed = None
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    return Answer(
        status=answer.status_code,
        # OpenBao labels its empty 204 answers application/json, the emulator sends no type.
        content_type=answer.headers.get("Content-Type") if answer.content else None,
        errors=errors,
        fields=None if errors is not None else shape(parsed),
    )


def diverges(reason: str) -> pytest.MarkDecorator:
    """A known divergence between the emulator and OpenBao."""
    return pytest.mark.xfail(strict=True, reason=reason)


def login(tokens: dict[str, str]) -> dict[str, Any]:
    """An AppRole login body with the right secret id."""
    return {"role_id": tokens["role_id"], "secret_id": tokens["secret_id"]}


def bad_login(tokens: dict[str, str]) -> dict[str, Any]:
    """An AppRole login body with a wrong secret id."""
    return {"role_id": tokens["role_id"], "secret_id": "wrong"}


CASES = [
    pytest.param("GET", "/v1/secret/data/x", "none", None, id="no-token"),
    pytest.param(
        "GET",
        "/v1/secret/data/x",
        "unknown",
        None,
        id="unknown-token",
        marks=diverges(
            "OpenBao answers an unknown token with a bare 'permission denied'; the emulator "
            "(like HashiCorp Vault) adds 'invalid token'"
        ),
    ),
    pytest.param(
        "GET",
        "/v1/secret/data/x",
        "revoked",
        None,
        id="revoked-token",
        marks=diverges("as unknown-token: OpenBao does not say 'invalid token'"),
    ),
    pytest.param(
        "GET",
        "/v1/auth/token/lookup-self",
        "revoked",
        None,
        id="revoked-token-lookup-self",
        marks=diverges("as unknown-token, on lookup-self too"),
    ),
    pytest.param("GET", "/v1/secret/data/x", "limited", None, id="policy-denied"),
    pytest.param("GET", "/v1/auth/token/lookup-self", "limited", None, id="lookup-self"),
    pytest.param(
        "GET", "/v1/auth/token/lookup-self", "no-default", None, id="lookup-self-no-default"
    ),
    pytest.param("POST", "/v1/auth/token/renew-self", "limited", {}, id="renew-self"),
    pytest.param(
        "POST",
        "/v1/auth/token/renew-self",
        "root",
        {},
        id="renew-self-root",
        marks=diverges(
            "a token without TTL: emulator 'lease not found or lease is not renewable', "
            "OpenBao 'lease is not renewable' (both 400)"
        ),
    ),
    pytest.param("GET", "/v1/sys/internal/ui/mounts/secret", "limited", None, id="ui-mount"),
    pytest.param(
        "GET",
        "/v1/sys/internal/ui/mounts/kv",
        "limited",
        None,
        id="ui-mount-no-access",
        marks=diverges(
            "OpenBao refuses a mount the token has no capability under (403 preflight); the "
            "emulator describes any mount to any token"
        ),
    ),
    pytest.param(
        "GET",
        "/v1/sys/internal/ui/mounts/nope",
        "root",
        None,
        id="ui-mount-missing",
        marks=diverges("a missing mount: OpenBao 403 preflight, the emulator 400 (same text)"),
    ),
    pytest.param("GET", "/v1/nope/data/x", "root", None, id="no-such-mount"),
    pytest.param("GET", "/v1/secret/data/x", "root", None, id="kv2-read"),
    pytest.param("GET", "/v1/secret/data/missing", "root", None, id="kv2-read-missing"),
    pytest.param("GET", "/v1/secret/data/gone", "root", None, id="kv2-read-deleted"),
    pytest.param("POST", "/v1/secret/data/e", "root", {"data": {}}, id="kv2-write-empty"),
    pytest.param("POST", "/v1/secret/data/e", "root", {"options": {}}, id="kv2-write-no-data"),
    pytest.param(
        "POST",
        "/v1/secret/data/x",
        "root",
        {"options": {"cas": 5}, "data": {"a": "2"}},
        id="kv2-cas-mismatch",
    ),
    pytest.param(
        "POST",
        "/v1/secret/data/new",
        "root",
        {"options": {"cas": 0}, "data": {"a": "2"}},
        id="kv2-cas-create",
    ),
    pytest.param("GET", "/v1/secret/metadata/x", "root", None, id="kv2-metadata"),
    pytest.param(
        "POST",
        "/v1/secret/metadata/x",
        "root",
        {"custom_metadata": {"owner": "x"}},
        id="kv2-metadata-write",
    ),
    pytest.param(
        "POST",
        "/v1/secret/metadata/x",
        "root",
        {"custom_metadata": {"k" * 129: "v"}},
        id="kv2-metadata-key-too-long",
    ),
    pytest.param("LIST", "/v1/secret/metadata/", "root", None, id="kv2-list"),
    pytest.param("GET", "/v1/kv/data/x", "root", None, id="kv2-path-on-kv1-mount"),
    pytest.param("GET", "/v1/kv/x", "root", None, id="kv1-read"),
    pytest.param("GET", "/v1/kv/missing", "root", None, id="kv1-read-missing"),
    pytest.param("PUT", "/v1/kv/x", "root", {"a": "2", "b": "3"}, id="kv1-write"),
    pytest.param("PUT", "/v1/kv/e", "root", {}, id="kv1-write-empty"),
    pytest.param("POST", "/v1/auth/approle/login", "none", login, id="approle-login"),
    pytest.param("POST", "/v1/auth/approle/login", "none", bad_login, id="approle-bad-secret"),
    pytest.param(
        "POST",
        "/v1/sys/capabilities-self",
        "limited",
        {"paths": ["secret/data/allowed/x", "secret/data/x"]},
        id="capabilities-self",
    ),
    pytest.param("GET", "/v1/sys/health", "none", None, id="health"),
    pytest.param(
        "POST",
        "/v1/auth/token/lookup",
        "root",
        lambda tokens: {"token": tokens["limited"]},
        id="token-lookup-other",
        marks=diverges(
            "the emulator has no administrative API (auth/token/lookup, auth/token/revoke, "
            "sys/policies, sys/auth, sys/mounts writes, sys/namespaces, auth/*/role): tests "
            "configure it in-process"
        ),
    ),
]


@pytest.fixture
def both(vault: VaultEmulator, openbao: OpenBaoVault) -> Iterator[tuple[Setup, Setup]]:
    """The emulator and OpenBao, prepared alike."""
    emulated = EmulatedVault(vault)
    try:
        yield prepare(emulated), prepare(openbao)
    finally:
        emulated.close()


@pytest.mark.parametrize(("method", "path", "token", "body"), CASES)
def test_emulator_answers_like_openbao(
    both: tuple[Setup, Setup], method: str, path: str, token: str, body: Body
) -> None:
    """Status, Content-Type, errors and answer fields are the same on both servers."""
    emulated, real = both
    ours, theirs = send(emulated, method, path, token, body), send(real, method, path, token, body)
    assert ours == theirs, json.dumps(
        {"emulator": ours.__dict__, "openbao": theirs.__dict__}, indent=1, default=str
    )
