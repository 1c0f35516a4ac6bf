"""Observation: one list call per key kind, one read per target, verification where needed.

Everything here is read-only and allowed in a dry-run (invariant I5): listing, reading targets,
and verifying values the listing cannot vouch for (adopted values, which StackState never lists
by value). A value whose metadata names a key that StackState lists, unexpired, is not verified
again: the listing already says it is live, and that keeps a run's request count flat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import structlog

from rotator.consumers.base import SwitchRequest
from rotator.engine.model import ConsumerObservation, KeySpec, ObservedKey, TargetObservation
from rotator.errors import RotatorError
from rotator.stackstate import ApiKey, KeyKind, StackStateClient, VerifyResult

log = structlog.get_logger(__name__)


def list_kinds(
    client: StackStateClient, kinds: Sequence[KeyKind]
) -> dict[KeyKind, dict[int, ApiKey] | RotatorError]:
    """List every kind once: keys by id, or the error that prevented it."""
    listed: dict[KeyKind, dict[int, ApiKey] | RotatorError] = {}
    for kind in dict.fromkeys(kinds):
        try:
            listed[kind] = {k.id: k for k in client.list_keys(kind)}
        except RotatorError as exc:
            log.warning("observe.list_failed", kind=kind, error=str(exc))
            listed[kind] = exc
    return listed


def read_targets(spec: KeySpec) -> tuple[TargetObservation, ...]:
    """Read every target of a managed key; a failure is recorded, not raised."""
    observations = []
    for target in spec.targets:
        try:
            observations.append(TargetObservation(target, target.read()))
        except RotatorError as exc:
            log.warning(
                "observe.target_unreadable", key=spec.name, target=target.id, error=str(exc)
            )
            observations.append(TargetObservation(target, None, exc.message))
    return tuple(observations)


def _needs_verify(obs: TargetObservation, keys: Mapping[int, ApiKey], now: datetime) -> bool:
    state = obs.state
    if state is None or state.value is None:
        return False
    meta = state.managed_metadata
    if meta is None or meta.key_id is None:
        return True
    key = keys.get(meta.key_id)
    # Missing or expired keys are known not to work; no call needed to say so.
    return False if key is None else key.expiration is not None and key.expiration <= now


def observe_key(
    spec: KeySpec,
    client: StackStateClient,
    listed: dict[int, ApiKey] | RotatorError,
    now: datetime,
) -> ObservedKey:
    """Observe one managed key given its kind's listing."""
    targets = read_targets(spec)
    if isinstance(listed, RotatorError):
        return ObservedKey(spec, targets, None, list_error=listed.message)
    verdicts: dict[str, VerifyResult] = {}
    for obs in targets:
        fp = obs.fingerprint
        if fp is None or fp in verdicts or not _needs_verify(obs, listed, now):
            continue
        assert obs.state is not None and obs.state.value is not None
        try:
            verdicts[fp] = client.verify(
                spec.kind,
                obs.state.value,
                with_receiver_key=spec.kind == "ingestion-api-key",
            )
        except RotatorError as exc:
            log.warning(
                "observe.verify_failed", key=spec.name, target=obs.target.id, error=str(exc)
            )
            return ObservedKey(spec, targets, None, list_error=f"verifying a held value: {exc}")
    observed = ObservedKey(spec, targets, listed, verdicts)
    held = observed.held_metadata()
    if held is None or held.key_id is None or held.switched:
        return observed
    value = next(t.state.value for t in targets if t.state is not None and t.state.value)
    request = SwitchRequest(spec.name, held.fingerprint, held.rotated_at, value)
    consumers = observe_consumers(spec, request, frozenset(held.done))
    return ObservedKey(spec, targets, listed, verdicts, consumers=consumers)


def observe_consumers(
    spec: KeySpec, request: SwitchRequest, done: frozenset[str]
) -> tuple[ConsumerObservation, ...]:
    """Each consumer's switch state for ``request`` (read-only); failures are recorded."""
    found = []
    for consumer in spec.consumers:
        try:
            found.append(ConsumerObservation(consumer, tuple(consumer.observe(request, done))))
        except RotatorError as exc:
            log.warning(
                "observe.consumer_failed", key=spec.name, consumer=consumer.id, error=str(exc)
            )
            found.append(ConsumerObservation(consumer, error=exc.message))
    return tuple(found)
