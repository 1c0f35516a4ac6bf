"""Observation: one list call per key kind, one read per target, verification where needed.

Everything here is read-only and allowed in a dry-run (invariant I5): listing, reading targets,
and verifying values the listing cannot vouch for (adopted values, which StackState never lists
by value). A value whose metadata names a key that StackState lists, unexpired, is not verified
again: the listing already says it is live, and that keeps a run's request count flat.

Reads overlap (:func:`observe_all`): after the lists, every target read (a Secret GET, a Vault
read, a file) and every consumer resolution of every key runs in one bounded pool of
``workers`` threads, so at most ``workers`` requests are in flight; then each key's
verification and switch-over observation, in the same pool. Results come back in the order of
the keys and of their targets and consumers, whatever order the reads finish in, so a plan does
not depend on timing. The whole observation is one :func:`rotator.shared_reads.shared_reads`
scope: reads that one LIST can answer for many keys (discovery's workloads, Secrets in list read
mode) are fetched once.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, TypeVar

import structlog

from rotator.consumers.base import Consumer, Resolution, SwitchRequest
from rotator.engine.listing import KeyListing
from rotator.engine.model import ConsumerObservation, KeySpec, ObservedKey, TargetObservation
from rotator.engine.ports import ApiKey, KeyKind, KeyStore, VerifyResult
from rotator.errors import RotatorError
from rotator.shared_reads import shared_reads
from rotator.targets.base import Target

log = structlog.get_logger(__name__)

#: Target reads and consumer resolutions in flight at once (the ``workers`` setting's default).
DEFAULT_WORKERS: Final = 8

T = TypeVar("T")


def list_kinds(
    client: KeyStore, kinds: Sequence[KeyKind]
) -> dict[KeyKind, KeyListing | RotatorError]:
    """List every kind once: its keys, indexed once for the run, or the error that
    prevented it."""
    listed: dict[KeyKind, KeyListing | RotatorError] = {}
    for kind in dict.fromkeys(kinds):
        try:
            listed[kind] = KeyListing(client.list_keys(kind))
        except RotatorError as exc:
            log.warning("observe.list_failed", kind=kind, error=str(exc))
            listed[kind] = exc
    return listed


def read_target(spec: KeySpec, target: Target) -> TargetObservation:
    """Read one target; a failure is recorded, not raised."""
    try:
        return TargetObservation(target, target.read())
    except RotatorError as exc:
        log.warning("observe.target_unreadable", key=spec.name, target=target.id, error=str(exc))
        return TargetObservation(
            target, None, exc.message, error_type=type(exc).__name__, category=exc.category
        )


def read_targets(spec: KeySpec) -> tuple[TargetObservation, ...]:
    """Read every target of a managed key; a failure is recorded, not raised."""
    return tuple(read_target(spec, target) for target in spec.targets)


def resolve_consumers(spec: KeySpec) -> tuple[Resolution, ...]:
    """What each consumer stands for this run (discovered readers, problems); read-only.

    A consumer that cannot be resolved is a blocking problem: the rotator does not act on
    readers it cannot see (I2).
    """
    return tuple(resolve_consumer(spec, consumer) for consumer in spec.consumers)


def resolve_consumer(spec: KeySpec, consumer: Consumer) -> Resolution:
    """Resolve one consumer of ``spec``; a failure becomes a blocking problem, not raised."""
    try:
        return consumer.resolve()
    except RotatorError as exc:
        log.warning(
            "observe.consumer_unresolved", key=spec.name, consumer=consumer.id, error=str(exc)
        )
        return Resolution(
            consumer.id,
            blocking=(f"cannot find the readers of {consumer.id}: {exc.message}",),
            category=exc.category,
        )


def _protected(source: TargetObservation | None) -> frozenset[int]:
    """Key ids the adopt source (a Secret readers may still use) holds with our metadata."""
    meta = source.state.managed_metadata if source and source.state else None
    if meta is None:
        return frozenset()
    ids = {meta.key_id}
    if not meta.previous_revoked:
        ids.add(meta.previous_key_id)
    return frozenset(i for i in ids if i is not None)


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
    client: KeyStore,
    listed: Mapping[int, ApiKey] | RotatorError,
    now: datetime,
) -> ObservedKey:
    """Observe one managed key given its kind's listing (sequentially; see observe_all)."""
    targets = read_targets(spec)
    source = read_target(spec, spec.adopt_from) if spec.adopt_from is not None else None
    # Resolved first: consumers observed below act on the readers found in this run.
    resolutions = resolve_consumers(spec)
    return _finish(spec, client, listed, now, _Reads(targets, source, resolutions))


