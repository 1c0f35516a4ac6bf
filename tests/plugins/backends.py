"""The Vault servers tests run on, behind one face: the emulator and a real OpenBao.

:class:`VaultServer` sets a server up and inspects it through its HTTP API with hvac —
policies, tokens, AppRoles, namespaces, KV seeding — so a test does not care which server it
talks to. :class:`EmulatedVault` wraps a :class:`~rotator_sandbox.vault.VaultEmulator` (configured
in-process where the emulator has no API: policies, AppRole roles, namespaces, revoking another
token); :class:`OpenBaoVault` does everything over HTTP and knows how to :meth:`~OpenBaoVault.reset`
a dev server between tests. Fixtures: ``vault_server`` (``tests/plugins/vault.py``) and
``openbao`` (``tests/plugins/openbao.py``). This module holds no fixture.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Any, Final, Literal

import hvac
import hvac.exceptions
import requests

from rotator_sandbox.vault import VaultEmulator

#: Timeout (seconds) of the hvac clients built here and by the Vault fixtures.
CLIENT_TIMEOUT = 5
#: Seconds one reset request may take.
RESET_TIMEOUT: Final = 10.0

#: The KV mounts every VaultServer starts with: mount → KV version.
KV_MOUNTS: Final[Mapping[str, int]] = {"secret": 2, "kv": 1}

Rules = Mapping[str, Collection[str]]

_HCL_RULE = re.compile(
    r'path\s+"(?P<path>[^"]+)"\s*\{\s*capabilities\s*=\s*\[(?P<caps>[^\]]*)\]\s*\}'
)


def parse_policy(text: str) -> dict[str, list[str]]:
    """The ``path "P" { capabilities = [...] }`` rules of an HCL policy (all a KV policy needs).

    Raises ValueError when something other than such rules and comments is in ``text``, so a
    policy the emulator cannot model is not silently read as a smaller one.
    """
    rules: dict[str, list[str]] = {}
    rest = _HCL_RULE.sub("", re.sub(r"#[^\n]*", "", text))
    if rest.strip():
        raise ValueError(f"unsupported policy text: {rest.strip()[:80]!r}")
    for match in _HCL_RULE.finditer(re.sub(r"#[^\n]*", "", text)):
        caps = [c.strip().strip('"') for c in match["caps"].split(",") if c.strip()]
        rules[match["path"]] = caps
    return rules


def render_policy(rules: Rules) -> str:
    """An HCL policy text for ``rules`` (path pattern → capabilities)."""
    return "\n".join(
        f"path {json.dumps(path)} {{\n  capabilities = {json.dumps(list(caps))}\n}}"
        for path, caps in rules.items()
    )


class VaultServer(ABC):
    """A Vault-compatible server, set up and inspected through its HTTP API where it has one.

    The two implementations differ only where the emulator has no HTTP API for something
    (policies, AppRole roles, namespaces, revoking another token): it is then configured
    in-process, with the same effect.
    """

    #: ``emulator`` or ``openbao``.
    kind: Literal["emulator", "openbao"]

    def __init__(self, url: str, root_token: str) -> None:
        self.url = url
        self.root_token = root_token
        self._clients: list[hvac.Client] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.url}>"

    # -- clients ---------------------------------------------------------------------------------

    def client(self, token: str | None = None, *, namespace: str | None = None) -> hvac.Client:
        """An hvac client (root token by default), closed by :meth:`close`."""
        # "" rather than None: hvac would fall back to VAULT_TOKEN / ~/.vault-token.
        client = hvac.Client(
            url=self.url,
            token=self.root_token if token is None else token,
            namespace=namespace,
            timeout=CLIENT_TIMEOUT,
        )
        self._clients.append(client)
        return client

    def close(self) -> None:
        """Close every client built by :meth:`client`."""
        for client in self._clients:
            client.adapter.close()
        self._clients.clear()

    # -- policies, tokens, auth methods ----------------------------------------------------------

    @abstractmethod
    def set_policy(self, name: str, policy: str | Rules, *, namespace: str | None = None) -> None:
        """Create or replace ACL policy ``name`` from HCL text or path → capabilities rules."""

    def create_token(
        self,
        policies: Collection[str] = ("default",),
        *,
        ttl: timedelta = timedelta(hours=1),
        renewable: bool = True,
        no_default_policy: bool = False,
        namespace: str | None = None,
    ) -> str:
        """A new token (``auth/token/create`` with the root token) holding ``policies``."""
        answer = self.client(namespace=namespace).auth.token.create(
            policies=list(policies),
            ttl=f"{int(ttl.total_seconds())}s",
            renewable=renewable,
            no_default_policy=no_default_policy,
        )
        return str(answer["auth"]["client_token"])

    @abstractmethod
    def revoke_token(self, token: str) -> None:
        """Revoke ``token`` (as an operator would, with another token)."""

    @abstractmethod
    def lookup_token(self, token: str) -> dict[str, Any] | None:
        """What ``auth/token/lookup`` says of ``token`` (``ttl`` etc.); None when invalid."""

    @abstractmethod
    def add_approle(
        self,
        name: str,
        policies: Collection[str],
        *,
        ttl: timedelta = timedelta(hours=1),
        max_ttl: timedelta | None = None,
        namespace: str | None = None,
    ) -> tuple[str, str]:
        """An AppRole role ``name`` issuing tokens with ``policies``: its (role id, secret id)."""

    @abstractmethod
    def add_namespace(self, name: str) -> None:
        """Create namespace ``name`` holding the :data:`KV_MOUNTS`."""

    # -- KV --------------------------------------------------------------------------------------

    def write(
        self, mount: str, path: str, data: Mapping[str, Any], *, namespace: str | None = None
    ) -> None:
        """Write a secret as another writer would (KV v2: a new version, no check-and-set)."""
        client = self.client(namespace=namespace)
        if KV_MOUNTS[mount] == 2:
            client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=dict(data), mount_point=mount
            )
        else:
            client.secrets.kv.v1.create_or_update_secret(
                path=path, secret=dict(data), method="PUT", mount_point=mount
            )

    def read(self, mount: str, path: str, *, namespace: str | None = None) -> dict[str, Any] | None:
        """The data of a secret (latest version); None when missing or deleted."""
        client = self.client(namespace=namespace)
        try:
            if KV_MOUNTS[mount] == 2:
                answer = client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=mount, raise_on_deleted_version=True
                )
                return dict(answer["data"]["data"])
            return dict(client.secrets.kv.v1.read_secret(path=path, mount_point=mount)["data"])
        except hvac.exceptions.InvalidPath:
            return None

    def metadata(self, mount: str, path: str) -> dict[str, Any] | None:
        """What ``GET {mount}/metadata/{path}`` answers in ``data`` (KV v2), or None if missing."""
        try:
            answer = self.client().secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount)
        except hvac.exceptions.InvalidPath:
            return None
        return dict(answer["data"])

    def custom_metadata(self, mount: str, path: str) -> dict[str, str]:
        """The custom_metadata of a KV v2 path ({} when none)."""
        found = self.metadata(mount, path)
        assert found is not None, f"{mount}/{path} has no metadata"
        return dict(found.get("custom_metadata") or {})

    def set_custom_metadata(self, mount: str, path: str, custom: Mapping[str, str]) -> None:
        """Replace the custom_metadata of a KV v2 path (a bare metadata POST)."""
        self.client().adapter.post(
            f"/v1/{mount}/metadata/{path}", json={"custom_metadata": dict(custom)}
        )

    def configure_mount(self, mount: str, *, cas_required: bool) -> None:
        """Set ``cas_required`` on a KV v2 mount (``POST {mount}/config``)."""
        self.client().secrets.kv.v2.configure(cas_required=cas_required, mount_point=mount)


class EmulatedVault(VaultServer):
    """:class:`VaultServer` over a :class:`VaultEmulator`."""

    kind = "emulator"

    def __init__(self, emulator: VaultEmulator) -> None:
        super().__init__(emulator.url, emulator.root_token)
        self.emulator = emulator

    def set_policy(self, name: str, policy: str | Rules, *, namespace: str | None = None) -> None:
        """Policies are global in the emulator: ``namespace`` is ignored."""
        self.emulator.set_policy(name, parse_policy(policy) if isinstance(policy, str) else policy)

    def revoke_token(self, token: str) -> None:
        """Revoke in-process (the emulator serves only ``revoke-self``)."""
        self.emulator.revoke_token(token)

    def lookup_token(self, token: str) -> dict[str, Any] | None:
        """In-process lookup."""
        return self.emulator.lookup_token(token)

    def add_approle(
        self,
        name: str,
        policies: Collection[str],
        *,
        ttl: timedelta = timedelta(hours=1),
        max_ttl: timedelta | None = None,
        namespace: str | None = None,
    ) -> tuple[str, str]:
        """Register the role in-process (the emulator has no role API), with random ids."""
        role_id, secret_id = f"role-{name}-{secrets.token_hex(4)}", secrets.token_hex(16)
        self.emulator.add_approle(
            role_id,
            secret_id,
            list(policies),
            ttl=ttl,
            role_name=name,
            max_ttl=max_ttl,
            namespace=namespace,
        )
        return role_id, secret_id

    def add_namespace(self, name: str) -> None:
        """Create the namespace in-process with the default KV mounts."""
        self.emulator.add_namespace(name, dict(KV_MOUNTS))


#: Mounts, auth methods and policies of a dev server that a reset keeps.
_SYSTEM_MOUNTS: Final = frozenset({"sys/", "cubbyhole/", "identity/"})
_SYSTEM_AUTH: Final = frozenset({"token/"})
_SYSTEM_POLICIES: Final = frozenset({"default", "root"})


class OpenBaoVault(VaultServer):
    """:class:`VaultServer` over a running OpenBao, all through its API."""

    kind = "openbao"

    def __init__(self, url: str, root_token: str) -> None:
        super().__init__(url, root_token)

    # -- VaultServer -------------------------------------------------------------------------------

    def set_policy(self, name: str, policy: str | Rules, *, namespace: str | None = None) -> None:
        """``PUT sys/policies/acl/{name}``; HCL text is sent exactly as given."""
        text = policy if isinstance(policy, str) else render_policy(policy)
        self.client(namespace=namespace).sys.create_or_update_acl_policy(name=name, policy=text)

    def revoke_token(self, token: str) -> None:
        """``auth/token/revoke`` with the root token (children are revoked too)."""
        self.client().auth.token.revoke(token)

    def lookup_token(self, token: str) -> dict[str, Any] | None:
        """``auth/token/lookup`` with the root token."""
        try:
            return dict(self.client().auth.token.lookup(token)["data"])
        except hvac.exceptions.Forbidden:
            return None  # OpenBao: "bad token" is answered 403

    def add_approle(
        self,
        name: str,
        policies: Collection[str],
        *,
        ttl: timedelta = timedelta(hours=1),
        max_ttl: timedelta | None = None,
        namespace: str | None = None,
        no_default_policy: bool = False,
    ) -> tuple[str, str]:
        """Enable ``auth/approle`` (once), create the role, read its role id, issue a secret id.

        ``no_default_policy`` (OpenBao only: the emulator always attaches ``default``) sets the
        role's ``token_no_default_policy``.
        """
        client = self.client(namespace=namespace)
        self.enable_auth("approle", namespace=namespace)
        client.auth.approle.create_or_update_approle(
            name,
            token_policies=list(policies),
            token_ttl=f"{int(ttl.total_seconds())}s",
            token_max_ttl=f"{int(max_ttl.total_seconds())}s" if max_ttl else None,
            token_no_default_policy=no_default_policy,
        )
        role_id = client.auth.approle.read_role_id(name)["data"]["role_id"]
        secret_id = client.auth.approle.generate_secret_id(name)["data"]["secret_id"]
        return str(role_id), str(secret_id)

    def add_namespace(self, name: str) -> None:
        """``POST sys/namespaces/{name}``, then the KV mounts inside it."""
        self.client().adapter.post(f"/v1/sys/namespaces/{name}")
        inside = self.client(namespace=name)
        for mount, version in KV_MOUNTS.items():
            inside.sys.enable_secrets_engine("kv", path=mount, options={"version": str(version)})

    # -- OpenBao only ------------------------------------------------------------------------------

    def enable_auth(self, method: str, *, namespace: str | None = None) -> None:
        """Enable auth method ``method`` at its default path, unless already there."""
        client = self.client(namespace=namespace)
        enabled = client.sys.list_auth_methods()["data"]
        if f"{method}/" not in enabled:
            client.sys.enable_auth_method(method)

    def add_kubernetes_role(
        self,
        role: str,
        *,
        kubernetes_host: str,
        kubernetes_ca_cert: str,
        service_account: tuple[str, str],
        policies: Collection[str],
        ttl: timedelta = timedelta(hours=1),
    ) -> None:
        """Enable ``auth/kubernetes`` against the API server at ``kubernetes_host`` (HTTPS,
        certificate signed by the PEM CA ``kubernetes_ca_cert``) and bind ``role`` to
        ``service_account`` (namespace, name).

        No ``token_reviewer_jwt``: the method then sends TokenReview with the login JWT itself
        as the bearer; ``disable_local_ca_jwt`` stops it looking for in-pod credentials (OpenBao
        then insists on a CA, even for an ``http://`` host).
        """
        self.enable_auth("kubernetes")
        client = self.client()
        client.adapter.post(
            "/v1/auth/kubernetes/config",
            json={
                "kubernetes_host": kubernetes_host,
                "kubernetes_ca_cert": kubernetes_ca_cert,
                "disable_local_ca_jwt": True,
            },
        )
        namespace, name = service_account
        client.adapter.post(
            f"/v1/auth/kubernetes/role/{role}",
            json={
                "bound_service_account_names": [name],
                "bound_service_account_namespaces": [namespace],
                "token_policies": list(policies),
                "token_ttl": f"{int(ttl.total_seconds())}s",
            },
        )

    def reset(self) -> None:
        """Back to the state of a fresh dev server with the :data:`KV_MOUNTS` (nothing else)."""
        http = requests.Session()
        http.headers["X-Vault-Token"] = self.root_token
        base = f"{self.url}/v1"

        def call(method: str, path: str, **kwargs: Any) -> requests.Response:
            answer = http.request(method, f"{base}/{path}", timeout=RESET_TIMEOUT, **kwargs)
            if answer.status_code >= 400 and answer.status_code != 404:
                raise RuntimeError(f"OpenBao reset: {method} {path}: {answer.status_code}")
            return answer

        def listed(path: str) -> list[str]:
            answer = call("LIST", path)
            return [] if answer.status_code == 404 else list(answer.json()["data"]["keys"])

        try:
            for namespace in listed("sys/namespaces"):
                call("DELETE", f"sys/namespaces/{namespace.rstrip('/')}")
            deadline = time.monotonic() + RESET_TIMEOUT
            while listed("sys/namespaces") and time.monotonic() < deadline:
                time.sleep(0.02)  # namespace deletion finishes in the background
            for mount in call("GET", "sys/mounts").json()["data"]:
                if mount not in _SYSTEM_MOUNTS:
                    call("DELETE", f"sys/mounts/{mount.rstrip('/')}")
            for mount, version in KV_MOUNTS.items():
                call(
                    "POST",
                    f"sys/mounts/{mount}",
                    json={"type": "kv", "options": {"version": str(version)}},
                )
            for method in call("GET", "sys/auth").json()["data"]:
                if method not in _SYSTEM_AUTH:
                    call("DELETE", f"sys/auth/{method.rstrip('/')}")
            for policy in listed("sys/policies/acl"):
                if policy not in _SYSTEM_POLICIES:
                    call("DELETE", f"sys/policies/acl/{policy}")
            root_accessor = call("GET", "auth/token/lookup-self").json()["data"]["accessor"]
            for accessor in listed("auth/token/accessors"):
                if accessor != root_accessor:
                    call("POST", "auth/token/revoke-accessor", json={"accessor": accessor})
        finally:
            http.close()
