"""Reads shared by every adapter during one observation: one LIST answers many keys.

The engine observes all keys of a run at once (:func:`rotator.engine.observe.observe_all`)
inside :func:`shared_reads`. While that scope is open, an adapter that can answer its read from
a broader one asks :func:`shared` for it under a key naming what is read, and the first caller
fetches it while every other caller of the same key (in any worker thread) waits for that one
answer — one LIST of a namespace's Deployments for every discovering consumer of the namespace,
one label-selected LIST of Secrets for every Secret target in list read mode.

Nothing outlives the scope: the next run lists again (the engine is level-triggered), and reads
made outside it — apply's read-back after a write, ``doctor`` — always go to the server.

The scope travels in a :mod:`contextvars` variable; worker threads see it because the engine
runs each task in a copy of the submitting context. A failed fetch is shared like an answer:
each caller gets the same error (one failed LIST is one failure, not one retry per key).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

T = TypeVar("T")


class _Entry:
    """One shared read: its answer or error once ``done`` is set."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class SharedReads:
    """The answers fetched so far in one scope, by key; thread-safe, single-flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}
        #: How many reads were fetched (the rest were answered from the scope).
        self.fetched = 0

    def get(self, key: Hashable, fetch: Callable[[], T]) -> T:
        """The answer for ``key``: fetched by the first caller, awaited by the others."""
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None
            if entry is None:
                entry = self._entries[key] = _Entry()
                self.fetched += 1
        if owner:
            try:
                entry.value = fetch()
            except BaseException as exc:
                entry.error = exc
                raise
            finally:
                entry.done.set()
        else:
            entry.done.wait()
        if entry.error is not None:
            raise entry.error
        return cast("T", entry.value)


_scope: ContextVar[SharedReads | None] = ContextVar("rotator_shared_reads", default=None)


@contextmanager
def shared_reads() -> Iterator[SharedReads]:
    """Open a scope in which :func:`shared` answers each key once."""
    scope = SharedReads()
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def active() -> bool:
    """Whether a scope is open in this context."""
    return _scope.get() is not None


def shared(key: Hashable, fetch: Callable[[], T]) -> T:
    """``fetch()``, answered once per ``key`` while a scope is open (every time otherwise)."""
    scope = _scope.get()
    return fetch() if scope is None else scope.get(key, fetch)