def observe_all(
    specs: Sequence[KeySpec],
    client: KeyStore,
    now: datetime,
    *,
    workers: int = DEFAULT_WORKERS,
    notice: Callable[[str], None] | None = None,
) -> list[ObservedKey]:
    """Observe every key: one list per kind, then the reads of all keys overlapping in a pool of
    ``workers`` threads (see the module docstring); one result per spec, in their order.

    ``notice`` hears what is being waited for."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    tell = notice or (lambda _text: None)
    tell(f"listing {', '.join(dict.fromkeys(s.kind for s in specs))} keys in StackState")
    listed = list_kinds(client, [s.kind for s in specs])
    tell(f"reading the targets and consumers of {len(specs)} key(s), {workers} at a time")
    with (
        shared_reads(),
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rotator-observe") as pool,
    ):

        def submit(task: Callable[..., T], *args: object) -> Future[T]:
            # Each task runs in a copy of this context: the shared-reads scope and the log
            # context (run id) go with it into the worker thread.
            return pool.submit(contextvars.copy_context().run, task, *args)

        reads = [
            (
                [submit(read_target, spec, target) for target in spec.targets],
                submit(read_target, spec, spec.adopt_from) if spec.adopt_from else None,
                [submit(resolve_consumer, spec, consumer) for consumer in spec.consumers],
            )
            for spec in specs
        ]
        # Only this thread waits for results, so a task never waits for one still queued.
        finished = [
            submit(
                _finish,
                spec,
                client,
                listed[spec.kind],
                now,
                _Reads(
                    tuple(f.result() for f in targets),
                    source.result() if source is not None else None,
                    tuple(f.result() for f in resolutions),
                ),
            )
            for spec, (targets, source, resolutions) in zip(specs, reads, strict=True)
        ]
        return [future.result() for future in finished]


@dataclass(frozen=True)
class _Reads:
    """What was read for one key: its targets, the adopt source, its consumers' resolutions."""

    targets: tuple[TargetObservation, ...]
    source: TargetObservation | None
    resolutions: tuple[Resolution, ...]


def _finish(
    spec: KeySpec,
    client: KeyStore,
    listed: Mapping[int, ApiKey] | RotatorError,
    now: datetime,
    reads: _Reads,
) -> ObservedKey:
    """One key's observation from its reads: verification, then the switch-over's consumers."""
    source, resolutions = reads.source, reads.resolutions
    observed = _observe_values(spec, client, listed, now, targets=reads.targets, source=source)
    return replace(
        observed,
        resolutions=resolutions,
        adopt_source=source,
        protected_ids=_protected(source),
    )


def _observe_values(
    spec: KeySpec,
    client: KeyStore,
    listed: Mapping[int, ApiKey] | RotatorError,
    now: datetime,
    *,
    targets: tuple[TargetObservation, ...],
    source: TargetObservation | None,
) -> ObservedKey:
    if isinstance(listed, RotatorError):
        return ObservedKey(
            spec,
            targets,
            None,
            list_error=listed.message,
            list_error_type=type(listed).__name__,
            list_category=listed.category,
        )
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
            return ObservedKey(
                spec,
                targets,
                None,
                list_error=f"verifying a held value: {exc}",
                list_error_type=type(exc).__name__,
                list_category=exc.category,
            )
    empty = all(t.fingerprint is None for t in targets)
    if empty and source is not None and source.state is not None and source.fingerprint:
        # The value in use that a migration would adopt (only while no target holds one):
        # verified like any adopted value.
        fp = source.fingerprint
        if fp not in verdicts and _needs_verify(source, listed, now):
            assert source.state.value is not None
            try:
                verdicts[fp] = client.verify(
                    spec.kind,
                    source.state.value,
                    with_receiver_key=spec.kind == "ingestion-api-key",
                )
            except RotatorError as exc:
                log.warning("observe.verify_failed", key=spec.name, error=str(exc))
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
            found.append(
                ConsumerObservation(
                    consumer,
                    error=exc.message,
                    error_type=type(exc).__name__,
                    category=exc.category,
                )
            )
    return tuple(found)
