"""One kind's StackState listing, indexed once per run.

A run lists each key kind once; every managed key's observation and plan then looks keys up in
that listing: by id (the key a target's metadata names), by name (a new key's name must be
unused) and by managed name (the keys the sweep may delete). Scanning or sorting the whole
listing for each managed key made a run quadratic in the number of keys; :class:`KeyListing`
builds each index once, on first use, so each lookup costs what it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from rotator.engine.naming import ManagedName, parse_key_name

if TYPE_CHECKING:
    from rotator.engine.ports import ApiKey


class KeyListing(Mapping[int, "ApiKey"]):
    """The keys of one kind by id, with indexes by name and by managed name built lazily."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_id: dict[int, ApiKey] = {key.id: key for key in keys}
        self._names: frozenset[str] | None = None
        self._managed: dict[str, tuple[tuple[ApiKey, ManagedName], ...]] | None = None

    @classmethod
    def of(cls, keys: Mapping[int, ApiKey]) -> KeyListing:
        """``keys`` as a listing (itself when it is one already: its indexes are kept)."""
        return keys if isinstance(keys, KeyListing) else cls(keys.values())

    def __getitem__(self, key_id: int) -> ApiKey:
        return self._by_id[key_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __repr__(self) -> str:
        return f"KeyListing({len(self._by_id)} keys)"

    @property
    def names(self) -> frozenset[str]:
        """Every listed name (a new key's name must not be one of them)."""
        if self._names is None:
            self._names = frozenset(key.name for key in self._by_id.values())
        return self._names

    def managed_by(self, managed: str) -> tuple[tuple[ApiKey, ManagedName], ...]:
        """The keys named ``<managed>-<timestamp>[-<nonce>]``, sorted by name, each with its
        parsed name (names of another shape belong to no managed key)."""
        if self._managed is None:
            groups: dict[str, list[tuple[ApiKey, ManagedName]]] = {}
            for key in self._by_id.values():
                parsed = parse_key_name(key.name)
                if parsed is not None:
                    groups.setdefault(parsed.managed, []).append((key, parsed))
            self._managed = {
                name: tuple(sorted(found, key=lambda pair: pair[0].name))
                for name, found in groups.items()
            }
        return self._managed.get(managed, ())
