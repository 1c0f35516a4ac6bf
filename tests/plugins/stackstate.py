"""Fixtures for the StackState emulator; every exchange they serve is checked against the spec.

``stackstate`` is a started :class:`~rotator_sandbox.stackstate.StackStateEmulator` whose clock is
``stackstate_clock`` (frozen; tests move it with ``advance``). ``make_stackstate`` builds more
emulators with other settings (``api_path``, ``service_bearer``, ...). At teardown every logged
answer of every emulator built here is validated with
:func:`tests.contract.openapi.validate_response`, and every request the emulator accepted (2xx)
with :func:`~tests.contract.openapi.validate_request`; a departure fails the test. That turns
each test using these fixtures into a contract test of the emulator (answers) and of the client
(requests). Requests outside the excerpt (unknown paths, wrong methods) and dropped connections
are not part of the contract and are skipped.

A test that deliberately produces off-contract exchanges (e.g. an injected fault with a made-up
body) opts out with ``@pytest.mark.stackstate_off_contract("why")``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from rotator_sandbox.stackstate import StackStateEmulator
from tests.contract.openapi import find_operation, validate_request, validate_response
from tests.plugins.clock import FrozenClock as MutableClock

OFF_CONTRACT_MARKER = "stackstate_off_contract"


def pytest_configure(config: pytest.Config) -> None:
    """Register the opt-out marker (the suite runs with --strict-markers)."""
    config.addinivalue_line(
        "markers",
        f"{OFF_CONTRACT_MARKER}(reason): skip the StackState contract check at teardown",
    )


def contract_problems(emulator: StackStateEmulator) -> list[str]:
    """Every departure from the spec in the emulator's request log."""
    problems: list[str] = []
    for entry in emulator.log:
        if entry.status is None:
            continue  # dropped on purpose: nothing was answered
        if find_operation(entry.method, entry.path, api_path=emulator.api_path) is None:
            continue  # unknown path or method: the spec says nothing about it
        problems.extend(
            validate_response(
                entry.method,
                entry.path,
                entry.status,
                entry.response_body,
                api_path=emulator.api_path,
            )
        )
        if 200 <= entry.status < 300:
            problems.extend(
                validate_request(
                    entry.method,
                    entry.path,
                    entry.body,
                    query=entry.query,
                    api_path=emulator.api_path,
                )
            )
    return problems


@pytest.fixture
def stackstate_clock() -> MutableClock:
    """The clock of the ``stackstate`` emulator: starts at the real now, moves only on request."""
    now = datetime.now(UTC)
    return MutableClock(now.replace(microsecond=now.microsecond // 1000 * 1000))


@pytest.fixture
def make_stackstate(
    request: pytest.FixtureRequest, stackstate_clock: MutableClock
) -> Iterator[Callable[..., StackStateEmulator]]:
    """Build started emulators (``clock`` defaults to ``stackstate_clock``), checked at teardown."""
    started: list[StackStateEmulator] = []

    def make(**kwargs: Any) -> StackStateEmulator:
        kwargs.setdefault("clock", stackstate_clock)
        emulator = StackStateEmulator(**kwargs)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()
    if request.node.get_closest_marker(OFF_CONTRACT_MARKER) is not None:
        return
    problems = [p for emulator in started for p in contract_problems(emulator)]
    if problems:
        pytest.fail(
            "StackState exchanges that depart from the OpenAPI excerpt:\n  "
            + "\n  ".join(problems),
            pytrace=False,
        )


@pytest.fixture
def stackstate(make_stackstate: Callable[..., StackStateEmulator]) -> StackStateEmulator:
    """A started StackState emulator with default credentials, on ``stackstate_clock``."""
    return make_stackstate()
