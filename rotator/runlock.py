"""A lock entry in Vault KV v2 so that one writing run at a time acts, across hosts.

For installations without Kubernetes (``lock: {type: vault}``). The entry at ``<mount>/<path>``
holds ``{"holder", "acquired_at", "expires_at", "ttl_seconds"}``; every write is a
check-and-set, so of two runs racing for it exactly one wins:

* **acquire** — read the entry; when nobody holds it (absent, released, or its ``expires_at``
  has passed) write ourselves in with ``cas`` = the version read (``cas=0`` creates it). A
  check-and-set mismatch means another run won: we do not hold it.
* **renew** — every ``ttl / 3`` the holder writes a new ``expires_at`` with ``cas`` = the version
  it wrote last; a mismatch means it lost the entry (someone took over an entry that looked
  expired to them): the run stops starting new steps.
* **release** — write an empty holder with ``cas`` = our version (never someone else's).

Expiry compares ``expires_at`` (the holder's clock) with the reader's clock: hosts need roughly
synchronised clocks (NTP), and ``ttl`` should be much larger than their skew; the default 60s is.
A Vault KV v1 mount has no check-and-set and is refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, Self

import hvac
import structlog

from rotator.clients.vault import VaultSession
from rotator.errors import RotatorError, TargetConflict, TargetInvalid, TemporaryError

log = structlog.get_logger(__name__)

#: Renewals per ``ttl``: the entry survives two missed renewals.
RENEWALS_PER_TTL: Final = 3


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class RunLockBusy(TemporaryError):
    """Another run holds the shared lock."""


@dataclass(frozen=True)
class LockEntry:
    """What the lock entry says, and the KV version it was read at (0: no entry)."""

    holder: str
    expires_at: datetime | None
    version: int

    def held_by_other(self, identity: str, now: datetime) -> bool:
        """Whether someone else holds the entry and it has not expired."""
        return (
            bool(self.holder)
            and self.holder != identity
            and self.expires_at is not None
            and self.expires_at > now
        )


class VaultKvLock:
    """The lock entry at ``<mount>/<path>`` of a KV v2 mount (see the module docstring)."""

    def __init__(
        self,
        session: VaultSession,
        *,
        mount: str,
        path: str,
        identity: str,
        ttl: float | timedelta,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """Remember where the entry lives; nothing is read before the first call."""
        self.session = session
        self.mount = mount
        self.path = path
        self.identity = identity
        self.ttl = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
        self._clock = clock
        self._version: int | None = None
        self._checked_mount = False

    def describe(self) -> str:
        """``vault <mount>/<path>``, for messages."""
        return f"vault lock {self.mount}/{self.path}"

    @property
    def held(self) -> bool:
        """Whether our last acquire or renewal succeeded and we have not released since."""
        return self._version is not None

    def read(self) -> LockEntry:
        """The entry as stored now."""
        self._check_mount()

        def read(client: hvac.Client) -> LockEntry:
            try:
                answer = client.secrets.kv.v2.read_secret_version(
                    path=self.path, mount_point=self.mount, raise_on_deleted_version=True
                )
            except hvac.exceptions.InvalidPath as exc:
                body = exc.json
                if exc.errors or not isinstance(body, dict):
                    raise  # no such mount: mapped by the session
                # No entry (404 {"errors": []}) or a deleted latest version: nobody holds it.
                meta = (body.get("data") or {}).get("metadata") or {}
                return LockEntry("", None, int(meta.get("version") or 0))
            content = (answer or {}).get("data") or {}
            data = content.get("data") or {}
            version = int((content.get("metadata") or {}).get("version") or 0)
            holder = data.get("holder")
            return LockEntry(
                holder if isinstance(holder, str) else "", _moment(data.get("expires_at")), version
            )

        return self.session.call(read, where=self.describe())

    def acquire(self) -> LockEntry | None:
        """Take the entry when nobody holds it; None when we hold it now, else the holder's."""
        entry = self.read()
        now = self._clock()
        if entry.held_by_other(self.identity, now):
            return entry
        try:
            self._version = self._write(self._ours(now), cas=entry.version)
        except TargetConflict:
            self._version = None
            return self.read()  # someone was faster; report them
        log.info("runlock.acquired", lock=self.describe(), identity=self.identity)
        return None

    def renew(self) -> bool:
        """Push our expiry forward; False when the entry is no longer ours."""
        if self._version is None:
            return False
        try:
            self._version = self._write(self._ours(self._clock()), cas=self._version)
        except TargetConflict:
            log.warning("runlock.lost", lock=self.describe(), identity=self.identity)
            self._version = None
            return False
        return True

    def release(self) -> bool:
        """Write an empty holder when the entry is still ours; True if written."""
        if self._version is None:
            return False
        version, self._version = self._version, None
        data = {"holder": "", "released_at": _stamp(self._clock())}
        try:
            self._write(data, cas=version)
        except RotatorError as exc:
            log.warning("runlock.release_failed", lock=self.describe(), error=str(exc))
            return False
        log.info("runlock.released", lock=self.describe(), identity=self.identity)
        return True

    # -- internals -------------------------------------------------------------------------------

    def _ours(self, now: datetime) -> dict[str, Any]:
        return {
            "holder": self.identity,
            "acquired_at": _stamp(now),
            "expires_at": _stamp(now + timedelta(seconds=self.ttl)),
            "ttl_seconds": round(self.ttl),
        }

    def _write(self, data: dict[str, Any], *, cas: int) -> int:
        def put(client: hvac.Client) -> int:
            answer = client.secrets.kv.v2.create_or_update_secret(
                path=self.path, secret=data, cas=cas, mount_point=self.mount
            )
            return int(((answer or {}).get("data") or {}).get("version") or cas + 1)

        return self.session.call(put, where=self.describe())

    def _check_mount(self) -> None:
        if self._checked_mount:
            return
        version = self.session.kv_version(self.mount, where=self.describe())
        if version == 1:
            raise TargetInvalid(
                f"{self.describe()}: mount {self.mount} is KV version 1, which has no "
                "check-and-set; the lock needs a KV v2 mount"
            )
        self._checked_mount = True


class HeldVaultLock:
    """A :class:`VaultKvLock` we hold, renewed on a background thread until :meth:`close`."""

    def __init__(self, lock: VaultKvLock) -> None:
        """Start renewing every ``ttl / RENEWALS_PER_TTL``."""
        self.lock = lock
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="vault-run-lock", daemon=True)
        self._thread.start()

    def still_held(self) -> bool:
        """Whether every renewal so far succeeded."""
        return not self._lost.is_set()

    def close(self) -> None:
        """Stop renewing, then release the entry."""
        self._stop.set()
        self._thread.join(timeout=self.lock.session.timeout * 2 + 1)
        self.lock.release()

    def _renew_loop(self) -> None:
        interval = self.lock.ttl / RENEWALS_PER_TTL
        last_renewal = time.monotonic()
        while not self._stop.wait(interval):
            try:
                renewed = self.lock.renew()
            except RotatorError as exc:
                log.warning("runlock.renew_failed", lock=self.lock.describe(), error=str(exc))
                # Vault unreachable: the entry may still be ours, unless it is about to expire
                # (then another run may take it before we could tell).
                if time.monotonic() - last_renewal < self.lock.ttl - interval:
                    continue
                renewed = False
            if not renewed:
                self._lost.set()
                return
            last_renewal = time.monotonic()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
