"""Tests for rotator.shared_reads: one fetch per key within a scope, across threads."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rotator.errors import TargetForbidden
from rotator.shared_reads import active, shared, shared_reads


class Counter:
    """A fetch that counts its calls and can be made to wait until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()

    def __call__(self) -> list[int]:
        with self._lock:
            self.calls += 1
            call = self.calls
        self.release.wait(5)
        return [call]


class TestSharedReads:
    """Within a scope a key is fetched once; outside, every call fetches."""

    def test_outside_a_scope_every_call_fetches(self) -> None:
        """No scope: nothing is remembered."""
        fetch = Counter()
        assert not active()
        assert shared("k", fetch) == [1]
        assert shared("k", fetch) == [2]

    def test_inside_a_scope_each_key_is_fetched_once(self) -> None:
        """The same key answers the same object; another key fetches again."""
        fetch = Counter()
        with shared_reads() as scope:
            assert active()
            first = shared("k", fetch)
            assert shared("k", fetch) is first
            assert shared("other", fetch) == [2]
            assert scope.fetched == 2
        assert not active()
        assert shared("k", fetch) == [3]

    def test_concurrent_callers_wait_for_the_one_fetch(self) -> None:
        """Eight threads asking for one key while it is being fetched: one fetch, one answer."""
        fetch = Counter()
        fetch.release.clear()
        with shared_reads(), ThreadPoolExecutor(max_workers=8) as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, shared, "k", fetch) for _ in range(8)
            ]
            fetch.release.set()
            answers = [f.result(timeout=10) for f in futures]
        assert fetch.calls == 1
        assert all(answer is answers[0] for answer in answers)

    def test_a_failed_fetch_is_shared_like_an_answer(self) -> None:
        """Every caller of a key whose fetch failed gets that error; it is not fetched again."""
        calls = []

        def refuse() -> None:
            calls.append(1)
            raise TargetForbidden("kubernetes-secret:ctx/ns/*: list secrets forbidden")

        with shared_reads():
            for _ in range(3):
                with pytest.raises(TargetForbidden, match="list secrets forbidden"):
                    shared("k", refuse)
        assert len(calls) == 1
