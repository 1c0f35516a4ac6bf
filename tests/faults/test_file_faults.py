"""The fault matrix's file cells: EACCES, ENOSPC and a read-only directory on the file target's
push, made real by the kernel in a user + mount namespace (``tests/faults/nsrun.py``), with the
faulty run as a ``rotator`` process inside it; recovery and the checks run as for every cell."""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.cells import Cell, clear_all, nothing, params, with_findings
from tests.faults.harness import KEY, FaultWorld, Run
from tests.faults.runner import run_cell

#: Seconds the namespace check may take.
CHECK_TIMEOUT_S = 30


@functools.cache
def namespace_problem() -> str | None:
    """Why ``unshare -rm`` with a bind mount, a tmpfs and ``setpriv`` cannot run here, or None."""
    with tempfile.TemporaryDirectory() as scratch:
        script = (
            f"mount --bind {scratch} {scratch} && mount -o remount,ro,bind {scratch} && "
            f"mount -t tmpfs -o size=4k tmpfs {scratch} && "
            "setpriv --bounding-set=-dac_override -- true"
        )
        try:
            done = subprocess.run(
                ["unshare", "-rm", "--", "sh", "-c", script],
                capture_output=True,
                text=True,
                timeout=CHECK_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run unshare: {exc}"
    if done.returncode != 0:
        return (
            "unshare -rm (a user and mount namespace with bind mounts, tmpfs and setpriv) is not "
            "available here: it needs CAP_SYS_ADMIN, or unprivileged user namespaces "
            f"(user.max_user_namespaces > 0, no seccomp filter on unshare): {done.stderr.strip()}"
        )
    return None


def in_namespace(mode: str) -> Callable[[FaultWorld, tuple[str, ...]], Run]:
    """A runner making the faulty run a rotator process under ``nsrun MODE <file dir>``."""

    def run(fw: FaultWorld, args: tuple[str, ...]) -> Run:
        directory = fw.world.file_path(KEY).parent
        wrapper = ["unshare", "-rm", "--", sys.executable, "-m", "tests.faults.nsrun", mode]
        return fw.run_process([*wrapper, str(directory), "--", *fw.command(*args)], args)

    return run


def _file_dir(fw: FaultWorld) -> Path:
    return fw.world.file_path(KEY).parent


def read_only_bits(fw: FaultWorld) -> None:
    """The file target's directory: r-x for everyone (root ignores it without its caps)."""
    _file_dir(fw).chmod(0o555)


def writable_bits(fw: FaultWorld) -> None:
    """The directory writable by its owner again."""
    clear_all(fw)
    _file_dir(fw).chmod(0o755)


FILE_CELLS = with_findings(
    [
        Cell(
            "file",
            "push",
            "EACCES",
            "fix-permissions",
            read_only_bits,
            clear=writable_bits,
            runner=in_namespace("eacces"),
        ),
        Cell("file", "push", "ENOSPC", "retry", nothing, runner=in_namespace("enospc")),
        Cell("file", "push", "read-only-fs", "fix-config", nothing, runner=in_namespace("rofs")),
    ]
)


@pytest.mark.slow
@pytest.mark.parametrize("cell", params(FILE_CELLS))
def test_file_fault_is_reported_and_recovered(
    cell: Cell, fault_world: FaultWorld, record_cell: Callable[[dict[str, Any]], None]
) -> None:
    """A file push the kernel refuses is reported with the right step and category; once the
    fault is gone the world settles with every invariant holding."""
    problem = namespace_problem()
    if problem is not None:
        pytest.skip(problem)
    problems = run_cell(cell, fault_world, record_cell)
    assert not problems, "\n".join(problems)
