"""One run of the engine: observe every selected key, plan each, and (unless dry-run) apply.

The engine is level-triggered: each run starts from what StackState and the targets hold now, so
a run after a crash simply continues from wherever the last one stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog

from rotator.engine.apply import Applier
from rotator.engine.model import KeyPlan, KeyResult, KeySpec, ObservedKey, RunReport
from rotator.engine.observe import list_kinds, observe_key
from rotator.engine.plan import plan_key
from rotator.stackstate import StackStateClient

log = structlog.get_logger(__name__)

#: Called after each managed key finishes: (index from 1, total, result).
ProgressCallback = Callable[[int, int, KeyResult], None]


def utc_now() -> datetime:
    """The real clock, second resolution (key names carry seconds)."""
    return datetime.now(UTC).replace(microsecond=0)


def observe_and_plan(
    specs: Sequence[KeySpec],
    client: StackStateClient,
    *,
    now: datetime,
    force: bool = False,
    notice: Callable[[str], None] | None = None,
) -> list[tuple[ObservedKey, KeyPlan]]:
    """Observe all keys (one list call per kind) and plan each; read-only.

    ``notice`` hears what is being waited for (a terminal shows it while a slow or unreachable
    system makes the caller wait)."""
    tell = notice or (lambda _text: None)
    tell(f"listing {', '.join(dict.fromkeys(s.kind for s in specs))} keys in StackState")
    listed = list_kinds(client, [s.kind for s in specs])
    planned = []
    for index, spec in enumerate(specs, start=1):
        tell(f"[{index}/{len(specs)}] observing {spec.name}: targets and consumers")
        observed = observe_key(spec, client, listed[spec.kind], now)
        planned.append((observed, plan_key(observed, now, force=force)))
    return planned


def run_once(
    specs: Sequence[KeySpec],
    client: StackStateClient,
    *,
    dry_run: bool,
    force: bool = False,
    clock: Callable[[], datetime] = utc_now,
    progress: ProgressCallback | None = None,
    guard: Callable[[], bool] | None = None,
) -> RunReport:
    """Observe, plan and — unless ``dry_run`` — apply, for every spec; never raises per key.

    ``guard`` is asked before each key's actions (and before consumer triggers); when it says
    no — leadership lost, shutdown — the remaining keys are left untouched for the next run.
    """
    started = clock()
    log.info("run.started", keys=len(specs), dry_run=dry_run, force=force)
    planned = observe_and_plan(specs, client, now=started, force=force)
    if dry_run:
        results = [
            KeyResult(plan, "failed", plan.reason, failure=plan.failure)
            if plan.failed
            else KeyResult(plan, "planned" if plan.actions else "unchanged")
            for _, plan in planned
        ]
        if progress is not None:
            for index, result in enumerate(results, start=1):
                progress(index, len(results), result)
    else:
        results = Applier(client, clock, guard).apply_all(planned, progress)
    report = RunReport(dry_run=dry_run, started_at=started, results=tuple(results))
    log.info(
        "run.finished",
        dry_run=dry_run,
        failed=sum(r.outcome == "failed" for r in results),
        rotated=sum(r.outcome == "rotated" for r in results),
        keys=len(results),
    )
    return report
