"""A simulated workload controller: how Deployments, DaemonSets and StatefulSets roll out.

There are no pods. Each workload carries a :class:`Rollout` record (what the controller
remembers): the hash of its current pod template, when that template was written, and the
controls tests use (paused, stalled). :func:`workload_status` computes, as a pure function of that
record, the object and ``now``, the ``status`` the real controllers would have written by then, so
the emulator needs no background thread: it recomputes lazily whenever someone looks.

A rollout takes ``rollout_seconds`` (0 = done by the next read; the emulator passes each
workload's own duration, see :meth:`KubernetesEmulator.set_rollout_seconds`) and moves through
the same status fields ``kubectl rollout status`` reads (see
``polymorphichelpers/rollout_status.go``):

- Deployment: ``observedGeneration`` catches up at once; during an update ``updatedReplicas``
  grows from 0 to ``spec.replicas`` while one surge pod keeps ``status.replicas`` above it; a
  first rollout instead has all pods updated and ``availableReplicas`` growing. The
  ``Progressing`` condition says ``ReplicaSetUpdated`` while it runs, ``NewReplicaSetAvailable``
  when done, ``DeploymentPaused`` (Unknown) while ``spec.paused``, and ``ProgressDeadlineExceeded``
  (False) when the rollout is stalled.
- DaemonSet: ``updatedNumberScheduled`` / ``numberAvailable`` climb to ``desiredNumberScheduled``
  (the simulated node count); ``OnDelete`` never progresses on its own.
- StatefulSet: ``updateRevision`` changes at once, ``updatedReplicas`` climbs (one pod at a time
  is not ready) and ``currentRevision`` catches up at the end; a ``rollingUpdate.partition`` stops
  the rollout at ``replicas - partition`` updated pods.

A stalled workload never completes; a paused Deployment freezes where it is and continues when
resumed.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

#: The alphabet of pod-template-hash / controller-revision suffixes (``rand.SafeEncodeString``).
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

#: Where a stalled rollout stops (fraction of pods updated).
STALLED_PROGRESS = 0.5

#: The template annotation ``kubectl rollout restart`` sets.
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
#: The Deployment annotation the controller maintains.
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def template_hash(template: Any) -> str:
    """A stable 10-character hash of a pod template, like ``pod-template-hash`` values."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in digest[:10])


