"""Fixtures for the Vault emulator.

``vault`` is a started :class:`~rotator.sandbox.vault.VaultEmulator` (root token
:data:`ROOT_TOKEN`, KV v2 at ``secret``, KV v1 at ``kv``) whose clock is ``vault_clock`` (frozen;
tests move it with ``advance`` to expire tokens or versions). ``make_vault`` builds more
emulators with other settings (mounts, TLS, sealed, ...); every emulator built here is stopped at
teardown. ``vault_client`` is an ``hvac.Client`` for ``vault`` holding the root token;
``make_vault_client`` builds more (other token, namespace or emulator), all closed at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import hvac
import pytest

from rotator.sandbox.vault import VaultEmulator
from tests.plugins.clock import FrozenClock as VaultClock

#: The root token of emulators built by these fixtures.
ROOT_TOKEN = "sandbox-root-token"

#: Timeout (seconds) of the hvac clients these fixtures build.
CLIENT_TIMEOUT = 5


@pytest.fixture
def vault_clock() -> VaultClock:
    """The clock of the ``vault`` emulator: starts at the real now, moves only on request."""
    return VaultClock(datetime.now(UTC))


@pytest.fixture
def make_vault(vault_clock: VaultClock) -> Iterator[Callable[..., VaultEmulator]]:
    """A factory of started Vault emulators (``clock`` defaults to ``vault_clock``)."""
    started: list[VaultEmulator] = []

    def make(**kwargs: Any) -> VaultEmulator:
        kwargs.setdefault("clock", vault_clock)
        kwargs.setdefault("root_token", ROOT_TOKEN)
        emulator = VaultEmulator(**kwargs)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def vault(make_vault: Callable[..., VaultEmulator]) -> VaultEmulator:
    """A started Vault emulator with the default mounts, on ``vault_clock``."""
    return make_vault()


@pytest.fixture
def make_vault_client(vault: VaultEmulator) -> Iterator[Callable[..., hvac.Client]]:
    """A factory of hvac clients (``vault`` and the root token by default), closed at teardown."""
    clients: list[hvac.Client] = []

    def make(
        token: str | None = ROOT_TOKEN,
        *,
        namespace: str | None = None,
        emulator: VaultEmulator | None = None,
    ) -> hvac.Client:
        target = emulator or vault
        # "" rather than None: hvac would fall back to VAULT_TOKEN / ~/.vault-token.
        client = hvac.Client(
            url=target.url,
            token=token if token is not None else "",
            namespace=namespace,
            timeout=CLIENT_TIMEOUT,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.adapter.close()


@pytest.fixture
def vault_client(make_vault_client: Callable[..., hvac.Client]) -> hvac.Client:
    """An hvac client of ``vault`` authenticated with the root token."""
    return make_vault_client()
