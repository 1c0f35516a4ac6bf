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
from rotator.engine.observe import DEFAULT_WORKERS, observe_all
from rotator.engine.plan import plan_key
from rotator.engine.ports import KeyStore

log = structlog.get_logger(__name__)

#: Called after each managed key finishes: (index from 1, total, result).
ProgressCallback = Callable[[int, int, KeyResult], None]


def utc_now() -> datetime:
    """The real clock, second resolution (key names carry seconds)."""
    return datetime.now(UTC).replace(microsecond=0)


def observe_and_plan(
    specs: Sequence[KeySpec],
    client: KeyStore,
    *,
    now: datetime,
    force: bool = False,
    notice: Callable[[str], None] | None = None,
    workers: int = DEFAULT_WORKERS,
    emergency: bool = False,
) -> list[tuple[ObservedKey, KeyPlan]]:
    """Observe all keys (one list call per kind; reads overlapping, ``workers`` at a time) and
    plan each; read-only.

    ``notice`` hears what is being waited for (a terminal shows it while a slow or unreachable
    system makes the caller wait)."""
    observed = observe_all(specs, client, now, workers=workers, notice=notice)
    return [(one, plan_key(one, now, force=force, emergency=emergency)) for one in observed]


def run_once(
    specs: Sequence[KeySpec],
    client: KeyStore,
    *,
    dry_run: bool,
    force: bool = False,
    clock: Callable[[], datetime] = utc_now,
    progress: ProgressCallback | None = None,
    guard: Callable[[], bool] | None = None,
    workers: int = DEFAULT_WORKERS,
    emergency: bool = False,
) -> RunReport:
    """Observe, plan and — unless ``dry_run`` — apply, for every spec; never raises per key.

    ``emergency`` (``rotate --emergency``) plans each key with
    :func:`~rotator.engine.plan.plan_key`'s ``emergency``.

    ``guard`` is asked before each key's actions (and before consumer triggers); when it says
    no — leadership lost, shutdown — the remaining keys are left untouched for the next run.
    """
    started = clock()
    log.info("run.started", keys=len(specs), dry_run=dry_run, force=force)
    planned = observe_and_plan(
        specs, client, now=started, force=force, workers=workers, emergency=emergency
    )
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
