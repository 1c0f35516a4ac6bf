"""The fault matrix's SIGKILL cells (invariant I7): a real ``rotator rotate`` process killed at
each step boundary converges once run again, with I1-I4 holding and no duplicate key.

As in ``tests/integration/test_crash_safety.py``, an emulator holds the request that marks the
boundary — before it is processed, or after it changed state but before the answer — the
process is killed while it waits, and the request is then dropped (``abort``) or let through
(``release``) as a dying client leaves it. A killed process reports nothing and sends no alert:
what is checked is what the next runs make of the state it left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from rotator_sandbox._server import Emulator
from tests.faults.cells import (
    AUTHORIZATION,
    DEPLOYMENT,
    TOKEN,
    TOKENS,
    VAULT_DATA,
    Action,
    nothing,
    orphan,
    rotated,
)
from tests.faults.harness import PROCESS_TIMEOUT_S, REPO, FaultWorld


@dataclass(frozen=True)
class KillCell:
    """Where to kill: the request held, on which emulator, and what becomes of it."""

    boundary: str
    service: str
    method: str
    pattern: str
    after_processing: bool = False
    args: tuple[str, ...] = ("rotate", "--force")
    prepare: Action = nothing

    def emulator(self, fw: FaultWorld) -> Emulator:
        """The emulator that holds the request."""
        world = fw.world
        return {"stackstate": world.stackstate, "vault": world.vault, "kubernetes": world.kube}[
            self.service
        ]


KILL_CELLS = [
    KillCell("create-answer-lost", "stackstate", "POST", TOKENS, after_processing=True),
    KillCell("after-create", "stackstate", "GET", AUTHORIZATION),
    KillCell("mid-push", "vault", "POST", VAULT_DATA),
    KillCell("after-push", "kubernetes", "PATCH", DEPLOYMENT),
    KillCell("after-restart", "kubernetes", "PATCH", DEPLOYMENT, after_processing=True),
    KillCell("before-revoke", "stackstate", "DELETE", TOKEN, args=("rotate",), prepare=rotated),
    KillCell(
        "after-revoke",
        "stackstate",
        "DELETE",
        TOKEN,
        after_processing=True,
        args=("rotate",),
        prepare=rotated,
    ),
    KillCell("mid-sweep", "stackstate", "DELETE", TOKEN, args=("rotate",), prepare=orphan),
]


def kill_at(fw: FaultWorld, cell: KillCell) -> tuple[int, str]:
    """Start ``rotator ARGS`` as a process, SIGKILL it at the held request, settle the hold;
    returns the exit status and the process's output."""
    hold = cell.emulator(fw).hold(cell.method, cell.pattern, after_processing=cell.after_processing)
    process = subprocess.Popen(
        fw.command(*cell.args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)},
    )
    try:
        assert hold.wait_arrived(PROCESS_TIMEOUT_S), "the process never reached the boundary"
        process.send_signal(signal.SIGKILL)
        output, _ = process.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=PROCESS_TIMEOUT_S)
        if cell.after_processing:
            hold.release()
        else:
            hold.abort()
    return process.returncode, output.decode("utf-8", "replace")


@pytest.mark.slow
@pytest.mark.parametrize("cell", KILL_CELLS, ids=lambda c: c.boundary)
def test_killed_run_converges(
    cell: KillCell, fault_world: FaultWorld, record_cell: Callable[[dict[str, Any]], None]
) -> None:
    """Killed at the boundary, the next runs converge: I1-I4 hold and no key is duplicated."""
    fw = fault_world
    started = time.monotonic()
    fw.add_key()
    fw.bootstrap()
    cell.prepare(fw)
    code, output = kill_at(fw, cell)
    fw.extra_outputs.append(output)
    fw.remember_targets()
    problems = []
    if code != -signal.SIGKILL:
        problems.append(f"the process ended with {code} before it was killed")
    problems += fw.i1_problems("right after the kill")
    problems += fw.duplicate_problems("right after the kill")
    runs = fw.settle(problems)
    problems += fw.final_problems()
    record_cell(
        {
            "cell": f"process/{cell.boundary}/SIGKILL",
            "service": "process",
            "step": cell.boundary,
            "fault": "SIGKILL",
            "expected": {"step": None, "category": None, "exit": -signal.SIGKILL},
            "reported": None,
            "outcome": "killed",
            "exit": code,
            "alert": "-",
            "runs_to_settle": runs,
            "problems": problems,
            "finding": None,
            "seconds": round(time.monotonic() - started, 2),
        }
    )
    assert not problems, "\n".join(problems)
