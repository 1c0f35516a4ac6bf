"""Run a command as a separate process and measure what it cost: wall, CPU and peak RSS.

CPU (user + system) and peak RSS come from the child's own ``rusage`` (:func:`os.wait4`), so
the emulators serving it in this process are not counted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: The venv's interpreter and console script (the benchmark runs ``python -m bench`` from it).
PYTHON = sys.executable
ROTATOR = str(Path(sys.executable).with_name("rotator"))


@dataclass(frozen=True)
class Cost:
    """What one child process cost."""

    wall: float  #: seconds
    cpu: float  #: user + system seconds of the child
    rss_mib: float  #: peak resident set size of the child, MiB
    code: int  #: exit code

    def as_dict(self) -> dict[str, Any]:
        """The figures, rounded for results.json."""
        out = asdict(self)
        for name in ("wall", "cpu"):
            out[name] = round(out[name], 4)
        out["rss_mib"] = round(out["rss_mib"], 1)
        return out


@dataclass(frozen=True)
class Finished:
    """A finished child: its cost and what it printed."""

    cost: Cost
    out: str
    err: str


def measure(argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> Finished:
    """Run ``argv`` to completion (stdout/stderr to files under ``cwd``) and measure it."""
    out_path = cwd / "child.out"
    err_path = cwd / "child.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    cost = Cost(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        code=process.returncode,
    )
    return Finished(
        cost,
        out_path.read_text(errors="replace"),
        err_path.read_text(errors="replace"),
    )


def median_cost(argv: Sequence[str], *, cwd: Path, repeat: int) -> Cost:
    """The per-figure median of ``repeat`` runs of ``argv``."""
    costs = [measure(argv, cwd=cwd).cost for _ in range(repeat)]

    def mid(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    return Cost(
        wall=mid([c.wall for c in costs]),
        cpu=mid([c.cpu for c in costs]),
        rss_mib=mid([c.rss_mib for c in costs]),
        code=max(c.code for c in costs),
    )


def rotator(config: Path, *args: str) -> list[str]:
    """The argv of ``rotator --config CONFIG ARGS``."""
    return [ROTATOR, "--config", str(config), *args]


def env_without_proxies() -> dict[str, str]:
    """This environment without proxy settings (the emulators are on 127.0.0.1)."""
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def rss_of(pid: int) -> float | None:
    """The current RSS (MiB) of a running process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_of(pid: int) -> float | None:
    """User + system CPU seconds a running process has used so far, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # After the command name: state is field 3, utime field 14, stime field 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / ticks
