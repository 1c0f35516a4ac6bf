"""One fault cell from start to finish, and its result line.

:func:`run_cell` bootstraps the world, prepares and arms the cell, runs the faulty ``rotate``,
compares its report with the contract, clears the fault, settles and checks every invariant.
It returns the problems found; the result line is written before anything is asserted, so a
failing cell still shows up in ``make faults``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.faults.cells import Cell
from tests.faults.harness import KEY, FaultWorld, Run


def report_problems(cell: Cell, run: Run) -> list[str]:
    """What the faulty run reported, against the contract of ``cell``."""
    problems = []
    entry = run.entry()
    if entry is None:
        return [f"no report entry for {KEY} (exit {run.code}): {run.out[-300:]} {run.err[-300:]}"]
    failure = entry.get("failure")
    if failure is None:
        problems.append(
            f"failure is null (outcome {entry.get('outcome')}, decision {entry.get('decision')}); "
            f"expected step {cell.step}, category {cell.category}"
        )
    else:
        if failure.get("step") != cell.step or failure.get("category") != cell.category:
            problems.append(
                f"reported {failure.get('step')}/{failure.get('category')} "
                f"({failure.get('error_type')}: {failure.get('message')}); "
                f"expected {cell.step}/{cell.category}"
            )
        if not failure.get("error_type") or not failure.get("message"):
            problems.append(f"failure lacks error_type or message: {failure}")
    if run.code != cell.exit:
        problems.append(f"exit code {run.code}, expected {cell.exit}")
    return problems


def alert_problems(cell: Cell, fw: FaultWorld, since: int) -> tuple[str, list[str]]:
    """The failure alert of the faulty run (``event@step``) and what is wrong with it."""
    alerts = [a for a in fw.failure_alerts(since) if a.get("managed_key") == KEY]
    shown = ", ".join(f"{a['event']}@{a.get('step')}" for a in alerts) or "-"
    if not cell.alert:
        return shown, [f"a failure alert was sent for a {cell.category}: {shown}"] if alerts else []
    if not alerts:
        return shown, ["no failure alert was sent"]
    if not any(a.get("step") == cell.step for a in alerts):
        return shown, [f"the failure alert names step {alerts[0].get('step')}, not {cell.step}"]
    return shown, []


def recovery_problems(fw: FaultWorld, since: int) -> list[str]:
    """After settling, a failure alert sent since ``since`` was resolved by ``recovered``."""
    bodies = [b for b in fw.receiver.bodies()[since:] if b.get("managed_key") == KEY]
    events = [b.get("event") for b in bodies]
    failures = [i for i, e in enumerate(events) if e in ("rotation_failed", "switch_timeout")]
    if not failures:
        return []
    resolved = any(
        e == "recovered" and bodies[i].get("resolves") == "failure"
        for i, e in enumerate(events)
        if i > failures[-1]
    )
    return [] if resolved else [f"no recovered alert after settling (alerts: {events})"]


def run_cell(cell: Cell, fw: FaultWorld, record: Callable[[dict[str, Any]], None]) -> list[str]:
    """Run ``cell`` in ``fw``; record its result line; return every problem found."""
    started = time.monotonic()
    fw.add_key(KEY, cell.kind)
    fw.bootstrap()
    cell.prepare(fw)
    since = len(fw.receiver.received)
    armed_at = len(fw.journal.exchanges)
    cell.arm(fw)
    try:
        args = (*cell.args, "-o", "json")
        run = cell.runner(fw, args) if cell.runner is not None else fw.run(*args)
    except BaseException:
        cell.clear(fw)
        raise
    problems = report_problems(cell, run)
    shown, alert = alert_problems(cell, fw, since)
    problems += alert
    problems += fw.i1_problems("right after the faulty run")
    problems += fw.duplicate_problems("right after the faulty run")
    cell.clear(fw)
    if cell.drain_s:
        time.sleep(cell.drain_s)
        problems += fw.duplicate_problems("once the slow requests landed")
    if cell.check is not None:
        problems += cell.check(fw, armed_at)
    settle: list[str] = []
    runs = fw.settle(settle)
    problems += settle
    problems += fw.final_problems()
    problems += recovery_problems(fw, since)
    entry = run.entry() or {}
    record(
        {
            "cell": cell.id,
            "service": cell.service,
            "kind": cell.kind,
            "step": cell.step,
            "fault": cell.fault,
            "expected": {"step": cell.step, "category": cell.category, "exit": cell.exit},
            "reported": entry.get("failure"),
            "outcome": entry.get("outcome"),
            "exit": run.code,
            "alert": shown,
            "runs_to_settle": runs,
            "problems": problems,
            "finding": cell.finding,
            "seconds": round(time.monotonic() - started, 2),
        }
    )
    return problems
