"""Fixtures of the fault matrix: journaled emulators (replacing the plain ones of
``tests/plugins`` for the tests in this directory), the fault world, and the result file.

``stackstate``, ``vault`` and ``kube`` are the same emulators as everywhere else, built as
:mod:`tests.faults.journal` subclasses sharing one ``journal``, so the ``world`` fixture (and
everything built on it) runs on them unchanged. ``stackstate`` keeps the OpenAPI contract check
of ``tests/plugins/stackstate.py`` at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import FaultWorld, append_result, results_path
from tests.faults.journal import (
    Journal,
    JournaledKubernetes,
    JournaledStackState,
    JournaledVault,
)
from tests.plugins.alert_receiver import AlertReceiver
from tests.plugins.clock import FrozenClock
from tests.plugins.stackstate import OFF_CONTRACT_MARKER, contract_problems
from tests.plugins.vault import ROOT_TOKEN
from tests.plugins.world import World


@pytest.fixture
def journal() -> Journal:
    """The one journal of this test's emulators."""
    return Journal()


@pytest.fixture
def stackstate(
    journal: Journal, stackstate_clock: FrozenClock, request: pytest.FixtureRequest
) -> Iterator[JournaledStackState]:
    """A journaled StackState emulator on ``stackstate_clock``, contract-checked at teardown."""
    emulator = JournaledStackState(journal, clock=stackstate_clock)
    emulator.start()
    yield emulator
    emulator.stop()
    if request.node.get_closest_marker(OFF_CONTRACT_MARKER) is not None:
        return
    problems = contract_problems(emulator)
    if problems:
        pytest.fail(
            "StackState exchanges that depart from the OpenAPI excerpt:\n  "
            + "\n  ".join(problems),
            pytrace=False,
        )


@pytest.fixture
def vault(journal: Journal, vault_clock: FrozenClock) -> Iterator[JournaledVault]:
    """A journaled Vault emulator (root token ``ROOT_TOKEN``) on ``vault_clock``."""
    emulator = JournaledVault(journal, clock=vault_clock, root_token=ROOT_TOKEN)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def kube(journal: Journal) -> Iterator[JournaledKubernetes]:
    """A journaled Kubernetes emulator: plain HTTP, anonymous, instant rollouts."""
    emulator = JournaledKubernetes(journal)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def fault_world(world: World, journal: Journal, receiver: AlertReceiver) -> FaultWorld:
    """A fault world without managed keys yet (``fault_world.add_key()`` adds ``agent``)."""
    return FaultWorld.create(world, journal, receiver)


@pytest.fixture
def record_cell(tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, Any]], None]:
    """Append one cell's result line to ``$FAULTS_RESULTS`` (else the session's tmp dir)."""
    path: Path = results_path(tmp_path_factory.getbasetemp())

    def record(line: dict[str, Any]) -> None:
        append_result(path, line)

    return record