def format_time(moment: datetime) -> str:
    """RFC 3339 with second precision and ``Z``, as ``metav1.Time`` serialises."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Rollout:
    """What the simulated controller remembers about one workload."""

    template_hash: str
    #: Hash of the template rolled out before the current one; None for a first rollout.
    previous_hash: str | None
    #: When the current template was written (the rollout clock starts here).
    started: datetime
    #: ``deployment.kubernetes.io/revision``; bumped on every template change.
    revision: int = 1
    #: Set by :meth:`KubernetesEmulator.stall`: the current rollout never completes.
    stalled: bool = False
    #: Stalled while already rolled out: the next rollout (and every one after it) stalls.
    stall_pending: bool = False
    #: Progress (0..1) frozen while a Deployment is paused; None when not paused.
    frozen: float | None = None
    #: Simulated number of nodes a DaemonSet runs on.
    nodes: int = 2

    def progress(self, now: datetime, rollout_seconds: float) -> float:
        """Fraction of the current rollout done by ``now`` (stalled rollouts stay below 1)."""
        if self.frozen is not None:
            value = self.frozen
        elif rollout_seconds <= 0:
            value = 1.0
        else:
            value = min(1.0, max(0.0, (now - self.started).total_seconds() / rollout_seconds))
        if self.stalled:
            value = min(value, STALLED_PROGRESS)
        return value

    def settled(self, now: datetime, rollout_seconds: float) -> bool:
        """Whether :meth:`progress` will not change any more as time passes."""
        if self.frozen is not None or rollout_seconds <= 0:
            return True
        elapsed = (now - self.started).total_seconds() / rollout_seconds
        return elapsed >= 1.0 or (self.stalled and elapsed >= STALLED_PROGRESS)

    def new_template(self, new_hash: str, now: datetime) -> None:
        """Record a pod-template change: a new rollout starts now."""
        if new_hash == self.template_hash:
            return
        self.previous_hash = self.template_hash
        self.template_hash = new_hash
        self.started = now
        self.revision += 1
        if self.stall_pending:
            self.stalled = True
            self.stall_pending = False
        if self.frozen is not None:
            self.frozen = 0.0

    def set_stalled(self, stalled: bool, now: datetime, rollout_seconds: float) -> None:
        """Stall (or release) the rollout in progress, or the next one when none is running."""
        if not stalled:
            if self.stalled:
                self.started = now  # the released rollout takes its full time from here
            self.stalled = self.stall_pending = False
        elif self.progress(now, rollout_seconds) >= 1.0:
            self.stall_pending = True
        else:
            self.stalled = True

    def rebase(self, now: datetime, old_seconds: float, new_seconds: float) -> None:
        """Keep the fraction done when the rollout's duration changes (a finished rollout stays
        finished, one half way through stays half way through)."""
        if self.frozen is not None:
            return
        if old_seconds <= 0:
            done = 1.0
        else:
            done = min(1.0, max(0.0, (now - self.started).total_seconds() / old_seconds))
        self.started = now - timedelta(seconds=done * max(new_seconds, 0.0))

    def set_paused(self, paused: bool, now: datetime, rollout_seconds: float) -> None:
        """Freeze or unfreeze progress when ``spec.paused`` flips."""
        if paused and self.frozen is None:
            self.frozen = self.progress(now, rollout_seconds)
        elif not paused and self.frozen is not None:
            done = self.frozen
            self.frozen = None
            offset = done * rollout_seconds
            self.started = datetime.fromtimestamp(now.timestamp() - offset, tz=now.tzinfo)


def _count(progress: float, total: int) -> int:
    """Pods done at ``progress``: never all of them before the rollout completes."""
    if progress >= 1.0:
        return total
    return min(total - 1, math.floor(progress * total)) if total > 0 else 0


def _condition(
    old_conditions: list[dict[str, Any]],
    *,
    ctype: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
) -> dict[str, Any]:
    """A condition that keeps its timestamps while nothing about it changes."""
    previous = next((c for c in old_conditions if c.get("type") == ctype), None)
    stamp = format_time(now)
    transition = stamp
    update = stamp
    if previous is not None and previous.get("status") == status:
        transition = previous.get("lastTransitionTime", stamp)
        if previous.get("reason") == reason and previous.get("message") == message:
            update = previous.get("lastUpdateTime", stamp)
    return {
        "type": ctype,
        "status": status,
        "lastUpdateTime": update,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def deployment_status(
    obj: dict[str, Any], state: Rollout, now: datetime, rollout_seconds: float
) -> dict[str, Any]:
    """The status the deployment controller would have written by ``now``."""
    spec = obj.get("spec", {})
    replicas = _int(spec.get("replicas"), 1)
    progress = state.progress(now, rollout_seconds)
    complete = progress >= 1.0
    if complete:
        total = updated = ready = replicas
    elif state.previous_hash is None:
        total = updated = replicas
        ready = _count(progress, replicas)
    else:
        updated = _count(progress, replicas)
        # One surge pod of the new template is still starting (none while paused: a paused
        # Deployment does not scale up its new ReplicaSet).
        total = replicas if spec.get("paused") else replicas + 1
        ready = replicas
    available = ready
    rs_name = f"{obj['metadata']['name']}-{state.template_hash}"
    old_conditions = obj.get("status", {}).get("conditions") or []
    max_unavailable = replicas // 4
    if available >= replicas - max_unavailable:
        available_says = (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    else:
        available_says = (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    if spec.get("paused"):
        progress_says = ("Unknown", "DeploymentPaused", "Deployment is paused")
    elif state.stalled and not complete:
        progress_says = (
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{rs_name}" has timed out progressing.',
        )
    elif complete:
        progress_says = (
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{rs_name}" has successfully progressed.',
        )
    else:
        progress_says = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
    conditions = [
        _condition(
            old_conditions, ctype=ctype, status=says[0], reason=says[1], message=says[2], now=now
        )
        for ctype, says in (("Available", available_says), ("Progressing", progress_says))
    ]
    status: dict[str, Any] = {
        "observedGeneration": _int(obj["metadata"].get("generation"), 1),
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
    }
    if total - available > 0:
        status["unavailableReplicas"] = total - available
    status["conditions"] = conditions
    return {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}


def daemonset_status(
    obj: dict[str, Any], state: Rollout, now: datetime, rollout_seconds: float
) -> dict[str, Any]:
    """The status the daemonset controller would have written by ``now``."""
    nodes = state.nodes
    strategy = obj.get("spec", {}).get("updateStrategy", {}).get("type", "RollingUpdate")
    on_delete = strategy == "OnDelete" and state.previous_hash is not None
    progress = 0.0 if on_delete else state.progress(now, rollout_seconds)
    if progress >= 1.0:
        updated = ready = nodes
    elif state.previous_hash is None:
        updated = nodes
        ready = _count(progress, nodes)
    elif on_delete:
        updated = 0
        ready = nodes
    else:
        updated = _count(progress, nodes)
        ready = nodes - 1  # the pod being replaced is not ready
    status = {
        "currentNumberScheduled": nodes,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": nodes,
        "numberReady": ready,
        "observedGeneration": _int(obj["metadata"].get("generation"), 1),
        "updatedNumberScheduled": updated,
        "numberAvailable": ready,
    }
    if nodes - ready > 0:
        status["numberUnavailable"] = nodes - ready
    required = (
        "currentNumberScheduled",
        "numberMisscheduled",
        "desiredNumberScheduled",
        "numberReady",
    )
    return {k: v for k, v in status.items() if v != 0 or k in required}


def statefulset_status(
    obj: dict[str, Any], state: Rollout, now: datetime, rollout_seconds: float
) -> dict[str, Any]:
    """The status the statefulset controller would have written by ``now``."""
    spec = obj.get("spec", {})
    name = obj["metadata"]["name"]
    replicas = _int(spec.get("replicas"), 1)
    strategy = spec.get("updateStrategy", {}) or {}
    on_delete = strategy.get("type") == "OnDelete" and state.previous_hash is not None
    partition = _int((strategy.get("rollingUpdate") or {}).get("partition"), 0)
    target = max(0, replicas - partition)
    update_revision = f"{name}-{state.template_hash}"
    current_revision = (
        f"{name}-{state.previous_hash}" if state.previous_hash is not None else update_revision
    )
    progress = 0.0 if on_delete else state.progress(now, rollout_seconds)
    if state.previous_hash is None:
        updated = replicas
        ready = _count(progress, replicas)
        current_replicas = replicas
    elif progress >= 1.0:
        updated = target
        ready = replicas
        if partition == 0:
            current_revision = update_revision
            current_replicas = replicas
        else:
            current_replicas = replicas - target
    else:
        updated = 0 if on_delete else _count(progress, target)
        ready = replicas if on_delete else replicas - 1
        current_replicas = replicas - updated
    status = {
        "observedGeneration": _int(obj["metadata"].get("generation"), 1),
        "replicas": replicas,
        "readyReplicas": ready,
        "currentReplicas": current_replicas,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": update_revision,
        "collisionCount": 0,
        "availableReplicas": ready,
    }
    required = ("replicas", "availableReplicas")
    return {k: v for k, v in status.items() if v != 0 or k in required}


def workload_status(
    plural: str, obj: dict[str, Any], state: Rollout, now: datetime, rollout_seconds: float
) -> dict[str, Any]:
    """Dispatch to the controller of ``plural``."""
    if plural == "deployments":
        return deployment_status(obj, state, now, rollout_seconds)
    if plural == "daemonsets":
        return daemonset_status(obj, state, now, rollout_seconds)
    return statefulset_status(obj, state, now, rollout_seconds)


def rollout_complete(plural: str, obj: dict[str, Any]) -> bool:
    """``kubectl rollout status``'s verdict on a stored object (True = successfully rolled out)."""
    meta = obj.get("metadata", {})
    status = obj.get("status", {})
    spec = obj.get("spec", {})
    generation = _int(meta.get("generation"), 0)
    observed = _int(status.get("observedGeneration"), 0)
    if plural == "deployments":
        if generation > observed:
            return False
        replicas = _int(spec.get("replicas"), 1)
        updated = _int(status.get("updatedReplicas"), 0)
        return (
            updated >= replicas
            and _int(status.get("replicas"), 0) <= updated
            and _int(status.get("availableReplicas"), 0) >= updated
        )
    if plural == "daemonsets":
        desired = _int(status.get("desiredNumberScheduled"), 0)
        return (
            generation <= observed
            and _int(status.get("updatedNumberScheduled"), 0) >= desired
            and _int(status.get("numberAvailable"), 0) >= desired
        )
    if observed == 0 or generation > observed:
        return False
    replicas = _int(spec.get("replicas"), 1)
    if _int(status.get("readyReplicas"), 0) < replicas:
        return False
    rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate")
    if rolling is not None:
        partition = _int(rolling.get("partition"), 0)
        return _int(status.get("updatedReplicas"), 0) >= replicas - partition
    return bool(status.get("updateRevision") == status.get("currentRevision"))
