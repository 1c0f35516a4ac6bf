"""From run results to alerts: which events a managed key's run raises.

Events (``rotator.alerts.event.AlertEvent``):

- ``rotation_failed`` — the key failed (any step but a switch timeout);
- ``switch_timeout`` — consumers did not switch within ``switch_timeout`` (old key kept): a
  failure with step ``switch`` and error type ``SwitchTimeout``;
- ``key_expired`` — the key in use is expired and was not replaced in this run;
- ``key_expiring`` — the key in use expires within ``alert_before`` and no rotation succeeded;
- ``recovered`` — the key is healthy again: resolves the failure and expiry classes (hooks
  only send it where a failure of that class was sent, so PagerDuty and Alertmanager
  incidents close);
- ``rotation_succeeded`` — a new key was pushed or an old one revoked (optional, off by default);
- ``emergency_rotation`` — ``rotate --emergency`` pushed a new key, or failed (severity
  critical, on by default, never deduplicated).

Every alert about a key that is not healthy carries the failure's ``step``, ``category`` and
``error_type``; which event it is follows from those fields, never from the message text.

The same function serves the daemon and one-shot ``rotate`` runs, so cron users get the same
alerts. Deduplication and repeat intervals are the dispatcher's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Final

from rotator.alerts.dispatch import Alerter
from rotator.alerts.event import Alert, AlertEvent
from rotator.daemon.history import History
from rotator.daemon.metrics import failure_of
from rotator.engine.model import Failure, KeyResult, KeySpec, RunReport
from rotator.events import EventRecorder, publish_events

#: ``failure.error_type`` of consumers not switched within ``switch_timeout`` (step ``switch``).
SWITCH_TIMEOUT_ERROR_TYPE: Final = "SwitchTimeout"
#: Events about a healthy key: they carry no failure fields.
_HEALTHY_EVENTS: Final = frozenset({AlertEvent.RECOVERED, AlertEvent.ROTATION_SUCCEEDED})


def is_switch_timeout(failure: Failure | None) -> bool:
    """Whether ``failure`` is consumers not switched within ``switch_timeout`` (from its fields:
    step ``switch``, error type ``SwitchTimeout``)."""
    return (
        failure is not None
        and failure.step == "switch"
        and failure.error_type == SWITCH_TIMEOUT_ERROR_TYPE
    )


def alerts_for(
    result: KeyResult, *, alert_before: timedelta, now: datetime, run_id: str
) -> list[Alert]:
    """The alerts one managed key's result raises (possibly none).

    The event type, ``step``, ``category`` and ``error_type`` come from the result's
    :class:`~rotator.engine.model.Failure` fields; message text only fills ``error`` and
    ``summary`` for people.
    """
    plan = result.plan
    current = plan.current
    expiration = current.expiration if current is not None else None
    new_key = result.new_key
    failure = failure_of(result)

    def alert(event: AlertEvent, summary: str, *, resolves: str | None = None) -> Alert:
        key = new_key if new_key is not None else None
        # Recoveries and successes describe a healthy key: no failure fields.
        why = failure if event not in _HEALTHY_EVENTS else None
        return Alert(
            event=event,
            managed_key=plan.key,
            kind=plan.kind,
            key_id=key.id if key is not None else (current.id if current else None),
            key_name=key.name if key is not None else (current.name if current else None),
            expires_at=key.expiration if key is not None else expiration,
            step=why.step if why is not None else None,
            error=result.error if event not in _HEALTHY_EVENTS else None,
            run_id=run_id,
            timestamp=now,
            summary=summary,
            resolves=resolves,
            category=why.category if why is not None else None,
            error_type=why.error_type if why is not None else None,
        )

    found: list[Alert] = []
    replaced = result.outcome in ("rotated", "waiting", "revoked") and new_key is not None
    if result.outcome == "failed":
        message = failure.message if failure is not None else (result.error or plan.reason)
        if is_switch_timeout(failure):
            found.append(
                alert(
                    AlertEvent.SWITCH_TIMEOUT,
                    f"{plan.key}: consumers did not switch in time; previous key kept",
                )
            )
        else:
            step = failure.step if failure is not None else "unknown step"
            found.append(alert(AlertEvent.ROTATION_FAILED, f"{plan.key}: {step} failed: {message}"))
    else:
        found.append(alert(AlertEvent.RECOVERED, f"{plan.key}: healthy again", resolves="failure"))
    if expiration is not None and not replaced:
        left = expiration - now
        if left <= timedelta(0):
            found.append(
                alert(
                    AlertEvent.KEY_EXPIRED,
                    f"{plan.key}: the key in use expired at {expiration:%Y-%m-%d %H:%M}Z",
                )
            )
        elif left <= alert_before:
            found.append(
                alert(
                    AlertEvent.KEY_EXPIRING,
                    f"{plan.key}: the key in use expires at {expiration:%Y-%m-%d %H:%M}Z and has "
                    "not been replaced",
                )
            )
        else:
            found.append(
                alert(AlertEvent.RECOVERED, f"{plan.key}: expiry is far", resolves="expiry")
            )
    elif replaced:
        found.append(alert(AlertEvent.RECOVERED, f"{plan.key}: replaced", resolves="expiry"))
    if result.outcome in ("rotated", "revoked"):
        found.append(
            alert(AlertEvent.ROTATION_SUCCEEDED, f"{plan.key}: {plan.decision} {result.outcome}")
        )
    if plan.emergency and (new_key is not None or result.outcome == "failed"):
        found.append(alert(AlertEvent.EMERGENCY_ROTATION, _emergency_summary(result)))
    return found


def _emergency_summary(result: KeyResult) -> str:
    """The one line of an ``emergency_rotation`` alert (names and ids only)."""
    plan = result.plan
    current = plan.current
    previous = (current.name or f"id {current.id}") if current is not None else None
    if result.new_key is not None and result.outcome != "failed":
        kept = (
            f"the previous key {previous} is revoked as soon as every consumer switched, "
            "without the grace period"
            if previous
            else "there was no previous key to revoke"
        )
        return f"{plan.key}: EMERGENCY rotation: new key {result.new_key.name} pushed; {kept}"
    failure = failure_of(result)
    step = failure.step if failure is not None else "unknown step"
    live = f"the previous key {previous} is still live" if previous else "nothing was revoked"
    return f"{plan.key}: EMERGENCY rotation failed at {step}; {live}: act now"


def alerts_for_all(
    results: Iterable[tuple[KeyResult, timedelta]], *, now: datetime, run_id: str
) -> list[Alert]:
    """Alerts of several keys' results, each with its own ``alert_before``."""
    return [
        a
        for result, alert_before in results
        for a in alerts_for(result, alert_before=alert_before, now=now, run_id=run_id)
    ]


