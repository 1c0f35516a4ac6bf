"""What the ``kubernetes-workload`` consumer judges a workload by: pure functions of its JSON.

- :func:`template_hash` — the identity of a pod template (``spec.template``);
- :class:`PushRecord` / :func:`read_records` — the evidence a trigger writes on the workload's
  own metadata (the :data:`PUSHED_ANNOTATION` record, see
  :mod:`rotator.consumers.kubernetes_workload`);
- :func:`rollout_status` — ``kubectl rollout status``'s verdict, by its own rules.

No I/O and no client: the consumer reads the objects as raw JSON and hands them here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

#: The workload annotation holding what was pushed and the template it was recorded against.
PUSHED_ANNOTATION: Final = "rotator.stackstate.io/pushed"


# -- template hash, the record, the rollout verdict ---------------------------------


def template_hash(template: Any) -> str:
    """First 16 hex digits of SHA-256 over the canonical JSON of ``spec.template``."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PushRecord:
    """One managed key's entry in :data:`PUSHED_ANNOTATION`."""

    fingerprint: str
    #: :func:`template_hash` of the pod template just before the restart (or the record).
    template: str
    #: ``pushed_at`` of the value, RFC 3339 (for humans reading the annotation).
    at: str

    def to_dict(self) -> dict[str, str]:
        """The JSON form stored in the annotation."""
        return {"fingerprint": self.fingerprint, "template": self.template, "at": self.at}


def read_records(workload: Mapping[str, Any]) -> dict[str, PushRecord]:
    """The parsed :data:`PUSHED_ANNOTATION` of a workload ({} when absent or damaged).

    A damaged entry only costs a restart: the key then reads as not yet triggered.
    """
    annotations = (workload.get("metadata") or {}).get("annotations") or {}
    try:
        raw = json.loads(annotations.get(PUSHED_ANNOTATION) or "{}")
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    records = {}
    for managed_key, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        fp, template = entry.get("fingerprint"), entry.get("template")
        if isinstance(fp, str) and isinstance(template, str):
            records[str(managed_key)] = PushRecord(fp, template, str(entry.get("at") or ""))
    return records


def records_json(records: Mapping[str, PushRecord]) -> str:
    return json.dumps(
        {key: record.to_dict() for key, record in sorted(records.items())},
        separators=(",", ":"),
        sort_keys=True,
    )


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with second precision and ``Z``, as kubectl and ``metav1.Time`` write."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


RolloutPhase = Literal["complete", "waiting", "failed"]


@dataclass(frozen=True)
class RolloutStatus:
    """``kubectl rollout status``'s verdict on one workload, with a short account of progress."""

    phase: RolloutPhase
    message: str


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def rollout_status(kind: str, workload: Mapping[str, Any]) -> RolloutStatus:
    """Apply kubectl's rollout-status rules (``polymorphichelpers/rollout_status.go``).

    A pure function of the object as the API server returned it. ``spec.replicas`` defaults to
    1, as the API server defaults it.
    """
    meta = workload.get("metadata") or {}
    spec = workload.get("spec") or {}
    status = workload.get("status") or {}
    generation = _int(meta.get("generation"))
    observed = _int(status.get("observedGeneration"))
    waiting_spec = RolloutStatus(
        "waiting",
        f"waiting for observedGeneration to reach generation {generation} (observed {observed})",
    )
    if kind == "Deployment":
        if generation > observed:
            return waiting_spec
        progressing: Mapping[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {}
        )
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            return RolloutStatus(
                "failed",
                f'ProgressDeadlineExceeded: deployment "{meta.get("name")}" exceeded its '
                "progress deadline",
            )
        replicas = _int(spec.get("replicas"), 1)
        updated = _int(status.get("updatedReplicas"))
        total = _int(status.get("replicas"))
        available = _int(status.get("availableReplicas"))
        if updated < replicas:
            return RolloutStatus("waiting", f"{updated}/{replicas} updated")
        if total > updated:
            return RolloutStatus("waiting", f"{total - updated} old replicas pending termination")
        if available < updated:
            return RolloutStatus("waiting", f"{available}/{updated} updated replicas available")
        return RolloutStatus("complete", f"{updated}/{replicas} updated and available")
    strategy = spec.get("updateStrategy") or {}
    strategy_type = strategy.get("type") or "RollingUpdate"
    if strategy_type != "RollingUpdate":
        return RolloutStatus(
            "failed",
            f"updateStrategy {strategy_type}: rollout status is only available for "
            "RollingUpdate, and no pod is replaced until someone deletes it",
        )
    if kind == "DaemonSet":
        if generation > observed:
            return waiting_spec
        desired = _int(status.get("desiredNumberScheduled"))
        updated = _int(status.get("updatedNumberScheduled"))
        available = _int(status.get("numberAvailable"))
        if updated < desired:
            return RolloutStatus("waiting", f"{updated}/{desired} updated")
        if available < desired:
            return RolloutStatus("waiting", f"{available}/{desired} updated pods available")
        return RolloutStatus("complete", f"{desired}/{desired} updated and available")
    # StatefulSet
    if observed == 0 or generation > observed:
        return waiting_spec
    replicas = _int(spec.get("replicas"), 1)
    ready = _int(status.get("readyReplicas"))
    if ready < replicas:
        return RolloutStatus("waiting", f"{ready}/{replicas} ready")
    rolling = strategy.get("rollingUpdate")
    if isinstance(rolling, dict):
        partition = _int(rolling.get("partition"))
        updated = _int(status.get("updatedReplicas"))
        wanted = replicas - partition
        if updated < wanted:
            return RolloutStatus("waiting", f"{updated}/{wanted} updated (partition {partition})")
        return RolloutStatus(
            "complete", f"{updated}/{replicas} updated and {ready}/{replicas} ready"
        )
    update_revision = status.get("updateRevision")
    if update_revision != status.get("currentRevision"):
        return RolloutStatus("waiting", f"waiting for all pods to reach revision {update_revision}")
    return RolloutStatus("complete", f"{replicas}/{replicas} at revision {update_revision}")


def partition_of(workload: Mapping[str, Any]) -> int:
    strategy = (workload.get("spec") or {}).get("updateStrategy") or {}
    return _int((strategy.get("rollingUpdate") or {}).get("partition"))
