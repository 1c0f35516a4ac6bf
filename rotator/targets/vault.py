"""The ``vault-kv`` target: one field of a Vault KV secret (engine version 1 or 2).

Every call goes through the run's shared :class:`~rotator.clients.vault.VaultSession` (login,
renewal, re-login on 403, ``lookup-self``, error translation: see :mod:`rotator.clients.vault`;
its names are re-exported here).

KV v2. A data key ``K`` of path ``P`` is described by two ``custom_metadata`` entries of ``P``:

- ``rotator.stackstate.io/K`` — :meth:`KeyMetadata.to_json` of the value last written;
- ``previous.rotator.stackstate.io/K`` — the entry of the value that write replaced.

A different prefix rather than a suffix keeps the two names apart from any other data key's
(``K.previous`` could be a data key). Vault limits a custom_metadata key to 128 characters and a
value to 512: when a data key is too long (over 97 characters, or unprintable) both names use
``sha256-<32 hex of the data key>`` in place of ``K``; when an entry's JSON is over 512
characters, the key names are left out of it (``previous-key-name``, then ``key-name``; the ids
stay). :meth:`VaultKvTarget.read` returns the entry whose fingerprint matches the value held.

A write reads the latest version (data, version number, custom_metadata), writes the
custom_metadata first — the whole map, since Vault replaces it: every other entry is kept —, then
the data with check-and-set on the version read (``cas=0`` for a new path), keeping every other
field of the secret. The order matters for crash safety (as in the ``file`` target): killed
between the two writes, the path still holds the old value and the ``previous`` entry still
describes it, while the new key, described but never pushed, is an orphan the sweep deletes. The
other order would leave a managed value that no metadata describes. A check-and-set mismatch
(someone wrote in between) is retried once from a fresh read, then raises
:class:`~rotator.errors.TargetConflict`. The custom_metadata write has no check-and-set: a
concurrent change of *another* entry between our read and write is lost (leader election makes
the rotator the only writer of its own entries). The metadata is written with a bare
``POST {mount}/metadata/{path}`` carrying only ``custom_metadata``: hvac's ``update_metadata``
always sends ``delete_version_after`` and would reset a key's own setting. A soft-deleted or
destroyed latest version reads as empty; writing over it uses its version number for the
check-and-set. The mount's engine version is checked once per session
(``sys/internal/ui/mounts``), so a v2 target on a v1 mount (or the reverse) fails instead of
writing an envelope as plain data.

KV v1. The value is field ``K``; its metadata is the sibling field ``_rotator.K`` holding the
same JSON, so consumers that read the whole path (e.g. an ``envFrom``-style sync) see that field
too. Value and metadata go in one write of the whole secret (read, merge, write): atomic, no
ordering problem. KV v1 has no check-and-set, so a concurrent writer's change of another field
between our read and our write is lost — one more reason to prefer KV v2.

Errors are translated by the session, :func:`rotator.clients.vault.map_error` (see its table); a
404 on reading a secret that does not exist is not an error: the target is empty.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import hvac
import hvac.exceptions
import structlog
from hvac import utils as hvac_utils

from rotator.clients.vault import (
    CONFLICT_DELAY,
    RENEW_FRACTION,
    AppRoleAuth,
    KubernetesAuth,
    TokenAuth,
    TokenVerdict,
    VaultAuth,
    VaultSession,
    map_error,
)
from rotator.clients.vault import as_int as _int
from rotator.clients.vault import as_mapping as _mapping
from rotator.errors import TargetConflict, TargetInvalid
from rotator.secrets import Secret
from rotator.targets.base import METADATA_PREFIX, KeyMetadata, TargetState

__all__ = [
    "CURRENT_PREFIX",
    "MAX_METADATA_KEY",
    "MAX_METADATA_VALUE",
    "PREVIOUS_PREFIX",
    "RENEW_FRACTION",
    "V1_METADATA_PREFIX",
    "AppRoleAuth",
    "KubernetesAuth",
    "TokenAuth",
    "TokenVerdict",
    "VaultAuth",
    "VaultKvTarget",
    "VaultSession",
    "map_error",
]

log = structlog.get_logger(__name__)

#: Prefix of the custom_metadata entry describing the value written last (KV v2).
CURRENT_PREFIX: Final = f"{METADATA_PREFIX}/"
#: Prefix of the entry describing the value that write replaced (KV v2).
PREVIOUS_PREFIX: Final = f"previous.{METADATA_PREFIX}/"
#: Prefix of the sibling field holding the metadata JSON (KV v1).
V1_METADATA_PREFIX: Final = "_rotator."

#: Vault's limits on custom_metadata (KV plugin ``validateCustomMetadata``).
MAX_METADATA_KEY: Final = 128
MAX_METADATA_VALUE: Final = 512


# -- the target -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    """The latest version of a KV v2 secret as read before a write."""

    data: dict[str, Any] | None  # None: no such secret, or its latest version is deleted
    version: int  # the current version number (0: none), what check-and-set must carry
    custom: dict[str, str] | None  # custom_metadata; None: the answer did not say


class VaultKvTarget:
    """A field of a secret in a Vault KV engine (v1 or v2), through a shared session."""

    def __init__(
        self,
        session: VaultSession,
        *,
        mount: str,
        path: str,
        key: str,
        kv_version: Literal[1, 2],
    ) -> None:
        self.session = session
        self.mount = mount.strip("/")
        self.path = path.strip("/")
        self.key = key
        self.kv_version: Literal[1, 2] = kv_version
        if not self.mount or not self.path or not key:
            raise TargetInvalid(f"{self.id}: mount, path and key must not be empty")
        if kv_version not in (1, 2):
            raise TargetInvalid(f"{self.id}: kv_version must be 1 or 2")

    # -- Target protocol -------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """``vault-kv:[ns=namespace/]mount/path[key]``."""
        ns = f"ns={self.session.namespace}/" if self.session.namespace else ""
        return f"vault-kv:{ns}{self.mount}/{self.path}[{self.key}]"

    def describe(self) -> str:
        """One line for plans."""
        return (
            f"Vault KV v{self.kv_version} {self.mount}/{self.path} key {self.key} "
            f"({self.session.describe()})"
        )

    def read(self) -> TargetState:
        """The value of our field and the metadata entry describing it (nothing there: empty)."""
        self._check_mount()
        if self.kv_version == 1:
            data = self._read_v1()
            value = self._value(data)
            metadata = None
            if value is not None and data is not None:
                found = KeyMetadata.from_json(_str_or_none(data.get(self.v1_metadata_field)))
                if found is not None and found.fingerprint == value.fingerprint:
                    metadata = found
            return TargetState(value=value, metadata=metadata, version=None)
        snapshot = self._read_v2()
        value = self._value(snapshot.data)
        metadata = None
        if value is not None:
            metadata = self._describing(snapshot.custom or {}, value.fingerprint)
        version = str(snapshot.version) if snapshot.version else None
        return TargetState(value=value, metadata=metadata, version=version)

    def write(self, value: Secret, metadata: KeyMetadata) -> None:
        """Write the value and its metadata, keeping every other field and metadata entry."""
        self._check_mount()
        if self.kv_version == 1:
            self._write_v1(value, metadata)
            return
        try:
            self._write_v2_once(value, metadata)
        except TargetConflict:
            log.info("vault.cas_conflict", target=self.id, action="retry")
            try:
                self._write_v2_once(value, metadata)
            except TargetConflict:
                raise TargetConflict(
                    f"{self.id}: check-and-set failed twice, another writer keeps changing "
                    "the secret",
                    delay=CONFLICT_DELAY,
                ) from None

    def write_metadata(self, metadata: KeyMetadata) -> None:
        """Replace the metadata entry of ``metadata.fingerprint``; the value is not touched."""
        self._check_mount()
        if self.kv_version == 1:
            data = dict(self._read_v1() or {})
            data[self.v1_metadata_field] = metadata.to_json()
            self._put_v1(data)
            return
        snapshot = self._with_custom(self._read_v2())
        custom = dict(snapshot.custom or {})
        current = KeyMetadata.from_json(custom.get(self.current_metadata_key))
        previous = KeyMetadata.from_json(custom.get(self.previous_metadata_key))
        if current is not None and current.fingerprint == metadata.fingerprint:
            entries = self._entries(custom, metadata, previous)
        elif (
            current is not None
            and previous is not None
            and previous.fingerprint == (metadata.fingerprint)
        ):
            entries = self._entries(custom, current, metadata)
        else:
            held = _describing_held(current, previous, self._value(snapshot.data), metadata)
            entries = self._entries(custom, metadata, held)
        self._post_custom(entries)

    # -- metadata names ---------------------------------------------------------------------------

    @property
    def current_metadata_key(self) -> str:
        """custom_metadata key of the entry for the value written last (KV v2)."""
        return CURRENT_PREFIX + self._metadata_name()

    @property
    def previous_metadata_key(self) -> str:
        """custom_metadata key of the entry for the value the last write replaced (KV v2)."""
        return PREVIOUS_PREFIX + self._metadata_name()

    @property
    def v1_metadata_field(self) -> str:
        """The sibling field holding our metadata JSON (KV v1)."""
        return V1_METADATA_PREFIX + self.key

    def _metadata_name(self) -> str:
        """The data key, or its hash when a metadata key naming it would exceed Vault's limit."""
        longest = len(PREVIOUS_PREFIX) + len(self.key)
        if longest <= MAX_METADATA_KEY and self.key.isprintable():
            return self.key
        return "sha256-" + hashlib.sha256(self.key.encode("utf-8")).hexdigest()[:32]

    # -- KV v2 -----------------------------------------------------------------------------------

    def _read_v2(self) -> _Snapshot:
        def read(client: hvac.Client) -> _Snapshot:
            try:
                answer = client.secrets.kv.v2.read_secret_version(
                    path=self.path, mount_point=self.mount, raise_on_deleted_version=True
                )
            except hvac.exceptions.InvalidPath as exc:
                body = exc.json
                if exc.errors or not isinstance(body, dict):
                    raise  # "no handler for route": no such mount, mapped by the session
                # Missing secret (404 {"errors": []}), or a deleted / destroyed latest version
                # (404 with the envelope and data.data null): empty.
                meta = _mapping(_mapping(body.get("data")).get("metadata"))
                return _Snapshot(data=None, version=_int(meta.get("version")), custom=_custom(meta))
            content = _mapping(_mapping(answer).get("data"))
            meta = _mapping(content.get("metadata"))
            data = content.get("data")
            return _Snapshot(
                data=dict(data) if isinstance(data, dict) else None,
                version=_int(meta.get("version")),
                custom=_custom(meta),
            )

        return self.session.call(read, where=self.id)

    def _with_custom(self, snapshot: _Snapshot) -> _Snapshot:
        """Fill in custom_metadata (and the version) from the metadata endpoint when unknown."""
        if snapshot.custom is not None:
            return snapshot

        def read(client: hvac.Client) -> dict[str, Any]:
            try:
                answer = client.secrets.kv.v2.read_secret_metadata(
                    path=self.path, mount_point=self.mount
                )
            except hvac.exceptions.InvalidPath as exc:
                if exc.errors:
                    raise
                return {}
            return _mapping(answer)

        meta = _mapping(self.session.call(read, where=self.id).get("data"))
        version = _int(meta.get("current_version")) or snapshot.version
        return _Snapshot(data=snapshot.data, version=version, custom=_custom(meta) or {})

    def _write_v2_once(self, value: Secret, metadata: KeyMetadata) -> None:
        snapshot = self._with_custom(self._read_v2())
        custom = dict(snapshot.custom or {})
        held = self._value(snapshot.data)
        previous = _describing_held(
            KeyMetadata.from_json(custom.get(self.current_metadata_key)),
            KeyMetadata.from_json(custom.get(self.previous_metadata_key)),
            held,
            metadata,
        )
        # Metadata first: see the module docstring for why this order is crash-safe.
        self._post_custom(self._entries(custom, metadata, previous))
        data = dict(snapshot.data or {})
        data[self.key] = value.reveal()

        def put(client: hvac.Client) -> None:
            client.secrets.kv.v2.create_or_update_secret(
                path=self.path, secret=data, cas=snapshot.version, mount_point=self.mount
            )

        self.session.call(put, where=self.id)

    def _entries(
        self, custom: dict[str, str], current: KeyMetadata, previous: KeyMetadata | None
    ) -> dict[str, str]:
        """``custom`` with our two entries set (previous removed when there is none)."""
        merged = dict(custom)
        merged[self.current_metadata_key] = self._encode(current)
        if previous is None:
            merged.pop(self.previous_metadata_key, None)
        else:
            merged[self.previous_metadata_key] = self._encode(previous)
        return merged

    def _encode(self, metadata: KeyMetadata) -> str:
        """Compact JSON within Vault's 512-character limit (names dropped if needed)."""
        for candidate in (
            metadata,
            dataclasses.replace(metadata, previous_key_name=None),
            dataclasses.replace(metadata, previous_key_name=None, key_name=None),
        ):
            text = candidate.to_json()
            if len(text) <= MAX_METADATA_VALUE:
                return text
        raise TargetInvalid(
            f"{self.id}: metadata does not fit Vault's {MAX_METADATA_VALUE}-character limit"
        )

    def _post_custom(self, custom: dict[str, str]) -> None:
        def post(client: hvac.Client) -> None:
            url = hvac_utils.format_url(
                "/v1/{mount}/metadata/{path}", mount=self.mount, path=self.path
            )
            client.adapter.post(url, json={"custom_metadata": custom})

        self.session.call(post, where=self.id)

    def _describing(self, custom: Mapping[str, str], fingerprint: str) -> KeyMetadata | None:
        """The entry (current or previous) whose fingerprint is ``fingerprint``."""
        for name in (self.current_metadata_key, self.previous_metadata_key):
            found = KeyMetadata.from_json(custom.get(name))
            if found is not None and found.fingerprint == fingerprint:
                return found
        return None

    # -- KV v1 -----------------------------------------------------------------------------------

    def _read_v1(self) -> dict[str, Any] | None:
        def read(client: hvac.Client) -> dict[str, Any] | None:
            try:
                answer = client.secrets.kv.v1.read_secret(path=self.path, mount_point=self.mount)
            except hvac.exceptions.InvalidPath as exc:
                if exc.errors or not isinstance(exc.json, dict):
                    raise
                return None
            data = _mapping(answer).get("data")
            return dict(data) if isinstance(data, dict) else {}

        return self.session.call(read, where=self.id)

    def _write_v1(self, value: Secret, metadata: KeyMetadata) -> None:
        data = dict(self._read_v1() or {})
        data[self.key] = value.reveal()
        data[self.v1_metadata_field] = metadata.to_json()
        self._put_v1(data)

    def _put_v1(self, data: dict[str, Any]) -> None:
        def put(client: hvac.Client) -> None:
            client.secrets.kv.v1.create_or_update_secret(
                path=self.path, secret=data, method="PUT", mount_point=self.mount
            )

        self.session.call(put, where=self.id)

    # -- shared ----------------------------------------------------------------------------------

    def _check_mount(self) -> None:
        found = self.session.kv_version(self.mount, where=self.id)
        if found is not None and found != self.kv_version:
            raise TargetInvalid(
                f"{self.id}: mount {self.mount} is a KV v{found} engine, the target says "
                f"kv_version {self.kv_version}"
            )

    def _value(self, data: Mapping[str, Any] | None) -> Secret | None:
        raw = None if data is None else data.get(self.key)
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise TargetInvalid(f"{self.id}: field {self.key} is not a string")
        return Secret(raw)


# -- small helpers --------------------------------------------------------------------------------


def _describing_held(
    current: KeyMetadata | None,
    previous: KeyMetadata | None,
    held: Secret | None,
    new: KeyMetadata,
) -> KeyMetadata | None:
    """The existing entry describing the value held, when that value is not the new one."""
    if held is None or held.fingerprint == new.fingerprint:
        return None
    for entry in (current, previous):
        if entry is not None and entry.fingerprint == held.fingerprint:
            return entry
    return None


def _custom(meta: Mapping[str, Any]) -> dict[str, str] | None:
    """custom_metadata from a metadata block: None when absent, {} when null."""
    if "custom_metadata" not in meta:
        return None
    raw = meta["custom_metadata"]
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
