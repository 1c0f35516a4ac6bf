"""What a command imports, and the import floor: a process importing just those modules.

``python -X importtime`` lists every module a run imports. The *floor* of a command is the cost
of a process that imports the same third-party modules (or, for the daemon's RSS baseline, every
module including the rotator's own) and does nothing else: the least any run of that command
can cost while it loads those libraries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.proc import PYTHON, ROTATOR, Cost, env_without_proxies, median_cost

#: Packages of this repository: never part of a library floor.
OWN = frozenset({"rotator", "rotator_sandbox", "bench", "__main__"})
#: Libraries ``check-config`` should not need (issue 12's start-up target).
HEAVY = ("kubernetes", "hvac", "apscheduler")


def _parse(stderr: str) -> list[str]:
    modules: list[str] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        name = line.rsplit("|", 1)[-1].strip()
        if name:
            modules.append(name)
    return modules


def imported_modules(argv: Sequence[str], *, cwd: Path, run_for: float | None = None) -> list[str]:
    """Modules ``rotator ARGV`` imports (in completion order). ``run_for``: a long-running
    command (the daemon) is stopped with SIGTERM after that many seconds."""
    command = [PYTHON, "-X", "importtime", ROTATOR, *argv]
    if run_for is None:
        done = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env=env_without_proxies(),
        )
        return _parse(done.stderr)
    err_path = cwd / "importtime.err"
    with err_path.open("wb") as err:
        process = subprocess.Popen(
            command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, env=env_without_proxies()
        )
        time.sleep(run_for)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return _parse(err_path.read_text(errors="replace"))


def top_level(modules: Iterable[str]) -> set[str]:
    """The top-level packages of ``modules``."""
    return {m.split(".", 1)[0] for m in modules}


def third_party(modules: Iterable[str]) -> list[str]:
    """The modules that belong to neither the standard library nor this repository."""
    stdlib = sys.stdlib_module_names
    return [
        m
        for m in modules
        if (top := m.split(".", 1)[0]) not in stdlib and top not in OWN and not top.startswith("_")
    ]


def floor_cost(modules: Sequence[str], *, cwd: Path, repeat: int = 3) -> Cost:
    """Median cost of a process that imports ``modules`` (each in a ``try``) and exits."""
    script = cwd / "import_floor.py"
    script.write_text(
        "import importlib\n"
        f"for name in {list(dict.fromkeys(modules))!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:  # noqa: BLE001 - an optional module of a library\n"
        "        pass\n"
    )
    return median_cost([PYTHON, str(script)], cwd=cwd, repeat=repeat)


def python_pass(*, cwd: Path, repeat: int = 5) -> Cost:
    """Median cost of ``python -c pass``."""
    return median_cost([PYTHON, "-c", "pass"], cwd=cwd, repeat=repeat)


def cpu_count() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0))
