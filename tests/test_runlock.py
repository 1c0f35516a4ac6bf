"""The Vault KV v2 lock entry of writing runs (rotator.runlock), on the emulator and on OpenBao.

Expiry is judged by the lock's injected clock (each "host" has its own), never by waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from rotator.errors import TargetConflict, TargetInvalid
from rotator.runlock import HeldVaultLock, VaultKvLock
from rotator.secrets import Secret
from rotator.targets.vault import TokenAuth, VaultSession
from tests.plugins.backends import VaultServer
from tests.plugins.vault import VaultClock

PATH = "stackstate-key-rotator/lock"


@pytest.fixture
def make_lock(
    vault_server: VaultServer, vault_clock: VaultClock
) -> Iterator[Callable[..., VaultKvLock]]:
    """Locks of different "hosts" on one entry; each with its own session, closed at teardown."""
    sessions: list[VaultSession] = []

    def make(identity: str, *, mount: str = "secret", ttl: float = 60) -> VaultKvLock:
        session = VaultSession(
            url=vault_server.url,
            namespace=None,
            ca_file=None,
            timeout=5.0,
            auth=TokenAuth(Secret(vault_server.root_token)),
        )
        sessions.append(session)
        return VaultKvLock(
            session, mount=mount, path=PATH, identity=identity, ttl=ttl, clock=vault_clock
        )

    yield make
    for session in sessions:
        session.close()


class TestVaultKvLock:
    """Acquire, renew and release with check-and-set."""

    def test_the_first_run_takes_a_missing_entry(
        self, make_lock: Callable[..., VaultKvLock], vault_server: VaultServer
    ) -> None:
        """No entry: created (cas 0) with holder and expiry; the second run sees the holder."""
        a, b = make_lock("host-a"), make_lock("host-b")
        assert a.acquire() is None
        assert a.held
        stored = vault_server.read("secret", PATH)
        assert stored is not None and stored["holder"] == "host-a"
        held_by = b.acquire()
        assert held_by is not None and held_by.holder == "host-a"
        assert not b.held

    def test_release_lets_the_next_run_in_at_once(
        self, make_lock: Callable[..., VaultKvLock]
    ) -> None:
        """A released entry (empty holder) is free without waiting for its expiry."""
        a, b = make_lock("host-a"), make_lock("host-b")
        assert a.acquire() is None
        assert a.release()
        assert b.acquire() is None
        assert not a.release()  # not ours anymore: nothing written

    def test_an_expired_entry_is_taken_over_and_the_old_holder_loses_it(
        self, make_lock: Callable[..., VaultKvLock], vault_clock: VaultClock
    ) -> None:
        """Past expires_at another run takes it (cas = the version read); the old holder's
        renewal then fails its check-and-set and it knows it lost the lock."""
        a, b = make_lock("host-a", ttl=30), make_lock("host-b", ttl=30)
        assert a.acquire() is None
        vault_clock.advance(timedelta(seconds=29))
        assert b.acquire() is not None
        vault_clock.advance(timedelta(seconds=2))
        assert b.acquire() is None
        assert not a.renew()
        assert not a.held
        assert b.renew()

    def test_renewal_pushes_the_expiry(
        self, make_lock: Callable[..., VaultKvLock], vault_clock: VaultClock
    ) -> None:
        """A renewed entry stays held past its first expiry."""
        a, b = make_lock("host-a", ttl=30), make_lock("host-b", ttl=30)
        assert a.acquire() is None
        vault_clock.advance(timedelta(seconds=20))
        assert a.renew()
        vault_clock.advance(timedelta(seconds=20))
        assert b.acquire() is not None

    def test_of_two_racers_only_one_wins(self, make_lock: Callable[..., VaultKvLock]) -> None:
        """Both read the free entry, both write with the same cas: exactly one holds it."""
        a, b = make_lock("host-a"), make_lock("host-b")
        seen_a, seen_b = a.read(), b.read()
        assert seen_a.version == seen_b.version
        assert a.acquire() is None
        # b writes with the version it read before a's write, as if their writes crossed.
        with pytest.raises(TargetConflict, match="check-and-set"):
            b._write(b._ours(b._clock()), cas=seen_b.version)
        assert b.acquire() is not None

    def test_a_kv_v1_mount_is_refused(self, make_lock: Callable[..., VaultKvLock]) -> None:
        """KV v1 has no check-and-set: the lock cannot be built on it."""
        with pytest.raises(TargetInvalid, match="KV version 1"):
            make_lock("host-a", mount="kv").acquire()

    def test_held_lock_renews_in_the_background_and_releases_on_close(
        self, make_lock: Callable[..., VaultKvLock], vault_server: VaultServer
    ) -> None:
        """HeldVaultLock renews every ttl/3 while the run lasts and releases at the end."""
        a = make_lock("host-a", ttl=0.3)
        assert a.acquire() is None
        first = a.read().version
        with HeldVaultLock(a) as held:
            deadline = time.monotonic() + 10
            while a.read().version < first + 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert a.read().version >= first + 2
            assert held.still_held()
        stored = vault_server.read("secret", PATH)
        assert stored is not None and stored["holder"] == ""
