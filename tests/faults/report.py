"""Print the fault matrix from the result lines the cells wrote.

Usage: ``python -m tests.faults.report [RESULTS]`` (default ``$FAULTS_RESULTS``). One row per
cell (the last line of a cell wins), step x fault → what the faulty run reported (step and
category), its exit code, the failure alert sent, and how many runs it took to settle once the
fault was cleared; then every finding with its evidence. ``make faults`` runs the cells and then
this. Exit status 0 (printing is not judging: pytest's own exit status says whether cells
failed).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

SERVICES: Final = ("stackstate", "stackstate-ingestion", "vault", "kubernetes", "file", "process")
STEPS: Final = (
    "observe",
    "preflight",
    "create",
    "verify",
    "push",
    "restart",
    "switch",
    "revoke",
    "sweep",
)
HEADERS: Final = ("SERVICE", "STEP", "FAULT", "REPORTED", "ERROR TYPE", "EXIT", "ALERT", "RUNS")


def load(path: Path) -> list[dict[str, Any]]:
    """Every cell's last result line."""
    cells: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            entry = json.loads(line)
            cells[entry["cell"]] = entry
    return sorted(cells.values(), key=_order)


def _service(entry: dict[str, Any]) -> str:
    """The service column: ``stackstate-ingestion`` for ingestion API key cells."""
    if entry.get("kind") == "ingestion-api-key":
        return f"{entry['service']}-ingestion"
    return str(entry["service"])


def _order(entry: dict[str, Any]) -> tuple[int, int, str]:
    service = _service(entry)
    step = entry["step"]
    return (
        SERVICES.index(service) if service in SERVICES else len(SERVICES),
        STEPS.index(step) if step in STEPS else len(STEPS),
        str(entry["fault"]),
    )


def status(entry: dict[str, Any]) -> str:
    """``ok``; ``FINDING`` (a known finding, its test an xfail); ``FAIL`` (problems nobody
    has marked yet); ``XPASS`` (a known finding no longer shows: remove its xfail)."""
    if entry["problems"]:
        return "FINDING" if entry.get("finding") else "FAIL"
    return "XPASS" if entry.get("finding") else "ok"


def row(entry: dict[str, Any]) -> list[str]:
    """One table row."""
    reported = entry.get("reported")
    if entry.get("outcome") == "killed":
        shown, error_type = "(killed)", "-"
    elif reported:
        shown, error_type = f"{reported['step']}/{reported['category']}", reported["error_type"]
    else:
        shown, error_type = "none", "-"
    expected = entry["expected"]
    if expected.get("step") and shown != f"{expected['step']}/{expected['category']}":
        shown += f" (want {expected['step']}/{expected['category']})"
    code = str(entry["exit"])
    if entry["exit"] != expected["exit"]:
        code += f" (want {expected['exit']})"
    return [
        _service(entry),
        entry["step"],
        entry["fault"],
        shown,
        error_type,
        code,
        entry["alert"],
        str(entry["runs_to_settle"]),
        status(entry),
    ]


def table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip()
        for r in rows
    )


def render(entries: Iterable[dict[str, Any]]) -> str:
    """The matrix, a summary line and the findings."""
    entries = list(entries)
    if not entries:
        return "no fault cells ran"
    lines = [table([[*HEADERS, "STATUS"], *(row(e) for e in entries)])]
    findings = [e for e in entries if e["problems"]]
    xpassed = [e for e in entries if not e["problems"] and e.get("finding")]
    seconds = sum(float(e.get("seconds", 0)) for e in entries)
    lines.append("")
    lines.append(
        f"{len(entries)} cells: {len(entries) - len(findings) - len(xpassed)} ok, "
        f"{len(findings)} with problems, {len(xpassed)} known findings no longer seen; "
        f"{seconds:.0f}s of cell time"
    )
    for entry in findings:
        lines.append("")
        lines.append(f"{status(entry)} {entry['cell']}")
        if entry.get("finding"):
            lines.append(f"  finding: {entry['finding']}")
        lines += [f"  - {problem}" for problem in entry["problems"]]
    for entry in xpassed:
        lines.append(f"XPASS {entry['cell']}: {entry['finding']} (remove its xfail)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Print the matrix of ``argv[0]`` (or ``$FAULTS_RESULTS``)."""
    source = argv[0] if argv else os.environ.get("FAULTS_RESULTS")
    if not source:
        print("usage: python -m tests.faults.report RESULTS (or set FAULTS_RESULTS)")
        return 2
    path = Path(source)
    if not path.exists():
        print(f"no results at {path}: run the fault cells first (make faults)")
        return 2
    print(render(load(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