def publish(
    report: RunReport,
    specs: Sequence[KeySpec],
    *,
    alerter: Alerter,
    history: History | None,
    run_id: str,
    source: str,
    now: datetime,
    events: EventRecorder | None = None,
) -> None:
    """After a run (daemon or one-shot): send its alerts, record its Kubernetes Events (best
    effort, :mod:`rotator.events`) and append it to the history."""
    by_name = {s.name: s for s in specs}
    for alert in alerts_for_all(
        ((r, by_name[r.plan.key].alert_before) for r in report.results), now=now, run_id=run_id
    ):
        alerter.notify(alert)
    publish_events(events, report, specs)
    if history is not None:
        history.record(report, run_id=run_id, source=source)


def _config_alert(
    event: AlertEvent, summary: str, *, error: str | None, now: datetime, run_id: str
) -> Alert:
    return Alert(
        event=event,
        managed_key=None,
        kind=None,
        key_id=None,
        key_name=None,
        expires_at=None,
        step="config",
        error=error,
        run_id=run_id,
        timestamp=now,
        summary=summary,
        resolves="config" if event == AlertEvent.RECOVERED else None,
    )


def config_invalid(message: str, *, now: datetime, run_id: str) -> Alert:
    """The alert for a configuration that failed to (re)load."""
    return _config_alert(
        AlertEvent.CONFIG_INVALID,
        "the new configuration is invalid; the previous one keeps running",
        error=message,
        now=now,
        run_id=run_id,
    )


def config_recovered(*, now: datetime, run_id: str) -> Alert:
    """Resolves an earlier ``config_invalid`` once a configuration loaded fine again."""
    return _config_alert(
        AlertEvent.RECOVERED, "the configuration loads again", error=None, now=now, run_id=run_id
    )
