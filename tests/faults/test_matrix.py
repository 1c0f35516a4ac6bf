"""The fault matrix, in-process: each step x each fault it can meet is reported with the right
step, category, exit code and alert, leaks nothing, and once cleared the world settles with
I1-I4 holding and no duplicate key (``tests/faults/cells.py`` lists the cells)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.cells import Cell, all_cells, params
from tests.faults.harness import FaultWorld
from tests.faults.runner import run_cell


@pytest.mark.parametrize("cell", params(all_cells()))
def test_fault_is_reported_and_recovered(
    cell: Cell, fault_world: FaultWorld, record_cell: Callable[[dict[str, Any]], None]
) -> None:
    """The faulty run names the step and category, exits as the contract says, alerts and
    leaks nothing; after clearing the fault the world settles with every invariant holding."""
    problems = run_cell(cell, fault_world, record_cell)
    assert not problems, "\n".join(problems)
