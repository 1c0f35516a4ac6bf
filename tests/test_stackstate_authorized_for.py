"""``StackStateClient.authorized_for``: the caller's own permissions, against the emulator.

Contract-checked like every test using the ``stackstate`` fixture (see tests/plugins/stackstate.py).
"""

from __future__ import annotations

import pytest

from rotator.errors import StackStateUnauthorized
from rotator.secrets import Secret
from rotator_sandbox.stackstate import StackStateEmulator
from tests.test_stackstate_client import make_client


class TestAuthorizedFor:
    """204 True, 403 False, 400 (unknown permission) None, 401 raises."""

    def test_the_administrator_holds_the_manage_permissions(
        self, stackstate: StackStateEmulator
    ) -> None:
        """The configured admin credential may manage both kinds."""
        with make_client(stackstate) as client:
            assert client.authorized_for("manage-service-tokens") is True
            assert client.authorized_for("manage-ingestion-api-keys") is True

    def test_a_token_without_the_permission_is_told_no(
        self, stackstate: StackStateEmulator
    ) -> None:
        """A token whose role only ingests lacks manage-service-tokens."""
        _, value = stackstate.seed_key(
            "service-token", "ingest", expiration=None, roles=["stackstate-ingest-telemetry"]
        )
        with make_client(stackstate, service_token=Secret(value)) as client:
            assert client.authorized_for("manage-service-tokens") is False
            assert client.authorized_for("update-metrics") is True

    def test_an_unknown_permission_is_none(self, stackstate: StackStateEmulator) -> None:
        """The server does not know the permission (400): None, not an error."""
        with make_client(stackstate) as client:
            assert client.authorized_for("no-such-permission") is None

    def test_a_credential_not_accepted_raises(self, stackstate: StackStateEmulator) -> None:
        """401: StackStateUnauthorized, as for every call."""
        with (
            make_client(stackstate, service_token=Secret("not-a-token"), max_attempts=1) as client,
            pytest.raises(StackStateUnauthorized),
        ):
            client.authorized_for("manage-service-tokens")
