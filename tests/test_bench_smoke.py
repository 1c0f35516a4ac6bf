"""``python -m bench`` at a tiny size: it runs end to end and writes results.json of the
documented shape. Figures are not judged here (they depend on the machine): only that each one
is there, of the right type, and that the runs did what their names say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = 5
SCENARIOS = {
    "check-config",
    "bootstrap",
    "bootstrap, 2nd run",
    "steady rotate",
    "rotate --dry-run",
    "status",
    "rotate 10% due",
}
COST = {"wall": float, "cpu": float, "rss_mib": float, "code": int}


def assert_cost(figures: dict[str, Any]) -> None:
    """Wall, CPU and RSS are there and positive where a process ran."""
    for name, kind in COST.items():
        assert isinstance(figures[name], kind), (name, figures)
    assert figures["wall"] > 0
    assert figures["rss_mib"] > 0


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_bench_writes_results_of_the_documented_shape(tmp_path: Path) -> None:
    """Start-up, one size and a short daemon run: every section is filled in."""
    output = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--sizes",
            str(KEYS),
            "--repeat",
            "1",
            "--daemon-seconds",
            "5",
            "--daemon-interval",
            "2",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=380,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "log-log slopes" not in done.stdout  # one size: no slope to print
    results = json.loads(output.read_text())

    machine = results["machine"]
    assert machine["cores"] >= 1
    assert isinstance(machine["cpu_model"], str)
    assert machine["python"].count(".") == 2

    startup = results["startup"]
    commands = startup["commands"]
    assert_cost(commands["python -c pass"])
    for name in ("rotator --help", "check-config"):
        assert_cost(commands[name])
        assert commands[name]["code"] == 0
        assert commands[name]["cpu_to_python_pass"] > 0
    for name, figures in commands.items():
        if name.startswith(("status", "steady rotate")):
            assert figures["code"] == 0
            assert figures["cpu_to_import_floor"] > 0
    for name in ("--help", "check-config", "status", "rotate"):
        info = startup["imports"][name]
        assert info["modules"] > 0
        assert set(info["imports_heavy"]) <= {"kubernetes", "hvac", "apscheduler"}
        assert_cost(info["floor"])
    assert startup["daemon_import_baseline"]["rss_mib"] > 0

    section = results["sizes"][str(KEYS)]
    assert section["keys"] == KEYS
    assert section["made_due"] == 1  # one key in ten, rounded up to at least one
    assert section["round_trip_ms"]["secret get"] > 0
    runs = section["runs"]
    assert set(runs) == SCENARIOS
    for name, run in runs.items():
        assert_cost(run)
        assert run["code"] == 0, name
        assert set(run["requests"]) == {"stackstate", "kubernetes", "vault"}
        assert set(run["max_in_flight"]) == {"stackstate", "kubernetes", "vault", "all"}
    assert runs["bootstrap"]["outcomes"] == {"rotated": KEYS}
    assert runs["steady rotate"]["outcomes"] == {"unchanged": KEYS}
    assert runs["rotate 10% due"]["outcomes"] == {"rotated": 1, "unchanged": KEYS - 1}
    steady = runs["steady rotate"]
    assert steady["requests"]["stackstate"] == 1  # one list of the one kind in use
    assert steady["requests_by_kind"]["kubernetes"]["secret get"] == KEYS
    assert steady["request_bound_s"] > 0
    assert steady["wall_to_bound"] > 0
    assert runs["check-config"]["requests"] == {"stackstate": 0, "kubernetes": 0, "vault": 0}

    daemon = results["daemon"]
    assert daemon["keys"] == KEYS
    assert daemon["ticks"] >= 1
    assert daemon["stackstate_list_calls"] >= 1
    assert daemon["rss_peak_mib"] > 0
    assert daemon["rss_after_imports_mib"] > 0
    assert daemon["exit_code"] == 0
    assert results["slopes"] == {}
    assert "machine:" in done.stdout
