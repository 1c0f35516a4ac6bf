"""``rotator rotate --key K --emergency``: replace a leaked key now and revoke it as soon as it
is safe.

What it does, in one command, holding the run's locks throughout:

1. one run plans the key with ``emergency`` (:func:`rotator.engine.plan.plan_key`): a new key
   is created, verified and pushed at once, whatever the maintenance windows, and the consumers
   are restarted; a consumer that cannot switch does not hold the rotation back (it keeps the
   old key alive, see 3). An unfinished switch-over is finished first, without its grace
   period, and the new key follows. The pushed metadata records ``emergency``, so whichever
   run sees the consumers switched first — this command or the daemon — revokes the old key
   without the grace period;
2. it sends the alert ``emergency_rotation`` (severity critical, every hook by default);
3. it then re-observes the key every few seconds (:func:`poll_seconds`) until every consumer
   demonstrably switched and the previous key is revoked (exit 0), or the switch-over fails —
   ``switch_timeout`` passed, a consumer failed or cannot be observed — in which case the old
   key is **not** revoked (invariant I2) and the command exits 1 with the usual
   ``switch_timeout``/``rotation_failed`` alerts.

It needs exactly one ``--key`` (exit 2 otherwise) and refuses a key with ``suspend: true``
(exit 2). ``--dry-run`` prints the plan (its reason starts with ``EMERGENCY``). When a leader
daemon takes the request (``lock.type: lease``), the leader runs step 1 and its own rechecks
finish step 3; the command prints the leader's first run and returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

import click
import structlog

from rotator.engine.model import KeyResult, KeySpec, RunReport

if TYPE_CHECKING:
    from rotator.config import RotatorConfig

log = structlog.get_logger(__name__)

#: The longest pause between two looks at the switch-over (the key's ``recheck`` if shorter).
MAX_POLL_SECONDS: Final = 5.0
#: Extra time beyond ``switch_timeout`` before the command gives up on its own.
DEADLINE_MARGIN_SECONDS: Final = 60.0


def check_emergency(keys: Sequence[str], config: RotatorConfig) -> None:
    """Usage errors (exit 2) before anything is done: exactly one ``--key``, not suspended."""
    if len(dict.fromkeys(keys)) != 1:
        raise click.UsageError(
            "--emergency needs exactly one --key NAME: the managed key whose value leaked "
            f"(given: {len(dict.fromkeys(keys))})"
        )
    (name,) = dict.fromkeys(keys)
    found = next((k for k in config.keys if k.name == name), None)
    if found is not None and found.suspend:
        raise click.UsageError(
            f"--emergency: managed key {name} is suspended (suspend: true in the configuration);"
            " remove suspend to let the rotator act on it"
        )


def poll_seconds(config: RotatorConfig, name: str) -> float:
    """Seconds between two looks: the key's ``schedule.recheck``, at most
    :data:`MAX_POLL_SECONDS`."""
    key = next((k for k in config.keys if k.name == name), None)
    recheck = key.policy.schedule.recheck.total_seconds() if key is not None else MAX_POLL_SECONDS
    return max(0.2, min(recheck, MAX_POLL_SECONDS))


def finished(result: KeyResult, *, created: bool) -> bool | None:
    """True when the emergency is over (old key revoked, or none to revoke), False when it
    failed, None while it goes on."""
    if result.failed or (result.outcome == "failed" and created):
        return False
    plan = result.plan
    if plan.decision == "blocked":
        return False
    if not created:
        return None
    if result.outcome == "revoked" and plan.decision == "revoke":
        return True
    if plan.completes_switch or plan.decision == "ok":
        return True
    return None


def follow(
    first: RunReport,
    spec: KeySpec,
    rerun: Callable[[bool], RunReport],
    *,
    poll: float,
    still_held: Callable[[], bool] | None,
    note: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[RunReport, bool]:
    """Re-run the key until :func:`finished` says so; the last report and whether it succeeded.

    ``rerun(emergency)`` runs the engine once more (and publishes the run); ``emergency`` stays
    True until this command's new key was created (an unfinished switch-over finished first).
    """
    report = first
    created = any(r.new_key is not None for r in report.results)
    deadline = monotonic() + spec.switch_timeout.total_seconds() + DEADLINE_MARGIN_SECONDS
    last_reason = ""
    while True:
        (result,) = report.results
        done = finished(result, created=created)
        if done is not None:
            return report, done
        if still_held is not None and not still_held():
            note("emergency: the shared lock was lost; the daemon or the next run continues")
            return report, False
        if monotonic() >= deadline:
            note("emergency: gave up waiting; the old key was NOT revoked")
            return report, False
        if result.plan.reason != last_reason:
            last_reason = result.plan.reason
            note(f"emergency: {result.plan.decision}: {result.plan.reason}")
        sleep(poll)
        report = rerun(not created)
        created = created or any(r.new_key is not None for r in report.results)
        log.info(
            "emergency.progress",
            key=spec.name,
            decision=report.results[0].plan.decision,
            outcome=report.results[0].outcome,
        )


def summary(report: RunReport, succeeded: bool) -> str:
    """The closing line of an emergency run."""
    (result,) = report.results
    if succeeded:
        return (
            f"emergency rotation of {result.plan.key} complete: every consumer switched and the "
            "previous key is revoked"
        )
    return (
        f"emergency rotation of {result.plan.key} NOT complete: the previous key was not "
        "revoked (consumers not verified switched); see the alerts and `rotator status`"
    )
