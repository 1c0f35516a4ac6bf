"""Start-up: what a command costs before it works, against ``python -c pass`` and import floors.

On a world of :data:`STARTUP_KEYS` settled keys: ``rotator --help``, ``check-config``, ``status``
and a steady-state ``rotate`` (medians of a few runs), each command's imported modules
(``-X importtime``), and the *import floor* of ``status`` and ``rotate``: a process importing the
same third-party modules and nothing else. Also the modules the daemon imports (its RSS
baseline: a process importing all of them, the rotator's own included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.daemon import import_baseline
from bench.imports import (
    HEAVY,
    floor_cost,
    imported_modules,
    python_pass,
    third_party,
    top_level,
)
from bench.proc import ROTATOR, median_cost, rotator
from bench.scenarios import MAX_SETTLE_RUNS, run_cli
from bench.world import World

STARTUP_KEYS = 10
#: Runs per start-up figure (the median is kept).
REPEAT = 3


def _ratio(value: float, base: float) -> float | None:
    return round(value / base, 2) if base > 0 else None


def measure_startup(
    root: Path, progress: Any, *, daemon_seconds: float, repeat: int = REPEAT
) -> dict[str, Any]:
    """The start-up section of results.json."""
    world = World(STARTUP_KEYS, root).start()
    try:
        for _ in range(MAX_SETTLE_RUNS + 1):
            run = run_cli(world, "settle", "rotate", "--output", "json")
            if set(run.outcomes) <= {"unchanged"}:
                break
        config = world.config_path
        base = python_pass(cwd=root, repeat=max(repeat, 3))
        figures: dict[str, Any] = {"python -c pass": base.as_dict()}
        commands = {
            "rotator --help": [ROTATOR, "--help"],
            "check-config": rotator(config, "check-config"),
            f"status ({STARTUP_KEYS} keys)": rotator(config, "status", "--output", "json"),
            f"steady rotate ({STARTUP_KEYS} keys)": rotator(config, "rotate", "--output", "json"),
        }
        for name, argv in commands.items():
            cost = median_cost(argv, cwd=root, repeat=repeat)
            figures[name] = {**cost.as_dict(), "cpu_to_python_pass": _ratio(cost.cpu, base.cpu)}
            progress(
                f"  start-up  {name:<22} cpu {cost.cpu:6.2f} s  "
                f"({_ratio(cost.cpu, base.cpu)}x python -c pass)  rss {cost.rss_mib:6.1f} MiB"
            )
        floors: dict[str, Any] = {}
        for name, args in {
            "--help": ["--help"],
            "check-config": ["--config", str(config), "check-config"],
            "status": ["--config", str(config), "status"],
            "rotate": ["--config", str(config), "rotate"],
        }.items():
            modules = imported_modules(args, cwd=root)
            libraries = third_party(modules)
            tops = top_level(libraries)
            floor = floor_cost(libraries, cwd=root, repeat=repeat)
            floors[name] = {
                "libraries": sorted(tops),
                "imports_heavy": sorted(t for t in tops if t in HEAVY),
                "modules": len(modules),
                "floor": floor.as_dict(),
            }
        for name, key in (
            (f"status ({STARTUP_KEYS} keys)", "status"),
            (f"steady rotate ({STARTUP_KEYS} keys)", "rotate"),
        ):
            floor_cpu = floors[key]["floor"]["cpu"]
            figures[name]["cpu_to_import_floor"] = _ratio(figures[name]["cpu"], floor_cpu)
        return {
            "keys": STARTUP_KEYS,
            "commands": figures,
            "imports": floors,
            "daemon_import_baseline": import_baseline(world, seconds=daemon_seconds, repeat=repeat),
        }
    finally:
        world.stop()
