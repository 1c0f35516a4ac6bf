"""The run report as a document: the stable JSON of ``rotate`` and ``status`` (README, "Commands").

Neutral ground for the CLI (``rotate -o json``, ``status -o json``), the daemon (the answer to a
handed-over ``rotate`` request) and the history file (one line per key): none of them imports
another to build it. The fields and their order are the public contract; extend, never rename.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rotator.engine.model import CurrentKey, KeyResult, RunReport


def rfc3339(moment: datetime | None) -> str | None:
    """RFC 3339 UTC with a ``Z`` suffix, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def days_left(expiration: datetime | None, now: datetime) -> float | None:
    """Days until ``expiration`` (one decimal), None when it never expires or is unknown."""
    if expiration is None:
        return None
    return round((expiration - now).total_seconds() / 86400, 1)


def _current(current: CurrentKey | None) -> dict[str, Any] | None:
    if current is None:
        return None
    return {
        "id": current.id,
        "name": current.name,
        "expiration": rfc3339(current.expiration),
        "adopted": current.adopted,
    }


def result_document(result: KeyResult, now: datetime) -> dict[str, Any]:
    """One entry of ``keys`` in the JSON output."""
    plan = result.plan
    current = plan.current
    failure = result.failure or plan.failure
    return {
        "key": plan.key,
        "kind": plan.kind,
        "current": _current(current),
        "days_left": days_left(current.expiration if current else None, now),
        "targets_agree": plan.targets_agree,
        "decision": plan.decision,
        "reason": plan.reason,
        "actions": [
            {"action": a.action, "target": a.target, "detail": a.detail} for a in plan.actions
        ],
        "outcome": result.outcome,
        "error": result.error,
        "warnings": list(plan.warnings),
        "failure": failure.to_dict() if failure is not None else None,
        "readers": [{"id": r.id, "how": r.how, "restarted": r.restarted} for r in plan.readers],
        "helm_values": dict(plan.helm_values) or None,
    }


def report_document(report: RunReport) -> dict[str, Any]:
    """The whole JSON document of ``rotate`` and ``status``."""
    return {
        "dry_run": report.dry_run,
        "keys": [result_document(r, report.started_at) for r in report.results],
    }
