"""The one small Protocol every target satisfies, and the metadata written beside each value.

A target is one place a managed key's value lives: a data key of a Kubernetes Secret, a field at
a Vault KV path, a field of a file. One Secret, Vault path or file may hold several managed keys,
so metadata is always kept *per data key*. Targets never import each other, nor the engine.

Reading returns what is there now (value, our metadata if any, an opaque version for logs).
Writing replaces only our data key and our metadata, atomically from a reader's point of view, and
preserves everything else at that location.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from rotator.secrets import Secret

#: Prefix of the annotations / metadata fields the rotator owns.
METADATA_PREFIX = "rotator.stackstate.io"


def _dt(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_dt(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class KeyMetadata:
    """What the rotator records beside a value it wrote (never the value itself).

    ``key_id`` is None for a value whose StackState id is unknown (an adopted value copied by a
    repair). ``previous_key_id`` names the key this value replaced, which the revoke step deletes
    once every consumer switched; ``previous_revoked`` records that it was, ``switched`` that
    the switch-over to this value is complete.
    """

    key_id: int | None
    key_name: str | None
    kind: str
    fingerprint: str
    expires_at: datetime | None
    rotated_at: datetime
    previous_key_id: int | None = None
    previous_key_name: str | None = None
    #: Kind of the previous key when it differs from ``kind`` (a managed key moved from
    #: ingestion API keys to service tokens): revoke deletes it as that kind.
    previous_kind: str | None = None
    previous_revoked: bool = False
    #: Every consumer demonstrably switched to this value (and the grace period passed): the
    #: switch-over is finished and nothing is restarted for this value again.
    switched: bool = False
    #: When every consumer was first seen switched; the grace period runs from here.
    switched_at: datetime | None = None
    #: :func:`rotator.consumers.base.consumer_token` of consumers whose switch cannot be
    #: observed later (commands) and that succeeded for this value.
    done: tuple[str, ...] = ()
    #: Pushed by ``rotate --emergency``: the previous key is revoked as soon as every consumer
    #: switched, without the grace period (whichever run — daemon or CLI — sees it first).
    emergency: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping with stable, short field names."""
        return {
            "key-id": self.key_id,
            "key-name": self.key_name,
            "kind": self.kind,
            "fingerprint": self.fingerprint,
            "expires-at": _dt(self.expires_at),
            "rotated-at": _dt(self.rotated_at),
            "previous-key-id": self.previous_key_id,
            "previous-key-name": self.previous_key_name,
            "previous-kind": self.previous_kind,
            "previous-revoked": self.previous_revoked,
            "switched": self.switched,
            "switched-at": _dt(self.switched_at),
            "done": list(self.done) if self.done else None,
            "emergency": self.emergency,
        }

    def to_json(self) -> str:
        """Compact JSON (fits Vault's 512-character custom_metadata values)."""
        return json.dumps(
            {k: v for k, v in self.to_dict().items() if v is not None and v is not False},
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_dict(cls, data: Any) -> KeyMetadata | None:
        """Parse what :meth:`to_dict` wrote; None when it is absent or not ours."""
        if not isinstance(data, dict) or not data.get("fingerprint"):
            return None
        try:
            rotated = _parse_dt(data.get("rotated-at"))
            key_id = data.get("key-id")
            previous = data.get("previous-key-id")
            return cls(
                key_id=int(key_id) if key_id is not None else None,
                key_name=data.get("key-name"),
                kind=str(data.get("kind") or ""),
                fingerprint=str(data["fingerprint"]),
                expires_at=_parse_dt(data.get("expires-at")),
                rotated_at=rotated or datetime.fromtimestamp(0, UTC),
                previous_key_id=int(previous) if previous is not None else None,
                previous_key_name=data.get("previous-key-name"),
                previous_kind=data.get("previous-kind"),
                previous_revoked=bool(data.get("previous-revoked", False)),
                switched=bool(data.get("switched", False)),
                switched_at=_parse_dt(data.get("switched-at")),
                done=tuple(str(t) for t in data.get("done") or ()),
                emergency=data.get("emergency") is True,
            )
        except (TypeError, ValueError):
            return None

    @classmethod
    def from_json(cls, text: str | None) -> KeyMetadata | None:
        """Parse :meth:`to_json` output; None when absent or unparsable."""
        if not text:
            return None
        try:
            return cls.from_dict(json.loads(text))
        except ValueError:
            return None


@dataclass(frozen=True)
class TargetState:
    """What a target holds now. ``value`` None means nothing is there (missing location/field)."""

    value: Secret | None
    metadata: KeyMetadata | None
    version: str | None = None
    #: Who else owns the location (Helm, Argo CD, Flux, a controller), when anyone does: they
    #: write their own value back, so the plan refuses to write unless the config allows it.
    owner: str | None = None
    #: The configuration allows writing despite ``owner`` (the plan warns instead).
    owner_allowed: bool = False

    @property
    def fingerprint(self) -> str | None:
        """Fingerprint of the value held, or None."""
        return None if self.value is None else self.value.fingerprint

    @property
    def managed_metadata(self) -> KeyMetadata | None:
        """Our metadata, but only when it describes the value actually held (not stale)."""
        if self.value is None or self.metadata is None:
            return None
        if self.metadata.fingerprint != self.value.fingerprint:
            return None
        return self.metadata


@runtime_checkable
class Target(Protocol):
    """One place a managed key's value lives."""

    @property
    def id(self) -> str:
        """Stable, human-readable identity, e.g. ``kubernetes-secret:ctx/ns/name[API_KEY]``."""
        ...

    def describe(self) -> str:
        """One line for plans and logs (never a value)."""
        ...

    def read(self) -> TargetState:
        """Read the current value and our metadata. Raises a RotatorError on failure."""
        ...

    def write(self, value: Secret, metadata: KeyMetadata) -> None:
        """Write value + metadata, preserving everything else. Raises a RotatorError."""
        ...

    def write_metadata(self, metadata: KeyMetadata) -> None:
        """Update only our metadata for the value held (e.g. record a revocation)."""
        ...
